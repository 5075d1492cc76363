//go:build linux

package ipvs_test

// Dumps while another namespace changes its services: the kernel hashes
// every namespace's services into global tables and resumes a dump at a
// global index, so the churn shifts the cursor.

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// TestIntegrationDumpForeignChurn dumps one namespace's services while
// another namespace creates and deletes services. The kernel hashes every
// namespace's services into global tables and resumes a dump at a global
// index, so the churn shifts the cursor: entries can be listed twice, or,
// in dumps longer than one datagram, skipped.
func TestIntegrationDumpForeignChurn(t *testing.T) {
	c, _ := newClient(t)
	other, _ := newClient(t)
	ctx := testCtx(t)
	small := []ipvs.Service{
		{Protocol: ipvs.TCP, Address: addr("10.26.0.1"), Port: 80, Scheduler: ipvs.RoundRobin},
		{Protocol: ipvs.UDP, Address: addr("2001:db8:26::1"), Port: 53, Scheduler: ipvs.RoundRobin},
		// Mark services are dumped last, from the second table: any
		// service added elsewhere shifts the cursor back onto them.
		{FirewallMark: 26, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin},
		{FirewallMark: 26, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin},
	}
	mustCreate(t, ctx, c, small...)

	stop := make(chan struct{})
	var churnOps int
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 27, byte(i / 250 % 250), byte(1 + i%250)}), Port: 80, Scheduler: ipvs.RoundRobin}
			if err := other.CreateService(ctx, s); err != nil {
				t.Errorf("churn: CreateService: %v", err)
				return
			}
			if i%3 != 0 {
				if err := other.DeleteService(ctx, s); err != nil {
					t.Errorf("churn: DeleteService: %v", err)
					return
				}
			}
			churnOps++
		}
	})
	// count dumps the table and counts repeated and missing services.
	count := func(want []ipvs.Service, rounds int, budget time.Duration) (dumps, dupDumps, dups, missDumps, misses int) {
		wantSet := map[ipvs.Service]bool{}
		for _, s := range want {
			wantSet[s] = true
		}
		start := time.Now()
		for dumps = 0; dumps < rounds && time.Since(start) < budget; dumps++ {
			svcs, err := c.Services(ctx)
			if err != nil {
				t.Fatalf("Services: %v", err)
			}
			seen := map[ipvs.Service]int{}
			for _, s := range svcs {
				seen[s.Service]++
				if !wantSet[s.Service] {
					t.Errorf("Services listed %v, which this namespace does not have", s.Service)
				}
			}
			d, m := 0, 0
			for s := range wantSet {
				switch n := seen[s]; {
				case n == 0:
					m++
				case n > 1:
					d += n - 1
				}
			}
			if d > 0 {
				dupDumps++
				dups += d
			}
			if m > 0 {
				missDumps++
				misses += m
			}
		}
		return
	}
	dumps, dupDumps, dups, missDumps, misses := count(small, 400, 8*time.Second)
	t.Logf("4 services (one datagram), %d dumps under foreign churn: %d dumps repeated %d entries, %d dumps missed %d entries", dumps, dupDumps, dups, missDumps, misses)
	smallDupDumps, smallMissDumps := dupDumps, missDumps

	// A table longer than one datagram.
	large := slices.Clone(small)
	for i := range 300 {
		s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 26, byte(1 + i/250), byte(1 + i%250)}), Port: 80, Scheduler: ipvs.RoundRobin}
		mustCreate(t, ctx, c, s)
		large = append(large, s)
	}
	dumps, dupDumps, dups, missDumps, misses = count(large, 100, 8*time.Second)
	t.Logf("304 services (several datagrams), %d dumps under foreign churn: %d dumps repeated %d entries, %d dumps missed %d entries", dumps, dupDumps, dups, missDumps, misses)
	close(stop)
	wg.Wait()
	t.Logf("the other namespace made %d changes meanwhile", churnOps)

	// Without churn, dumps are exact.
	if d, dd, _, md, _ := count(large, 5, time.Minute); dd != 0 || md != 0 {
		t.Errorf("without churn, %d of %d dumps repeated and %d missed services", dd, d, md)
	}
	// A repeated entry is a defect of Services itself: a dump that fits
	// one datagram had every entry already, and the repeat is easy to
	// drop. Skips in long dumps need a second dump to detect; they are
	// reported above.
	if smallDupDumps > 0 || smallMissDumps > 0 {
		t.Errorf("Services on a 4-service table returned repeated entries in %d dumps and missed entries in %d dumps while another namespace changed its services", smallDupDumps, smallMissDumps)
	}
}

// TestIntegrationUnderConcurrentWriter runs VirtualServices and Reconcile
// while another namespace churns its services: the kernel's dump cursor
// counts every namespace's services, so long dumps here repeat and skip
// entries. VirtualServices must never repeat one, and Reconcile with the
// table already as desired must never change a thing wrongly: a service
// a dump skipped looks missing, its create meets EEXIST, and Reconcile reads
// again instead of failing.
func TestIntegrationUnderConcurrentWriter(t *testing.T) {
	c, _ := newClient(t)
	other, _ := newClient(t)
	ctx := testCtx(t)
	desired := desiredTable(1200, func(i int) int { return i % 3 })
	if _, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	stop := make(chan struct{})
	var ops atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 43, byte(i / 200 % 200), byte(1 + i%200)}), Port: 80, Scheduler: ipvs.RoundRobin}
			if err := other.CreateService(ctx, s); err != nil && !errors.Is(err, os.ErrExist) {
				t.Errorf("churn: %v", err)
				return
			}
			if i%2 == 0 {
				if err := other.DeleteService(ctx, s); err != nil {
					t.Errorf("churn: %v", err)
					return
				}
			}
			ops.Add(1)
		}
	})
	stopChurn := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopChurn()

	var short, retried int
	deadline := time.Now().Add(20 * time.Second)
	rounds := 0
	for ; rounds < 12 && time.Now().Before(deadline); rounds++ {
		vs, err := c.VirtualServices(ctx)
		if err != nil {
			t.Fatalf("VirtualServices: %v", err)
		}
		seen := map[ipvs.Service]bool{}
		for _, v := range vs {
			if seen[v.Service] {
				t.Fatalf("VirtualServices repeated %v", v.Service)
			}
			seen[v.Service] = true
		}
		if len(vs) < len(desired) {
			short++ // a dump skipped entries: detectable only by comparison
		}
		res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
		if err != nil {
			t.Fatalf("Reconcile under churn: %v", err)
		}
		for i, ch := range res.Changes {
			switch {
			case ch.Kind == ipvs.CreateService && errors.Is(res.Errors[i], os.ErrExist),
				ch.Kind == ipvs.CreateDestination && errors.Is(res.Errors[i], os.ErrExist):
				retried++ // skipped by the dump; that service was then read alone
			case ch.Kind == ipvs.DeleteService || ch.Kind == ipvs.DeleteDestination || ch.Kind == ipvs.UpdateService || ch.Kind == ipvs.UpdateDestination:
				t.Errorf("Reconcile of an unchanged table made %v", ch)
			case res.Errors[i] != nil:
				t.Errorf("%v: %v", ch, res.Errors[i])
			}
		}
	}
	stopChurn()
	t.Logf("%d rounds while the other namespace made %d changes: %d listings short of entries, %d creates met an entry a dump had skipped",
		rounds, ops.Load(), short, retried)
	wantVirtualServices(t, c, desired)
}
