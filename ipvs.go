// Package ipvs programs the Linux kernel's IP Virtual Server (IPVS), the
// in-kernel layer-4 load balancer, over its generic netlink family "IPVS".
//
// IPVS spreads the connections of a virtual service (an address, protocol and
// port, or a firewall mark) over real servers, called destinations, with a
// scheduler such as round-robin ("rr") or weighted least-connection ("wlc").
// Each destination is reached by one of three forwarding methods: NAT
// (masquerading: the load balancer rewrites the destination and replies must
// route back through it), DR (direct routing: only the MAC address is
// rewritten, the backends hold the virtual address on a loopback interface
// and reply directly; same L2 segment only) and IPIP (the packet is tunnelled
// to a backend anywhere, which holds the virtual address on tunl0). IPVS runs
// no health checks of its own; its sync daemon copies connection state from a
// master load balancer to a backup so that a failover keeps connections.
//
// # Requirements
//
// Every IPVS netlink operation, reads included, requires CAP_NET_ADMIN in the
// initial user namespace: a rootless or user-namespaced container gets
// os.ErrPermission even in a network namespace it owns. That is all a Client
// of the caller's own network namespace (New without options) needs. IPVS
// state is per network namespace; a Client bound to another one with
// WithNetNS or WithNetNSPath creates its sockets by entering it with
// setns(2), which needs CAP_SYS_ADMIN as well; without it New fails with an
// error matching os.ErrPermission that says so. The kernel needs the ip_vs
// module (CONFIG_IP_VS). Kernels from about 5.16 load it on demand when the
// family is resolved; on older kernels load it first with "modprobe ip_vs".
// This package never runs modprobe itself: New fails with an error compatible
// with os.ErrNotExist that says so.
//
// # Concurrency, contexts and errors
//
// A Client is safe for concurrent use: concurrent calls run on different
// netlink sockets, at most 16 at once (see WithMaxSockets), of which it keeps
// up to eight open between calls. Every
// method takes a context.Context and returns when it is cancelled or its
// deadline passes; the Client stays usable afterwards (a connection
// abandoned mid-call is discarded, never reused). Inputs are validated
// before anything is sent, because the kernel
// answers most mistakes with a bare EINVAL: such errors are *Error values
// whose Field names the offending field and which match os.ErrInvalid. Kernel
// errors are *Error values too, mapped onto os.ErrNotExist, os.ErrExist,
// os.ErrPermission and ErrSchedulerNotFound by errors.Is.
//
// # Wire format
//
// The family's messages are a 4-byte generic netlink header (version 1) and
// netlink attributes. Requests nest a service in IPVS_CMD_ATTR_SERVICE (1), a
// destination in IPVS_CMD_ATTR_DEST (2) and a sync daemon in
// IPVS_CMD_ATTR_DAEMON (3); timeouts are top-level u32 attributes 4-6.
// "host" is the CPU's byte order, "BE" network order; the last column is the
// kernel release that added the attribute.
//
// Service attributes (IPVS_SVC_ATTR_*):
//
//	 1 AF          u16 host                      2.6.28
//	 2 PROTOCOL    u16 host                      2.6.28
//	 3 ADDR        16 bytes, IPv4 in the first 4 2.6.28
//	 4 PORT        u16 BE                        2.6.28
//	 5 FWMARK      u32 host                      2.6.28
//	 6 SCHED_NAME  string, at most 15 bytes      2.6.28
//	 7 FLAGS       {flags, mask} u32 host each   2.6.28
//	 8 TIMEOUT     u32 host, seconds             2.6.28
//	 9 NETMASK     IPv4: u32 BE mask             2.6.28
//	               IPv6: u32 host prefix length
//	10 STATS       nested, 32-bit counters       2.6.28
//	11 PE_NAME     string, at most 16 bytes      2.6.37
//	12 STATS64     nested, u64 counters          4.1
//
// Destination attributes (IPVS_DEST_ATTR_*):
//
//	 1 ADDR           16 bytes                   2.6.28
//	 2 PORT           u16 BE                     2.6.28
//	 3 FWD_METHOD     u32 host                   2.6.28
//	 4 WEIGHT         u32 host (an int)          2.6.28
//	 5 U_THRESH       u32 host                   2.6.28
//	 6 L_THRESH       u32 host                   2.6.28
//	 7 ACTIVE_CONNS   u32 host                   2.6.28
//	 8 INACT_CONNS    u32 host                   2.6.28
//	 9 PERSIST_CONNS  u32 host                   2.6.28
//	10 STATS          nested, 32-bit counters    2.6.28
//	11 ADDR_FAMILY    u16 host                   3.18
//	12 STATS64        nested, u64 counters       4.1
//	13 TUN_TYPE       u8                         5.2
//	14 TUN_PORT       u16 BE                     5.2
//	15 TUN_FLAGS      u16 host                   5.3
//
// Sync daemon attributes (IPVS_DAEMON_ATTR_*):
//
//	1 STATE         u32 host                     2.6.28
//	2 MCAST_IFN     string, at most 15 bytes     2.6.28
//	3 SYNC_ID       u32 host                     2.6.28
//	4 SYNC_MAXLEN   u16 host                     4.3
//	5 MCAST_GROUP   u32 BE                       4.3
//	6 MCAST_GROUP6  16 bytes                     4.3
//	7 MCAST_PORT    u16 host                     4.3
//	8 MCAST_TTL     u8                           4.3
//
// Statistics nests (IPVS_STATS_ATTR_*): 1 CONNS, 2 INPKTS, 3 OUTPKTS,
// 4 INBYTES, 5 OUTBYTES, 6 CPS, 7 INPPS, 8 OUTPPS, 9 INBPS, 10 OUTBPS
// (bytes/s), 11 PAD. In STATS64 all are u64; in the older STATS the byte
// counters are u64 and the rest u32. This package prefers STATS64.
//
// The kernel's quirks that shape this API: an FWMARK attribute with value 0
// still selects the firewall-mark branch (it means TCP 0.0.0.0:0), so the
// attribute is sent only for mark services; SET_SERVICE is a full replace
// that drops the persistence engine when absent; the IPv6 NETMASK is
// mandatory even without persistence; a destination dump of a missing service
// is empty rather than an error; and replies to single GETs must not be
// requested with NLM_F_ACK, or a stale ACK desynchronises the socket. The
// internal/uapi package lists every command and attribute.
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// A Client programs IPVS in one network namespace. It is safe for concurrent
// use by multiple goroutines.
type Client struct {
	c *client
}

