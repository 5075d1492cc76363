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
// answer) in one epoll instance, with an eventfd that the checks running
// on goroutines, and the end of Run's context, write to, and a timerfd
// for the Monitor's next due check. The Monitor's goroutine waits for the
// epoll instance itself, in the runtime's poller: no goroutine or channel
// between a ready socket and the Monitor (a hand-off between goroutines
// wakes a second thread), and no runtime timer. A goroutine that a
// runtime timer readies wakes a spinning thread when a P is idle (which
// finds nothing to do and sleeps again), and a pending timer wakes the
// runtime's sysmon thread; one that the runtime's poller readies is run by
// the thread that polled. It does not block a thread in epoll_wait(2)
// either: a P held in a system call keeps sysmon polling.
type poller struct {
	epfd, evfd, tfd int
	gapfd           int      // a second epoll instance: the eventfd and the timerfd only
	ep, gap         *os.File // epfd and gapfd, in the runtime's poller
	eprc, gaprc     syscall.RawConn
	events          []unix.EpollEvent
	n               int       // sockets ready at the last wait, in events
	last            time.Time // when the ready sockets were last taken
	poked           bool      // the eventfd was read at the last look

	mu     sync.Mutex // poke against close
	closed bool
}

// newPoller makes a poller; nil if it cannot (then the Monitor waits in a
// select, and the checks that would wait here do so on goroutines).
func newPoller() *poller {
	p := &poller{epfd: -1, evfd: -1, tfd: -1, gapfd: -1, events: make([]unix.EpollEvent, 128)}
	if !p.open() {
		p.close()
		return nil
	}
	return p
}

func (p *poller) open() bool {
	var errno syscall.Errno
	var fd uintptr
	for _, f := range []struct {
		fd       *int
		nr, a, b uintptr
	}{
		{&p.epfd, unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC, 0},
		{&p.gapfd, unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC, 0},
		{&p.evfd, unix.SYS_EVENTFD2, 0, unix.EFD_CLOEXEC | unix.EFD_NONBLOCK},
		{&p.tfd, unix.SYS_TIMERFD_CREATE, unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC | unix.TFD_NONBLOCK},
	} {
		if fd, _, errno = unix.RawSyscall(f.nr, f.a, f.b, 0); errno != 0 {
			return false
		}
		*f.fd = int(fd)
	}
	// Non-blocking, the epoll instances join the runtime's poller,
	// which then tells when an event is pending in one.
	for _, fd := range []int{p.epfd, p.gapfd} {
		if _, _, errno := unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_SETFL, unix.O_NONBLOCK); errno != 0 {
			return false
		}
	}
	if !p.ctlIn(p.epfd, p.evfd) || !p.ctlIn(p.epfd, p.tfd) || !p.ctlIn(p.gapfd, p.evfd) || !p.ctlIn(p.gapfd, p.tfd) {
		return false
	}
	p.ep, p.gap = os.NewFile(uintptr(p.epfd), "epoll"), os.NewFile(uintptr(p.gapfd), "epoll")
	var err1, err2 error
	p.eprc, err1 = p.ep.SyscallConn()
	p.gaprc, err2 = p.gap.SyscallConn()
	return err1 == nil && err2 == nil
}

// ctlIn adds fd to the epoll instance epfd, for reading.
func (p *poller) ctlIn(epfd, fd int) bool {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
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
		if p.waitPoke(g) {
			return
		}
		d -= g
	}
	if d <= 0 {
		p.look()
		return
	}
	p.arm(d)
	_ = p.eprc.Read(func(uintptr) bool { return p.look() })
}

// arm sets the timerfd to expire in d, and clears an expiry pending.
func (p *poller) arm(d time.Duration) {
	ts := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	_, _, _ = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(p.tfd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}

// look takes the events pending without waiting: the sockets' (those of
// take), the eventfd's (drained; poked says so) and the timerfd's
// (drained). It reports whether there was one.
func (p *poller) look() bool {
	n, ok := p.pwait(p.epfd)
	if !ok {
		return false
	}
	k := 0
	for _, ev := range p.events[:n] {
		if int(ev.Fd) == p.evfd || int(ev.Fd) == p.tfd {
			continue
		}
		p.events[k] = ev
		k++
	}
	p.n = k
	return true
}

// pwait reads the events pending in the epoll instance epfd, without
// waiting, and drains the eventfd and the timerfd if they are among them.
func (p *poller) pwait(epfd int) (int, bool) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
	if errno != 0 || n == 0 {
		return 0, false
	}
	p.poked = false
	for _, ev := range p.events[:n] {
		switch int(ev.Fd) {
		case p.evfd:
			p.poked = drain(p.evfd)
		case p.tfd:
			drain(p.tfd)
		}
	}
	return int(n), true
}

// waitPoke waits for a poke only, for up to d; it reports whether one came.
func (p *poller) waitPoke(d time.Duration) bool {
	p.arm(d)
	_ = p.gaprc.Read(func(uintptr) bool {
		_, ok := p.pwait(p.gapfd)
		return ok
	})
	return p.poked
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if out {
		ev.Events = unix.EPOLLOUT
	}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(p.epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	return errno == 0
}

// remove stops watching fd (a socket closed leaves by itself).
func (p *poller) remove(fd int) {
	var ev unix.EpollEvent
	_, _, _ = unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(p.epfd), unix.EPOLL_CTL_DEL, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
}

// close closes the epoll instances (not the sockets in them), the eventfd
// and the timerfd; later pokes do nothing.
func (p *poller) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range []struct {
		f  *os.File
		fd int
	}{{p.ep, p.epfd}, {p.gap, p.gapfd}, {nil, p.evfd}, {nil, p.tfd}} {
		switch {
		case c.f != nil:
			_ = c.f.Close()
		case c.fd >= 0:
			_ = rawClose(c.fd)
		}
	}
}
