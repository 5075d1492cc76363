package healthcheck

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The poller's waits end on their timerfd, on a poke, or on a socket
// (outside the gap after a take), and an expiry left from a wait that
// ended otherwise does not end the next one early.
func TestPollerWait(t *testing.T) {
	p := newPoller()
	if p == nil {
		t.Fatal("newPoller: nil")
	}
	defer p.close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if !p.add(fds[0], false) {
		t.Fatal("add failed")
	}
	timed := func(what string, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		p.wait(d)
		took := time.Since(start)
		t.Logf("%s: wait(%v) took %v, ready %v", what, d, took, p.ready())
		return took
	}
	send := func() {
		if _, err := unix.Write(fds[1], []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	takeAll := func() (n int) {
		var b [16]byte
		p.take(func(fd int) {
			if fd != fds[0] {
				t.Errorf("took fd %d, want %d", fd, fds[0])
			}
			for {
				if _, err := unix.Read(fd, b[:]); err != nil {
					break
				}
			}
			n++
		})
		return n
	}

	if took := timed("nothing", 30*time.Millisecond); took < 30*time.Millisecond || took > 2*time.Second || p.ready() {
		t.Errorf("nothing to wait for: wait(30ms) took %v (ready %v), want its deadline", took, p.ready())
	}
	p.poke()
	if took := timed("poked", time.Hour); took > 2*time.Second || p.ready() {
		t.Errorf("after poke: wait took %v (ready %v), want at once, nothing ready", took, p.ready())
	}
	go func() { time.Sleep(20 * time.Millisecond); send() }()
	if took := timed("socket", time.Hour); took < 15*time.Millisecond || took > 2*time.Second || !p.ready() {
		t.Errorf("a socket became ready after 20ms: wait took %v (ready %v)", took, p.ready())
	}
	if n := takeAll(); n != 1 {
		t.Fatalf("took %d sockets, want 1", n)
	}

	// Within the gap after a take, a ready socket waits for the gap's
	// end, and a poke does not.
	send()
	start := time.Now()
	p.wait(time.Hour)
	if took := time.Since(p.last); !p.ready() || took < pollGap || took > 2*time.Second {
		t.Errorf("socket ready within the gap: wait ended %v after the take (%v after it began), ready %v; want the gap's end, %v",
			took, time.Since(start), p.ready(), pollGap)
	}
	takeAll()
	p.poke()
	start = time.Now()
	p.wait(time.Hour)
	if took := time.Since(start); took >= pollGap || p.ready() {
		t.Errorf("poke within the gap: wait took %v, ready %v; want at once, nothing ready", took, p.ready())
	}

	// A wait that a poke ended leaves its timerfd armed: it expires
	// while nobody waits, and the next wait must not end with it.
	p.poke()
	timed("poked, with 5ms armed", 5*time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if took := timed("after a stale expiry", 40*time.Millisecond); took < 40*time.Millisecond {
		t.Errorf("wait(40ms) after an expiry nobody took ended after %v", took)
	}
	if took := timed("look only", 0); took > time.Second || p.ready() {
		t.Errorf("wait(0) took %v, ready %v", took, p.ready())
	}
}
