package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/ipvs-go/ipvs"
)

// Run starts the Monitor and runs it until ctx is done; then it returns
// nil, and leaves the kernel as it is, so that the next Run continues
// without a gap. It returns an error only if it cannot start: if reading
// the kernel's destinations fails. A Monitor runs once at a time.
//
// At start, each destination takes its state from the kernel (see
// Destination.Alpha), the services missing are created, and the
// destinations are set accordingly; live destinations are not taken out.
// Then every transition is an Event and a change applied with
// Client.Apply, all the changes of the results received at once in one
// call; a change the kernel refused is tried again a second later.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("healthcheck: the Monitor is already running")
	}
	defer m.running.Store(false)
	if m.opts.Events != nil {
		defer close(m.opts.Events)
	}
	if err := m.start(ctx); err != nil {
		return err
	}

	type result struct {
		check  *checkState
		weight int
		err    error
		start  time.Time
		dur    time.Duration
	}
	results := make(chan result, m.checks) // a probe never waits to report
	probeCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	timed := m.opts.OnCheck != nil
	// Where the Monitor waits (see poller; nil where there is none): the
	// checks on goroutines and the end of ctx poke it.
	pl := newPoller()
	if pl != nil {
		defer context.AfterFunc(ctx, pl.poke)()
	}
	run := func(c *checkState, probe func(context.Context) (int, error), start time.Time) {
		defer wg.Done()
		cctx, cancel := context.WithTimeout(probeCtx, c.cfg.timeout())
		w, err := probe(cctx)
		cancel()
		var dur time.Duration
		if timed {
			dur = time.Since(start)
		}
		results <- result{c, w, err, start, dur}
		pl.poke()
	}
	// take records a result.
	take := func(c *checkState, w int, err error, start time.Time, dur time.Duration, now time.Time) {
		if err == nil && (w < KeepWeight || w > ipvs.MaxWeight) {
			err = fmt.Errorf("probe returned weight %d", w)
		}
		if timed {
			m.opts.OnCheck(CheckResult{
				Service: c.dest.svc.cfg.Service, Destination: c.dest.cfg.Destination, Check: c.name,
				Start: start, Duration: dur, Weight: w, Err: err,
			})
		}
		m.record(c.dest, c, w, err, now)
	}
	// launch starts a check: a starter's on this goroutine, finished at
	// once if it can (then it returns the result, with done); the
	// others, and the starter's wait, on a goroutine.
	type finished struct {
		check  *checkState
		weight int
		err    error
		start  time.Time
		dur    time.Duration
	}
	// With OnCheck, the clock is read once per check: a check that
	// finishes at once starts when the one before it in the batch ended.
	spawn := func(c *checkState, probe func(context.Context) (int, error), start time.Time) {
		c.running = true
		m.spawned++
		wg.Add(1)
		go run(c, probe, start)
	}
	// A trial is a started check that may finish without waiting (its
	// try) once the batch has started, until a little later.
	type trial struct {
		check    *checkState
		p        driven
		start    time.Time
		until    time.Time // then it waits in the poller, or on a goroutine
		deadline time.Time // its timeout
		tried    bool
		out      bool // in the poller until writable
	}
	var trials []trial
	// The spare sockets of the checks that passed (see spares).
	sp := &spares{}
	m.spares = sp
	// The trials that wait in the Monitor's poller, by socket.
	waiting := map[int]trial{}
	defer func() {
		cancel()
		for _, tr := range trials {
			// Cancelled: each closes its socket at once.
			_, _ = tr.p.wait(probeCtx)
		}
		for _, tr := range waiting {
			_ = tr.p.expire()
		}
		sp.close()
		// The goroutines' pokes done, the poller goes.
		wg.Wait()
		pl.close()
	}()
	// poll puts a trial not finished by its time in the poller; false if
	// it cannot wait there.
	poll := func(tr trial) bool {
		fd, out := tr.p.poll()
		if fd < 0 || pl == nil {
			return false
		}
		if !pl.add(fd, out) {
			return false
		}
		tr.until, tr.out = tr.deadline, out
		waiting[fd] = tr
		return true
	}
	// trialsDue is when the first trial is due.
	trialsDue := func() time.Time {
		t := trials[0].until
		for _, tr := range trials[1:] {
			t = earliest(t, tr.until)
		}
		return t
	}
	launch := func(c *checkState, inNS bool, start time.Time) (f finished, done bool) {
		st, ok := c.cfg.Probe.(starter)
		if !ok {
			spawn(c, func(ctx context.Context) (int, error) { return c.cfg.Probe.Probe(ctx, c.target) }, start)
			return f, false
		}
		p, w, err := st.start(c.target, inNS, sp)
		switch {
		case p.p != nil:
			now := m.now()
			trials = append(trials, trial{check: c, p: p.p, start: start,
				until: now.Add(min(trialWait, c.cfg.timeout()/2)), deadline: now.Add(c.cfg.timeout())})
		case p.wait != nil:
			spawn(c, p.wait, start)
		default:
			f = finished{check: c, weight: w, err: err, start: start}
			if timed {
				f.dur = time.Since(start)
			}
			return f, true
		}
		return f, false
	}
	var due []*checkState
	var done []finished
	// sweep tries the first n trials not tried yet, and every trial due
	// by now (non-zero): those that finish are done; the due ones that do
	// not wait in the poller or, if they cannot, go on on goroutines of
	// their own. A trial is tried after the next part of its batch has
	// started, and when due.
	sweep := func(n int, now time.Time) {
		kept := trials[:0]
		for i, tr := range trials {
			due := !now.IsZero() && !now.Before(tr.until)
			if !due && (tr.tried || i >= n) {
				kept = append(kept, tr)
				continue
			}
			if ok, w, err := tr.p.try(); ok {
				f := finished{check: tr.check, weight: w, err: err, start: tr.start}
				if timed {
					f.dur = time.Since(tr.start)
				}
				done = append(done, f)
				continue
			}
			if due {
				if !poll(tr) {
					spawn(tr.check, tr.p.wait, tr.start)
				}
				continue
			}
			tr.tried = true
			kept = append(kept, tr)
		}
		clear(trials[len(kept):])
		trials = kept
	}
	// awake is when the Monitor's goroutine last woke or yielded.
	var awake time.Time
	// launchAll starts the due checks. A starter that takes a spare socket
	// needs no visit to the Client's namespace; the others' sockets are
	// made in one visit per part of launchPart checks. A long batch yields
	// now and then, outside the visits (which lock the thread): the
	// runtime would otherwise preempt it with a signal after 10 ms, which
	// also sets the runtime's sysmon thread polling every 20 us for a
	// while, and a locked goroutine's preemption wakes two threads.
	launchAll := func() {
		var clock time.Time
		start := func(part []*checkState, inNS bool) {
			for _, c := range part {
				if f, ok := launch(c, inNS, clock); ok {
					done = append(done, f)
					clock = f.start.Add(f.dur)
				}
			}
		}
		yield := func() {
			if now := m.now(); now.Sub(awake) >= yieldAfter {
				runtime.Gosched()
				awake = m.now()
			}
		}
		for len(due) > 0 {
			tried := len(trials)
			part := due[:min(len(due), launchPart)]
			due = due[len(part):]
			if timed {
				clock = time.Now()
			}
			// While spare sockets last, no visit.
			n := 0
			for n < len(part) && m.noVisit(part[n], sp) {
				start(part[n:n+1], false)
				n++
			}
			if rest := part[n:]; len(rest) > 0 {
				if m.client.InNetNS(func() error { start(rest, true); return nil }) != nil {
					start(rest, false) // not started: each check tells the error
				}
			}
			if len(due) > 0 {
				if tried > 0 {
					sweep(tried, time.Time{}) // the earlier parts'
				}
				yield()
			}
		}
	}
	limit := m.opts.MaxInFlight
	if limit == 0 {
		limit = defaultMaxInFlight
	}
	// The checks that wait, by when they run next.
	var queue checkQueue
	for _, s := range m.svcs {
		for _, d := range s.dests {
			for _, c := range d.checks {
				queue.push(c)
			}
		}
	}
	inFlight := 0
	var retryAt time.Time
	step := func() {
		now := m.now()
		if !m.step(ctx, now) {
			retryAt = now.Add(m.retry)
		} else {
			retryAt = time.Time{}
		}
	}
	// finish records a trial's result.
	finish := func(tr trial, w int, err error) {
		f := finished{check: tr.check, weight: w, err: err, start: tr.start}
		if timed {
			f.dur = time.Since(tr.start)
		}
		done = append(done, f)
	}
	// takeReady goes on with the trials whose sockets are ready.
	takeReady := func() {
		m.takes++
		pl.take(func(fd int) {
			tr, ok := waiting[fd]
			if !ok {
				m.stray++
				pl.remove(fd)
				return
			}
			if ok, w, err := tr.p.try(); ok {
				delete(waiting, fd)
				// Out of the poller: a socket that went back to the
				// spares is still open (one closed has left it).
				pl.remove(fd)
				finish(tr, w, err)
				return
			}
			switch nfd, out := tr.p.poll(); {
			case nfd < 0:
				// An answer longer than try reads: a goroutine
				// reads on.
				delete(waiting, fd)
				pl.remove(fd)
				spawn(tr.check, tr.p.wait, tr.start)
			case out != tr.out:
				// Connected: now for the answer.
				if !pl.modify(fd, out) {
					delete(waiting, fd)
					pl.remove(fd)
					spawn(tr.check, tr.p.wait, tr.start)
					return
				}
				tr.out = out
				waiting[fd] = tr
			}
		})
	}
	// expire ends the trials in the poller whose timeout has passed by
	// now.
	expire := func(now time.Time) {
		for fd, tr := range waiting {
			if now.Before(tr.deadline) {
				continue
			}
			delete(waiting, fd)
			if ok, w, err := tr.p.try(); ok {
				pl.remove(fd) // as in takeReady
				finish(tr, w, err)
				continue
			}
			finish(tr, KeepWeight, tr.p.expire())
		}
	}
	// waitDue is when the first trial in the poller times out.
	waitDue := func() time.Time {
		var t time.Time
		for _, tr := range waiting {
			if t.IsZero() || tr.deadline.Before(t) {
				t = tr.deadline
			}
		}
		return t
	}
	// takeDone records the finished checks, if any, and applies.
	takeDone := func() bool {
		if len(done) == 0 {
			return false
		}
		now := m.now()
		for _, f := range done {
			inFlight--
			take(f.check, f.weight, f.err, f.start, f.dur, now)
			queue.push(f.check)
		}
		clear(done)
		done = done[:0]
		step()
		return true
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// takeResults records the results that came in.
	takeResults := func(r result) {
		now := m.now()
		for {
			inFlight--
			take(r.check, r.weight, r.err, r.start, r.dur, now)
			queue.push(r.check)
			select {
			case r = <-results:
				continue
			default:
			}
			break
		}
	}
	for {
		// A busy Monitor may not wait in the select below for a long
		// time: it still stops when ctx is done, and takes the results.
		if ctx.Err() != nil {
			return nil
		}
		awake = m.now()
		select {
		case r := <-results:
			takeResults(r)
		default:
		}
		done = done[:0]
		if len(waiting) > 0 {
			// Sockets ready since the last wait (if not within its
			// gap).
			pl.wait(0)
			if pl.ready() {
				takeReady()
			}
		}
		now := m.now()
		if len(trials) > 0 && !now.Before(trialsDue()) {
			sweep(0, now)
		}
		if len(waiting) > 0 && !now.Before(waitDue()) {
			expire(now)
		}
		if takeDone() {
			continue
		}
		// The checks due now run, and with them those due within a
		// small part of their interval: one wake-up starts many.
		due, done = due[:0], done[:0]
		for inFlight < limit && len(queue) > 0 && !queue[0].next.After(now.Add(queue[0].cfg.slack(m.opts.Coalesce))) {
			c := queue.pop()
			// A check begins, for its schedule, when it was due: the
			// next one is due Interval after that, wherever in the
			// slack, or however late, this one started; but a check
			// more than an interval late starts a new schedule.
			c.began = c.next
			if now.Sub(c.next) >= c.cfg.interval() {
				c.began = now
			}
			due = append(due, c)
			inFlight++
		}
		if len(due) > 0 {
			batch := due
			launchAll()
			clear(batch)
			due = batch
			if takeDone() {
				continue
			}
		}
		wake := now.Add(time.Hour)
		if inFlight < limit && len(queue) > 0 {
			wake = queue[0].next
		}
		for _, d := range m.suppressed {
			wake = earliest(wake, m.damping.reuseAt(d))
		}
		if !retryAt.IsZero() {
			wake = earliest(wake, retryAt)
		}
		if len(trials) > 0 {
			wake = earliest(wake, trialsDue())
		}
		if len(waiting) > 0 {
			wake = earliest(wake, waitDue())
		}
		if pl != nil {
			pl.wait(wake.Sub(now))
			if ctx.Err() != nil {
				return nil
			}
			select {
			case r := <-results:
				takeResults(r)
			default:
			}
			if pl.ready() {
				takeReady()
				if takeDone() {
					continue
				}
			}
		} else {
			timer.Reset(max(wake.Sub(now), 0))
			select {
			case <-ctx.Done():
				return nil
			case r := <-results:
				takeResults(r)
			case <-timer.C:
			}
		}
		step()
	}
}

