package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dial opens a TCP or UDP connection in d's namespace, for Target.Dial.
func (d *dialer) dial(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	f, err := d.open(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer f.Close() // net.FileConn dups it
	c, err := net.FileConn(f)
	if err != nil {
		return nil, dialError(network, addr, err)
	}
	return c, nil
}

// dialConn is dial for the package's own probes: the connection is the
// socket itself, without the copy and second poller registration that
// net.FileConn makes.
func (d *dialer) dialConn(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	f, err := d.open(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return newSockConn(f, network, addr), nil
}

// connectOnly opens a TCP connection and resets it at once (SO_LINGER 0,
// so that neither end keeps the connection in TIME_WAIT), or closes it
// normally if graceful.
func (d *dialer) connectOnly(ctx context.Context, addr netip.AddrPort, graceful bool) error {
	p, err := d.startTCP(addr, graceful, false, nil)
	if p == nil {
		return err
	}
	_, err = p.wait(ctx)
	return err
}

// startTCP starts connectOnly without waiting. It is done, with err, if
// the connection opened at once (as it does to a local address);
// otherwise it returns the rest, whose try (until done), expire or wait
// must be called. With inNS, the calling thread is in d's namespace
// already. With sp (the Monitor's goroutine only), the socket may be a
// spare one, and goes back to sp when the check passes without waiting on
// a goroutine.
func (d *dialer) startTCP(addr netip.AddrPort, graceful, inNS bool, sp *spares) (*tcpPending, error) {
	if graceful {
		sp = nil // a FIN close: the socket is closed
	}
	fd, connected, err := d.startConnect("tcp", addr, inNS, sp, false)
	if err != nil {
		return nil, err
	}
	c := connecting{d, addr, fd, sp}
	if connected {
		return nil, c.done(graceful)
	}
	return &tcpPending{c, graceful}, nil
}

// closeChecked closes the socket of a TCP check: it resets the connection
// unless graceful.
func closeChecked(fd int, graceful bool) error {
	if !graceful {
		rawResetOnClose(fd)
	}
	return os.NewSyscallError("close", rawClose(fd))
}

// spare tells whether the connection's socket may go back to the spares
// when its check passes.
func (c *connecting) spare() bool { return c.sp != nil && !c.d.source.IsValid() }

// done ends a TCP check whose connection opened: its socket goes back to
// the spares, the connection reset, or is closed (reset unless graceful).
func (c *connecting) done(graceful bool) error {
	fd := c.fd
	c.fd = -1
	if !graceful && c.spare() {
		return c.sp.put(fd, !c.addr.Addr().Unmap().Is4(), c.d.mark)
	}
	return closeChecked(fd, graceful)
}

// connecting is a socket whose connection did not open within
// connect(2): the handshake goes on.
type connecting struct {
	d    *dialer
	addr netip.AddrPort
	fd   int
	sp   *spares // nil: the socket is closed at the end
}

// opened tells, without waiting, whether the connection has opened (done,
// nil) or failed (done, the error; the socket is closed).
func (c *connecting) opened() (done bool, err error) {
	var soErr int32
	n := uint32(unsafe.Sizeof(soErr))
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(c.fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&soErr)), uintptr(unsafe.Pointer(&n)), 0)
	switch {
	case errno != 0:
		err = os.NewSyscallError("getsockopt", errno)
	case soErr != 0:
		err = os.NewSyscallError("connect", unix.Errno(soErr))
	case peerKnown(c.fd):
		return true, nil
	default:
		return false, nil
	}
	_ = rawClose(c.fd)
	c.fd = -1
	return true, dialError("tcp", c.addr, err)
}

// expire gives up at the check's timeout: it closes the socket.
func (c *connecting) expire() error {
	_ = rawClose(c.fd)
	c.fd = -1
	return dialError("tcp", c.addr, context.DeadlineExceeded)
}

// finish waits for the connection on a goroutine, until ctx is done (see
// finishConnect).
func (c *connecting) finish(ctx context.Context) (*os.File, error) {
	fd := c.fd
	c.fd = -1
	return c.d.finishConnect(ctx, "tcp", c.addr, fd)
}

// tcpPending is a TCP check whose connection is opening.
type tcpPending struct {
	c        connecting
	graceful bool
}

func (p *tcpPending) try() (bool, int, error) {
	done, err := p.c.opened()
	if !done {
		return false, KeepWeight, nil
	}
	if err == nil {
		err = p.c.done(p.graceful)
	}
	return true, KeepWeight, err
}

// poll: the socket is writable once the connection opens.
func (p *tcpPending) poll() (int, bool) { return p.c.fd, true }

func (p *tcpPending) expire() error { return p.c.expire() }

