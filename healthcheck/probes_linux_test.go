package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := m.Run(ctx); err != nil {
			t.Fatal(err)
		}
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
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				got := 0
				for !strings.Contains(string(buf[:got]), "\r\n\r\n") {
					n, err := c.Read(buf[got:])
					if err != nil {
						return
					}
					got += n
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
			}()
		}
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
