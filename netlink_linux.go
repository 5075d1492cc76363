//go:build linux

package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// transport is a netlink socket carrying whole datagrams. The Linux one is a
// generic netlink socket driven with raw system calls through the runtime
// poller, so deadlines apply; tests substitute a fake kernel.
type transport interface {
	send(b []byte) error
	// recv reads one datagram into b. With nonblock it returns EAGAIN
	// instead of waiting.
	recv(b []byte, nonblock bool) (int, error)
	// recvBatch reads up to len(lens) datagrams, each into its own slot of
	// b (slot bytes long), and stores their lengths: one system call for
	// many small answers such as ACKs. It waits only for the first.
	recvBatch(b []byte, slot int, lens []int, nonblock bool) (int, error)
	// setDeadline bounds the calls that wait and clears an interrupt.
	setDeadline(t time.Time) error
	// interrupt makes a waiting call, and every later one until
	// setDeadline, fail; it may run concurrently with the other methods.
	interrupt()
	// bufferSizes reports SO_RCVBUF and SO_SNDBUF as the kernel accounts them.
	bufferSizes() (rcv, snd int)
	close() error
}

// dumpSlot is the length of every read: one page, at most 8 KiB.
//
// The kernel allocates each dump datagram as large as the longest read the
// socket has ever made (netlink_recvmsg records it; netlink_dump allocates
// that much), capped at 32 KiB and at least NLMSG_GOODSIZE, one page less
// the skb overhead, 8 KiB at most. Reads of 32 KiB get about 100 services
// per datagram, but also a 32 KiB buffer from the page allocator for every
// datagram of every dump, the one NLMSG_DONE included: a destination dump
// (one small datagram and its end) then costs the kernel about twice the
// system time (measured in BENCHMARKS.md). With page-sized reads every
// datagram comes from the small-object allocator, and reading many of them
// per recvmmsg keeps the system calls of a long dump as few as with 32 KiB.
// No IPVS message comes near NLMSG_GOODSIZE, so none is truncated; a read
// that were would fail with errTruncated, never return a partial message.
//
// Service dumps are the exception (see serviceSlot).
func dumpSlot() int { return min(os.Getpagesize(), 8<<10) }

// serviceSlot is the read length of the sockets that dump the service
// table: 32 KiB, about 100 services per datagram. The kernel resumes a dump
// by position, so every datagram boundary is a point where concurrent
// changes make a dump skip or repeat entries; page-sized datagrams (11
// services) gave nine times as many, and a test under a concurrent writer
// saw Reconcile's second pass miss services again. Service dumps are few
// and long, so their 32 KiB allocations cost little; they run on sockets of
// their own, as the read length sticks to a socket.
const serviceSlot = 32 << 10

// maxIdleSockets bounds the sockets a client keeps open between calls.
const maxIdleSockets = 8

// sock is one pooled socket with its buffers and sequence numbers.
type sock struct {
	t    transport
	seq  uint32
	rbuf []byte
	big  bool // the socket dumps the service table (see readLen)
	enc  encoder
	idx  []int // the changes of a batch in flight, by message
	lens [ackSlots]int
	// lastNest is the service identity nest that ends at
	// enc.b[lastNest.end] (n bytes), for serviceIdentity.
	lastNest struct {
		svc    Service
		n, end int
	}
}

// The receive buffer holds several datagrams read by one system call: dump
// datagrams, one dumpSlot each, or ACKs, each in a slot large enough for an
// error with its extended acknowledgement text.
const (
	recvBuffer = 64 << 10
	ackSlot    = 1024
	ackSlots   = recvBuffer / ackSlot
)

// client is the Linux implementation behind Client. Requests run on pooled
// sockets: a call takes one, sets the context's deadline on it and returns it
// afterwards, unless the call failed in a way that may leave replies queued
// (a cancelled call, a transport error), in which case the socket is closed
// and a later call dials a new one. Concurrent calls use different sockets,
// so one call's deadline never cuts another short.
type client struct {
	family uint16
	dial   func() (transport, error)
	nsFile *os.File // the bound network namespace, owned by the client

	mu     sync.Mutex
	idle   []*sock
	closed bool
}

func newClient(o options) (*client, error) {
	const op = "new client"
	nsFile, err := openNetNS(o)
	if err != nil {
		return nil, &Error{Op: op, Message: "cannot open the network namespace", Err: err}
	}
	cfg := &netlink.Config{}
	if nsFile != nil {
		cfg.NetNS = int(nsFile.Fd())
	}
	fail := func(err error) (*client, error) {
		if nsFile != nil {
			_ = nsFile.Close()
		}
		return nil, err
	}
	first, err := netlink.Dial(unix.NETLINK_GENERIC, cfg)
	if err != nil {
		return fail(&Error{Op: op, Message: "cannot open a generic netlink socket", Err: err})
	}
	f, err := genetlink.NewConn(first).GetFamily(uapi.GenlName)
	if err != nil {
		_ = first.Close()
		if errors.Is(err, os.ErrNotExist) {
			return fail(&Error{
				Op:      op,
				Message: "IPVS is unavailable: the kernel has no IPVS generic netlink family; load the ip_vs module (modprobe ip_vs) or use a kernel built with CONFIG_IP_VS",
				Err:     syscall.ENOENT,
			})
		}
		return fail(&Error{Op: op, Message: "cannot resolve the IPVS generic netlink family", Err: err})
	}
	t, err := newRawTransport(first)
	if err != nil {
		_ = first.Close()
		return fail(&Error{Op: op, Err: err})
	}
	dial := func() (transport, error) {
		c, err := netlink.Dial(unix.NETLINK_GENERIC, cfg)
		if err != nil {
			return nil, err
		}
		t, err := newRawTransport(c)
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		return t, nil
	}
	c := newClientWith(f.ID, dial)
	c.nsFile = nsFile
	c.idle = append(c.idle, newSock(t, false))
	return c, nil
}