// An Option configures a Client created by New.
type Option func(*options)

type options struct {
	netnsFD    int
	netnsPath  string
	maxSockets int // 0: the default
}

// WithNetNS binds the Client to the network namespace referred to by the open
// file descriptor fd (for example from /proc/PID/ns/net or a file under
// /var/run/netns). New duplicates fd, so the caller may close its copy.
// Entering a namespace other than the calling thread's needs CAP_SYS_ADMIN.
func WithNetNS(fd int) Option {
	return func(o *options) { o.netnsFD = fd; o.netnsPath = "" }
}

// WithNetNSPath binds the Client to the network namespace at path, such as
// "/var/run/netns/NAME" as created by "ip netns add NAME". Entering a
// namespace other than the calling thread's needs CAP_SYS_ADMIN.
func WithNetNSPath(path string) Option {
	return func(o *options) { o.netnsPath = path; o.netnsFD = 0 }
}

// WithMaxSockets bounds the netlink sockets the Client has open at once to
// n, 16 by default. A call that finds n sockets in use waits for one until
// its context is done. n must be at least 1.
func WithMaxSockets(n int) Option {
	return func(o *options) { o.maxSockets = n }
}

// New creates a Client. Without options, it is bound to the network namespace
// of the calling thread, also for sockets it opens later from other threads,
// and needs only CAP_NET_ADMIN.
//
// If the kernel has no IPVS generic netlink family (the ip_vs module is not
// loaded and cannot be autoloaded), New returns an *Error that explains how to
// fix it and is compatible with errors.Is(err, os.ErrNotExist).
func New(opts ...Option) (*Client, error) {
	o := options{maxSockets: defaultMaxSockets}
	for _, fn := range opts {
		fn(&o)
	}
	if o.maxSockets < 1 {
		return nil, invalid("new client", "WithMaxSockets", "%d is less than 1", o.maxSockets)
	}
	c, err := newClient(o)
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// defaultMaxSockets bounds the sockets a Client has open at once, unless
// WithMaxSockets says otherwise.
const defaultMaxSockets = 16

// ErrClosed is the error, within an *Error, of a call on a closed Client.
// It matches net.ErrClosed too.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "client is closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// Close closes the Client's idle sockets. Later calls, and calls waiting
// for a socket (see WithMaxSockets), fail with ErrClosed; a call already in
// flight completes, and its socket is closed then. Close returns nil.
func (c *Client) Close() error { return c.c.close() }

// Version is the IPVS version reported by the kernel (1.2.1 for every kernel
// since 2.6.x).
type Version struct {
	Major, Minor, Patch uint8
}

// String returns the version as "1.2.1".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Info describes the kernel's IPVS implementation.
type Info struct {
	Version Version
	// ConnectionTableSize is the number of buckets of the connection hash
	// table: 1 << the ip_vs module's conn_tab_bits parameter (4096 by
	// default) on kernels with a fixed-size table; on kernels whose tables
	// are per namespace and resizable (7.x, which have the conn_lfactor
	// sysctl) the table's current size, 0 in a namespace that has had no
	// service yet. It is the size=N of ipvsadm -L's first line.
	ConnectionTableSize uint32
}

// Info reports the IPVS version and the connection table size.
func (c *Client) Info(ctx context.Context) (Info, error) { return c.c.info(ctx) }

// Timeouts are the idle timeouts of IPVS connection entries in one network
// namespace: established TCP, TCP after a FIN, and UDP. The kernel's
// defaults are 900s, 120s and 300s.
type Timeouts struct {
	TCP    time.Duration
	TCPFin time.Duration
	UDP    time.Duration
}

// maxConfigTimeout bounds the timeouts of SetTimeouts: the kernel rejects
// values above INT_MAX/HZ seconds, and HZ is at most 1000.
const maxConfigTimeout = 2147483 * time.Second

// Timeouts reads the connection timeouts.
func (c *Client) Timeouts(ctx context.Context) (Timeouts, error) { return c.c.timeouts(ctx) }

// SetTimeouts sets the connection timeouts. A zero field leaves that timeout
// unchanged, as the kernel ignores zero values. Each value must be a whole
// number of seconds, at most 2147483s (INT_MAX/HZ with HZ=1000).
func (c *Client) SetTimeouts(ctx context.Context, t Timeouts) error {
	const op = "set timeouts"
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"TCP", t.TCP}, {"TCPFin", t.TCPFin}, {"UDP", t.UDP}} {
		if err := checkSeconds(op, "Timeouts."+f.name, f.d, maxConfigTimeout); err != nil {
			return err
		}
	}
	return c.c.setTimeouts(ctx, t)
}

