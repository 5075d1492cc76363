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
// on goroutines, and the end of Run's context, write to. The Monitor's
// goroutine waits for the epoll instance itself, in the runtime's poller,
// with the time to its next due check as the deadline: no goroutine or
// channel between a ready socket and the Monitor (a hand-off between
// goroutines wakes a second thread). It does not block a thread in
// epoll_wait(2): a P held in a system call keeps the runtime's sysmon
// thread polling.
type poller struct {
	epfd, evfd int
	ep, ev     *os.File // epfd and evfd, in the runtime's poller
	eprc, evrc syscall.RawConn
	events     []unix.EpollEvent
	n          int       // sockets ready at the last wait, in events
	last       time.Time // when the ready sockets were last taken

	mu     sync.Mutex // poke against close
	closed bool
}

// newPoller makes a poller; nil if it cannot (then the Monitor waits in a
// select, and the checks that would wait here do so on goroutines).
func newPoller() *poller {
	epfd, _, errno := unix.RawSyscall(unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC, 0, 0)
	if errno != 0 {
		return nil
	}
	// Non-blocking, the descriptor joins the runtime's poller, which
	// then tells when an event is pending in it.
	if _, _, errno := unix.RawSyscall(unix.SYS_FCNTL, epfd, unix.F_SETFL, unix.O_NONBLOCK); errno != 0 {
		_ = rawClose(int(epfd))
		return nil
	}
	evfd, _, errno := unix.RawSyscall(unix.SYS_EVENTFD2, 0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK, 0)
	if errno != 0 {
		_ = rawClose(int(epfd))
		return nil
	}
	p := &poller{epfd: int(epfd), evfd: int(evfd), events: make([]unix.EpollEvent, 128)}
	p.ep, p.ev = os.NewFile(epfd, "epoll"), os.NewFile(evfd, "eventfd")
	var err1, err2 error
	p.eprc, err1 = p.ep.SyscallConn()
	p.evrc, err2 = p.ev.SyscallConn()
	if err1 != nil || err2 != nil || !p.ctl(unix.EPOLL_CTL_ADD, p.evfd, false) {
		p.close()
		return nil
	}
	return p
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
	_ = p.ep.SetReadDeadline(time.Now().Add(d))
	_ = p.eprc.Read(func(uintptr) bool { return p.look() })
}

// look takes the events pending without waiting; the eventfd's is drained
// and left out. It reports whether there was one.
func (p *poller) look() bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
	if errno != 0 || n == 0 {
		return false
	}
	k := 0
	for _, ev := range p.events[:n] {
		if int(ev.Fd) == p.evfd {
			p.drain()
			continue
		}
		p.events[k] = ev
		k++
	}
	p.n = k
	return true
}

// waitPoke waits for a poke only, for up to d; it reports whether one came.
func (p *poller) waitPoke(d time.Duration) bool {
	_ = p.ev.SetReadDeadline(time.Now().Add(d))
	return p.evrc.Read(func(uintptr) bool { return p.drain() }) == nil
}

// drain reads the eventfd back to zero; false if it was zero.
func (p *poller) drain() bool {
	var b [8]byte
	_, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(p.evfd), uintptr(unsafe.Pointer(&b[0])), 8)
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

// close closes the epoll instance (not the sockets in it) and the
// eventfd; later pokes do nothing.
func (p *poller) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	_ = p.ev.Close()
	_ = p.ep.Close()
}