// newClientWith is the constructor shared with tests.
func newClientWith(family uint16, dial func() (transport, error)) *client {
	return &client{family: family, dial: dial}
}

func newSock(t transport, big bool) *sock {
	return &sock{t: t, rbuf: make([]byte, recvBuffer), big: big}
}

// readLen is the length of the socket's dump reads: serviceSlot for a big
// socket, else dumpSlot.
func (s *sock) readLen() int {
	if s.big {
		return serviceSlot
	}
	return dumpSlot()
}

// openNetNS returns the namespace file the client's sockets are created in.
// Without an option it pins the calling thread's namespace, so sockets dialled
// later from other threads land in the same one.
func openNetNS(o options) (*os.File, error) {
	switch {
	case o.netnsPath != "":
		return os.Open(o.netnsPath)
	case o.netnsFD > 0:
		fd, err := unix.FcntlInt(uintptr(o.netnsFD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("fcntl", err)
		}
		return os.NewFile(uintptr(fd), "netns"), nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		// No /proc: sockets are created in the namespace of whichever
		// thread dials them, normally the process's.
		return nil, nil
	}
	return f, nil
}

// rawTransport is a netlink socket driven with direct system calls and kept
// out of the Go runtime's network poller.
//
// The kernel answers IPVS requests synchronously, inside the sendmsg that
// carries them (and continues dumps inside each read), so a read after a
// send practically never has to wait. A socket registered with the poller
// (epoll, edge-triggered) still costs on every datagram the kernel queues:
// it wakes the thread that sleeps in epoll_wait, which finds no goroutine
// waiting and sleeps again. Measured in the benchmark VM, registering the
// raw floor's socket raised its weight update time by a third and its
// context switches from about 150 to 1400 per 8000 updates. So the socket
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

func (t *rawTransport) recv(b []byte, nonblock bool) (int, error) {
	for {
		// The reads never block (MSG_DONTWAIT): RawSyscall, without
		// handing the processor to the scheduler.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(t.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0 && int(r) > len(b):
			return 0, errTruncated
		case e == 0:
			return int(r), nil
		case e == unix.EINTR:
		case e == unix.EAGAIN && !nonblock:
			if err := t.wait(unix.POLLIN); err != nil {
				return 0, err
			}
		case e == unix.EAGAIN || e == unix.ENOBUFS:
			return 0, e
		default:
			return 0, os.NewSyscallError("recvfrom", e)
		}
	}
}

func (t *rawTransport) recvBatch(b []byte, slot int, lens []int, nonblock bool) (int, error) {
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
	for {
		// MSG_DONTWAIT: as many datagrams as are queued, at least one.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(t.fd), uintptr(unsafe.Pointer(&t.hdr[0])), uintptr(n),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0:
			got := int(r)
			for i := range got {
				if t.hdr[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
					return 0, errTruncated
				}
				lens[i] = int(t.hdr[i].Len)
			}
			return got, nil
		case e == unix.EINTR:
		case e == unix.EAGAIN && !nonblock:
			if err := t.wait(unix.POLLIN); err != nil {
				return 0, err
			}
		case e == unix.EAGAIN || e == unix.ENOBUFS:
			return 0, e
		default:
			return 0, os.NewSyscallError("recvmmsg", e)
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

func (c *client) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, s := range c.idle {
		_ = s.t.close()
	}
	c.idle = nil
	if c.nsFile != nil {
		_ = c.nsFile.Close()
	}
	return nil
}

var errClosed = errors.New("client is closed")

// sockKind is what a call needs of a socket's read length (see dumpSlot and
// serviceSlot).
type sockKind int

const (
	anySock  sockKind = iota // replies other than dumps, ACKs: any socket
	pageSock                 // dumps other than the service table
	bigSock                  // the service table dump
)

// get takes an idle socket that suits kind or dials one. A page socket
// becomes a big one by reading 32 KiB, never back (the kernel remembers the
// longest read).
func (c *client) get(kind sockKind) (*sock, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	take := func(i int) *sock {
		s := c.idle[i]
		c.idle = append(c.idle[:i], c.idle[i+1:]...)
		c.mu.Unlock()
		return s
	}
	for i := len(c.idle) - 1; i >= 0; i-- {
		if kind == anySock || c.idle[i].big == (kind == bigSock) {
			return take(i), nil
		}
	}
	if kind == bigSock && len(c.idle) > 0 {
		s := take(len(c.idle) - 1)
		s.big = true
		return s, nil
	}
	c.mu.Unlock()
	t, err := c.dial()
	if err != nil {
		return nil, err
	}
	return newSock(t, kind == bigSock), nil
}

// put returns a socket in sync with the kernel to the pool.
func (c *client) put(s *sock) {
	c.mu.Lock()
	if !c.closed && len(c.idle) < maxIdleSockets {
		c.idle = append(c.idle, s)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = s.t.close()
}

// session runs fn on a socket bounded by ctx: the context's deadline is the
// socket's, and cancelling ctx interrupts a blocked read or write. If fn
// fails with anything but a kernel error the socket may hold unread replies,
// so it is closed instead of pooled.
func (c *client) session(ctx context.Context, fn func(s *sock) error) error {
	return c.sessionOn(ctx, anySock, fn)
}

// sessionOn is session on a socket of the kind asked (see get).
func (c *client) sessionOn(ctx context.Context, kind sockKind, fn func(s *sock) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := c.get(kind)
	if err != nil {
		return err
	}
	deadline, hasDeadline := ctx.Deadline()
	if err := s.t.setDeadline(deadline); err != nil {
		_ = s.t.close()
		return err
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.t.interrupt()
		close(interrupted)
	})
	err = fn(s)
	if !stop() {
		// Wait for the interrupt, so it cannot touch the socket once reused.
		<-interrupted
	}
	var ke *kernelError
	if err == nil || errors.As(err, &ke) {
		c.put(s)
		return err
	}
	_ = s.t.close()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case hasDeadline && errors.Is(err, os.ErrDeadlineExceeded):
		return context.DeadlineExceeded
	}
	return err
}

