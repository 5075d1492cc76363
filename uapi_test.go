package ipvs

import (
	"testing"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// TestConstantsMatchUAPI: the exported constants carry literal values (so
// that documentation shows numbers, not internal names); they must equal
// the kernel's.
func TestConstantsMatchUAPI(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"IPv4", uint64(IPv4), uapi.AFInet},
		{"IPv6", uint64(IPv6), uapi.AFInet6},
		{"FlagPersistent", uint64(FlagPersistent), uapi.SvcFlagPersistent},
		{"FlagOnePacket", uint64(FlagOnePacket), uapi.SvcFlagOnePacket},
		{"FlagSched1", uint64(FlagSched1), uapi.SvcFlagSched1},
		{"FlagSched2", uint64(FlagSched2), uapi.SvcFlagSched2},
		{"FlagSched3", uint64(FlagSched3), uapi.SvcFlagSched3},
		{"NAT", uint64(NAT), uapi.ConnFlagMasq},
		{"Local", uint64(Local), uapi.ConnFlagLocalNode},
		{"IPIP", uint64(IPIP), uapi.ConnFlagTunnel},
		{"DR", uint64(DR), uapi.ConnFlagDRoute},
		{"TunnelIPIP", uint64(TunnelIPIP), uapi.TunnelTypeIPIP},
		{"TunnelGUE", uint64(TunnelGUE), uapi.TunnelTypeGUE},
		{"TunnelGRE", uint64(TunnelGRE), uapi.TunnelTypeGRE},
		{"TunnelChecksumNone", uint64(TunnelChecksumNone), uapi.TunnelFlagNoCsum},
		{"TunnelChecksumOn", uint64(TunnelChecksumOn), uapi.TunnelFlagCsum},
		{"TunnelChecksumRemote", uint64(TunnelChecksumRemote), uapi.TunnelFlagRemCsum},
		{"Master", uint64(Master), uapi.StateMaster},
		{"Backup", uint64(Backup), uapi.StateBackup},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%s = %#x, the kernel's value is %#x", c.name, c.got, c.want)
			}
		})
	}
}
