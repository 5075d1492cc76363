package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ipvs-go/ipvs"
	"golang.org/x/sys/unix"
)

// A handshake that does not complete within connect(2): the listener's
// accept queue is full, so the kernel drops the SYN and the client sends
// it again a second later. The check waits through the poller, and
// passes once the queue has room, or times out if it never does.
func TestTCPSlowHandshake(t *testing.T) {
	ln, a := fullQueue(t)
	start := time.Now()
	mustFail(t, TCP{}, a, "deadline exceeded") // 1.5 s: nothing accepted
	t.Logf("full queue: failed after %v", time.Since(start))

	go func() {
		time.Sleep(300 * time.Millisecond)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	start = time.Now()
	if _, err := probe(t, TCP{}, Check{}, a, 5*time.Second); err != nil {
		t.Fatalf("once the queue has room: %v", err)
	}
	// Passing at once would mean the check never waited for the SYN to be
	// sent again.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("passed after %v, before the queue had room", d)
	}
	t.Logf("passed after %v", time.Since(start))
}

// fullQueue returns a listener on loopback whose accept queue is full
// (until it accepts), and its address: a connection to it does not open
// within connect(2).
func fullQueue(t *testing.T) (net.Listener, string) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // a queue of one
		t.Fatal(err)
	}
	ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := ln.Addr().String()
	// Fill the queue: these connections are never accepted until later.
	for range 2 {
		c, err := net.DialTimeout("tcp4", a, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return ln, a
}

// Through Run, checks whose handshake does not complete within connect(2)
// wait in the Monitor's poller, not on goroutines: they time out at their
// timeout while the listener's queue is full, and pass (HTTP: with its
// answer) once the handshake completes.
func TestRunSlowHandshake(t *testing.T) {
	ln, a := fullQueue(t)
	port := netip.MustParseAddrPort(a).Port()
	lo := netip.MustParseAddr("127.0.0.1")
	run := func(interval, timeout, d time.Duration) (*Monitor, map[string][]CheckResult) {
		var dests []Destination
		for i, p := range []Probe{TCP{}, HTTP{BodyContains: "hello"}} {
			dests = append(dests, Destination{Destination: dest(fmt.Sprintf("127.0.0.%d:%d", i+1, port), 1),
				Checks: []Check{{Probe: p, Address: lo, Interval: interval, Timeout: timeout}}})
		}
		var mu sync.Mutex
		results := map[string][]CheckResult{}
		m, err := New(newFakeKernel(), []Service{{Service: svc, Destinations: dests}}, Options{OnCheck: func(r CheckResult) {
			mu.Lock()
			defer mu.Unlock()
			results[r.Check] = append(results[r.Check], r)
		}})
		if err != nil {
			t.Fatal(err)
		}
		m.warmup = func(time.Duration) time.Duration { return 0 }
		runFor(t, m, d)
		mu.Lock()
		defer mu.Unlock()
		if len(results) != 2 {
			t.Fatalf("results of %d checks, want 2: %v", len(results), results)
		}
		return m, results
	}

	const timeout = 150 * time.Millisecond
	m, results := run(200*time.Millisecond, timeout, 700*time.Millisecond)
	for name, rs := range results {
		for _, r := range rs {
			if !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("%s, queue full: %v, want a deadline exceeded", name, r.Err)
			}
			if r.Duration < timeout || r.Duration > timeout+50*time.Millisecond {
				t.Errorf("%s, queue full: failed after %v, want about %v", name, r.Duration, timeout)
			}
		}
	}
	if m.spawned != 0 {
		t.Errorf("queue full: %d checks went on on goroutines, want none", m.spawned)
	}

	go func() {
		time.Sleep(100 * time.Millisecond)
		serveHTTP(ln, 0, "200 OK")
	}()
	// The SYN is sent again a second after the first.
	m, results = run(time.Hour, 5*time.Second, 2500*time.Millisecond)
	for name, rs := range results {
		if len(rs) != 1 || rs[0].Err != nil {
			t.Fatalf("%s, once accepted: %v, want one pass", name, rs)
		}
		if rs[0].Duration < 100*time.Millisecond {
			t.Errorf("%s passed after %v, before the queue had room", name, rs[0].Duration)
		}
	}
	if m.spawned != 0 {
		t.Errorf("once accepted: %d checks went on on goroutines, want none", m.spawned)
	}
}