// kernelError is an error message from the kernel: the exchange completed
// and the socket is in sync.
type kernelError struct {
	errno syscall.Errno
	text  string
}

func (e *kernelError) Error() string { return e.errno.Error() }

// requestFlags gives each command the netlink flags its kernel handler needs.
// It is the only place flags are chosen: a doit that returns data must not
// carry NLM_F_ACK, or the ACK that follows the reply is left queued and every
// later read on the socket gets the previous request's answer; a mutation
// must carry it, or success produces no message at all.
func requestFlags(cmd uint8, dump bool) uint16 {
	switch {
	case cmd == uapi.CmdGetDest || cmd == uapi.CmdGetDaemon || (cmd == uapi.CmdGetService && dump):
		return nlmFRequest | nlmFDump
	case cmd == uapi.CmdGetService || cmd == uapi.CmdGetInfo || cmd == uapi.CmdGetConfig:
		return nlmFRequest
	}
	return nlmFRequest | nlmFAck
}

// begin starts a request message in s's buffer and returns its offset.
func (c *client) begin(s *sock, cmd uint8, dump bool) int {
	s.seq++
	return s.enc.beginMessage(c.family, requestFlags(cmd, dump), s.seq, 0, cmd)
}

// errAcksLost reports that the kernel dropped acknowledgements because the
// receive buffer overflowed (ENOBUFS); their requests were still executed.
var errAcksLost = errors.New("acknowledgements lost to a receive buffer overrun")

// exchange sends the n messages in s's buffer, whose sequence numbers end at
// s.seq, and reads until each has its final answer: an ACK or error, the end
// of a dump, or the reply of a GET. onData receives each data message with
// its request's index; onResult each final answer (errno 0 for success).
// Messages of other sequence numbers, left by an earlier exchange, are
// skipped. If the kernel dropped answers (ENOBUFS), exchange reads what is
// left and returns errAcksLost; requests without an answer get no onResult.
func (s *sock) exchange(n int, onData func(i int, m message) error, onResult func(i int, errno int32, text string)) error {
	return s.exchangeUntil(n, false, onData, onResult)
}

// exchangeUntil is exchange; with untilLast it also stops as soon as the last
// request is answered, leaving earlier requests that got no answer without
// onResult: the kernel answers in order, so none will come.
func (s *sock) exchangeUntil(n int, untilLast bool, onData func(i int, m message) error, onResult func(i int, errno int32, text string)) error {
	if err := s.t.send(s.enc.b); err != nil {
		return err
	}
	first := s.seq - uint32(n) + 1
	dump := n == 1 && len(s.enc.b) >= 8 && ne.Uint16(s.enc.b[6:])&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	pending := n
	overrun := false
	lastDone := false
	result := onResult
	onResult = func(i int, errno int32, text string) {
		if i == n-1 {
			lastDone = true
		}
		result(i, errno, text)
	}
	handle := func(m message) error {
		i := int(m.seq - first)
		if m.seq-first >= uint32(n) {
			return nil // stale
		}
		switch m.typ {
		case nlmsgError:
			errno, text, err := parseError(m)
			if err != nil {
				return err
			}
			pending--
			onResult(i, errno, text)
		case nlmsgDone:
			pending--
			var errno int32
			if len(m.data) >= 4 {
				errno = -int32(ne.Uint32(m.data))
			}
			onResult(i, errno, "")
		case nlmsgOverrun:
			return errors.New("netlink overrun")
		default:
			if m.typ < 0x10 {
				return nil // NLMSG_NOOP and reserved types
			}
			if onData != nil {
				if err := onData(i, m); err != nil {
					return err
				}
			}
			if m.flags&nlmFMulti == 0 {
				pending-- // a doit's single reply; dump parts are multipart
				onResult(i, 0, "")
			}
		}
		return nil
	}
	for pending > 0 && !(untilLast && lastDone) {
		var (
			got int
			err error
		)
		slot := s.readLen()
		switch {
		case n > 1:
			// Many answers expected, all small (ACKs): read them in
			// bulk.
			slot = ackSlot
			got, err = s.t.recvBatch(s.rbuf, slot, s.lens[:], overrun)
		case dump:
			// A dump: as many datagrams per read as are queued; the
			// kernel builds the next one inside each.
			got, err = s.t.recvBatch(s.rbuf, slot, s.lens[:], overrun)
		default:
			// One reply.
			s.lens[0], err = s.t.recv(s.rbuf[:slot], overrun)
			got = 1
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			overrun = true
			continue
		case overrun && errors.Is(err, unix.EAGAIN):
			return errAcksLost
		case err != nil:
			return err
		}
		for j := range got {
			if err := messages(s.rbuf[j*slot:j*slot+s.lens[j]], handle); err != nil {
				return err
			}
		}
	}
	return nil
}

