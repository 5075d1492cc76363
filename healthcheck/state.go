package healthcheck

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"time"

	"github.com/ipvs-go/ipvs"
)

// The state machine, without goroutines or clocks: every step is given the
// time, so tests drive it with a fake clock.

// checkState is one check of one destination.
type checkState struct {
	cfg    Check
	name   string
	target Target
	dest   *destState

	up      bool
	fails   int // failures in a row
	oks     int // successes in a row
	weight  int // the last weight the probe set, or KeepWeight
	lastErr error
	next    time.Time // when the check runs next
	began   time.Time // when the check last started (its batch's time)
	running bool
}

// record takes a result at now and schedules the next check, with
// keepalived's rules: a passing check goes down after Retries+1 failures in
// a row, RetryDelay apart (from each failure); a failed one passes again
// after Rise successes. Otherwise checks begin Interval apart.
func (c *checkState) record(weight int, err error, now time.Time) {
	c.running = false
	if err == nil {
		c.fails = 0
		c.oks++
		c.lastErr = nil
		if weight != KeepWeight {
			c.weight = weight
		}
		if !c.up && c.oks >= c.cfg.rise() {
			c.up = true
		}
		c.next = c.nextRun(now)
		return
	}
	c.oks = 0
	c.fails++
	c.lastErr = err
	if c.up && c.fails <= c.cfg.Retries {
		c.next = now.Add(c.cfg.retryDelay())
		return
	}
	if c.up {
		c.up = false
	}
	c.next = c.nextRun(now)
}

// nextRun is when the check runs next after a result at now: Interval
// after it began, so that the time a check takes (and the time the
// Monitor takes to start it) does not add up from one check to the next;
// at once if it took longer than that.
func (c *checkState) nextRun(now time.Time) time.Time {
	if next := c.began.Add(c.cfg.interval()); next.After(now) {
		return next
	}
	return now
}

// applied is what the kernel has of a destination, as far as the monitor
// knows: whether it is there, and its configuration.
type applied struct {
	present bool
	dest    ipvs.Destination
}

// destState is one destination of a service.
type destState struct {
	cfg    Destination
	key    netip.AddrPort
	checks []*checkState

	healthy bool // every check passes
	alive   bool // healthy and not suppressed by damping
	pooled  bool // in the service: alive, or held by the depool threshold

	penalty    float64 // flap damping's penalty at penaltyAt
	penaltyAt  time.Time
	suppressed bool
	listed     bool // in Monitor.suppressed

	cause   *checkState // the check whose result last changed healthy
	applied applied

	svc *svcState
	// dirty: a check reported, or damping may release it, since the last
	// evaluation (the destination is in svc.dirtyDests).
	dirty bool
	// seenAlive and seenWeight are alive and weight() as the last full
	// evaluation left them.
	seenAlive  bool
	seenWeight int
}

// weight is the weight of the destination when it serves: the lowest
// weight a dynamic check set, or the configured one.
func (d *destState) weight() int {
	w := -1
	for _, c := range d.checks {
		if c.weight != KeepWeight && (w < 0 || c.weight < w) {
			w = c.weight
		}
	}
	if w < 0 {
		return d.cfg.Weight
	}
	return w
}

// svcState is one virtual service.
type svcState struct {
	cfg      Service
	idx      int // in Monitor.svcs
	dests    []*destState
	quorumUp bool
	// sorry is what the kernel has of the sorry server.
	sorry applied

	// dirty: the service is in the Monitor's list to evaluate; dirtyDests
	// are its destinations to bring up to date. force makes the next
	// evaluation a full one (at start, and after a change failed).
	dirty      bool
	force      bool
	dirtyDests []*destState
}

// markDirty queues d for the next evaluation of its service.
func (d *destState) markDirty() {
	if !d.dirty {
		d.dirty = true
		d.svc.dirtyDests = append(d.svc.dirtyDests, d)
	}
}

// damping with the defaults filled in; halfLife 0 turns it off.
type damping struct {
	halfLife        time.Duration
	suppress, reuse float64
}

func (o Damping) resolve() damping {
	d := damping{halfLife: o.HalfLife, suppress: o.Suppress, reuse: o.Reuse}
	if d.suppress == 0 {
		d.suppress = 3
	}
	if d.reuse == 0 {
		d.reuse = 1
	}
	return d
}

// decay brings d's penalty to now.
func (p damping) decay(d *destState, now time.Time) {
	if p.halfLife <= 0 || d.penalty == 0 {
		d.penaltyAt = now
		return
	}
	if dt := now.Sub(d.penaltyAt); dt > 0 {
		d.penalty *= math.Exp2(-float64(dt) / float64(p.halfLife))
		if d.penalty < 1e-3 {
			d.penalty = 0
		}
	}
	d.penaltyAt = now
}

// reuseAt is when a suppressed destination's penalty falls to reuse.
func (p damping) reuseAt(d *destState) time.Time {
	if !d.suppressed || d.penalty <= p.reuse {
		return d.penaltyAt
	}
	dt := float64(p.halfLife) * math.Log2(d.penalty/p.reuse)
	return d.penaltyAt.Add(time.Duration(dt) + time.Millisecond)
}

// quorum is the service's quorum, 1 by default as in keepalived.
func (s *svcState) quorum() int { return max(s.cfg.Quorum, 1) }

// liveWeight sums the weights of the live destinations.
func (s *svcState) liveWeight() int {
	sum := 0
	for _, d := range s.dests {
		if d.alive {
			sum += d.weight()
		}
	}
	return sum
}

// sorryActive reports whether the sorry server serves instead of the
// destinations.
func (s *svcState) sorryActive() bool { return s.cfg.Sorry != nil && !s.quorumUp }