func (p *tcpPending) wait(ctx context.Context) (int, error) {
	f, err := p.c.finish(ctx)
	if err != nil {
		return KeepWeight, err
	}
	if rc, err := f.SyscallConn(); err == nil && !p.graceful { // (f.Fd would make it blocking)
		_ = rc.Control(resetOnClose)
	}
	return KeepWeight, f.Close()
}

// started is the rest of the check, for the Monitor.
func (p *tcpPending) started() started {
	return started{p: p}
}

// resetOnClose makes close(2) reset the connection (SO_LINGER 0).
func resetOnClose(fd uintptr) {
	_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

func dialError(network string, addr netip.AddrPort, err error) error {
	var a net.Addr
	if network == "udp" {
		a = net.UDPAddrFromAddrPort(addr)
	} else {
		a = net.TCPAddrFromAddrPort(addr)
	}
	return &net.OpError{Op: "dial", Net: network, Addr: a, Err: err}
}

// open makes a non-blocking socket in d's namespace (only the socket(2)
// call runs there: a socket keeps its namespace for life), marks and binds
// it, connects it to addr, waiting for a TCP handshake until ctx is done,
// and returns it registered with the runtime's poller.
func (d *dialer) open(ctx context.Context, network string, addr netip.AddrPort) (*os.File, error) {
	fd, connected, err := d.startConnect(network, addr, false, nil, false)
	if err != nil {
		return nil, err
	}
	if connected {
		return os.NewFile(uintptr(fd), "socket"), nil
	}
	return d.finishConnect(ctx, network, addr, fd)
}

// startStream starts opening a TCP connection without waiting, and
// returns the rest, which must be called. With inNS, the calling thread is
// in d's namespace already.
func (d *dialer) startStream(addr netip.AddrPort, inNS bool) (func(context.Context) (net.Conn, error), error) {
	fd, connected, err := d.startConnect("tcp", addr, inNS, nil, false)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (net.Conn, error) {
		var f *os.File
		if connected {
			f = os.NewFile(uintptr(fd), "socket")
		} else if f, err = d.finishConnect(ctx, "tcp", addr, fd); err != nil {
			return nil, err
		}
		return newSockConn(f, "tcp", addr), nil
	}, nil
}

// startConnect makes the socket, or takes a spare one from sp (TCP, no
// Source), and starts connecting it, without waiting: connected reports
// whether the connection is open already. With inNS, the calling thread is
// in d's namespace already.
func (d *dialer) startConnect(network string, addr netip.AddrPort, inNS bool, sp *spares, lateAck bool) (int, bool, error) {
	var typ int
	switch network {
	case "tcp", "tcp4", "tcp6":
		typ, network = unix.SOCK_STREAM, "tcp"
	case "udp", "udp4", "udp6":
		typ, network = unix.SOCK_DGRAM, "udp"
	default:
		return -1, false, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	if !addr.IsValid() {
		return -1, false, dialError(network, addr, fmt.Errorf("invalid address %v", addr))
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	family := unix.AF_INET6
	if addr.Addr().Is4() {
		family = unix.AF_INET
	}
	if sp != nil && typ == unix.SOCK_STREAM && !d.source.IsValid() {
		if fd := sp.take(family == unix.AF_INET6, d.mark); fd >= 0 {
			if lateAck {
				rawLateAck(fd)
			}
			cerr := rawConnect(fd, addr)
			if cerr == 0 || cerr == unix.EINPROGRESS {
				sp.reused++
				return fd, cerr == 0 || peerKnown(fd), nil
			}
			// Not as a new socket would: a new one tells.
			_ = rawClose(fd)
		}
	}
	fd, err := d.socket(family, typ, inNS)
	if err != nil {
		return -1, false, dialError(network, addr, os.NewSyscallError("socket", err))
	}
	fail := func(err error) (int, bool, error) {
		_ = rawClose(fd)
		return -1, false, dialError(network, addr, err)
	}
	if d.mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(d.mark)); err != nil {
			return fail(os.NewSyscallError("setsockopt SO_MARK", err))
		}
	}
	if d.source.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(d.source, 0), family)); err != nil {
			return fail(os.NewSyscallError("bind", err))
		}
	}
	if lateAck && typ == unix.SOCK_STREAM {
		rawLateAck(fd)
	}
	cerr := rawConnect(fd, addr)
	if cerr != 0 && cerr != unix.EINPROGRESS {
		return fail(os.NewSyscallError("connect", cerr))
	}
	return fd, cerr == 0 || peerKnown(fd), nil
}

// socket makes a socket in d's namespace; with inNS, the calling thread
// is in it already.
func (d *dialer) socket(family, typ int, inNS bool) (int, error) {
	if d.ns == nil || inNS {
		return rawSocket(family, typ)
	}
	return d.socketInNS(family, typ)
}