// do sends one request and reads its answer; the one request path of every
// single-call method. encode writes the attributes; onData, if not nil,
// receives the reply messages.
func (c *client) do(ctx context.Context, op string, cmd uint8, dump bool, encode func(e *encoder), onData func(m message) error) error {
	kind := anySock
	switch {
	case cmd == uapi.CmdGetService && dump:
		kind = bigSock
	case dump:
		kind = pageSock
	}
	err := c.sessionOn(ctx, kind, func(s *sock) error {
		s.enc.b = s.enc.b[:0]
		off := c.begin(s, cmd, dump)
		if encode != nil {
			encode(&s.enc)
		}
		s.enc.endMessage(off)
		var kerr error
		var data func(int, message) error
		if onData != nil {
			data = func(_ int, m message) error { return onData(m) }
		}
		err := s.exchange(1, data, func(_ int, errno int32, text string) {
			if errno != 0 {
				kerr = &kernelError{errno: syscall.Errno(errno), text: text}
			}
		})
		if err != nil {
			return err
		}
		return kerr
	})
	return wrap(op, cmd, err)
}

// wrap turns an internal error into the package's *Error.
func wrap(op string, cmd uint8, err error) error {
	if err == nil {
		return nil
	}
	var ke *kernelError
	if errors.As(err, &ke) {
		return &Error{Op: op, Message: ke.text, Err: ke.errno, cmd: cmd}
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Err: err, cmd: cmd}
}

func (c *client) info(ctx context.Context) (Info, error) {
	const op = "get info"
	var info Info
	err := c.do(ctx, op, uapi.CmdGetInfo, false, nil, func(m message) (err error) {
		if m.cmd == uapi.CmdSetInfo {
			info, err = parseInfo(m.data)
		}
		return err
	})
	return info, err
}

func (c *client) timeouts(ctx context.Context) (Timeouts, error) {
	const op = "get timeouts"
	var t Timeouts
	err := c.do(ctx, op, uapi.CmdGetConfig, false, nil, func(m message) (err error) {
		if m.cmd == uapi.CmdSetConfig {
			t, err = parseTimeouts(m.data)
		}
		return err
	})
	return t, err
}

func (c *client) setTimeouts(ctx context.Context, t Timeouts) error {
	return c.do(ctx, "set timeouts", uapi.CmdSetConfig, false, func(e *encoder) { encodeTimeouts(e, t) }, nil)
}

func (c *client) zero(ctx context.Context, s *Service) error {
	if s == nil {
		return c.do(ctx, "zero all", uapi.CmdZero, false, nil, nil)
	}
	return c.do(ctx, "zero service", uapi.CmdZero, false, func(e *encoder) { encodeService(e, *s, false, 0, 0) }, nil)
}

func (c *client) flush(ctx context.Context) error {
	return c.do(ctx, "flush", uapi.CmdFlush, false, nil, nil)
}

func (c *client) setService(ctx context.Context, cmd uint8, s Service, flags, mask ServiceFlags) error {
	op := "create service"
	if cmd == uapi.CmdSetService {
		op = "update service"
	}
	return c.do(ctx, op, cmd, false, func(e *encoder) { encodeService(e, s, true, flags, mask) }, nil)
}

func (c *client) serviceOnly(ctx context.Context, op string, cmd uint8, s Service) error {
	return c.do(ctx, op, cmd, false, func(e *encoder) { encodeService(e, s, false, 0, 0) }, nil)
}

// serviceCollector appends the services of NEW_SERVICE messages, with
// their statistics if stats.
func serviceCollector(out *[]ServiceStats, stats bool) func(m message) error {
	return func(m message) error {
		if m.cmd != uapi.CmdNewService {
			return nil
		}
		s, ok, err := parseServiceOpt(m.data, stats)
		if ok {
			*out = append(*out, s)
		}
		return err
	}
}

func (c *client) getService(ctx context.Context, s Service) (ServiceStats, error) {
	const op = "get service"
	var svcs []ServiceStats
	err := c.do(ctx, op, uapi.CmdGetService, false, func(e *encoder) { encodeService(e, s, false, 0, 0) }, serviceCollector(&svcs, true))
	if err != nil {
		return ServiceStats{}, err
	}
	if len(svcs) != 1 {
		return ServiceStats{}, &Error{Op: op, Err: fmt.Errorf("kernel returned %d services, want 1", len(svcs))}
	}
	return svcs[0], nil
}

func (c *client) services(ctx context.Context) ([]ServiceStats, error) {
	svcs := make([]ServiceStats, 0, 16)
	err := c.do(ctx, "list services", uapi.CmdGetService, true, nil, serviceCollector(&svcs, true))
	if err != nil {
		return nil, err
	}
	return dedup(svcs, func(s *ServiceStats) serviceKey { return s.key() }), nil
}

