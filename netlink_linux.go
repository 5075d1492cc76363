//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

func newClient(o options) (*client, error) {
	const op = "new client"
	ns, err := openNetNS(o)
	if err != nil {
		return nil, &Error{Op: op, Message: "cannot open the network namespace", Err: err}
	}
	fail := func(err error) (*client, error) {
		if ns != nil {
			_ = ns.f.Close()
		}
		return nil, err
	}
	first, err := dialNetlink(ns)
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
	t, err := newRawTransport(first) // closes first
	if err != nil {
		return fail(&Error{Op: op, Err: err})
	}
	dial := func() (transport, error) {
		c, err := dialNetlink(ns)
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
	c.proc = netnsProcOpener(ns)
	c.runNS = func(fn func() error) error { return runInNetNS(ns, fn) }
	if ns != nil {
		c.nsFile = ns.f
	}
	if o.maxSockets > 0 {
		c.max = o.maxSockets
	}
	c.resolve = func(ctx context.Context) (id uint16, err error) {
		err = c.inNetNS(func() error {
			id, err = resolveFamily(ctx, ns)
			return err
		})
		return id, err
	}
	c.idle = append(c.idle, newSock(t, false))
	return c, nil
}

// resolveFamily looks up the IPVS family id on a new socket in ns. Kernels
// that load ip_vs on demand do so here.
func resolveFamily(ctx context.Context, ns *netns) (uint16, error) {
	nc, err := dialNetlink(ns)
	if err != nil {
		return 0, err
	}
	conn := genetlink.NewConn(nc)
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(d); err != nil {
			return 0, err
		}
	}
	f, err := conn.GetFamily(uapi.GenlName)
	return f.ID, err
}

// A netns is the network namespace a client's sockets are created in: an
// open namespace file and the namespace's identity.
type netns struct {
	f        *os.File
	fd       int
	dev, ino uint64
}

// openNetNS returns the namespace the client's sockets are created in, or
// nil for the dialling thread's. Without an option it pins the calling
// thread's namespace, so sockets dialled later from other threads land in
// the same one.
func openNetNS(o options) (*netns, error) {
	var f *os.File
	switch {
	case o.netnsPath != "":
		var err error
		if f, err = os.Open(o.netnsPath); err != nil {
			return nil, err
		}
	case o.netnsFD > 0:
		fd, err := unix.FcntlInt(uintptr(o.netnsFD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("fcntl", err)
		}
		f = os.NewFile(uintptr(fd), "netns")
	default:
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var err error
		if f, err = os.Open("/proc/thread-self/ns/net"); err != nil {
			// No /proc: sockets are created in the namespace of
			// whichever thread dials them, normally the process's.
			return nil, nil
		}
	}
	ns := &netns{f: f, fd: int(f.Fd())}
	var st unix.Stat_t
	if err := unix.Fstat(ns.fd, &st); err != nil {
		_ = f.Close()
		return nil, os.NewSyscallError("fstat", err)
	}
	ns.dev, ns.ino = st.Dev, st.Ino
	return ns, nil
}

// current reports whether the calling thread, which must be locked to its
// goroutine, is in the namespace.
func (ns *netns) current() bool {
	var st unix.Stat_t
	err := unix.Stat("/proc/thread-self/ns/net", &st)
	return err == nil && st.Dev == ns.dev && st.Ino == ns.ino
}

// dialNetlink opens a generic netlink socket in ns (nil: the calling
// thread's namespace). A socket belongs to the namespace of the thread that
// creates it, so ns is entered with setns(2), which needs CAP_SYS_ADMIN, only
// when the calling thread is in another one: a client of the namespace it
// runs in needs CAP_NET_ADMIN alone.
func dialNetlink(ns *netns) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if ns != nil {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if !ns.current() {
			cfg.NetNS = ns.fd
		}
	}
	c, err := netlink.Dial(unix.NETLINK_GENERIC, cfg)
	if se := (*os.SyscallError)(nil); errors.As(err, &se) && se.Syscall == "setns" {
		return nil, &netnsError{err}
	}
	return c, err
}