// update brings d's health and damping up to date at now.
func (p damping) update(d *destState, now time.Time) {
	healthy := true
	for _, c := range d.checks {
		if !c.up {
			healthy = false
		}
	}
	p.decay(d, now)
	if d.healthy && !healthy && p.halfLife > 0 {
		d.penalty++
		if d.penalty >= p.suppress {
			d.suppressed = true
		}
	}
	if d.suppressed && d.penalty < p.reuse {
		d.suppressed = false
	}
	d.healthy = healthy
	d.alive = healthy && !d.suppressed
}

// evaluate brings the service's state up to date at now and returns the
// transitions and whether the kernel may need changes. Only the dirty
// destinations are looked at, unless one of them changed (it was alive
// and is not, or its weight changed) or force is set: then the depool
// threshold, the quorum and the events are worked out over them all.
func (s *svcState) evaluate(p damping, now time.Time) (evs []Event, full bool) {
	full = s.force
	s.force = false
	for _, d := range s.dirtyDests {
		d.dirty = false
		p.update(d, now)
		if d.alive != d.seenAlive || d.weight() != d.seenWeight {
			full = true
		}
	}
	clear(s.dirtyDests)
	s.dirtyDests = s.dirtyDests[:0]
	if !full {
		return nil, false
	}

	// The depool threshold: at least ceil(threshold × destinations) stay
	// pooled; the dead ones beyond that are held in, in order.
	minPooled := int(math.Ceil(s.cfg.DepoolThreshold * float64(len(s.dests))))
	wasPooled := make([]bool, len(s.dests))
	pooled := 0
	for i, d := range s.dests {
		wasPooled[i] = d.pooled
		if d.alive {
			d.pooled = true
		}
		if d.pooled {
			pooled++
		}
	}
	for _, d := range s.dests {
		if !d.alive && d.pooled && pooled > minPooled {
			d.pooled = false
			pooled--
		}
	}

	wasQuorum := s.quorumUp
	sum, q, h := s.liveWeight(), s.quorum(), s.cfg.Hysteresis
	switch {
	case !s.quorumUp && sum >= q+h:
		s.quorumUp = true
	case s.quorumUp && (sum == 0 || sum < q-h):
		s.quorumUp = false
	}
	for i, d := range s.dests {
		wasAlive := d.seenAlive
		d.seenAlive, d.seenWeight = d.alive, d.weight()
		if wasAlive == d.alive && wasPooled[i] == d.pooled {
			continue
		}
		e := Event{Time: now, Service: s.cfg.Service, Destination: d.cfg.Destination, Kind: Up}
		if !d.alive {
			e.Kind = Down
			e.Held = d.pooled
			e.Damped = d.healthy && d.suppressed
		}
		if d.cause != nil {
			e.Check = d.cause.name
			e.Err = d.cause.lastErr
		}
		e.Weight, e.Removed = s.desired(d)
		evs = append(evs, e)
	}
	if wasQuorum != s.quorumUp {
		e := Event{Time: now, Service: s.cfg.Service, Kind: QuorumLost, LiveWeight: sum}
		if s.quorumUp {
			e.Kind = QuorumGained
		}
		if s.cfg.Sorry != nil {
			e.Destination = *s.cfg.Sorry
		}
		evs = append(evs, e)
	}
	return evs, true
}

// desired is the weight d should have in the kernel, or removed.
func (s *svcState) desired(d *destState) (weight int, removed bool) {
	if d.pooled && !s.sorryActive() {
		return d.weight(), false
	}
	if d.cfg.Remove {
		return 0, true
	}
	return 0, false
}

// A pending change and what to remember of the kernel if it succeeds.
type pending struct {
	svc    *svcState
	change ipvs.Change
	target *applied
	after  applied
	grows  bool // adds capacity: sent before the changes that remove some
}

// changes lists the changes that bring the kernel to the service's desired
// state.
func (s *svcState) changes() []pending {
	var out []pending
	add := func(a *applied, want applied) {
		switch {
		case !want.present && !a.present:
		case !want.present:
			out = append(out, pending{
				svc: s, change: ipvs.Change{Kind: ipvs.DeleteDestination, Service: s.cfg.Service, Destination: a.dest},
				target: a, after: applied{},
			})
		case !a.present:
			out = append(out, pending{
				svc: s, change: ipvs.Change{Kind: ipvs.CreateDestination, Service: s.cfg.Service, Destination: want.dest},
				target: a, after: want, grows: true,
			})
		case a.dest != want.dest:
			out = append(out, pending{
				svc: s, change: ipvs.Change{Kind: ipvs.UpdateDestination, Service: s.cfg.Service, Destination: want.dest},
				target: a, after: want, grows: want.dest.Weight > a.dest.Weight,
			})
		}
	}
	for _, d := range s.dests {
		w, removed := s.desired(d)
		want := applied{present: !removed, dest: d.cfg.Destination}
		want.dest.Weight = w
		add(&d.applied, want)
	}
	if s.cfg.Sorry != nil {
		add(&s.sorry, applied{present: s.sorryActive(), dest: *s.cfg.Sorry})
	}
	return out
}

// settle records the outcome of a change in the monitor's picture of the
// kernel. A change that failed because the kernel had something else is a
// reason to change the picture, so that the next attempt can succeed.
func (p *pending) settle(err error) {
	switch {
	case err == nil:
		*p.target = p.after
	case errors.Is(err, os.ErrNotExist) && p.change.Kind != ipvs.CreateDestination:
		// Deleted by someone else: create it next time (or nothing).
		*p.target = applied{}
	case errors.Is(err, os.ErrExist):
		// There already: update it next time.
		p.target.present = true
		p.target.dest = p.change.Destination
		p.target.dest.Weight = -1
	}
}