// dedup drops the duplicates a dump can hold: the kernel resumes dumps
// by index, so a table changing during a multi-datagram dump can repeat
// entries (and skip others, which cannot be detected).
func dedup[T any](xs []T, key func(*T) serviceKey) []T {
	if len(xs) < 2 {
		return xs
	}
	// Duplicates are rare (only a dump that raced with changes has them):
	// equal hashes are looked for first, in 8 bytes per entry instead of
	// a map's 100.
	seed := maphash.MakeSeed()
	hs := make([]uint64, len(xs))
	for i := range xs {
		hs[i] = maphash.Comparable(seed, key(&xs[i]))
	}
	slices.Sort(hs)
	equal := false
	for i := 1; i < len(hs) && !equal; i++ {
		equal = hs[i] == hs[i-1]
	}
	if !equal {
		return xs
	}
	seen := make(map[serviceKey]struct{}, len(xs))
	out := xs[:0]
	for i := range xs {
		k := key(&xs[i])
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, xs[i])
	}
	return out
}

func (c *client) setDestination(ctx context.Context, op string, cmd uint8, s Service, d Destination, full bool) error {
	return c.do(ctx, op, cmd, false, func(e *encoder) {
		encodeService(e, s, false, 0, 0)
		encodeDest(e, d, full)
	}, nil)
}

// destCollector appends the destinations of NEW_DEST messages.
func destCollector(out *[]DestinationStats, fam Family) func(m message) error {
	return func(m message) error {
		if m.cmd != uapi.CmdNewDest {
			return nil
		}
		d, ok, err := parseDest(m.data, fam)
		if ok {
			*out = append(*out, d)
		}
		return err
	}
}

func (c *client) destinations(ctx context.Context, s Service) ([]DestinationStats, error) {
	const op = "list destinations"
	dests := make([]DestinationStats, 0, 4)
	err := c.do(ctx, op, uapi.CmdGetDest, true, func(e *encoder) { encodeService(e, s, false, 0, 0) }, destCollector(&dests, s.family()))
	if err != nil {
		return nil, err
	}
	if len(dests) == 0 {
		// The kernel ends the dump of a missing service silently: ask.
		if _, err := c.getService(ctx, s); err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Op = op
			}
			return nil, err
		}
	}
	return dests, nil
}

func (c *client) startDaemon(ctx context.Context, d SyncDaemon) error {
	return c.do(ctx, "start sync daemon", uapi.CmdNewDaemon, false, func(e *encoder) { encodeDaemon(e, d) }, nil)
}

// stopDaemon sends DEL_DAEMON followed by a GET_INFO as a barrier. A daemon
// stopped before its thread ever ran makes the kernel's kthread_stop return
// EINTR, and netlink sends no acknowledgement for EINTR, although the daemon
// is gone (seen on 6.1 and 6.12 for stops right after a start). The kernel
// answers requests in order, so the barrier's reply arriving without an
// answer to DEL_DAEMON means exactly that: the daemon was stopped.
func (c *client) stopDaemon(ctx context.Context, state DaemonState) error {
	const op = "stop sync daemon"
	err := c.session(ctx, func(s *sock) error {
		s.enc.b = s.enc.b[:0]
		off := c.begin(s, uapi.CmdDelDaemon, false)
		// The kernel reads only the state; ipvsadm also sends an empty
		// interface and sync ID 0, which change nothing.
		nest := s.enc.nest(uapi.CmdAttrDaemon)
		s.enc.u32(uapi.DaemonAttrState, uint32(state))
		s.enc.end(nest)
		s.enc.endMessage(off)
		s.enc.endMessage(c.begin(s, uapi.CmdGetInfo, false))
		var kerr error
		err := s.exchangeUntil(2, true, nil, func(i int, errno int32, text string) {
			if i == 0 && errno != 0 {
				kerr = &kernelError{errno: syscall.Errno(errno), text: text}
			}
		})
		if err != nil {
			return err
		}
		return kerr
	})
	return wrap(op, uapi.CmdDelDaemon, err)
}

