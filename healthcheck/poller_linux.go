//go:build linux

package healthcheck

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is the Monitor's own wait for the started checks that wait for
// an answer (a plain HTTP GET not answered within trialWait), as
// keepalived's checker waits: their sockets in one epoll instance, whose
// descriptor alone is in the runtime's poller. One goroutine waits on it
// and wakes the Monitor when some socket is ready, whatever their number:
// no goroutine, timer or context per check, and no poller registration
// and ordinary close(2) per socket.
type poller struct {
	epfd   int
	f      *os.File // epfd, in the runtime's poller
	rc     syscall.RawConn
	ready  chan struct{} // a socket is ready: the Monitor calls take
	ack    chan struct{} // the Monitor took them
	stop   chan struct{}
	done   chan struct{}
	events []unix.EpollEvent
}

// pollGap is the least time between two takes of the sockets ready: a
// check that waited in the poller ends up to pollGap after its answer came.
const pollGap = 5 * time.Millisecond

// newPoller starts a poller; nil if it cannot (then the checks that wait
// do so on goroutines of their own).
func newPoller() *poller {
	fd, _, errno := unix.RawSyscall(unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC, 0, 0)
	if errno != 0 {
		return nil
	}
	// Non-blocking, the descriptor joins the runtime's poller, which
	// then tells when an event is pending in it.
	if _, _, errno := unix.RawSyscall(unix.SYS_FCNTL, fd, unix.F_SETFL, unix.O_NONBLOCK); errno != 0 {
		_ = rawClose(int(fd))
		return nil
	}
	f := os.NewFile(fd, "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	p := &poller{
		epfd: int(fd), f: f, rc: rc,
		ready: make(chan struct{}), ack: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		events: make([]unix.EpollEvent, 128),
	}
	go p.wait()
	return p
}

// wait tells the Monitor each time some socket is ready, and waits for it
// to take them before it looks again (a socket stays ready until read).
func (p *poller) wait() {
	defer close(p.done)
	var one [1]unix.EpollEvent
	pending := func(fd uintptr) bool {
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&one[0])), 1, 0, 0, 0)
		return errno == 0 && n > 0
	}
	var gap *time.Timer
	for {
		if err := p.rc.Read(pending); err != nil {
			return // closed
		}
		taken := time.Now()
		select {
		case p.ready <- struct{}{}:
		case <-p.stop:
			return
		}
		select {
		case <-p.ack:
		case <-p.stop:
			return
		}
		// Sockets ready one by one (a server answering a batch of
		// checks in turn) are taken together, at most once per
		// pollGap: the Monitor's process wakes once for many of them.
		if d := pollGap - time.Since(taken); d > 0 {
			if gap == nil {
				gap = time.NewTimer(d)
			} else {
				gap.Reset(d)
			}
			select {
			case <-gap.C:
			case <-p.stop:
				return
			}
		}
	}
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

// take calls fn for the sockets ready now (up to a batch: fn must read
// each until it would wait, or close or remove it), then lets the waiting
// goroutine look again.
func (p *poller) take(fn func(fd int)) {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno == 0 {
			for _, ev := range p.events[:n] {
				fn(int(ev.Fd))
			}
		}
		break
	}
	select {
	case p.ack <- struct{}{}:
	default:
	}
}

// close stops the goroutine and closes the epoll instance (not the
// sockets in it).
func (p *poller) close() {
	close(p.stop)
	p.f.Close() // ends a wait in the runtime's poller
	<-p.done
}

// readyC is ready, or nil (never ready) without a poller.
func (p *poller) readyC() chan struct{} {
	if p == nil {
		return nil
	}
	return p.ready
}