// socketInNS is socket from another namespace (apart, so that only this
// path pays for the closure and its captured variables on the heap).
func (d *dialer) socketInNS(family, typ int) (fd int, err error) {
	err = d.ns.InNetNS(func() error {
		var e error
		fd, e = rawSocket(family, typ)
		return e
	})
	return fd, err
}

// take returns a spare socket of the family, marked mark, or -1.
func (s *spares) take(v6 bool, mark uint32) int {
	for i := len(s.free) - 1; i >= 0; i-- {
		sk := s.free[i]
		if sk.v6 != v6 {
			continue
		}
		s.free = slices.Delete(s.free, i, i+1)
		if sk.mark != mark {
			_, _, errno := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(sk.fd), unix.SOL_SOCKET, unix.SO_MARK, uintptr(unsafe.Pointer(&mark)), 4, 0)
			if errno != 0 {
				_ = rawClose(sk.fd)
				return -1
			}
		}
		return sk.fd
	}
	return -1
}

// put resets the connection of a check that passed and keeps its socket
// for the next check, or closes it (reset) when there are enough. Its
// error is close's.
func (s *spares) put(fd int, v6 bool, mark uint32) error {
	if len(s.free) >= maxSpares || !rawDisconnect(fd) {
		return closeChecked(fd, false)
	}
	s.free = append(s.free, spareSock{fd, v6, mark})
	return nil
}

// close closes the spare sockets.
func (s *spares) close() {
	for _, sk := range s.free {
		_ = rawClose(sk.fd)
	}
	s.free = nil
}

// rawDisconnect resets fd's connection and leaves the socket ready to
// connect again (connect(2) to AF_UNSPEC: tcp_disconnect, which sends a
// reset from any open state). The reset leaves ECONNRESET as the socket's
// pending error, which the next connect(2) clears before its SYN
// (TestIntegrationSpareSockets checks it on each kernel).
func rawDisconnect(fd int) bool {
	sa := unix.RawSockaddr{Family: unix.AF_UNSPEC}
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	return errno == 0
}

// The system calls of a check's socket before it joins the runtime's
// poller (socket, connect, getpeername, setsockopt, close) are raw: they
// never wait (the socket is non-blocking, and a reset or a FIN close
// returns at once), but their kernel work can be long, as the loopback
// handshake runs inside connect(2): 250 us in a TCG guest. Past 20 us the
// runtime hands the P of a goroutine in a system call to another thread,
// which it wakes, and takes it back after: a check paid for that twice. A
// raw call keeps its P (a stop of the world waits for it) and allocates
// nothing.

func rawSocket(family, typ int) (int, error) {
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// rawConnect starts connecting fd to addr, whose family is fd's.
func rawConnect(fd int, addr netip.AddrPort) unix.Errno {
	var (
		ptr  unsafe.Pointer
		size uintptr
		sa4  unix.RawSockaddrInet4
		sa6  unix.RawSockaddrInet6
	)
	port := (*[2]byte)(unsafe.Pointer(&sa4.Port))
	if addr.Addr().Is4() {
		sa4.Family, sa4.Addr = unix.AF_INET, addr.Addr().As4()
		ptr, size = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	} else {
		sa6.Family, sa6.Addr = unix.AF_INET6, addr.Addr().As16()
		port = (*[2]byte)(unsafe.Pointer(&sa6.Port))
		ptr, size = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	}
	port[0], port[1] = byte(addr.Port()>>8), byte(addr.Port())
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), size)
	if errno == unix.EINTR {
		// The connection goes on: the wait tells how it ends.
		errno = unix.EINPROGRESS
	}
	return errno
}

// rawLateAck delays fd's next ACK (TCP_QUICKACK 0, the kernel's
// "pingpong" mode). Before connect(2), the ACK that ends the handshake
// goes with the request instead of in a segment of its own; after the
// request, the answer and the server's FIN are acknowledged by the
// delayed ACK timer (40 ms or more), so that a check that reads the
// answer and resets the connection before then sends no ACK at all. A
// plain GET then sends three segments (SYN, request, RST) where it sent
// five.
func rawLateAck(fd int) {
	off := int32(0)
	_, _, _ = unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, uintptr(unsafe.Pointer(&off)), 4, 0)
}

// rawResetOnClose is resetOnClose for a socket not in the poller.
func rawResetOnClose(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	_, _, _ = unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}

// rawClose closes a socket not in the poller.
func rawClose(fd int) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); errno != 0 && errno != unix.EINTR {
		return errno
	}
	return nil
}

// finishConnect waits for the connection of startConnect's socket fd to
// open (or fail) until ctx is done, and returns it registered with the
// poller; on failure fd is closed.
func (d *dialer) finishConnect(ctx context.Context, network string, addr netip.AddrPort, fd int) (*os.File, error) {
	// Still connecting (or refused: waitConnected tells). The socket
	// joins the poller only now, as one that has not started connecting
	// polls writable (and hung up), which would end the wait at once.
	f := os.NewFile(uintptr(fd), "socket")
	if err := waitConnected(ctx, f); err != nil {
		f.Close()
		return nil, dialError(network, addr, err)
	}
	return f, nil
}

