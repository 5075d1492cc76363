//go:build linux

package ipvs_test

// The real-kernel tests of Apply, VirtualServices and Reconcile.

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

func batchSvc(i int) ipvs.Service {
	return ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 40, byte(i >> 8), byte(i)}), Port: 80, Scheduler: ipvs.RoundRobin}
}

func batchDest(i, j int) ipvs.Destination {
	return ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 41 + byte(j), byte(i >> 8), byte(i)}), Port: 8080, Weight: 1 + j}
}

// desiredTable has n services; service i has dests(i) destinations.
func desiredTable(n int, dests func(i int) int) []ipvs.VirtualService {
	out := make([]ipvs.VirtualService, n)
	for i := range out {
		out[i].Service = batchSvc(i)
		for j := range dests(i) {
			out[i].Destinations = append(out[i].Destinations, batchDest(i, j))
		}
	}
	return out
}

func TestIntegrationApply(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	bad := batchSvc(2)
	bad.Scheduler = "nosuch"
	reweighted := batchDest(0, 0)
	reweighted.Weight = 9
	cases := []struct {
		name   string
		change ipvs.Change
		want   error
	}{
		{"create a service", ipvs.Change{Kind: ipvs.CreateService, Service: batchSvc(0)}, nil},
		{"create a destination", ipvs.Change{Kind: ipvs.CreateDestination, Service: batchSvc(0), Destination: batchDest(0, 0)}, nil},
		{"create an existing service (EEXIST)", ipvs.Change{Kind: ipvs.CreateService, Service: batchSvc(0)}, os.ErrExist},
		{"create an invalid service (not sent)", ipvs.Change{Kind: ipvs.CreateService, Service: ipvs.Service{Protocol: ipvs.TCP, Scheduler: "rr"}}, os.ErrInvalid},
		{"create with no such scheduler (ENOENT)", ipvs.Change{Kind: ipvs.CreateService, Service: bad}, ipvs.ErrSchedulerNotFound},
		{"delete no such destination (ENOENT)", ipvs.Change{Kind: ipvs.DeleteDestination, Service: batchSvc(0), Destination: batchDest(0, 5)}, os.ErrNotExist},
		{"delete no such service (ESRCH)", ipvs.Change{Kind: ipvs.DeleteService, Service: batchSvc(3)}, os.ErrNotExist},
		{"create a destination under no such service (ESRCH)", ipvs.Change{Kind: ipvs.CreateDestination, Service: batchSvc(4), Destination: batchDest(4, 0)}, os.ErrNotExist},
		{"update the destination created above", ipvs.Change{Kind: ipvs.UpdateDestination, Service: batchSvc(0), Destination: reweighted}, nil},
		{"create a service after the failures", ipvs.Change{Kind: ipvs.CreateService, Service: batchSvc(1)}, nil},
	}
	var changes []ipvs.Change
	for _, tc := range cases {
		changes = append(changes, tc.change)
	}
	errs, err := c.Apply(ctx, changes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil && errs[i] != nil || tc.want != nil && !errors.Is(errs[i], tc.want) {
				t.Errorf("change %d (%v): %v, want %v", i, changes[i], errs[i], tc.want)
			}
		})
	}
	wantVirtualServices(t, c, []ipvs.VirtualService{
		{Service: batchSvc(0), Destinations: []ipvs.Destination{reweighted}},
		{Service: batchSvc(1)},
	})

	// A large batch: many sendmsg calls, every ACK read.
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	desired := desiredTable(1000, func(i int) int { return i % 5 })
	changes = changes[:0]
	for _, vs := range desired {
		changes = append(changes, ipvs.Change{Kind: ipvs.CreateService, Service: vs.Service})
		for _, d := range vs.Destinations {
			changes = append(changes, ipvs.Change{Kind: ipvs.CreateDestination, Service: vs.Service, Destination: d})
		}
	}
	start := time.Now()
	errs, err = c.Apply(ctx, changes)
	if err != nil {
		t.Fatalf("Apply of %d changes: %v", len(changes), err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("change %d (%v): %v", i, changes[i], e)
		}
	}
	t.Logf("Apply of %d changes took %v", len(changes), time.Since(start))
	wantVirtualServices(t, c, desired)
}