// launchPart is how many due checks start in one visit to the Client's
// namespace; the checks of the parts before are tried after each.
const launchPart = 16

// yieldAfter is how long the Monitor's goroutine runs a batch before it
// yields (see launchAll): well within the 10 ms after which the runtime
// preempts it.
const yieldAfter = 4 * time.Millisecond

// noVisit reports whether c starts with no visit to the Client's
// namespace: it makes no socket on the Monitor's goroutine, or takes a
// spare one.
func (m *Monitor) noVisit(c *checkState, sp *spares) bool {
	st, ok := c.cfg.Probe.(starter)
	if !ok {
		return true // on a goroutine of its own
	}
	return st.reuses() && c.target.d != nil && !c.target.d.source.IsValid() && sp.has(!c.target.Addr.Addr().Unmap().Is4())
}

// trialWait is how long after it started a check that can finish without
// waiting (a plain HTTP GET of a local destination) is tried before it
// waits in the Monitor's poller, or where it cannot on a goroutine of its
// own (at most half its timeout): long enough for a local server to
// answer, short beside any interval.
const trialWait = 5 * time.Millisecond

// pollGap is the least time between two takes of the sockets ready in
// the Monitor's poller: answers coming one by one wake it once for many,
// and a check that waited there ends up to pollGap after its answer came.
const pollGap = 5 * time.Millisecond

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
