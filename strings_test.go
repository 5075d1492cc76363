package ipvs

import "testing"

func TestStrings(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want string
	}{
		{"Protocol", TCP.String(), "TCP"},
		{"Protocol SCTP", SCTP.String(), "SCTP"},
		{"unknown Protocol", Protocol(99).String(), "Protocol(99)"},
		{"Family", IPv6.String(), "IPv6"},
		{"unknown Family", Family(7).String(), "Family(7)"},
		{"unknown ForwardMethod", ForwardMethod(5).String(), "ForwardMethod(5)"},
		{"TunnelType", TunnelGUE.String(), "gue"},
		{"unknown TunnelType", TunnelType(3).String(), "TunnelType(3)"},
		{"TunnelChecksum", TunnelChecksumRemote.String(), "remcsum"},
		{"unknown TunnelChecksum", TunnelChecksum(4).String(), "TunnelChecksum(4)"},
		{"DaemonState", Backup.String(), "backup"},
		{"unknown DaemonState", DaemonState(3).String(), "DaemonState(3)"},
		{"no ServiceFlags", ServiceFlags(0).String(), "0"},
		{"ServiceFlags", (FlagPersistent | FlagSHFallback | FlagSHPort).String(), "persistent|flag-1|flag-2"},
		{"unknown ServiceFlags", (FlagOnePacket | 0x100).String(), "ops|0x100"},
		{"Version", Version{1, 2, 1}.String(), "1.2.1"},
		{"zero Destination", Destination{}.String(), "invalid AddrPort"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
