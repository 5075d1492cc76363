package healthcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dial opens a TCP or UDP socket in d's namespace (only the socket(2) call
// runs there: a socket keeps its namespace for life), binds and marks it,
// and connects it from the calling goroutine through the runtime's poller.
func (d *dialer) dial(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	var typ int
	switch network {
	case "tcp", "tcp4", "tcp6":
		typ = unix.SOCK_STREAM
	case "udp", "udp4", "udp6":
		typ = unix.SOCK_DGRAM
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(addr), Err: err}
	}
	if !addr.IsValid() {
		return nil, opErr(fmt.Errorf("invalid address %v", addr))
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	family := unix.AF_INET6
	if addr.Addr().Is4() {
		family = unix.AF_INET
	}
	fd := -1
	mk := func() error {
		var err error
		fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return os.NewSyscallError("socket", err)
	}
	var err error
	if d.ns != nil {
		err = d.ns.InNetNS(mk)
	} else {
		err = mk()
	}
	if err != nil {
		return nil, opErr(err)
	}
	f := os.NewFile(uintptr(fd), "healthcheck")
	defer f.Close() // net.FileConn dups it
	if d.mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(d.mark)); err != nil {
			return nil, opErr(os.NewSyscallError("setsockopt SO_MARK", err))
		}
	}
	if d.source.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(d.source, 0), family)); err != nil {
			return nil, opErr(os.NewSyscallError("bind", err))
		}
	}
	if err := connect(ctx, f, sockaddr(addr, family)); err != nil {
		return nil, opErr(err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// connect connects f's non-blocking socket, waiting for a stream socket's
// handshake until ctx is done.
func connect(ctx context.Context, f *os.File, sa unix.Sockaddr) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	if cerr == nil {
		return nil
	}
	if cerr != unix.EINPROGRESS {
		return os.NewSyscallError("connect", cerr)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var soErr int
	err = rc.Write(func(fd uintptr) bool {
		soErr, cerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if cerr != nil || soErr != 0 {
			return true
		}
		return isConnected(int(fd))
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("getsockopt", cerr)
	}
	if soErr != 0 {
		return os.NewSyscallError("connect", unix.Errno(soErr))
	}
	_ = f.SetWriteDeadline(time.Time{})
	return nil
}

// isConnected reports whether fd has a peer (the poller can report a
// socket writable before the handshake ends).
func isConnected(fd int) bool {
	_, err := unix.Getpeername(fd)
	return err == nil
}

func sockaddr(ap netip.AddrPort, family int) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}
