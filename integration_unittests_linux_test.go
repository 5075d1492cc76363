//go:build linux

package ipvs_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// TestIntegrationDesired: a table made by single calls, with settings the
// kernel reports in its own way (defaults, flags, tunnels, thresholds), read
// with VirtualServices and converted with Desired, is one Reconcile finds
// nothing to change in; an edit of it is applied as exactly that change.
func TestIntegrationDesired(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	addr := netip.MustParseAddr
	web := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.50.0.1"), Port: 80, Scheduler: ipvs.WeightedRoundRobin}
	persistent := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.50.0.2"), Port: 443, Scheduler: ipvs.SourceHashing,
		Flags: ipvs.FlagPersistent | ipvs.FlagSHPort, Timeout: 600 * time.Second, Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)}
	sip := ipvs.Service{Protocol: ipvs.UDP, Address: addr("2001:db8::50"), Port: 5060, Scheduler: ipvs.RoundRobin,
		Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket, Timeout: 300 * time.Second, PersistenceEngine: ipvs.PersistenceEngineSIP}
	mark := ipvs.Service{FirewallMark: 50, Family: ipvs.IPv6, Scheduler: ipvs.MaglevHashing, Flags: ipvs.FlagMHPort}
	empty := ipvs.Service{Protocol: ipvs.SCTP, Address: addr("10.50.0.3"), Port: 9, Scheduler: ipvs.LeastConnection}
	mustCreate(t, ctx, c, web, persistent, sip, mark, empty)
	mustCreateDest(t, ctx, c, web,
		ipvs.Destination{Address: addr("10.51.0.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
		ipvs.Destination{Address: addr("10.51.0.2"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 0},
		ipvs.Destination{Address: addr("10.51.0.3"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 1,
			TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelChecksum: ipvs.TunnelChecksumRemote})
	mustCreateDest(t, ctx, c, persistent, ipvs.Destination{Address: addr("10.51.1.1"), Port: 443, ForwardMethod: ipvs.DR, Weight: 1})
	mustCreateDest(t, ctx, c, sip, ipvs.Destination{Address: addr("2001:db8::51"), Port: 5060, ForwardMethod: ipvs.NAT, Weight: 1})
	mustCreateDest(t, ctx, c, mark,
		ipvs.Destination{Address: addr("2001:db8::52"), ForwardMethod: ipvs.DR, Weight: 2},
		ipvs.Destination{Address: addr("2001:db8::53"), ForwardMethod: ipvs.IPIP, Weight: 1,
			TunnelType: ipvs.TunnelGRE, TunnelChecksum: ipvs.TunnelChecksumOn})

	table, err := c.VirtualServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desired := ipvs.Desired(table)
	if len(desired) != 5 {
		t.Fatalf("%d services read, want 5", len(desired))
	}
	res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("Reconcile of the table read: %v, %v; want no change", res.Changes, err)
	}

	// The controller's edit: one more destination for web.
	extra := ipvs.Destination{Address: addr("10.51.0.4"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1}
	for i, vs := range desired {
		if vs.Service.Address == web.Address && vs.Service.Port == web.Port {
			desired[i].Destinations = append(vs.Destinations, extra)
		}
	}
	res, err = c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != ipvs.CreateDestination || res.Changes[0].Destination != extra {
		t.Fatalf("Reconcile of the edit: %v, %v; want the one new destination", res.Changes, err)
	}
	if res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{}); err != nil || len(res.Changes) != 0 {
		t.Errorf("not converged: %v, %v", res.Changes, err)
	}
}