// A TCP check, and a plain HTTP GET answered by the time it is tried, cost
// no allocation when they end on the Monitor's goroutine. The server here
// is raw system calls on a listener in this goroutine, so that nothing
// else allocates meanwhile.
func TestStartedChecksAllocateNothing(t *testing.T) {
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(lfd)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(lfd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	c := Check{}
	tg := c.target(svc, ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Weight: 1}, nil)
	buf := make([]byte, 4096)
	reply := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
	// serve accepts one connection, and answers its request if answer.
	serve := func(answer bool) {
		nfd, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
		if errno != 0 {
			if !answer {
				return // a connection reset in the queue may be gone
			}
			panic(errno)
		}
		fd := int(nfd)
		if answer {
			// The request is in: the check wrote it within start.
			if _, _, errno := syscall.RawSyscall(syscall.SYS_READ, nfd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf))); errno != 0 {
				panic(errno)
			}
			if _, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, nfd, uintptr(unsafe.Pointer(&reply[0])), uintptr(len(reply))); errno != 0 {
				panic(errno)
			}
		}
		_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
	}
	sp := &spares{}
	defer sp.close()
	for _, tc := range []struct {
		name string
		p    starter
		sp   *spares
	}{
		{"TCP", TCP{}, nil},
		{"TCP with spare sockets", TCP{}, sp},
		{"TCP graceful", TCP{Graceful: true}, nil},
		{"HTTP", HTTP{}, nil},
		{"HTTP with spare sockets", HTTP{}, sp},
		{"HTTP with a body check", HTTP{BodyContains: "hello", Path: "/health"}, nil},
	} {
		_, isHTTP := tc.p.(HTTP)
		var failed error
		allocs := testing.AllocsPerRun(200, func() {
			s, _, err := tc.p.start(tg, false, tc.sp)
			switch {
			case err != nil:
				failed = err
			case !isHTTP && (s.p != nil || s.wait != nil):
				failed = errors.New("a local TCP check did not end within start")
			case isHTTP && s.p == nil:
				failed = errors.New("a local plain GET is not driven by the Monitor")
			}
			serve(isHTTP)
			if failed != nil || !isHTTP {
				return
			}
			ok, _, err := s.p.try()
			if !ok || err != nil {
				failed = fmt.Errorf("try: done %v, %v; want a pass", ok, err)
			}
		})
		if failed != nil {
			t.Fatalf("%s: %v", tc.name, failed)
		}
		switch {
		case allocs != 0 && raceEnabled:
			t.Logf("%s: %v allocations per check (the race detector drops pooled objects)", tc.name, allocs)
		case allocs != 0:
			t.Errorf("%s: %v allocations per check, want 0", tc.name, allocs)
		}
	}
}

// The request a plain GET writes from its own buffer is the one the
// goroutine path writes.
func TestAppendRequest(t *testing.T) {
	for _, tc := range []struct {
		h    HTTP
		addr string
	}{
		{HTTP{}, "10.0.0.1:80"},
		{HTTP{Path: "/health?x=1"}, "10.0.0.1:8080"},
		{HTTP{Host: "www.example.com"}, "[2001:db8::1]:443"},
		{HTTP{}, "[2001:db8::1]:80"},
	} {
		tg := Target{Addr: netip.MustParseAddrPort(tc.addr)}
		host, path := tc.h.hostPath(tg)
		want := httpRequest(host, path)
		if got := tc.h.appendRequest([]byte("x"), tg); string(got[1:]) != string(want) || got[0] != 'x' {
			t.Errorf("%+v %s: appendRequest %q, want %q", tc.h, tc.addr, got, want)
		}
	}
}

