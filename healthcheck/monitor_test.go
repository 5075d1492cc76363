package healthcheck

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// The queue gives the checks back in the order of their next run, whatever
// the order they came in.
func TestCheckQueueOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	var q checkQueue
	pushed := 0
	last := time.Time{}
	for round := range 200 {
		for range r.IntN(20) {
			q.push(&checkState{next: base.Add(time.Duration(r.IntN(1000)) * time.Millisecond)})
			pushed++
		}
		// Pop some: never earlier than the one before, within a round.
		last = time.Time{}
		for range r.IntN(20) {
			if len(q) == 0 {
				break
			}
			c := q.pop()
			if c.next.Before(last) {
				t.Fatalf("round %d: popped %v after %v", round, c.next, last)
			}
			last = c.next
			for _, o := range q {
				if o.next.Before(c.next) {
					t.Fatalf("round %d: popped %v while %v waits", round, c.next, o.next)
				}
			}
		}
	}
	if pushed == 0 {
		t.Fatal("nothing pushed")
	}
}

// Options.MaxInFlight bounds the probes that run at once.
func TestMaxInFlight(t *testing.T) {
	var now, peak, runs atomic.Int64
	slow := Func(func(ctx context.Context, _ Target) error {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		runs.Add(1)
		return nil
	})
	var ds []Destination
	for i := range 20 {
		ds = append(ds, Destination{
			Destination: dest(fmt.Sprintf("10.0.3.%d:80", i+1), 1),
			Checks:      []Check{{Probe: slow, Interval: time.Millisecond}},
		})
	}
	m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: ds}}, Options{MaxInFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if runs.Load() < 20 {
		t.Fatalf("%d probes ran, want every destination checked at least once", runs.Load())
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d probes ran at once, want at most MaxInFlight 3", p)
	} else if p < 2 {
		t.Errorf("at most %d probe ran at once: the limit of 3 was not used", p)
	}
	t.Logf("%d probes, at most %d at once", runs.Load(), peak.Load())
}

// A result that changes nothing costs no allocation, however many
// destinations the service has: the Monitor looks at the destination that
// reported, not at all of them.
func TestStepWithoutTransitionAllocatesNothing(t *testing.T) {
	k := newFakeKernel()
	var ds []Destination
	for i := range 2000 {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80)
		ds = append(ds, Destination{Destination: dest(ap.String(), 1), Checks: oneCheck(Check{})})
	}
	s := newSim(t, k, []Service{{Service: svc, Destinations: ds}, {Service: svc2, Destinations: ds[:10]}}, Options{})
	k.takeCalls()
	d, c := s.check(0, "10.1.3.231:80", 0)
	allocs := testing.AllocsPerRun(100, func() {
		s.m.record(d, c, KeepWeight, nil, s.now)
		s.m.step(context.Background(), s.now)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per passing result, want 0", allocs)
	}
	if calls := k.takeCalls(); len(calls) != 0 {
		t.Errorf("passing results applied %v", calls)
	}
	// A transition still goes through.
	s.result("10.1.3.231:80", 0, errDown)
	s.wantWeight(svc, "10.1.3.231:80", 0)
	if ev := s.takeEvents(); len(ev) != 1 || ev[0].Kind != Down {
		t.Errorf("events = %v, want one Down", ev)
	}
}
