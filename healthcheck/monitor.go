package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ipvs-go/ipvs"
)

// Client is what a Monitor needs of an *ipvs.Client, which implements it.
type Client interface {
	NetNS
	Apply(ctx context.Context, changes []ipvs.Change) ([]error, error)
	Destinations(ctx context.Context, s ipvs.Service) ([]ipvs.DestinationStats, error)
}

// A Service is a virtual service whose destinations a Monitor checks.
type Service struct {
	// Service is the virtual service. The Monitor creates it if it does
	// not exist, and otherwise leaves its configuration alone.
	ipvs.Service
	Destinations []Destination

	// Quorum is the summed weight of live destinations the service needs
	// (keepalived's quorum, 1 by default). Below Quorum-Hysteresis the
	// quorum is lost (QuorumLost); it is back at Quorum+Hysteresis.
	Quorum     int
	Hysteresis int
	// Sorry is the sorry server: without quorum it is added to the
	// service and the live destinations are taken out, as keepalived
	// does; with quorum back they return and it is deleted. It can be any
	// destination, such as a maintenance server or, with ForwardMethod
	// ipvs.Local, the load balancer itself. It must not be one of
	// Destinations.
	Sorry *ipvs.Destination

	// DepoolThreshold is the fraction of Destinations, 0 to 1, that stay
	// in the service whatever their checks say (PyBal's depool-threshold):
	// with 0.5, at most half of them are taken out at once, so that a
	// checker that lost the network itself does not empty the service.
	// A failed destination kept in is "held" (Event.Held) until another
	// comes back; 0 takes out every failed destination.
	DepoolThreshold float64
}

// A Destination is a destination of a Service and its checks. It is up
// when all its checks pass (a destination without checks is always up).
type Destination struct {
	// Destination is the destination as it is when up: its Weight is the
	// weight it gets back.
	ipvs.Destination
	Checks []Check
	// Alpha starts the destination down, until its checks pass (the
	// number of successes each check's Rise asks); otherwise it starts up.
	// A destination already in the kernel starts as the kernel has it:
	// up with a non-zero weight, down with weight 0.
	Alpha bool
	// Remove deletes the destination when it is down; by default its
	// weight is set to 0 (keepalived's inhibit_on_failure), so that its
	// established connections drain, and it is added again when up.
	Remove bool
}

// Damping holds down a flapping destination, as BGP's route flap damping
// does: each time the destination goes down its penalty grows by 1, and the
// penalty halves every HalfLife. Above Suppress (3 by default) the
// destination stays down, even while its checks pass, until the penalty
// falls below Reuse (1 by default). A zero HalfLife turns damping off.
type Damping struct {
	HalfLife        time.Duration
	Suppress, Reuse float64
}

// Options configure a Monitor.
type Options struct {
	// OnEvent, if set, is called with each event, from Run's goroutine:
	// it should return quickly.
	OnEvent func(Event)
	// Events, if set, receives each event. Run waits for each to be
	// received (or for its context to be done), and closes Events when
	// it returns.
	Events  chan<- Event
	Damping Damping
	// OnCheck, if set, is called with the result of every check, from
	// Run's goroutine: it should return quickly.
	OnCheck func(CheckResult)
	// MaxInFlight bounds the checks that run at once, 4096 by default.
	// A due check waits for a free slot, and its Timeout starts when it
	// runs: on a saturated machine checks run late rather than time out
	// in a crowd.
	MaxInFlight int
	// Coalesce is how early a check may start, so that the checks due
	// close together start in one wake-up of the Monitor: by default a
	// 20th of the check's interval, at most 50 ms. A check that starts
	// early does not move its schedule (Check.Interval). It is never
	// more than a quarter of the check's interval. Each wake-up costs
	// CPU time; a larger Coalesce makes fewer, larger bursts of checks.
	Coalesce time.Duration
}

const defaultMaxInFlight = 4096

// A CheckResult is the outcome of one run of a check, for Options.OnCheck.
type CheckResult struct {
	Service     ipvs.Service
	Destination ipvs.Destination // as configured
	Check       string           // the check's name
	// Start is when the check started and Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Weight is the weight the probe returned (KeepWeight but for dynamic
	// checks) and Err its error: nil when the check passed.
	Weight int
	Err    error
}