// A check that passed leaves its socket to the next (spares): TCP checks
// and plain GETs one after the other use one socket; one whose handshake
// then waits does not report the reset of the connection before it; one
// refused closes the socket. What it relies on is the kernel's (connect(2)
// to AF_UNSPEC, and the next connect clearing the reset's error), so CI
// also runs it on each kernel of the matrix, as an integration test: it
// needs no IPVS, and runs on the build host too.
func TestIntegrationSpareSockets(t *testing.T) {
	target := func(a string) Target {
		ap := netip.MustParseAddrPort(a)
		return (&Check{}).target(svc, ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Weight: 1}, nil)
	}
	tg := target(helloServer(t).String())
	sp := &spares{}
	defer sp.close()
	fds := map[int]bool{}
	const n = 20
	for i := range n {
		var p starter = TCP{}
		if i%2 == 1 {
			p = HTTP{BodyContains: "hello"}
		}
		s, _, err := p.start(tg, false, sp)
		if err == nil {
			err = finishStarted(s)
		}
		if err != nil {
			t.Fatalf("check %d (%T): %v", i, p, err)
		}
		if len(sp.free) != 1 {
			t.Fatalf("after check %d (%T): %d spare sockets, want 1", i, p, len(sp.free))
		}
		fds[sp.free[0].fd] = true
	}
	if len(fds) != 1 || sp.reused != n-1 {
		t.Errorf("%d checks used %d sockets, %d of them reused; want 1 socket, %d reused", n, len(fds), sp.reused, n-1)
	}

	// The reset of the last connection is not the next one's error.
	_, slow := fullQueue(t)
	s, _, err := TCP{}.start(target(slow), false, sp)
	if err != nil || s.p == nil {
		t.Fatalf("to a full queue: %v, %+v; want a check that waits", err, s)
	}
	if sp.reused != n {
		t.Errorf("to a full queue: the spare socket was not reused")
	}
	if ok, _, err := s.p.try(); ok {
		t.Fatalf("to a full queue: done at once (%v), want a handshake in progress", err)
	}
	if err := s.p.expire(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired: %v", err)
	}

	// A refused connection closes the socket.
	s, _, err = TCP{}.start(tg, false, sp)
	if err == nil {
		err = finishStarted(s)
	}
	if err != nil || len(sp.free) != 1 {
		t.Fatalf("a new spare socket: %v, %d spare", err, len(sp.free))
	}
	s, _, err = TCP{}.start(target(closedPort(t, "tcp")), false, sp)
	if err == nil {
		err = finishStarted(s)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("to a closed port: %v, want ECONNREFUSED", err)
	}
	if len(sp.free) != 0 {
		t.Errorf("after a refused connection: %d spare sockets, want none", len(sp.free))
	}
}

// Through Run, TCP checks and plain GETs that pass leave their sockets to
// the next checks, which then start with no visit to the Client's
// namespace: a first visit makes the first socket, and no other is needed
// while checks pass.
func TestRunSparesNoVisit(t *testing.T) {
	ap := helloServer(t)
	var dests []Destination
	const n = 40 // more than a part (launchPart)
	for i := range n {
		var p Probe = TCP{}
		if i%2 == 1 {
			p = HTTP{BodyContains: "hello"}
		}
		dests = append(dests, Destination{Destination: dest(fmt.Sprintf("127.0.%d.%d:%d", i/200, 1+i%200, ap.Port()), 1),
			Checks: []Check{{Probe: p, Address: ap.Addr(), Interval: 50 * time.Millisecond}}})
	}
	var mu sync.Mutex
	var checks, failed int
	k := newFakeKernel()
	m, err := New(k, []Service{{Service: svc, Destinations: dests}}, Options{OnCheck: func(r CheckResult) {
		mu.Lock()
		defer mu.Unlock()
		checks++
		if r.Err != nil {
			failed++
			t.Logf("%v %s: %v", r.Destination, r.Check, r.Err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	m.warmup = func(time.Duration) time.Duration { return 0 }
	runFor(t, m, 600*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	visits := k.visits.Load()
	t.Logf("%d checks, %d reused a spare socket, %d visits to the namespace", checks, m.spares.reused, visits)
	if failed > 0 || checks < 3*n {
		t.Fatalf("%d checks, %d failed; want at least %d, all passing", checks, failed, 3*n)
	}
	// The first check of the first batch makes a socket in a visit
	// (with the rest of its part); then spare ones serve. A GET still
	// waiting for its answer when the next check starts holds its
	// socket, so a few more may be made; without spares, each part of
	// each batch visits (3 parts for the 40 checks).
	if parts := int64(checks * 3 / n); visits > parts/4 {
		t.Errorf("%d visits to the namespace for %d checks in about %d parts, want at most a quarter", visits, checks, parts)
	}
	if m.spares.reused < checks-int(visits)*launchPart {
		t.Errorf("%d of %d checks reused a spare socket, want all but those started in the %d visits", m.spares.reused, checks, visits)
	}
}

// helloServer starts an HTTP server on loopback that answers every request
// "200 OK" and "hello" (serveHTTP), until the test ends.
func helloServer(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveHTTP(ln, 0, "200 OK")
	return netip.MustParseAddrPort(ln.Addr().String())
}

// finishStarted drives a started check to its end, as the Monitor would.
func finishStarted(s started) error {
	deadline := time.Now().Add(5 * time.Second)
	for s.p != nil {
		if ok, _, err := s.p.try(); ok {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("no answer in 5s")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
