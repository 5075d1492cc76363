package ipvs

import "testing"

func TestStrings(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{TCP.String(), "TCP"},
		{SCTP.String(), "SCTP"},
		{Protocol(99).String(), "Protocol(99)"},
		{IPv6.String(), "IPv6"},
		{Family(7).String(), "Family(7)"},
		{ForwardMethod(5).String(), "ForwardMethod(5)"},
		{TunnelGUE.String(), "gue"},
		{TunnelType(3).String(), "TunnelType(3)"},
		{TunnelChecksumRemote.String(), "remcsum"},
		{TunnelChecksum(4).String(), "TunnelChecksum(4)"},
		{Backup.String(), "backup"},
		{DaemonState(3).String(), "DaemonState(3)"},
		{ServiceFlags(0).String(), "0"},
		{(FlagPersistent | FlagSHFallback | FlagSHPort).String(), "persistent|flag-1|flag-2"},
		{(FlagOnePacket | 0x100).String(), "ops|0x100"},
		{Version{1, 2, 1}.String(), "1.2.1"},
		{Destination{}.String(), "invalid AddrPort"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