// EventKind is what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// Up: the destination passes its checks and serves again.
	Up EventKind = iota + 1
	// Down: the destination failed a check, or is damped. Held says that
	// the depool threshold keeps it in for now; a Down event without Held
	// follows when it is taken out.
	Down
	// QuorumLost and QuorumGained: the service's live weight went below
	// its quorum, or came back; with a sorry server, it now serves or
	// stops serving.
	QuorumLost
	QuorumGained
	// ApplyFailed: the kernel refused a change (Err); the Monitor tries
	// again.
	ApplyFailed
)

func (k EventKind) String() string {
	switch k {
	case Up:
		return "up"
	case Down:
		return "down"
	case QuorumLost:
		return "quorum lost"
	case QuorumGained:
		return "quorum gained"
	case ApplyFailed:
		return "apply failed"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// An Event is a transition of a destination or of a service's quorum.
type Event struct {
	Time        time.Time
	Kind        EventKind
	Service     ipvs.Service
	Destination ipvs.Destination // as configured; for quorum events, the sorry server if any
	// Weight is the weight the transition gives the destination (0 when
	// it is out), and Removed whether it is deleted instead.
	Weight  int
	Removed bool
	// Held and Damped qualify a Down event: kept in by the depool
	// threshold; passing its checks but held down by damping.
	Held, Damped bool
	// Check names the check whose result caused the transition, and Err
	// is its last error (or, for ApplyFailed, the kernel's).
	Check string
	Err   error
	// LiveWeight is the service's summed live weight, for quorum events.
	LiveWeight int
}

func (e Event) String() string {
	var s string
	switch e.Kind {
	case QuorumLost, QuorumGained, ApplyFailed:
		s = fmt.Sprintf("%v: %v", e.Service, e.Kind)
		if e.Kind == ApplyFailed {
			s += " for " + e.Destination.String()
		} else {
			s += fmt.Sprintf(" (live weight %d)", e.LiveWeight)
		}
	default:
		s = fmt.Sprintf("%v of %v: %v", e.Destination, e.Service, e.Kind)
		switch {
		case e.Removed:
			s += ", removed"
		default:
			s += fmt.Sprintf(", weight %d", e.Weight)
		}
		if e.Held {
			s += ", held in by the depool threshold"
		}
		if e.Damped {
			s += ", damped"
		}
	}
	if e.Check != "" {
		s += " (" + e.Check
		if e.Err != nil {
			s += ": " + e.Err.Error()
		}
		s += ")"
	} else if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// A Monitor runs the checks of the destinations of some services and sets
// their weights in the kernel through a Client. It changes only the
// destinations it is given (and the sorry servers), and the services only
// to create them if they are missing.
type Monitor struct {
	client  Client
	opts    Options
	damping damping
	svcs    []*svcState
	checks  int
	running atomic.Bool

	// dirty are the services to evaluate at the next step (spare is the
	// other buffer), suppressed the destinations held down by damping.
	dirty, spare []*svcState
	suppressed   []*destState

	// now and warmup are the clock and the random warm-up (tests replace
	// them).
	now    func() time.Time
	warmup func(time.Duration) time.Duration
	// retry is how long to wait to apply again after the kernel refused
	// a change.
	retry time.Duration
	// spawned counts the checks Run sent to goroutines of their own
	// (for tests, once Run has returned).
	spawned int
	// stray counts the events of the Monitor's poller for sockets no
	// check waits on (for tests).
	stray int
	// takes counts the times Run took the sockets ready in its poller
	// (for tests).
	takes int
	// spares are the last Run's spare sockets (for tests, once Run has
	// returned: how many checks reused one).
	spares *spares
}

// New validates the services and returns a Monitor of them; Run starts it.
func New(c Client, services []Service, opts Options) (*Monitor, error) {
	if c == nil {
		return nil, invalid("Client", "is nil")
	}
	if opts.MaxInFlight < 0 {
		return nil, invalid("Options.MaxInFlight", "is negative")
	}
	if opts.Damping.HalfLife < 0 {
		return nil, invalid("Options.Damping.HalfLife", "is negative")
	}
	if opts.Damping.Reuse < 0 || opts.Damping.Suppress < 0 ||
		opts.Damping.Reuse > 0 && opts.Damping.Suppress > 0 && opts.Damping.Reuse >= opts.Damping.Suppress {
		return nil, invalid("Options.Damping", "needs 0 < Reuse < Suppress")
	}
	m := &Monitor{
		client:  c,
		opts:    opts,
		damping: opts.Damping.resolve(),
		now:     time.Now,
		warmup: func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		},
		retry: time.Second,
	}
	if m.damping.reuse >= m.damping.suppress {
		return nil, invalid("Options.Damping", "needs Reuse below Suppress")
	}
	type svcKey struct {
		p    ipvs.Protocol
		a    netip.Addr
		port uint16
		m    uint32
		f    ipvs.Family
	}
	seen := map[svcKey]bool{}
	for i, s := range services {
		f := fmt.Sprintf("Services[%d]", i)
		k := svcKey{s.Protocol, s.Address, s.Port, s.FirewallMark, s.Family}
		if s.FirewallMark != 0 {
			k = svcKey{m: s.FirewallMark, f: s.Family}
		}
		switch {
		case seen[k]:
			return nil, invalid(f, "%v is given twice", s.Service)
		case s.Quorum < 0:
			return nil, invalid(f+".Quorum", "is negative")
		case s.Hysteresis < 0:
			return nil, invalid(f+".Hysteresis", "is negative")
		case !(s.DepoolThreshold >= 0 && s.DepoolThreshold <= 1):
			return nil, invalid(f+".DepoolThreshold", "%v is not between 0 and 1", s.DepoolThreshold)
		}
		seen[k] = true
		ss := &svcState{cfg: s, idx: len(m.svcs), force: true}
		ss.cfg.Destinations = nil
		keys := map[netip.AddrPort]bool{}
		for j, d := range s.Destinations {
			df := fmt.Sprintf("%s.Destinations[%d]", f, j)
			key := netip.AddrPortFrom(d.Address, d.Port)
			switch {
			case !d.Address.IsValid():
				return nil, invalid(df+".Address", "is not set")
			case d.Weight < 0 || d.Weight > ipvs.MaxWeight:
				return nil, invalid(df+".Weight", "%d is not 0 to %d", d.Weight, ipvs.MaxWeight)
			case keys[key]:
				return nil, invalid(df, "%v is given twice", key)
			}
			keys[key] = true
			ds := &destState{cfg: d, key: key, svc: ss}
			ds.cfg.Checks = nil
			for k, c := range d.Checks {
				if err := c.validate(fmt.Sprintf("%s.Checks[%d]", df, k)); err != nil {
					return nil, err
				}
				ds.checks = append(ds.checks, &checkState{
					cfg: c, name: c.name(), weight: KeepWeight, dest: ds,
					target: c.target(s.Service, d.Destination, m.client),
				})
				m.checks++
			}
			ss.dests = append(ss.dests, ds)
		}
		if s.Sorry != nil && keys[netip.AddrPortFrom(s.Sorry.Address, s.Sorry.Port)] {
			return nil, invalid(f+".Sorry", "%v is one of the destinations", s.Sorry)
		}
		m.svcs = append(m.svcs, ss)
	}
	return m, nil
}

// record takes a check's result.
func (m *Monitor) record(d *destState, c *checkState, weight int, err error, now time.Time) {
	was := c.up
	c.record(weight, err, now)
	if c.up != was || err != nil && !c.up {
		d.cause = c
	}
	d.markDirty()
	m.markDirty(d.svc)
}

// markDirty queues s for the next step.
func (m *Monitor) markDirty(s *svcState) {
	if !s.dirty {
		s.dirty = true
		m.dirty = append(m.dirty, s)
	}
}

// step evaluates the services whose checks reported (and those whose
// damping may release a destination) at now, applies the changes, then
// emits the events: the transitions, and the changes the kernel refused.
// It reports whether the kernel took every change.
func (m *Monitor) step(ctx context.Context, now time.Time) bool {
	kept := m.suppressed[:0]
	for _, d := range m.suppressed {
		if !d.suppressed {
			d.listed = false
			continue
		}
		kept = append(kept, d)
		if !m.damping.reuseAt(d).After(now) {
			d.markDirty()
			m.markDirty(d.svc)
		}
	}
	clear(m.suppressed[len(kept):])
	m.suppressed = kept
	if len(m.dirty) == 0 {
		return true
	}
	svcs := m.dirty
	m.dirty, m.spare = m.spare[:0], svcs // markDirty during apply goes to the other
	slices.SortFunc(svcs, func(a, b *svcState) int { return a.idx - b.idx })
	var evs []Event
	var full []*svcState
	for _, s := range svcs {
		s.dirty = false
		e, changed := s.evaluate(m.damping, now)
		evs = append(evs, e...)
		if changed {
			full = append(full, s)
		}
	}
	for _, s := range full {
		if m.damping.halfLife <= 0 {
			break
		}
		for _, d := range s.dests {
			if d.suppressed && !d.listed {
				d.listed = true
				m.suppressed = append(m.suppressed, d)
			}
		}
	}
	failed := m.apply(ctx, now, full)
	for _, e := range evs {
		m.emit(ctx, e)
	}
	for _, e := range failed {
		m.emit(ctx, e)
	}
	return len(failed) == 0
}

// apply sends the changes of the services in one Apply: first those
// that add capacity, then those that remove some, so that a service is
// never empty in between (a sorry server comes in before the destinations
// go, and goes after they are back). It returns an ApplyFailed event per
// change that failed; a service with a failed change is evaluated in full
// at the next step.
func (m *Monitor) apply(ctx context.Context, now time.Time, svcs []*svcState) []Event {
	var ps []pending
	for _, s := range svcs {
		ps = append(ps, s.changes()...)
	}
	if len(ps) == 0 {
		return nil
	}
	ordered := make([]pending, 0, len(ps))
	for _, grows := range []bool{true, false} {
		for _, p := range ps {
			if p.grows == grows {
				ordered = append(ordered, p)
			}
		}
	}
	changes := make([]ipvs.Change, len(ordered))
	for i, p := range ordered {
		changes[i] = p.change
	}
	errs, err := m.client.Apply(ctx, changes)
	var failed []Event
	for i := range ordered {
		e := err
		if i < len(errs) && errs[i] != nil {
			e = errs[i]
		} else if i < len(errs) && err == nil {
			e = nil
		}
		ordered[i].settle(e)
		if e != nil {
			failed = append(failed, Event{Time: now, Kind: ApplyFailed, Service: changes[i].Service, Destination: changes[i].Destination, Err: e})
			ordered[i].svc.force = true
			m.markDirty(ordered[i].svc)
		}
	}
	return failed
}

func (m *Monitor) emit(ctx context.Context, e Event) {
	if m.opts.OnEvent != nil {
		m.opts.OnEvent(e)
	}
	if m.opts.Events != nil {
		select {
		case m.opts.Events <- e:
		case <-ctx.Done():
		}
	}
}

// start reads the kernel's destinations of every service, sets the initial
// states, and applies the first changes (a failure there is retried by Run).
func (m *Monitor) start(ctx context.Context) error {
	now := m.now()
	var creates []ipvs.Change
	for _, s := range m.svcs {
		have, err := m.client.Destinations(ctx, s.cfg.Service)
		if errors.Is(err, os.ErrNotExist) {
			creates = append(creates, ipvs.Change{Kind: ipvs.CreateService, Service: s.cfg.Service})
		} else if err != nil {
			return err
		}
		m.initial(s, have, now)
	}
	if len(creates) > 0 {
		errs, err := m.client.Apply(ctx, creates)
		if err != nil {
			return err
		}
		for _, e := range errs {
			if e != nil && !errors.Is(e, os.ErrExist) {
				return e
			}
		}
	}
	for _, s := range m.svcs {
		m.markDirty(s)
	}
	m.step(ctx, now)
	return nil
}

// initial sets a service's starting state from the destinations the kernel
// has, so that a restarted Monitor takes nothing live out.
func (m *Monitor) initial(s *svcState, have []ipvs.DestinationStats, now time.Time) {
	byKey := map[netip.AddrPort]ipvs.Destination{}
	for _, d := range have {
		byKey[netip.AddrPortFrom(d.Address, d.Port)] = d.Destination
	}
	for _, d := range s.dests {
		k, inKernel := byKey[d.key]
		up := !d.cfg.Alpha
		if inKernel {
			d.applied = applied{present: true, dest: k}
			if d.cfg.Weight > 0 {
				up = k.Weight > 0
			}
		}
		for _, c := range d.checks {
			c.up = up
			c.next = now.Add(m.warmup(c.cfg.Warmup))
		}
		d.healthy, d.alive, d.pooled = up, up, up
		d.seenAlive, d.seenWeight = up, d.weight()
		d.penaltyAt = now
	}
	if s.cfg.Sorry != nil {
		if k, ok := byKey[netip.AddrPortFrom(s.cfg.Sorry.Address, s.cfg.Sorry.Port)]; ok {
			s.sorry = applied{present: true, dest: k}
		}
	}
	// The quorum state goes on from where it was: lost if the sorry server
	// serves, else held.
	sum := s.liveWeight()
	if s.sorry.present {
		s.quorumUp = sum >= s.quorum()+s.cfg.Hysteresis
	} else {
		s.quorumUp = sum > 0 && sum >= s.quorum()-s.cfg.Hysteresis
	}
}
