package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Run with real time: a destination whose probe starts failing goes to
// weight 0 within Interval×(Retries+1) or so, and comes back; every
// transition reaches the Events channel, which Run closes.
func TestRunDetects(t *testing.T) {
	k := newFakeKernel()
	var failing atomic.Bool
	probe := Func(func(ctx context.Context, _ Target) error {
		if failing.Load() {
			return errors.New("backend stopped")
		}
		return nil
	})
	events := make(chan Event)
	const interval = 20 * time.Millisecond
	m, err := New(k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 3), Checks: []Check{{Probe: probe, Interval: interval, Retries: 1, RetryDelay: interval, Warmup: interval}}},
		{Destination: dest("10.0.2.2:80", 3), Checks: []Check{{Probe: TCP{}, Interval: time.Hour, Address: netipAddr("127.0.0.1"), Port: 1}}},
	}}}, Options{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	wait := func(kind EventKind, addr string) time.Time {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Kind == kind && e.Destination.String() == addr {
					return e.Time
				}
			case <-timeout:
				t.Fatalf("no %v event for %s within 5s", kind, addr)
			}
		}
	}
	// 10.0.2.2's check (a closed port) fails once: down at once.
	wait(Down, "10.0.2.2:80")
	time.Sleep(3 * interval)
	if w := k.weight(svc, "10.0.2.1:80"); w != 3 {
		t.Fatalf("weight before the failure = %d, want 3", w)
	}
	start := time.Now()
	failing.Store(true)
	wait(Down, "10.0.2.1:80")
	detect := time.Since(start)
	if w := k.weight(svc, "10.0.2.1:80"); w != 0 {
		t.Errorf("weight after Down = %d, want 0", w)
	}
	// Two failures RetryDelay apart after the next check: at most about
	// three intervals.
	if detect > 3*interval+100*time.Millisecond {
		t.Errorf("detection took %v, want about %v", detect, 2*interval)
	}
	t.Logf("detected in %v (interval %v, 1 retry)", detect, interval)
	failing.Store(false)
	wait(Up, "10.0.2.1:80")
	if w := k.weight(svc, "10.0.2.1:80"); w != 3 {
		t.Errorf("weight after Up = %d, want 3", w)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	for range events {
	}
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Run leaves no goroutine behind: not its probes (even hung ones), not a
// blocked Events send.
func TestRunNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		k := newFakeKernel()
		hang := Func(func(ctx context.Context, _ Target) error { <-ctx.Done(); return ctx.Err() })
		flip := Func(func(ctx context.Context, _ Target) error { return errors.New("down") })
		events := make(chan Event) // nobody reads: Run blocks on the first send
		m, err := New(k, []Service{{Service: svc, Destinations: []Destination{
			{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{Probe: hang, Interval: time.Millisecond, Timeout: time.Hour}}},
			{Destination: dest("10.0.2.2:80", 1), Checks: []Check{{Probe: flip, Interval: time.Millisecond}}},
		}}}, Options{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
		}
		if _, ok := <-events; ok {
			// One event may have been sent before the close.
			if _, ok := <-events; ok {
				t.Fatal("Events not closed")
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// A Monitor runs once at a time.
func TestRunTwice(t *testing.T) {
	m, err := New(newFakeKernel(), []Service{{Service: svc}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	if err := m.Run(ctx); err == nil {
		t.Error("a second Run while the first runs succeeded")
	}
	cancel()
	<-done
}

// TCP checks run through the Monitor: one of a listening port (its
// connection opens within connect(2), so the Monitor finishes it on its
// own goroutine) and one of a closed port (refused, so it goes on a
// goroutine to learn why). OnCheck sees every result with its error.
func TestRunTCPAndOnCheck(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := netip.MustParseAddrPort(ln.Addr().String())
	closed := netip.MustParseAddrPort(closedPort(t, "tcp"))
	// Its checks take the sockets that the open port's checks leave
	// (see spares), and must fail as new sockets would.
	closedSpare := netip.MustParseAddrPort(closedPort(t, "tcp"))
	var mu sync.Mutex
	results := map[netip.AddrPort][]CheckResult{}
	k := newFakeKernel()
	m, err := New(k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest(open.String(), 2), Checks: []Check{{Probe: TCP{}, Interval: 10 * time.Millisecond}}},
		{Destination: dest(closed.String(), 2), Checks: []Check{{Probe: TCP{Graceful: true}, Interval: 10 * time.Millisecond}}},
		{Destination: dest(closedSpare.String(), 2), Checks: []Check{{Probe: TCP{}, Interval: 10 * time.Millisecond}}},
	}}}, Options{OnCheck: func(r CheckResult) {
		mu.Lock()
		defer mu.Unlock()
		ap := netip.AddrPortFrom(r.Destination.Address, r.Destination.Port)
		results[ap] = append(results[ap], r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, m, 200*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(results[open]) < 3 || len(results[closed]) < 3 {
		t.Fatalf("%d and %d results in 200ms at a 10ms interval, want more", len(results[open]), len(results[closed]))
	}
	for _, r := range results[open] {
		if r.Err != nil || r.Check != "TCP" || r.Weight != KeepWeight || r.Start.IsZero() || r.Duration <= 0 || r.Service != svc {
			t.Fatalf("result of the open port: %+v", r)
		}
	}
	for _, ap := range []netip.AddrPort{closed, closedSpare} {
		if len(results[ap]) < 3 {
			t.Fatalf("%d results of %v in 200ms at a 10ms interval, want more", len(results[ap]), ap)
		}
		for _, r := range results[ap] {
			if !errors.Is(r.Err, syscall.ECONNREFUSED) {
				t.Fatalf("result of the closed port %v: %+v, want ECONNREFUSED", ap, r)
			}
		}
	}
	if runtime.GOOS == "linux" && m.spares.reused == 0 {
		t.Errorf("no check reused a spare socket")
	}
	if w := k.weight(svc, open.String()); w != 2 {
		t.Errorf("open port's weight %d, want 2", w)
	}
	if w := k.weight(svc, closed.String()); w != 0 {
		t.Errorf("closed port's weight %d, want 0", w)
	}
}

// A Monitor that always has checks due, all finishing at once (TCP checks
// of a local port at a tiny interval), still stops when its context ends.
func TestRunStopsWhenBusy(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var ds []Destination
	for i := range 100 {
		ds = append(ds, Destination{
			Destination: dest(fmt.Sprintf("10.0.4.%d:80", i+1), 1),
			Checks:      []Check{{Probe: TCP{}, Interval: time.Nanosecond, Address: netipAddr("127.0.0.1"), Port: uint16(ln.Addr().(*net.TCPAddr).Port)}},
		})
	}
	var n atomic.Int64
	m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: ds}}, Options{OnCheck: func(CheckResult) { n.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of its context's end")
	}
	t.Logf("%d checks in 100ms", n.Load())
}

// Checks begin Interval apart, however long each takes: a probe that
// takes 60% of the interval does not stretch the period to 1.6 intervals
// (it did when the next check was scheduled from the end of the last). A
// probe slower than the interval is followed by the next at once.
func TestRunKeepsTheRate(t *testing.T) {
	const interval = 50 * time.Millisecond
	for _, tc := range []struct {
		name   string
		takes  time.Duration
		period time.Duration // the period expected
	}{
		{"slow", interval * 6 / 10, interval},
		{"slower than the interval", interval * 3 / 2, interval * 3 / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel()
			var mu sync.Mutex
			var starts []time.Time
			probe := Func(func(ctx context.Context, _ Target) error {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				time.Sleep(tc.takes)
				return nil
			})
			m, err := New(k, []Service{{Service: svc, Destinations: []Destination{
				{Destination: dest("10.0.2.1:80", 3), Checks: []Check{{Probe: probe, Interval: interval, Timeout: time.Second}}},
			}}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			time.Sleep(20*tc.period + tc.period/2)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(starts) < 10 {
				t.Fatalf("%d checks", len(starts))
			}
			// The mean period over the run, from the second check (the
			// first one's start is the Monitor's).
			n := len(starts) - 2
			mean := starts[len(starts)-1].Sub(starts[1]) / time.Duration(n)
			// The old schedule gave 1.6 periods (slow) and 1.67
			// (slower); a loaded host's late timers and sleeps stay
			// well within 1.3.
			if mean < tc.period*95/100 || mean > tc.period*130/100 {
				t.Errorf("%d checks, mean period %v, want %v", len(starts), mean, tc.period)
			}
		})
	}
}

// HTTP checks of many local destinations at once, started in several parts
// of a batch: those answered by the time the batch has started finish on
// the Monitor's goroutine, the others on goroutines of their own; every
// result is right either way, and the destinations that stop answering go
// to weight 0.
func TestRunHTTPBatch(t *testing.T) {
	const n = 3*launchPart + 5
	var good, bad []netip.AddrPort
	for i := range n {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ap := netip.MustParseAddrPort(ln.Addr().String())
		if i%4 >= 2 {
			// Answers 500, at once or after a while: a failure that
			// arrives while the batch starts, or after.
			go serveHTTP(ln, time.Duration(i%4-2)*20*time.Millisecond, "500 Internal Server Error")
			bad = append(bad, ap)
			continue
		}
		go serveHTTP(ln, 0, "200 OK")
		good = append(good, ap)
	}
	var dests []Destination
	for _, ap := range append(append([]netip.AddrPort(nil), good...), bad...) {
		dests = append(dests, Destination{Destination: dest(ap.String(), 3), Checks: []Check{{Probe: HTTP{BodyContains: "hello"}, Interval: 30 * time.Millisecond, Timeout: time.Second}}})
	}
	var mu sync.Mutex
	results := map[netip.AddrPort][]error{}
	k := newFakeKernel()
	m, err := New(k, []Service{{Service: svc, Destinations: dests}}, Options{OnCheck: func(r CheckResult) {
		mu.Lock()
		defer mu.Unlock()
		ap := netip.AddrPortFrom(r.Destination.Address, r.Destination.Port)
		results[ap] = append(results[ap], r.Err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, m, 500*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, ap := range good {
		if len(results[ap]) < 3 {
			t.Fatalf("%v: %d results in 500ms at a 30ms interval", ap, len(results[ap]))
		}
		for _, err := range results[ap] {
			if err != nil {
				t.Fatalf("%v: %v, want a pass", ap, err)
			}
		}
		if w := k.weight(svc, ap.String()); w != 3 {
			t.Errorf("%v: weight %d, want 3", ap, w)
		}
	}
	for _, ap := range bad {
		if len(results[ap]) < 2 {
			t.Fatalf("%v: %d results", ap, len(results[ap]))
		}
		for _, err := range results[ap] {
			if err == nil || !strings.Contains(err.Error(), "HTTP status 500") {
				t.Fatalf("%v: %v, want HTTP status 500", ap, err)
			}
		}
		if w := k.weight(svc, ap.String()); w != 0 {
			t.Errorf("%v: weight %d, want 0", ap, w)
		}
	}
}

// serveHTTP answers every connection of ln with status and "hello" after
// delay, then closes it.
func serveHTTP(ln net.Listener, delay time.Duration, status string) {
	serveRequests(ln, func(c net.Conn) {
		time.Sleep(delay)
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", status)
	})
}

// runFor runs m for d, failing the test if Run fails.
func runFor(t *testing.T, m *Monitor, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// serveRequests accepts the connections of ln until it is closed, reads
// each one's request head, then calls answer and closes it.
func serveRequests(ln net.Listener, answer func(net.Conn)) {
	serveHeads(ln, func(c net.Conn, _ string) { answer(c) })
}

// serveHeads is serveRequests giving answer the request's head too.
func serveHeads(ln net.Listener, answer func(c net.Conn, head string)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			got := 0
			for !strings.Contains(string(buf[:got]), "\r\n\r\n") {
				n, err := c.Read(buf[got:])
				if err != nil {
					return
				}
				got += n
			}
			answer(c, string(buf[:got]))
		}()
	}
}

// A Monitor stopped while plain HTTP checks wait for their answer closes
// their sockets: no descriptor is left behind.
func TestRunHTTPStopCloses(t *testing.T) {
	hang, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			go func() { // read the request, never answer, close at EOF
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip(err)
		}
		return len(ents)
	}
	ap := hang.Addr().String()
	var dests []Destination
	for i := range 20 {
		dests = append(dests, Destination{Destination: dest(fmt.Sprintf("127.0.0.%d:%s", i+1, ap[len("127.0.0.1:"):]), 1),
			Checks: []Check{{Probe: HTTP{}, Address: netip.MustParseAddr("127.0.0.1"), Interval: time.Hour, Timeout: time.Hour}}})
	}
	before := fds()
	for i := range 10 {
		m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: dests}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*time.Millisecond)
		if err := m.Run(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	deadline := time.Now().Add(5 * time.Second)
	for fds() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := fds(); n > before {
		t.Fatalf("%d descriptors before, %d after", before, n)
	}
}

// Plain HTTP checks answered after the trial's wait go on in the Monitor's
// poller, not on goroutines: late answers pass, a server that never
// answers fails at the check's timeout, and an answer longer than a trial
// reads is judged on what it read.
func TestRunHTTPPoller(t *testing.T) {
	listen := func(serve func(net.Conn)) netip.AddrPort {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go serveRequests(ln, serve)
		return netip.MustParseAddrPort(ln.Addr().String())
	}
	var late []netip.AddrPort
	for range 12 {
		late = append(late, listen(func(c net.Conn) {
			time.Sleep(3 * trialWait)
			// The answer in two parts, apart.
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n")
			time.Sleep(trialWait)
			fmt.Fprintf(c, "Connection: close\r\n\r\nhello")
		}))
	}
	hung := listen(func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	huge := listen(func(c net.Conn) {
		time.Sleep(2 * trialWait)
		body := strings.Repeat("x", 256<<10)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
	const interval, timeout = 100 * time.Millisecond, 80 * time.Millisecond
	check := func(h HTTP) []Check {
		return []Check{{Probe: h, Interval: interval, Timeout: timeout}}
	}
	var dests []Destination
	for _, ap := range late {
		dests = append(dests, Destination{Destination: dest(ap.String(), 2), Checks: check(HTTP{BodyContains: "hello"})})
	}
	dests = append(dests,
		Destination{Destination: dest(hung.String(), 2), Checks: check(HTTP{})},
		Destination{Destination: dest(huge.String(), 2), Checks: check(HTTP{BodyContains: "hello", MaxBody: 1 << 10})})
	var mu sync.Mutex
	results := map[netip.AddrPort][]CheckResult{}
	m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: dests}}, Options{OnCheck: func(r CheckResult) {
		mu.Lock()
		defer mu.Unlock()
		ap := netip.AddrPortFrom(r.Destination.Address, r.Destination.Port)
		results[ap] = append(results[ap], r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, m, 600*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, ap := range late {
		if len(results[ap]) < 3 {
			t.Fatalf("%v: %d results in 600ms at a %v interval", ap, len(results[ap]), interval)
		}
		for _, r := range results[ap] {
			if r.Err != nil {
				t.Fatalf("%v: %v, want a pass", ap, r.Err)
			}
			// Taken when the answer came (after 4 trialWaits), not
			// at the timeout.
			if r.Duration >= timeout*3/4 {
				t.Errorf("%v: passed after %v, want about %v", ap, r.Duration, 4*trialWait)
			}
		}
	}
	if len(results[hung]) < 3 {
		t.Fatalf("never answered: %d results", len(results[hung]))
	}
	for _, r := range results[hung] {
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Fatalf("never answered: %v, want a deadline exceeded", r.Err)
		}
		// Timed out at the timeout, give or take the machine's delays.
		if r.Duration < timeout || r.Duration > timeout+40*time.Millisecond {
			t.Errorf("never answered: failed after %v, want about %v", r.Duration, timeout)
		}
	}
	if len(results[huge]) == 0 {
		t.Fatal("long answer: no result")
	}
	for _, r := range results[huge] {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "body") {
			t.Fatalf("long answer: %v, want a failure for its body", r.Err)
		}
	}
	// A GET that passed after waiting leaves the poller with its socket,
	// which goes back to the spares open: no event comes for it later.
	if m.stray != 0 {
		t.Errorf("%d events of the poller for sockets no check waits on, want none", m.stray)
	}
	// None went on on a goroutine: the long answers are judged on their
	// head (a length beyond MaxBody).
	if m.spawned != 0 {
		t.Errorf("%d checks went on on goroutines, want none", m.spawned)
	}
}

// Answers that come one after another, as from a server answering a
// batch of checks in turn, are taken together: the Monitor takes the
// sockets ready at most once per pollGap, not once per answer.
func TestRunPollGap(t *testing.T) {
	const n, apart = 24, time.Millisecond
	// The answers come a millisecond apart, all after the trials' wait:
	// every check waits in the poller.
	start := make(chan time.Time, 1)
	var dests []Destination
	for i := range n {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go serveRequests(ln, func(c net.Conn) {
			t0 := <-start
			start <- t0
			time.Sleep(time.Until(t0.Add(2*trialWait + time.Duration(i)*apart)))
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		})
		dests = append(dests, Destination{Destination: dest(ln.Addr().String(), 2),
			Checks: []Check{{Probe: HTTP{}, Interval: time.Hour, Timeout: time.Second}}})
	}
	var mu sync.Mutex
	var results []CheckResult
	m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: dests}}, Options{OnCheck: func(r CheckResult) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start <- time.Now()
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := len(results)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(results) != n {
		t.Fatalf("%d results, want %d", len(results), n)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%v: %v", r.Destination.Address, r.Err)
		}
	}
	// The answers span (n-1)*apart: about that over pollGap takes, far
	// fewer than n.
	if want := int((n-1)*apart/pollGap) + 3; m.takes > want {
		t.Errorf("the Monitor took ready sockets %d times for %d answers %v apart, want at most %d", m.takes, n, apart, want)
	}
	t.Logf("%d takes for %d answers", m.takes, n)
}

// A Monitor with nothing due for an hour still takes at once a result
// that a check on a goroutine reports, and returns at once when its
// context ends: both wake its wait.
func TestRunWakes(t *testing.T) {
	slow := Func(func(ctx context.Context, _ Target) error {
		time.Sleep(50 * time.Millisecond)
		return errors.New("backend stopped")
	})
	events := make(chan Event, 8)
	m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 3), Checks: []Check{{Probe: slow, Interval: time.Hour, Timeout: time.Hour}}},
	}}}, Options{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- m.Run(ctx) }()
	select {
	case e := <-events:
		if e.Kind != Down {
			t.Fatalf("event %v, want Down", e.Kind)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the result taken after %v, want about 50ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s: the result did not wake the Monitor")
	}
	time.Sleep(20 * time.Millisecond) // waiting for the next check, an hour away
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of its context's end")
	}
}
