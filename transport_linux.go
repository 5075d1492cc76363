//go:build linux

package ipvs

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// readMode says how a read proceeds.
type readMode uint8

const (
	// readWait waits for a datagram, until the deadline or an interrupt.
	readWait readMode = 0
	// readNow returns EAGAIN instead of waiting.
	readNow readMode = 1 << iota
	// readDump reads on a socket whose dump is running: the kernel
	// continues the dump inside the read, and IPVS's dump code takes
	// mutexes that are held across sleeps (synchronize_rcu, kthread_stop).
	readDump
)

// transport is a netlink socket carrying whole datagrams. The Linux one,
// rawTransport, is a generic netlink socket driven with direct system calls,
// outside the Go runtime's poller; tests substitute a fake kernel.
type transport interface {
	send(b []byte) error
	// recv reads one datagram into b.
	recv(b []byte, mode readMode) (int, error)
	// recvBatch reads up to len(lens) datagrams, each into its own slot of
	// b (slot bytes long), and stores their lengths: one system call for
	// many small answers such as ACKs. It waits only for the first.
	recvBatch(b []byte, slot int, lens []int, mode readMode) (int, error)
	// setDeadline bounds the calls that wait and clears an interrupt.
	setDeadline(t time.Time) error
	// interrupt makes a waiting call, and every later one until
	// setDeadline, fail; it may run concurrently with the other methods.
	interrupt()
	// bufferSizes reports SO_RCVBUF and SO_SNDBUF as the kernel accounts them.
	bufferSizes() (rcv, snd int)
	close() error
}

// rawTransport is a netlink socket driven with direct system calls and kept
// out of the Go runtime's network poller.
//
// The kernel answers IPVS requests synchronously, inside the sendmsg that
// carries them (and continues dumps inside each read), so a read after a
// send practically never has to wait. A socket registered with the poller
// (epoll, edge-triggered) still costs on every datagram the kernel queues:
// it wakes the thread that sleeps in epoll_wait, which finds no goroutine
// waiting and sleeps again (BENCHMARKS.md has the cost). So the socket
// mdlayher/netlink opens (it handles the namespace and options) is
// duplicated and the original closed, which removes it from the poller;
// the rare wait uses poll(2) with an eventfd for interruption.
type rawTransport struct {
	fd       int // the netlink socket, non-blocking
	wake     int // eventfd: interrupt makes a waiting call return
	woken    bool
	deadline time.Time
	rcv, snd int
	iov      [ackSlots]unix.Iovec
	hdr      [ackSlots]unix.Mmsghdr
	// The buffer, slot length and number of entries hdr is set up for.
	batchBase *byte
	batchSlot int
	batchLen  int
}

// errInterrupted is returned by a call that interrupt ended.
var errInterrupted = errors.New("netlink call interrupted")

func newRawTransport(c *netlink.Conn) (*rawTransport, error) {
	defer c.Close()
	// Best effort: kernel error texts, and ACKs that do not echo the request.
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	_ = c.SetOption(netlink.CapAcknowledge, true)
	rcv, err := c.ReadBuffer()
	if err != nil {
		return nil, err
	}
	snd, err := c.WriteBuffer()
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	err = rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err == nil && derr != nil {
		err = os.NewSyscallError("fcntl", derr)
	}
	if err != nil {
		return nil, err
	}
	// The duplicate shares the original's non-blocking mode; set it anyway.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &rawTransport{fd: fd, wake: wake, rcv: rcv, snd: snd}, nil
}

func (t *rawTransport) send(b []byte) error {
	for {
		// Syscall, not RawSyscall: the kernel executes the requests
		// inside this call, which can take long for a large batch.
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(t.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
		case unix.EAGAIN:
			if err := t.wait(unix.POLLOUT); err != nil {
				return err
			}
		default:
			return os.NewSyscallError("sendto", e)
		}
	}
}

// wait blocks until the socket is ready for events, the deadline passes
// (os.ErrDeadlineExceeded) or interrupt is called (errInterrupted).
func (t *rawTransport) wait(events int16) error {
	fds := []unix.PollFd{{Fd: int32(t.fd), Events: events}, {Fd: int32(t.wake), Events: unix.POLLIN}}
	for {
		timeout := -1
		if !t.deadline.IsZero() {
			d := time.Until(t.deadline)
			if d <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = int(min((d+time.Millisecond-1)/time.Millisecond, 1<<30))
		}
		_, err := unix.Poll(fds, timeout)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return os.NewSyscallError("poll", err)
		case fds[1].Revents != 0:
			return errInterrupted
		case fds[0].Revents != 0:
			return nil // ready, or an error the next call reports
		}
	}
}