func (c *client) daemons(ctx context.Context) ([]SyncDaemon, error) {
	ds := make([]SyncDaemon, 0, 2)
	err := c.do(ctx, "list sync daemons", uapi.CmdGetDaemon, true, nil, func(m message) error {
		if m.cmd != uapi.CmdNewDaemon {
			return nil
		}
		d, ok, err := parseDaemon(m.data)
		if ok {
			ds = append(ds, d)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// virtualServices reads every service and its destinations: one service
// dump on a big socket, then one destination dump per service on a page
// socket (see dumpSlot and serviceSlot).
func (c *client) virtualServices(ctx context.Context, stats bool) ([]VirtualServiceStats, error) {
	const op = "list virtual services"
	// The services are decoded into chunks and then copied once into a
	// slice of the right length: about half the memory of growing one
	// slice by append, which copies it at every step.
	var (
		chunks [][]VirtualServiceStats
		chunk  []VirtualServiceStats
		total  int
	)
	err := c.dumpServices(ctx, stats, func(svc ServiceStats) {
		if len(chunk) == cap(chunk) {
			if chunk != nil {
				chunks = append(chunks, chunk)
			}
			chunk = make([]VirtualServiceStats, 0, min(max(64, total), 1024))
		}
		chunk = append(chunk, VirtualServiceStats{ServiceStats: svc})
		total++
	})
	if err != nil {
		return nil, wrap(op, uapi.CmdGetService, err)
	}
	out := make([]VirtualServiceStats, 0, total)
	for _, ch := range chunks {
		out = append(out, ch...)
	}
	out = dedup(append(out, chunk...), func(v *VirtualServiceStats) serviceKey { return v.Service.key() })
	if len(out) > 0 {
		// The destination dumps run on a socket that reads pages (see
		// dumpSlot).
		err = c.sessionOn(ctx, pageSock, func(s *sock) error { return c.dumpDestinations(s, out, stats) })
		if err != nil {
			return nil, wrap(op, uapi.CmdGetDest, err)
		}
	}
	return out, nil
}

// dumpServices runs a service dump on a big socket (see serviceSlot) and
// hands each service to fn.
func (c *client) dumpServices(ctx context.Context, stats bool, fn func(ServiceStats)) error {
	return c.sessionOn(ctx, bigSock, func(s *sock) error {
		s.enc.b = s.enc.b[:0]
		s.enc.endMessage(c.begin(s, uapi.CmdGetService, true))
		return s.dumpOne(func(_ int, m message) error {
			if m.cmd != uapi.CmdNewService {
				return nil
			}
			svc, ok, err := parseServiceOpt(m.data, stats)
			if ok {
				fn(svc)
			}
			return err
		})
	})
}

// reconcileChanges reads the table and computes the changes that turn it
// into want. It compares while it reads (see differ) instead of building
// the table in memory, and dumps the destinations only of the services it
// keeps.
func (c *client) reconcileChanges(ctx context.Context, want desiredTable, opts ReconcileOptions) ([]Change, error) {
	const op = "list virtual services"
	d := newDiffer(want, opts)
	err := c.dumpServices(ctx, false, func(svc ServiceStats) { d.service(svc.Service) })
	if err != nil {
		return nil, wrap(op, uapi.CmdGetService, err)
	}
	kept := d.kept()
	started := -1
	begin := func(i int) {
		if i != started {
			d.beginDests(kept[i])
			started = i
		}
	}
	if len(kept) > 0 {
		err = c.sessionOn(ctx, pageSock, func(s *sock) error {
			return c.dumpDests(s, len(kept), func(i int) Service { return want.svcs[kept[i]].svc },
				func(i int, m message) error {
					begin(i)
					x, ok, err := parseDestOpt(m.data, want.svcs[kept[i]].svc.family(), false)
					if ok {
						d.dest(x)
					}
					return err
				},
				func(i int) {
					begin(i)
					d.endDests()
				})
		})
		if err != nil {
			return nil, wrap(op, uapi.CmdGetDest, err)
		}
	}
	return d.finish(), nil
}

// dumpDestinations fills in the destinations of every service of out,
// decoded into one growing slab, each service's run sliced off when its dump
// ends: the dumps deliver them one service after another.
func (c *client) dumpDestinations(s *sock, out []VirtualServiceStats, stats bool) error {
	slab := make([]DestinationStats, 0, 4*len(out))
	start := 0
	return c.dumpDests(s, len(out), func(i int) Service { return out[i].Service },
		func(i int, m message) error {
			d, ok, err := parseDestOpt(m.data, out[i].family(), stats)
			if ok {
				slab = append(slab, d)
			}
			return err
		},
		func(i int) {
			out[i].Destinations = slab[start:len(slab):len(slab)]
			start = len(slab)
		})
}

// dumpDests runs one GET_DEST dump for each of n services, pipelined, and
// hands each NEW_DEST message of service i to onDest and the end of its dump
// to onEnd, service after service in order.
//
// A netlink socket runs one dump at a time (another request meanwhile gets
// EBUSY), but the kernel ends a short dump, queueing its NLMSG_DONE, inside
// the read that returns its data. So once the data of dump i is read, dump
// i+1 is requested at once, and the next read returns both the end of i and
// the data of i+1: two system calls per service instead of three. A dump
// that spans several datagrams makes the early request fail with EBUSY; it
// is sent again after that dump's end.
func (c *client) dumpDests(s *sock, n int, svc func(i int) Service, onDest func(i int, m message) error, onEnd func(i int)) error {
	if n == 0 {
		return nil
	}
	slot := s.readLen()
	slots := len(s.rbuf) / slot
	type state struct{ sent, tried, gotData, done bool }
	var (
		cur   int                // the first dump not yet ended
		seq0  = s.seq + 1        // the sequence number of the first request
		bySeq []int32            // the service of request seq0+k
		st    = make([]state, n) // sent: a request is outstanding or answered; tried: an early request was made
		ended = 0                // dumps ended, in order
	)
	send := func(i int) error {
		s.enc.b = s.enc.b[:0]
		off := c.begin(s, uapi.CmdGetDest, true)
		encodeService(&s.enc, svc(i), false, 0, 0)
		s.enc.endMessage(off)
		bySeq = append(bySeq, int32(i)) // begin numbered it seq0+len(bySeq)
		st[i].sent = true
		return s.t.send(s.enc.b)
	}
	handle := func(m message) error {
		k := m.seq - seq0
		if k >= uint32(len(bySeq)) {
			return nil // stale
		}
		i := int(bySeq[k])
		switch {
		case m.typ == nlmsgError:
			errno, text, err := parseError(m)
			if err != nil || errno == 0 {
				return err
			}
			if syscall.Errno(errno) == syscall.EBUSY && i != cur {
				// Requested while an earlier dump still ran: again
				// once it has ended. (Its refusal is queued at once,
				// so it is read before that dump's end.)
				st[i].sent = false
				return nil
			}
			return &kernelError{errno: syscall.Errno(errno), text: text}
		case m.typ == nlmsgDone:
			if i != ended {
				return fmt.Errorf("destination dump %d ended before dump %d", i, ended)
			}
			st[i].done = true
			ended++
			onEnd(i)
		case m.typ >= 0x10 && m.cmd == uapi.CmdNewDest:
			st[i].gotData = true
			return onDest(i, m)
		}
		return nil
	}
	if err := send(0); err != nil {
		return err
	}
	for cur < n {
		got, err := s.t.recvBatch(s.rbuf, slot, s.lens[:slots], false)
		if err != nil {
			return err
		}
		for j := range got {
			if err := messages(s.rbuf[j*slot:j*slot+s.lens[j]], handle); err != nil {
				return err
			}
		}
		for cur < n && st[cur].done {
			cur++
			if cur < n && !st[cur].sent {
				if err := send(cur); err != nil {
					return err
				}
			}
		}
		if next := cur + 1; cur < n && st[cur].gotData && next < n && !st[next].sent && !st[next].tried {
			st[next].tried = true
			if err := send(next); err != nil {
				return err
			}
		}
	}
	return nil
}

// dumpOne runs the one dump request in s's buffer.
func (s *sock) dumpOne(onData func(int, message) error) error {
	var kerr error
	err := s.exchange(1, onData, func(_ int, errno int32, text string) {
		if errno != 0 {
			kerr = &kernelError{errno: syscall.Errno(errno), text: text}
		}
	})
	if err != nil {
		return err
	}
	return kerr
}

// apply sends the valid changes (those whose errs entry is nil) as batches
// of requests, many per sendmsg, and records each one's outcome in errs.
func (c *client) apply(ctx context.Context, changes []Change, errs []error) error {
	// known marks the changes whose outcome is settled: refused before
	// sending, or answered by the kernel.
	known := make([]bool, len(changes))
	for i, e := range errs {
		known[i] = e != nil
	}
	err := c.session(ctx, func(s *sock) error {
		rcv, snd := s.t.bufferSizes()
		// Every ACK costs about 770 bytes of the receive buffer whatever
		// its size (a default 212992-byte buffer holds 277): past that
		// the kernel drops them with ENOBUFS. A sendmsg may carry at
		// most the send buffer less 32 bytes.
		maxMsgs := max(1, rcv/1024)
		maxBytes := max(4096, snd-32)
		for i := 0; i < len(changes); {
			s.enc.b = s.enc.b[:0]
			s.idx = s.idx[:0]
			s.lastNest.n = 0
			for ; i < len(changes) && len(s.idx) < maxMsgs; i++ {
				if known[i] {
					continue
				}
				start, seq := len(s.enc.b), s.seq
				c.encodeChange(s, changes[i])
				if len(s.enc.b) > maxBytes && len(s.idx) > 0 {
					s.enc.b, s.seq = s.enc.b[:start], seq
					break
				}
				s.idx = append(s.idx, i)
			}
			if len(s.idx) == 0 {
				continue
			}
			err := s.exchange(len(s.idx), nil, func(k int, errno int32, text string) {
				i := s.idx[k]
				known[i] = true
				if errno != 0 {
					errs[i] = &Error{Op: changes[i].Kind.op(), Message: text, Err: syscall.Errno(errno), cmd: changes[i].Kind.cmd()}
				}
			})
			if errors.Is(err, errAcksLost) {
				for _, i := range s.idx {
					if !known[i] {
						known[i] = true
						errs[i] = &Error{Op: changes[i].Kind.op(), Err: ErrUnacknowledged, cmd: changes[i].Kind.cmd()}
					}
				}
				err = nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The changes not answered have an unknown outcome.
		for i := range changes {
			if !known[i] {
				errs[i] = &Error{Op: changes[i].Kind.op(), Err: err, cmd: changes[i].Kind.cmd()}
			}
		}
		return wrap("apply", 0, err)
	}
	return nil
}

func (c *client) encodeChange(s *sock, ch Change) {
	cmd := ch.Kind.cmd()
	off := c.begin(s, cmd, false)
	switch ch.Kind {
	case CreateService, UpdateService:
		encodeService(&s.enc, ch.Service, true, ch.Service.Flags, serviceFlagsSentMask)
	case DeleteService:
		encodeService(&s.enc, ch.Service, false, 0, 0)
	case CreateDestination, UpdateDestination, DeleteDestination:
		s.serviceIdentity(ch.Service)
		encodeDest(&s.enc, ch.Destination, ch.Kind != DeleteDestination)
	}
	s.enc.endMessage(off)
}

// serviceIdentity writes the identity nest of svc, copying it from the
// previous message when that named the same service, as the destination
// changes of one service usually follow each other.
func (s *sock) serviceIdentity(svc Service) {
	if s.lastNest.n > 0 && s.lastNest.end <= len(s.enc.b) && sameIdentity(s.lastNest.svc, svc) {
		start := s.lastNest.end - s.lastNest.n
		s.enc.b = append(s.enc.b, s.enc.b[start:s.lastNest.end]...)
	} else {
		start := len(s.enc.b)
		encodeService(&s.enc, svc, false, 0, 0)
		s.lastNest.svc, s.lastNest.n = svc, len(s.enc.b)-start
	}
	s.lastNest.end = len(s.enc.b)
}

// Encoding. Attribute order follows ipvsadm's, so requests can be compared
// with its captured bytes; the kernel does not depend on the order.

// addr16 writes a as a 16-byte union nf_inet_addr: an IPv4 address in the
// first four bytes, the rest zero.
func addr16(e *encoder, typ uint16, a netip.Addr) {
	var b [16]byte
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
	} else if a.IsValid() {
		b = a.As16()
	}
	e.bytes(typ, b[:])
}

// encodeService writes IPVS_CMD_ATTR_SERVICE: the identity, and with full
// the configuration that NEW_SERVICE and SET_SERVICE require.
func encodeService(e *encoder, s Service, full bool, flags, mask ServiceFlags) {
	off := e.nest(uapi.CmdAttrService)
	fam := s.family()
	e.u16(uapi.SvcAttrAF, uint16(fam))
	if s.FirewallMark != 0 {
		// Only for mark services: an FWMARK attribute of 0 would still
		// select the mark branch and mean TCP 0.0.0.0:0.
		e.u32(uapi.SvcAttrFwmark, s.FirewallMark)
	} else {
		e.u16(uapi.SvcAttrProtocol, uint16(s.Protocol))
		addr16(e, uapi.SvcAttrAddr, s.Address)
		e.be16(uapi.SvcAttrPort, s.Port)
	}
	if full {
		e.str(uapi.SvcAttrSchedName, s.Scheduler)
		if s.PersistenceEngine != "" {
			// Always sent when set: SET_SERVICE without it removes the
			// engine.
			e.str(uapi.SvcAttrPEName, s.PersistenceEngine)
		}
		e.header(uapi.SvcAttrFlags, 8)
		e.b = ne.AppendUint32(e.b, uint32(flags&knownServiceFlags))
		e.b = ne.AppendUint32(e.b, uint32(mask))
		e.u32(uapi.SvcAttrTimeout, uint32(s.Timeout/time.Second))
		if fam == IPv4 {
			n := s.Netmask
			if n == 0 {
				n = defaultNetmask4
			}
			var m [4]byte
			binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-n))
			e.bytes(uapi.SvcAttrNetmask, m[:])
		} else {
			n := s.Netmask
			if n == 0 {
				n = defaultNetmask6
			}
			e.u32(uapi.SvcAttrNetmask, uint32(n))
		}
	}
	e.end(off)
}

// encodeDest writes IPVS_CMD_ATTR_DEST: the identity (family, address,
// port), and with full the configuration NEW_DEST and SET_DEST require. The
// tunnel attributes are always sent, zero for non-tunnel destinations, as
// ipvsadm does; kernels before 5.2 ignore them.
func encodeDest(e *encoder, d Destination, full bool) {
	off := e.nest(uapi.CmdAttrDest)
	e.u16(uapi.DestAttrAddrFamily, uint16(familyOf(d.Address)))
	addr16(e, uapi.DestAttrAddr, d.Address)
	e.be16(uapi.DestAttrPort, d.Port)
	if full {
		e.u32(uapi.DestAttrFwdMethod, uint32(d.ForwardMethod))
		e.u32(uapi.DestAttrWeight, uint32(d.Weight))
		e.u8(uapi.DestAttrTunType, uint8(d.TunnelType))
		e.be16(uapi.DestAttrTunPort, d.TunnelPort)
		e.u16(uapi.DestAttrTunFlags, uint16(d.TunnelChecksum))
		e.u32(uapi.DestAttrUThresh, d.UpperThreshold)
		e.u32(uapi.DestAttrLThresh, d.LowerThreshold)
	}
	e.end(off)
}

// encodeDaemon writes IPVS_CMD_ATTR_DAEMON for NEW_DAEMON. Optional
// attributes are sent only when set, so the kernel fills its defaults.
func encodeDaemon(e *encoder, d SyncDaemon) {
	off := e.nest(uapi.CmdAttrDaemon)
	e.u32(uapi.DaemonAttrState, uint32(d.State))
	e.str(uapi.DaemonAttrMcastIfn, d.Interface)
	e.u32(uapi.DaemonAttrSyncID, d.SyncID)
	if d.MaxLength != 0 {
		e.u16(uapi.DaemonAttrSyncMaxLen, uint16(d.MaxLength))
	}
	if d.Port != 0 {
		e.u16(uapi.DaemonAttrMcastPort, d.Port)
	}
	if d.TTL != 0 {
		e.u8(uapi.DaemonAttrMcastTTL, d.TTL)
	}
	switch {
	case d.Group.Is4():
		g := d.Group.As4()
		e.bytes(uapi.DaemonAttrMcastGroup, g[:])
	case d.Group.Is6():
		g := d.Group.As16()
		e.bytes(uapi.DaemonAttrMcastGroup6, g[:])
	}
	e.end(off)
}

func encodeTimeouts(e *encoder, t Timeouts) {
	e.u32(uapi.CmdAttrTimeoutTCP, uint32(t.TCP/time.Second))
	e.u32(uapi.CmdAttrTimeoutTCPFin, uint32(t.TCPFin/time.Second))
	e.u32(uapi.CmdAttrTimeoutUDP, uint32(t.UDP/time.Second))
}