// netnsError is the failure to enter a client's network namespace. It does
// not unwrap, so that Error does not describe its errno as an IPVS reply
// (whose EPERM means that CAP_NET_ADMIN is missing); Is matches what the
// errno matches, os.ErrPermission for EPERM.
type netnsError struct{ err error }

func (e *netnsError) Error() string {
	if errors.Is(e.err, syscall.EPERM) {
		return "cannot enter the network namespace: CAP_SYS_ADMIN is required (" + e.err.Error() + ")"
	}
	return "cannot enter the network namespace: " + e.err.Error()
}

func (e *netnsError) Is(target error) bool { return errors.Is(e.err, target) }

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
	return c.do(ctx, "zero service", uapi.CmdZero, false, func(e *encoder) { encodeServiceID(e, *s) }, nil)
}

func (c *client) flush(ctx context.Context) error {
	return c.do(ctx, "flush", uapi.CmdFlush, false, nil, nil)
}

// setService sends NEW_SERVICE or SET_SERVICE (cmd) with the flags to set
// and the mask of the flags to change.
func (c *client) setService(ctx context.Context, op string, cmd uint8, s Service, flags, mask ServiceFlags) error {
	return c.do(ctx, op, cmd, false, func(e *encoder) { encodeService(e, s, flags, mask) }, nil)
}

func (c *client) deleteService(ctx context.Context, s Service) error {
	return c.do(ctx, "delete service", uapi.CmdDelService, false, func(e *encoder) { encodeServiceID(e, s) }, nil)
}

// serviceCollector appends the services of NEW_SERVICE messages.
func serviceCollector(out *[]ServiceStats) func(m message) error {
	return func(m message) error {
		if m.cmd != uapi.CmdNewService {
			return nil
		}
		s, ok, err := parseService(m.data)
		if ok {
			*out = append(*out, s)
		}
		return err
	}
}

func (c *client) getService(ctx context.Context, op string, s Service) (ServiceStats, error) {
	var svcs []ServiceStats
	err := c.do(ctx, op, uapi.CmdGetService, false, func(e *encoder) { encodeServiceID(e, s) }, serviceCollector(&svcs))
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
	repeated, err := c.dumpServices(ctx, "list services", func() { svcs = svcs[:0] }, func(m message) (serviceKey, bool, error) {
		s, ok, err := parseService(m.data)
		if ok {
			svcs = append(svcs, s)
		}
		return s.key(), ok, err
	})
	if err != nil {
		return nil, err
	}
	if repeated {
		svcs = dedup(svcs, func(s *ServiceStats) serviceKey { return s.key() })
	}
	return svcs, nil
}

// setDestination sends NEW_DEST or SET_DEST (cmd).
func (c *client) setDestination(ctx context.Context, op string, cmd uint8, s Service, d Destination) error {
	return c.do(ctx, op, cmd, false, func(e *encoder) {
		encodeServiceID(e, s)
		encodeDest(e, d)
	}, nil)
}

func (c *client) deleteDestination(ctx context.Context, s Service, d Destination) error {
	return c.do(ctx, "delete destination", uapi.CmdDelDest, false, func(e *encoder) {
		encodeServiceID(e, s)
		encodeDestID(e, d)
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
	err := c.do(ctx, op, uapi.CmdGetDest, true, func(e *encoder) { encodeServiceID(e, s) }, destCollector(&dests, s.family()))
	if err != nil {
		return nil, err
	}
	if len(dests) == 0 {
		// The kernel ends the dump of a missing service silently: ask.
		if _, err := c.getService(ctx, op, s); err != nil {
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
		if err := s.exchange(2, false, nil, resultOf(0, &kerr)); err != nil {
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