// interrupt makes a waiting call, and every later one until setDeadline,
// return errInterrupted. It may run concurrently with the other methods.
func (t *rawTransport) interrupt() {
	t.woken = true
	var one [8]byte
	ne.PutUint64(one[:], 1)
	_, _ = unix.Write(t.wake, one[:])
}

var errTruncated = errors.New("netlink datagram larger than the receive buffer")

func (t *rawTransport) recv(b []byte, mode readMode) (int, error) {
	n, err := t.read(unix.SYS_RECVFROM, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_TRUNC|unix.MSG_DONTWAIT, mode)
	if err == nil && n > len(b) {
		return 0, errTruncated
	}
	return n, err
}

func (t *rawTransport) recvBatch(b []byte, slot int, lens []int, mode readMode) (int, error) {
	n := min(len(lens), len(b)/slot, ackSlots)
	if &b[0] != t.batchBase || slot != t.batchSlot || n > t.batchLen {
		// The kernel writes only msg_len and msg_flags back, so the
		// headers serve every call on the same buffer and slots.
		for i := range n {
			t.iov[i].Base = &b[i*slot]
			t.iov[i].SetLen(slot)
			t.hdr[i] = unix.Mmsghdr{}
			t.hdr[i].Hdr.Iov = &t.iov[i]
			t.hdr[i].Hdr.SetIovlen(1)
		}
		t.batchBase, t.batchSlot, t.batchLen = &b[0], slot, n
	}
	// As many datagrams as are queued, at least one.
	got, err := t.read(unix.SYS_RECVMMSG, uintptr(unsafe.Pointer(&t.hdr[0])), uintptr(n), unix.MSG_DONTWAIT, mode)
	if err != nil {
		return 0, err
	}
	for i := range got {
		if t.hdr[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
			return 0, errTruncated
		}
		lens[i] = int(t.hdr[i].Len)
	}
	return got, nil
}

// read runs a read system call (recvfrom or recvmmsg with MSG_DONTWAIT, on
// a1, a2 and flags) until it returns data or an error to report: again
// after EINTR and, unless mode has readNow, after EAGAIN once poll says the
// socket is readable. EAGAIN and ENOBUFS come back as themselves.
//
// A dump read (readDump) is a Syscall: the kernel may sleep in it on IPVS's
// mutexes, and a RawSyscall would keep its processor from the Go scheduler
// meanwhile. Other reads, of ACKs and single replies, run no IPVS code:
// netlink_recvmsg takes a queued datagram (MSG_DONTWAIT: it never waits)
// and copies it into the socket's buffer, whose pages newSock touched. It
// can block only where Go code touching that buffer could (a page swapped
// out), so these reads are RawSyscalls, which cost less: a Syscall's entry
// and exit in the scheduler made Apply's 8000 updates about a fifth slower
// in the benchmark VM, with twice the context switches (BENCHMARKS.md).
func (t *rawTransport) read(trap, a1, a2, flags uintptr, mode readMode) (int, error) {
	for {
		var (
			r uintptr
			e unix.Errno
		)
		if mode&readDump != 0 {
			r, _, e = unix.Syscall6(trap, uintptr(t.fd), a1, a2, flags, 0, 0)
		} else {
			r, _, e = unix.RawSyscall6(trap, uintptr(t.fd), a1, a2, flags, 0, 0)
		}
		switch {
		case e == 0:
			return int(r), nil
		case e == unix.EINTR:
		case e == unix.EAGAIN && mode&readNow == 0:
			if err := t.wait(unix.POLLIN); err != nil {
				return 0, err
			}
		case e == unix.EAGAIN || e == unix.ENOBUFS:
			return 0, e
		case trap == unix.SYS_RECVMMSG:
			return 0, os.NewSyscallError("recvmmsg", e)
		default:
			return 0, os.NewSyscallError("recvfrom", e)
		}
	}
}

// setDeadline sets the deadline of waiting calls and clears an interrupt:
// a session starts with it.
func (t *rawTransport) setDeadline(d time.Time) error {
	t.deadline = d
	if t.woken {
		var b [8]byte
		_, _ = unix.Read(t.wake, b[:])
		t.woken = false
	}
	return nil
}

func (t *rawTransport) bufferSizes() (int, int) { return t.rcv, t.snd }

func (t *rawTransport) close() error {
	_ = unix.Close(t.wake)
	return unix.Close(t.fd)
}
