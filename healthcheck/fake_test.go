package healthcheck

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// fakeKernel is an IPVS table in memory, behind the Client interface.
type fakeKernel struct {
	mu    sync.Mutex
	svcs  map[ipvs.Service][]ipvs.Destination // by identity
	calls [][]ipvs.Change
	// fail, if set, is the error for a change (nil: apply it).
	fail func(ipvs.Change) error
	// visits counts the calls of InNetNS.
	visits atomic.Int64
}

func newFakeKernel() *fakeKernel { return &fakeKernel{svcs: map[ipvs.Service][]ipvs.Destination{}} }

func identity(s ipvs.Service) ipvs.Service {
	return ipvs.Service{Protocol: s.Protocol, Address: s.Address, Port: s.Port, FirewallMark: s.FirewallMark, Family: s.Family}
}

func (k *fakeKernel) InNetNS(fn func() error) error {
	k.visits.Add(1)
	return fn()
}

func (k *fakeKernel) Destinations(_ context.Context, s ipvs.Service) ([]ipvs.DestinationStats, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ds, ok := k.svcs[identity(s)]
	if !ok {
		return nil, &ipvs.Error{Op: "list destinations", Err: syscall.ESRCH}
	}
	var out []ipvs.DestinationStats
	for _, d := range ds {
		out = append(out, ipvs.DestinationStats{Destination: d})
	}
	return out, nil
}

func (k *fakeKernel) Apply(_ context.Context, changes []ipvs.Change) ([]error, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, slices.Clone(changes))
	errs := make([]error, len(changes))
	for i, ch := range changes {
		if k.fail != nil {
			if errs[i] = k.fail(ch); errs[i] != nil {
				continue
			}
		}
		errs[i] = k.apply(ch)
	}
	return errs, nil
}

func (k *fakeKernel) apply(ch ipvs.Change) error {
	id := identity(ch.Service)
	ds, ok := k.svcs[id]
	if ch.Kind == ipvs.CreateService {
		if ok {
			return &ipvs.Error{Op: "create service", Err: syscall.EEXIST}
		}
		k.svcs[id] = nil
		return nil
	}
	if !ok {
		return &ipvs.Error{Op: ch.Kind.String(), Err: syscall.ESRCH}
	}
	i := slices.IndexFunc(ds, func(d ipvs.Destination) bool {
		return d.Address == ch.Destination.Address && d.Port == ch.Destination.Port
	})
	switch ch.Kind {
	case ipvs.CreateDestination:
		if i >= 0 {
			return &ipvs.Error{Op: "create destination", Err: syscall.EEXIST}
		}
		k.svcs[id] = append(ds, ch.Destination)
	case ipvs.UpdateDestination:
		if i < 0 {
			return &ipvs.Error{Op: "update destination", Err: syscall.ENOENT}
		}
		ds[i] = ch.Destination
	case ipvs.DeleteDestination:
		if i < 0 {
			return &ipvs.Error{Op: "delete destination", Err: syscall.ENOENT}
		}
		k.svcs[id] = slices.Delete(ds, i, i+1)
	default:
		return fmt.Errorf("fake kernel: unexpected %v", ch.Kind)
	}
	return nil
}

// weight returns the kernel's weight of the destination at a:port of s, or
// -1 if it is absent.
func (k *fakeKernel) weight(s ipvs.Service, a string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	ap := netip.MustParseAddrPort(a)
	for _, d := range k.svcs[identity(s)] {
		if d.Address == ap.Addr() && d.Port == ap.Port() {
			return d.Weight
		}
	}
	return -1
}

func (k *fakeKernel) takeCalls() [][]ipvs.Change {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.calls
	k.calls = nil
	return c
}

// sim drives a Monitor's state machine with a fake clock: results are
// given by hand, time moves only when the test says.
type sim struct {
	t      *testing.T
	m      *Monitor
	k      *fakeKernel
	now    time.Time
	events []Event
}

var (
	svc  = ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80, Scheduler: "rr"}
	svc2 = ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.2"), Port: 80, Scheduler: "rr"}
)

func dest(a string, w int) ipvs.Destination {
	ap := netip.MustParseAddrPort(a)
	return ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Weight: w}
}

// never is a probe the sim never runs.
var never = Func(func(context.Context, Target) error { panic("the sim runs no probe") })

func newSim(t *testing.T, k *fakeKernel, svcs []Service, opts Options) *sim {
	t.Helper()
	s := &sim{t: t, k: k, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	user := opts.OnEvent
	opts.OnEvent = func(e Event) {
		s.events = append(s.events, e)
		if user != nil {
			user(e)
		}
	}
	m, err := New(k, svcs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.now = func() time.Time { return s.now }
	m.warmup = func(time.Duration) time.Duration { return 0 }
	s.m = m
	if err := m.start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

// check returns check i of the destination at a of service si.
func (s *sim) check(si int, a string, i int) (*destState, *checkState) {
	s.t.Helper()
	ap := netip.MustParseAddrPort(a)
	for _, d := range s.m.svcs[si].dests {
		if d.key == ap {
			return d, d.checks[i]
		}
	}
	s.t.Fatalf("no destination %s", a)
	return nil, nil
}

// result records a result of check i of a (service 0) and steps.
func (s *sim) result(a string, i int, err error) { s.resultW(a, i, KeepWeight, err) }

func (s *sim) resultW(a string, i int, w int, err error) {
	s.t.Helper()
	d, c := s.check(0, a, i)
	c.began = s.now
	s.m.record(d, c, w, err, s.now)
	s.m.step(context.Background(), s.now)
}

func (s *sim) advance(d time.Duration) {
	s.now = s.now.Add(d)
	s.m.step(context.Background(), s.now)
}

func (s *sim) takeEvents() []Event {
	e := s.events
	s.events = nil
	return e
}

func (s *sim) wantWeight(svc ipvs.Service, a string, want int) {
	s.t.Helper()
	if got := s.k.weight(svc, a); got != want {
		s.t.Errorf("kernel weight of %s = %d, want %d", a, got, want)
	}
}

var errDown = os.ErrDeadlineExceeded
