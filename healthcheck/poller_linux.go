//go:build linux

package healthcheck

import (
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is where the Monitor waits, as keepalived's checker does: the
// sockets of the started checks that wait (for a handshake, for an
// answer) in one epoll instance (epfd), and the Monitor in another (wfd),
// which holds the first (one-shot), a timerfd for the Monitor's next due
// check, and an eventfd that the checks running on goroutines, and the
// end of Run's context, write to. The Monitor's goroutine waits for wfd
// itself, in the runtime's poller: no goroutine or channel between a
// ready socket and the Monitor (a hand-off between goroutines wakes a
// second thread), and no runtime timer (one that fires readies its
// goroutine through a path that also wakes an idle thread of the runtime,
// which finds nothing to do, and a pending one wakes sysmon; a goroutine
// that the runtime's poller readies is run by the thread that polled).
//
// The sockets' instance is armed in wfd only while the Monitor waits for
// sockets: once it has reported a ready socket, more answers coming (in
// the gap after a take, or before the Monitor takes them) wake no thread
// of the runtime, where an instance in the runtime's poller woke its
// poller thread at each. It does not block a thread in epoll_wait(2)
// either: a P held in a system call keeps sysmon polling.
type poller struct {
	epfd, wfd, evfd, tfd int
	w                    *os.File // wfd, in the runtime's poller
	wrc                  syscall.RawConn
	events               []unix.EpollEvent  // epfd's, at the last look
	wev                  [3]unix.EpollEvent // wfd's
	n                    int                // sockets ready at the last look, in events
	last                 time.Time          // when the ready sockets were last taken
	poked                bool               // the eventfd was read in the last wait
	armed                bool               // epfd is armed in wfd (it disarms itself when it reports)

	mu     sync.Mutex // poke against close
	closed bool
}

// newPoller makes a poller; nil if it cannot (then the Monitor waits in a
// select, and the checks that would wait here do so on goroutines).
func newPoller() *poller {
	p := &poller{epfd: -1, wfd: -1, evfd: -1, tfd: -1, events: make([]unix.EpollEvent, 128)}
	if !p.open() {
		p.close()
		return nil
	}
	return p
}

func (p *poller) open() bool {
	for _, f := range []struct {
		fd       *int
		nr, a, b uintptr
	}{
		{&p.epfd, unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC, 0},
		{&p.wfd, unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC, 0},
		{&p.evfd, unix.SYS_EVENTFD2, 0, unix.EFD_CLOEXEC | unix.EFD_NONBLOCK},
		{&p.tfd, unix.SYS_TIMERFD_CREATE, unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC | unix.TFD_NONBLOCK},
	} {
		fd, _, errno := unix.RawSyscall(f.nr, f.a, f.b, 0)
		if errno != 0 {
			return false
		}
		*f.fd = int(fd)
	}
	// Non-blocking, wfd joins the runtime's poller, which then tells
	// when an event is pending in it.
	if _, _, errno := unix.RawSyscall(unix.SYS_FCNTL, uintptr(p.wfd), unix.F_SETFL, unix.O_NONBLOCK); errno != 0 {
		return false
	}
	if !epollCtl(p.wfd, unix.EPOLL_CTL_ADD, p.evfd, unix.EPOLLIN) || !epollCtl(p.wfd, unix.EPOLL_CTL_ADD, p.tfd, unix.EPOLLIN) ||
		!epollCtl(p.wfd, unix.EPOLL_CTL_ADD, p.epfd, unix.EPOLLIN|unix.EPOLLONESHOT) {
		return false
	}
	p.armed = true
	p.w = os.NewFile(uintptr(p.wfd), "epoll")
	var err error
	p.wrc, err = p.w.SyscallConn()
	return err == nil
}

// epollCtl adds fd to the epoll instance epfd, or modifies it there.
func epollCtl(epfd, op, fd int, events uint32) bool {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	return errno == 0
}

// wait waits until a socket is ready (but not within pollGap of the last
// take), poke is called, or d has passed; with d <= 0 it only looks. The
// sockets ready are then those of take.
func (p *poller) wait(d time.Duration) {
	if p.n > 0 {
		return // not taken yet
	}
	if gap := pollGap - time.Since(p.last); gap > 0 {
		// Sockets that became ready since the last take wait for the
		// gap's end; a poke does not.
		if d <= 0 {
			return
		}
		g := min(gap, d)
		if p.waitW(g, false); p.poked {
			return
		}
		d -= g
	}
	if d > 0 {
		p.waitW(d, true)
	}
	p.look()
}

// waitW waits in wfd for up to d, for a poke, and with sockets for a
// socket ready; else a socket ready does not end the wait.
func (p *poller) waitW(d time.Duration, sockets bool) {
	ts := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	_, _, _ = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(p.tfd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if sockets && !p.armed {
		p.armed = epollCtl(p.wfd, unix.EPOLL_CTL_MOD, p.epfd, unix.EPOLLIN|unix.EPOLLONESHOT)
	}
	p.poked = false
	_ = p.wrc.Read(func(uintptr) bool {
		end := false
		for _, ev := range p.wev[:epollPoll(p.wfd, p.wev[:])] {
			switch int(ev.Fd) {
			case p.evfd:
				p.poked = drain(p.evfd) || p.poked
				end = true
			case p.tfd:
				drain(p.tfd)
				end = true
			case p.epfd:
				p.armed = false
				end = end || sockets
			}
		}
		return end
	})
}

// look takes the sockets ready, without waiting, and reports whether
// there was one.
func (p *poller) look() bool {
	p.n = epollPoll(p.epfd, p.events)
	return p.n > 0
}

// epollPoll reads the events pending in the epoll instance epfd into
// events, without waiting, and returns how many there were.
func epollPoll(epfd int, events []unix.EpollEvent) int {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// drain reads an eventfd or timerfd back to zero; false if it was zero.
func drain(fd int) bool {
	var b [8]byte
	_, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 8)
	return errno == 0
}

// ready reports whether sockets were ready at the last wait.
func (p *poller) ready() bool { return p != nil && p.n > 0 }

// take calls fn for the sockets ready at the last wait; fn must read each
// until it would wait, or close or remove it.
func (p *poller) take(fn func(fd int)) {
	n := p.n
	p.n = 0
	p.last = time.Now()
	for _, ev := range p.events[:n] {
		fn(int(ev.Fd))
	}
}

// poke ends a wait, or the next one: a result came on the results channel,
// or Run's context ended. It may be called from any goroutine, and after
// close.
func (p *poller) poke() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	one := uint64(1)
	_, _, _ = unix.RawSyscall(unix.SYS_WRITE, uintptr(p.evfd), uintptr(unsafe.Pointer(&one)), 8)
}

// add watches fd until it is readable (or writable if out), closed or
// failed.
func (p *poller) add(fd int, out bool) bool { return p.ctl(unix.EPOLL_CTL_ADD, fd, out) }

// modify changes what fd is watched for.
func (p *poller) modify(fd int, out bool) bool { return p.ctl(unix.EPOLL_CTL_MOD, fd, out) }

func (p *poller) ctl(op, fd int, out bool) bool {
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if out {
		events = unix.EPOLLOUT
	}
	return epollCtl(p.epfd, op, fd, events)
}

// remove stops watching fd (a socket closed leaves by itself).
func (p *poller) remove(fd int) { _ = epollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, 0) }

// close closes the epoll instances (not the sockets in them), the eventfd
// and the timerfd; later pokes do nothing.
func (p *poller) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.w != nil {
		_ = p.w.Close()
		p.wfd = -1
	}
	for _, fd := range []int{p.epfd, p.wfd, p.evfd, p.tfd} {
		if fd >= 0 {
			_ = rawClose(fd)
		}
	}
}