// TestIntegrationVirtualServices lists services whose destinations fit one
// datagram or span several (so that the pipelined dumps meet EBUSY), and
// services without any, in IPv4 and IPv6 and as firewall marks.
func TestIntegrationVirtualServices(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	if vs, err := c.VirtualServices(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("VirtualServices of an empty table = %v, %v", vs, err)
	}
	counts := []int{0, 3, 0, 0, 25, 1, 120, 0, 7, 2}
	var desired []ipvs.VirtualService
	for i, n := range counts {
		vs := ipvs.VirtualService{Service: batchSvc(i)}
		switch i % 3 {
		case 1:
			vs.Service = ipvs.Service{Protocol: ipvs.UDP, Address: netip.MustParseAddr(fmt.Sprintf("2001:db8:40::%x", i+1)), Port: 53, Scheduler: ipvs.WeightedRoundRobin}
		case 2:
			vs.Service = ipvs.Service{FirewallMark: uint32(40 + i), Family: ipvs.IPv4, Scheduler: ipvs.MaglevHashing}
		}
		for j := range n {
			d := ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 42, byte(i), byte(j + 1)}), Port: 80, Weight: j, ForwardMethod: ipvs.IPIP}
			if vs.Service.Address.Is6() {
				d.Address = netip.MustParseAddr(fmt.Sprintf("2001:db8:41:%x::%x", i, j+1))
				d.ForwardMethod = ipvs.NAT
			}
			vs.Destinations = append(vs.Destinations, d)
		}
		desired = append(desired, vs)
	}
	if _, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for range 3 {
		wantVirtualServices(t, c, desired)
	}
}

func TestIntegrationReconcile(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	kinds := func(res ipvs.ReconcileResult) map[ipvs.ChangeKind]int {
		m := map[ipvs.ChangeKind]int{}
		for i, ch := range res.Changes {
			if res.Errors[i] != nil {
				t.Errorf("%v: %v", ch, res.Errors[i])
			}
			m[ch.Kind]++
		}
		return m
	}
	desired := desiredTable(300, func(int) int { return 4 })
	res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile from empty: %v", err)
	}
	if diff := cmp.Diff(map[ipvs.ChangeKind]int{ipvs.CreateService: 300, ipvs.CreateDestination: 1200}, kinds(res)); diff != "" {
		t.Errorf("from empty (-want +got):\n%s", diff)
	}
	wantVirtualServices(t, c, desired)

	res, err = c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("second run changed %v, %v", res.Changes, err)
	}

	// One of each: a weight, a scheduler, a removed destination, a removed
	// service, an added destination and an added service. A netmask
	// written as /32 is the default: no change.
	desired[0].Destinations[1].Weight = 50
	desired[1].Service.Scheduler = ipvs.WeightedLeastConnection
	desired[2].Service.Netmask = ipvs.PrefixMask(ipvs.IPv4, 32)
	desired[3].Destinations = desired[3].Destinations[:3]
	desired[4].Destinations = append(desired[4].Destinations, batchDest(4, 9))
	desired = append(desired[:5], desired[6:]...)
	desired = append(desired, ipvs.VirtualService{Service: batchSvc(999)})
	res, err = c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	want := map[ipvs.ChangeKind]int{ipvs.UpdateDestination: 1, ipvs.UpdateService: 1, ipvs.DeleteDestination: 1,
		ipvs.CreateDestination: 1, ipvs.DeleteService: 1, ipvs.CreateService: 1}
	if diff := cmp.Diff(want, kinds(res)); diff != "" {
		t.Errorf("edits (-want +got):\n%s", diff)
	}
	wantVirtualServices(t, c, desired)
	if res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{}); err != nil || len(res.Changes) != 0 {
		t.Fatalf("not converged: %v, %v", res.Changes, err)
	}

	// Graceful removal: first weight 0, then, with no connections, gone.
	desired[0].Destinations = desired[0].Destinations[1:]
	opts := ipvs.ReconcileOptions{GracefulRemoval: true}
	res, err = c.Reconcile(ctx, desired, opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != ipvs.UpdateDestination || res.Changes[0].Destination.Weight != 0 {
		t.Fatalf("graceful removal, first run: %v, %v", res.Changes, err)
	}
	res, err = c.Reconcile(ctx, desired, opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != ipvs.DeleteDestination {
		t.Fatalf("graceful removal, second run: %v, %v", res.Changes, err)
	}
	wantVirtualServices(t, c, desired)

	// To empty.
	res, err = c.Reconcile(ctx, nil, ipvs.ReconcileOptions{})
	if err != nil || len(res.Changes) != len(desired) {
		t.Fatalf("Reconcile to empty: %d changes, %v", len(res.Changes), err)
	}
	wantVirtualServices(t, c, nil)
}
