//go:build linux

package ipvs_test

// Dumps while another namespace changes its services: the kernel hashes
// every namespace's services into global tables and resumes a dump at a
// global index, so the churn shifts the cursor.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// startChurn makes a namespace of its own and, in a goroutine, creates
// the services 10.octet.x.y:80 there one after another, deleting each at
// once except one in every keepEvery, so that the global service tables,
// and so the dump cursor of every other namespace, keep moving. It runs
// until the returned stop is called or the test ends. stop waits for the
// goroutine, reports the churn's own failure with t.Errorf and returns the
// number of changes made (a create, with its delete if any, counts as one).
func startChurn(t *testing.T, ctx context.Context, octet byte, keepEvery int) (stop func() int) {
	t.Helper()
	other, _ := newClient(t)
	done := make(chan struct{})
	var ops atomic.Int64
	var err error // written by the goroutine, read by stop after wg.Wait
	var wg sync.WaitGroup
	wg.Go(func() {
		const wrap = 250 * 250 // addresses before they come round again
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, octet, byte(i / 250 % 250), byte(1 + i%250)}), Port: 80, Scheduler: ipvs.RoundRobin}
			e := other.CreateService(ctx, s)
			if e != nil && i >= wrap && errors.Is(e, os.ErrExist) {
				e = nil // one kept the first time round
			}
			if e == nil && i%keepEvery != 0 {
				e = other.DeleteService(ctx, s)
			}
			if e != nil {
				if ctx.Err() == nil { // else the test is over: not the churn's failure
					err = fmt.Errorf("change %d on %v: %w", i, s, e)
				}
				return
			}
			ops.Add(1)
		}
	})
	stop = sync.OnceValue(func() int {
		close(done)
		wg.Wait()
		if err != nil {
			t.Errorf("churn in the other namespace stopped after %d changes: %v", ops.Load(), err)
		}
		return int(ops.Load())
	})
	t.Cleanup(func() { stop() }) // before the other client's cleanup flushes and closes it
	return stop
}

// TestIntegrationDumpForeignChurn dumps one namespace's services while
// another namespace creates and deletes services. The kernel hashes every
// namespace's services into global tables and resumes a dump at a global
// index, so the churn shifts the cursor: entries can be listed twice, or,
// in dumps longer than one datagram, skipped.
func TestIntegrationDumpForeignChurn(t *testing.T) {
	c, _ := newClient(t)
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

	stopChurn := startChurn(t, ctx, 27, 3)
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
	t.Logf("the other namespace made %d changes meanwhile", stopChurn())

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
	ctx := testCtx(t)
	desired := desiredTable(1200, func(i int) int { return i % 3 })
	if _, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	stopChurn := startChurn(t, ctx, 43, 2)

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
	t.Logf("%d rounds while the other namespace made %d changes: %d listings short of entries, %d creates met an entry a dump had skipped",
		rounds, stopChurn(), short, retried)
	wantVirtualServices(t, c, desired)
}