// ZeroAll resets the statistics of every service and destination, and the
// global totals of /proc/net/ip_vs_stats.
func (c *Client) ZeroAll(ctx context.Context) error { return c.c.zero(ctx, nil) }

// Flush deletes every service, with its destinations, in the Client's network
// namespace.
func (c *Client) Flush(ctx context.Context) error { return c.c.flush(ctx) }

// ipvsNotLoaded is the message of an error for a call that found the IPVS
// family gone.
const ipvsNotLoaded = "IPVS is not loaded: the kernel's IPVS generic netlink family is gone (the ip_vs module was unloaded); load it again (modprobe ip_vs)"

// ErrSchedulerNotFound is matched by errors.Is for an *Error the kernel
// returned because the named scheduler or persistence engine does not exist
// (ENOENT from creating or updating a service). It is distinct from
// os.ErrNotExist, which means that the service or destination does not exist.
var ErrSchedulerNotFound = errors.New("scheduler or persistence engine not found")

// An Error is what every Client method returns on failure on Linux (on
// other systems they return an error matching errors.ErrUnsupported). It is
// either a request refused
// before sending (Field names the invalid input, Err is os.ErrInvalid), a
// kernel error (Err is the syscall.Errno, Message the kernel's extended
// acknowledgement text if any), or a transport failure (Err is that error,
// for example context.DeadlineExceeded).
//
// errors.Is maps kernel errors onto the package's contract:
//
//   - os.ErrNotExist: ESRCH (no such service, or no sync daemon running),
//     ENOENT from updating or deleting a destination (no such destination),
//     and the error of a call made while the ip_vs module is unloaded;
//   - ErrSchedulerNotFound: ENOENT from creating or updating a service;
//   - os.ErrExist: EEXIST (service, destination or daemon already exists);
//   - os.ErrPermission: EPERM or EACCES (CAP_NET_ADMIN missing), and a
//     namespace that cannot be entered for want of CAP_SYS_ADMIN;
//   - os.ErrInvalid: EINVAL, and every validation failure;
//   - ErrClosed and net.ErrClosed: a call on a closed Client.
type Error struct {
	// Op is the operation, such as "create service".
	Op string
	// Field names the invalid input, such as "Service.Netmask", for an error
	// found before sending; it is empty for kernel errors.
	Field string
	// Message is the kernel's extended acknowledgement message, or the
	// reason an input is invalid.
	Message string
	// Err is the underlying error: a syscall.Errno from the kernel,
	// os.ErrInvalid for invalid input, or a transport or context error.
	Err error

	cmd uint8 // the IPVS command, to give an errno its per-command meaning
}

