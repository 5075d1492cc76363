//go:build linux

package ipvs_test

import (
	"os"
	"syscall"
	"testing"

	"github.com/ipvs-go/ipvs"
)

// TestIntegrationDestinations covers every forwarding method, tunnel type
// and checksum mode, mixed-family tunnels and thresholds, then updates,
// deletes and lists.
func TestIntegrationDestinations(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	s4 := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.15.0.1"), Port: 80, Scheduler: ipvs.WeightedLeastConnection}
	s6 := ipvs.Service{Protocol: ipvs.UDP, Address: addr("2001:db8:15::1"), Port: 53, Scheduler: ipvs.RoundRobin}
	f4 := ipvs.Service{FirewallMark: 15, Family: ipvs.IPv4, Scheduler: ipvs.MaglevHashing}
	f6 := ipvs.Service{FirewallMark: 15, Family: ipvs.IPv6, Scheduler: ipvs.SourceHashing}
	empty := ipvs.Service{Protocol: ipvs.SCTP, Address: addr("10.15.0.2"), Port: 9, Scheduler: ipvs.RoundRobin}
	mustCreate(t, ctx, c, s4, s6, f4, f6, empty)

	want := table{
		s4: {
			{Address: addr("10.15.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1},
			{Address: addr("10.15.1.2"), Port: 80, ForwardMethod: ipvs.DR, Weight: 0},
			{Address: addr("10.15.1.3"), Port: 80, ForwardMethod: ipvs.Local, Weight: 2},
			{Address: addr("10.15.1.4"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 3, TunnelType: ipvs.TunnelIPIP},
			{Address: addr("10.15.1.5"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 4, TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelChecksum: ipvs.TunnelChecksumNone},
			{Address: addr("10.15.1.6"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 5, TunnelType: ipvs.TunnelGUE, TunnelPort: 6081, TunnelChecksum: ipvs.TunnelChecksumOn},
			{Address: addr("10.15.1.7"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 6, TunnelType: ipvs.TunnelGUE, TunnelPort: 65535, TunnelChecksum: ipvs.TunnelChecksumRemote},
			{Address: addr("10.15.1.8"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 7, TunnelType: ipvs.TunnelGRE, TunnelChecksum: ipvs.TunnelChecksumNone},
			{Address: addr("10.15.1.9"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 8, TunnelType: ipvs.TunnelGRE, TunnelChecksum: ipvs.TunnelChecksumOn},
			{Address: addr("10.15.1.10"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: ipvs.MaxWeight, UpperThreshold: 100, LowerThreshold: 50},
			{Address: addr("10.15.1.11"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1, UpperThreshold: 2147483647, LowerThreshold: 2147483647},
			{Address: addr("10.15.1.11"), Port: 8081, ForwardMethod: ipvs.NAT, Weight: 1, UpperThreshold: 10},
			// A local address is kept as NAT (the kernel no longer rewrites it).
			{Address: addr("127.0.0.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1},
			// Mixed family: an IPv6 tunnel destination under an IPv4 service.
			{Address: addr("2001:db8:15::100"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelIPIP},
			{Address: addr("2001:db8:15::101"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelChecksum: ipvs.TunnelChecksumRemote},
		},
		s6: {
			{Address: addr("2001:db8:15::10"), Port: 5353, ForwardMethod: ipvs.NAT, Weight: 10, UpperThreshold: 1000, LowerThreshold: 800},
			{Address: addr("2001:db8:15::11"), Port: 53, ForwardMethod: ipvs.DR, Weight: 1},
			{Address: addr("2001:db8:15::12"), Port: 53, ForwardMethod: ipvs.Local, Weight: 1},
			{Address: addr("2001:db8:15::13"), Port: 53, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGRE, TunnelChecksum: ipvs.TunnelChecksumOn},
			{Address: addr("::1"), Port: 53, ForwardMethod: ipvs.NAT, Weight: 1},
			// Mixed family: an IPv4 tunnel destination under an IPv6 service.
			{Address: addr("10.15.2.1"), Port: 53, ForwardMethod: ipvs.IPIP, Weight: 2, TunnelType: ipvs.TunnelIPIP},
			{Address: addr("10.15.2.2"), Port: 53, ForwardMethod: ipvs.IPIP, Weight: 2, TunnelType: ipvs.TunnelGRE},
		},
		f4: {
			{Address: addr("10.15.3.1"), Port: 0, ForwardMethod: ipvs.DR, Weight: 1},
			{Address: addr("10.15.3.2"), Port: 0, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGUE, TunnelPort: 5555, TunnelChecksum: ipvs.TunnelChecksumOn},
			{Address: addr("2001:db8:15::200"), Port: 0, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGRE},
			{Address: addr("10.15.3.3"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1},
		},
		f6: {
			{Address: addr("2001:db8:15::300"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1},
			{Address: addr("10.15.4.1"), Port: 0, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelIPIP},
		},
		empty: nil,
	}
	for s, ds := range want {
		t.Run("create under "+s.String(), func(t *testing.T) {
			mustCreateDest(t, ctx, c, s, ds...)
			if len(ds) > 0 {
				dup := ds[0]
				dup.Weight++
				err := c.CreateDestination(ctx, s, dup)
				wantKernelErr(t, "CreateDestination of an existing destination under "+s.String(), err, syscall.EEXIST, os.ErrExist)
			}
		})
	}
	wantTable(t, ctx, c, want)
	// A service without destinations lists none, without error.
	ds, err := c.Destinations(ctx, identity(empty))
	if err != nil || len(ds) != 0 {
		t.Errorf("Destinations of a service without destinations = %v, %v; want none", ds, err)
	}
	// The connection counters of idle destinations are zero.
	got, err := c.Destinations(ctx, identity(s4))
	if err != nil {
		t.Fatalf("Destinations: %v", err)
	}
	for _, d := range got {
		if d.ActiveConnections != 0 || d.InactiveConnections != 0 || d.PersistentConnections != 0 || d.Stats != (ipvs.Stats{}) {
			t.Errorf("idle destination %v: %+v", d.Destination, d)
		}
	}

	// Update: weights, a forwarding method, a tunnel, thresholds.
	for s, ds := range want {
		t.Run("update under "+s.String(), func(t *testing.T) {
			for i, d := range ds {
				d.Weight = int((int64(d.Weight) + 10) % (int64(ipvs.MaxWeight) + 1))
				switch {
				case d.ForwardMethod == ipvs.NAT && d.UpperThreshold == 0:
					d.ForwardMethod = ipvs.DR
				case d.TunnelType == ipvs.TunnelGUE:
					d.TunnelType, d.TunnelPort, d.TunnelChecksum = ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn
				case d.UpperThreshold != 0:
					d.UpperThreshold, d.LowerThreshold = 7, 7
				}
				if err := c.UpdateDestination(ctx, identity(s), d); err != nil {
					t.Fatalf("UpdateDestination(%v, %+v): %v", s, d, err)
				}
				ds[i] = d
			}
		})
	}
	wantTable(t, ctx, c, want)
	// Only the weight, as a controller draining a destination does.
	d := want[s4][0]
	d.Weight = 0
	if err := c.UpdateDestination(ctx, identity(s4), d); err != nil {
		t.Fatalf("UpdateDestination weight 0: %v", err)
	}
	want[s4][0] = d
	wantTable(t, ctx, c, want)

	// Delete: identity only; every other destination stays.
	for s, ds := range want {
		t.Run("delete under "+s.String(), func(t *testing.T) {
			for len(ds) > 1 {
				d := ds[len(ds)-1]
				if err := c.DeleteDestination(ctx, identity(s), ipvs.Destination{Address: d.Address, Port: d.Port}); err != nil {
					t.Fatalf("DeleteDestination(%v, %v): %v", s, d, err)
				}
				ds = ds[:len(ds)-1]
				err := c.DeleteDestination(ctx, identity(s), ipvs.Destination{Address: d.Address, Port: d.Port})
				wantKernelErr(t, "second DeleteDestination", err, syscall.ENOENT, os.ErrNotExist)
			}
		})
		want[s] = ds
	}
	wantTable(t, ctx, c, want)

	// A missing service has no destination list.
	missing := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.15.9.9"), Port: 80}
	_, err = c.Destinations(ctx, missing)
	wantKernelErr(t, "Destinations of a missing service", err, syscall.ESRCH, os.ErrNotExist)
	_, err = c.Destinations(ctx, ipvs.Service{FirewallMark: 99, Family: ipvs.IPv6})
	wantKernelErr(t, "Destinations of a missing mark service", err, syscall.ESRCH, os.ErrNotExist)
}