// peerKnown reports whether fd is connected, without allocating.
func peerKnown(fd int) bool {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	return errno == 0
}

// waitConnected waits until f's stream socket has connected or failed, or
// ctx is done.
func waitConnected(ctx context.Context, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// ctx's end, its deadline included, ends the wait: no deadline of
	// the socket's own (one timer and clock read less per check).
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	first := true
	var soErr int
	var cerr error
	err = rc.Write(func(fd uintptr) bool {
		if first {
			// Often connected, or refused, already (a local
			// destination): tell before waiting, as readiness that
			// came before this call is not kept for the wait.
			first = false
			if _, err := unix.Getpeername(int(fd)); err == nil {
				return true
			}
			soErr, cerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
			return cerr != nil || soErr != 0
		}
		// Woken: connected (writable) or failed (an error, hung up).
		soErr, cerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		return true
	})
	stopped := stop()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return context.DeadlineExceeded
		}
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("getsockopt", cerr)
	}
	if soErr != 0 {
		return os.NewSyscallError("connect", unix.Errno(soErr))
	}
	if !stopped {
		// ctx ended as the connection opened: the socket's deadline
		// has passed.
		return ctx.Err()
	}
	return nil
}

func sockaddr(ap netip.AddrPort, family int) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// sockConn is a connected socket as a net.Conn: the *os.File honours
// deadlines and closes through the runtime's poller; reads and writes are
// raw system calls (see rawSocket) made through it, waiting in the poller
// when the socket is not ready.
type sockConn struct {
	*os.File
	network string
	raddr   netip.AddrPort
	rc      syscall.RawConn
	rd, wr  rawIO
}

// rawIO is a raw read or write: its closure, made once, and its buffer
// and result.
type rawIO struct {
	fn    func(fd uintptr) bool
	buf   []byte
	n     int
	errno unix.Errno
}

// do makes one read or write (trap) of buf; false asks the poller to wait.
func (r *rawIO) do(trap, fd uintptr) bool {
	for {
		n, _, errno := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), errno
		return true
	}
}

func newSockConn(f *os.File, network string, raddr netip.AddrPort) *sockConn {
	c := &sockConn{File: f, network: network, raddr: raddr}
	rc, err := f.SyscallConn()
	if err != nil {
		return c
	}
	c.rc = rc
	c.rd.fn = func(fd uintptr) bool { return c.rd.do(unix.SYS_READ, fd) }
	c.wr.fn = func(fd uintptr) bool { return c.wr.do(unix.SYS_WRITE, fd) }
	return c
}

func (c *sockConn) Read(b []byte) (int, error) {
	if c.rc == nil || len(b) == 0 {
		return c.File.Read(b)
	}
	c.rd.buf, c.rd.n, c.rd.errno = b, 0, 0
	err := c.rc.Read(c.rd.fn)
	c.rd.buf = nil
	switch {
	case err != nil:
		return 0, &os.PathError{Op: "read", Path: c.Name(), Err: err}
	case c.rd.errno != 0:
		return 0, &os.PathError{Op: "read", Path: c.Name(), Err: c.rd.errno}
	case c.rd.n == 0 && !strings.HasPrefix(c.network, "udp"):
		return 0, io.EOF
	}
	return c.rd.n, nil
}

func (c *sockConn) Write(b []byte) (int, error) {
	if c.rc == nil || len(b) == 0 {
		return c.File.Write(b)
	}
	done := 0
	for done < len(b) {
		c.wr.buf, c.wr.n, c.wr.errno = b[done:], 0, 0
		err := c.rc.Write(c.wr.fn)
		c.wr.buf = nil
		switch {
		case err != nil:
			return done, &os.PathError{Op: "write", Path: c.Name(), Err: err}
		case c.wr.errno != 0:
			return done, &os.PathError{Op: "write", Path: c.Name(), Err: c.wr.errno}
		}
		done += c.wr.n
		if strings.HasPrefix(c.network, "udp") {
			break // a datagram goes whole or not at all
		}
	}
	return done, nil
}

func (c *sockConn) LocalAddr() net.Addr {
	var sa unix.Sockaddr
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { sa, _ = unix.Getsockname(int(fd)) })
	}
	var ap netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return c.addr(ap)
}

func (c *sockConn) RemoteAddr() net.Addr { return c.addr(c.raddr) }

func (c *sockConn) addr(ap netip.AddrPort) net.Addr {
	if strings.HasPrefix(c.network, "udp") {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}