var (
	_ error                       = &Error{}
	_ interface{ Unwrap() error } = &Error{}
)

// Error implements error.
func (e *Error) Error() string {
	s := "ipvs: " + e.Op
	if e.Field != "" {
		s += ": " + e.Field
	}
	var errno syscall.Errno
	if errors.As(e.Err, &errno) {
		d := describeErrno(e.cmd, errno)
		msg := e.Message
		if d == "" && msg != "" {
			d, msg = msg, ""
		}
		if d == "" {
			d = errno.Error()
		}
		s += ": " + d
		if n := errnoName(errno); n != "" {
			s += " (" + n + ")"
		}
		if msg != "" {
			s += ": " + msg
		}
		return s
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil && !errors.Is(e.Err, os.ErrInvalid) {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error. For ENOENT from creating or updating
// a service, which means a missing scheduler or engine and not a missing
// service, the errno is wrapped so that it still matches syscall.ENOENT but
// not os.ErrNotExist.
func (e *Error) Unwrap() error {
	if errno, ok := e.Err.(syscall.Errno); ok && errno == syscall.ENOENT && isServiceWrite(e.cmd) {
		return plainErrno{errno}
	}
	return e.Err
}

// plainErrno is an errno without the os.Err* meanings syscall.Errno gives it.
type plainErrno struct{ errno syscall.Errno }

func (p plainErrno) Error() string { return p.errno.Error() }

func (p plainErrno) Is(target error) bool {
	t, ok := target.(syscall.Errno)
	return ok && t == p.errno
}

func (p plainErrno) As(target any) bool {
	if t, ok := target.(*syscall.Errno); ok {
		*t = p.errno
		return true
	}
	return false
}

// Is maps kernel errnos onto os.ErrNotExist, os.ErrExist, os.ErrPermission,
// os.ErrInvalid and ErrSchedulerNotFound as described on Error.
func (e *Error) Is(target error) bool {
	var errno syscall.Errno
	if !errors.As(e.Err, &errno) {
		return false
	}
	switch target {
	case os.ErrNotExist:
		switch errno {
		case syscall.ESRCH:
			return true
		case syscall.ENOENT:
			return !isServiceWrite(e.cmd)
		}
	case ErrSchedulerNotFound:
		return errno == syscall.ENOENT && isServiceWrite(e.cmd)
	case os.ErrExist:
		return errno == syscall.EEXIST
	case os.ErrPermission:
		return errno == syscall.EPERM || errno == syscall.EACCES
	case os.ErrInvalid:
		return errno == syscall.EINVAL
	}
	return false
}

// invalid returns the error for an input refused before sending.
func invalid(op, field, format string, args ...any) error {
	return &Error{Op: op, Field: field, Message: fmt.Sprintf(format, args...), Err: os.ErrInvalid}
}

// checkSeconds validates a duration sent to the kernel as whole seconds.
func checkSeconds(op, field string, d, max time.Duration) error {
	switch {
	case d < 0:
		return invalid(op, field, "%v is negative", d)
	case d%time.Second != 0:
		return invalid(op, field, "%v is not a whole number of seconds", d)
	case d > max:
		return invalid(op, field, "%v exceeds the maximum %v", d, max)
	}
	return nil
}

// isServiceWrite reports whether cmd creates or updates a service, the
// commands on which ENOENT means an unknown scheduler or persistence engine.
func isServiceWrite(cmd uint8) bool {
	return cmd == uapi.CmdNewService || cmd == uapi.CmdSetService
}

// describeErrno gives an errno its meaning for one IPVS command, as ipvsadm's
// error table does.
func describeErrno(cmd uint8, errno syscall.Errno) string {
	switch errno {
	case syscall.ESRCH:
		switch cmd {
		case uapi.CmdNewDest, uapi.CmdSetDest, uapi.CmdDelDest:
			return "service not defined"
		case uapi.CmdDelDaemon:
			return "no sync daemon is running in that state"
		}
		return "no such service"
	case syscall.EEXIST:
		switch cmd {
		case uapi.CmdNewService:
			return "service already exists"
		case uapi.CmdNewDest:
			return "destination already exists"
		case uapi.CmdNewDaemon:
			return "sync daemon already running"
		}
	case syscall.ENOENT:
		switch cmd {
		case uapi.CmdNewService, uapi.CmdSetService:
			return "scheduler or persistence engine not found"
		case uapi.CmdSetDest, uapi.CmdDelDest:
			return "no such destination"
		}
	case syscall.EPERM:
		return "permission denied (CAP_NET_ADMIN in the initial user namespace is required)"
	case syscall.EINVAL:
		if cmd == uapi.CmdNewDest {
			return "invalid argument (the kernel takes only destination addresses that its routes in the namespace call unicast or local, so a new namespace needs lo up; and no other-family destination while a sync daemon runs)"
		}
		if cmd == uapi.CmdNewDaemon {
			return "invalid argument (the kernel refuses a sync daemon while a service has a destination of the other address family)"
		}
		return "invalid argument"
	case syscall.ERANGE:
		return "value out of range"
	case syscall.ENODEV:
		return "no such interface"
	case syscall.EAFNOSUPPORT:
		return "address family not supported"
	case syscall.EOPNOTSUPP:
		return "operation not supported"
	}
	return ""
}

// errnoName returns the symbolic name of the errnos IPVS returns.
func errnoName(errno syscall.Errno) string {
	switch errno {
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.ESRCH:
		return "ESRCH"
	case syscall.ENOMEM:
		return "ENOMEM"
	case syscall.EACCES:
		return "EACCES"
	case syscall.EEXIST:
		return "EEXIST"
	case syscall.ENODEV:
		return "ENODEV"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.ERANGE:
		return "ERANGE"
	case syscall.EMSGSIZE:
		return "EMSGSIZE"
	case syscall.ENOPROTOOPT:
		return "ENOPROTOOPT"
	case syscall.EOPNOTSUPP:
		return "EOPNOTSUPP"
	case syscall.EAFNOSUPPORT:
		return "EAFNOSUPPORT"
	case syscall.ENOBUFS:
		return "ENOBUFS"
	case syscall.ENETUNREACH:
		return "ENETUNREACH"
	}
	return ""
}
