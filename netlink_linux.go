//go:build linux

package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// conn is the part of *genetlink.Conn the client uses; tests substitute
// fakes for it.
type conn interface {
	Execute(m genetlink.Message, family uint16, flags netlink.HeaderFlags) ([]genetlink.Message, error)
	SetDeadline(t time.Time) error
	Close() error
}

// maxIdleConns bounds the sockets a client keeps open between calls.
const maxIdleConns = 8

// dumpBufferSize is the receive buffer for every read. The kernel sizes each
// dump datagram after the caller's last read buffer, capped at 32 KiB: with
// 32 KiB a datagram carries about 100 services instead of 11.
const dumpBufferSize = 32 << 10

// client is the Linux implementation behind Client. Requests run on pooled
// sockets: a call takes one, sets the context's deadline on it and returns it
// afterwards, unless the call failed in a way that may leave replies queued
// (a cancelled call, a transport error), in which case the socket is closed
// and a later call dials a new one. Concurrent calls use different sockets,
// so one call's deadline never cuts another short.
type client struct {
	family uint16
	dial   func() (conn, error)
	nsFile *os.File // the bound network namespace, owned by the client

	mu     sync.Mutex
	idle   []conn
	closed bool
}

func newClient(o options) (*client, error) {
	const op = "new client"
	nsFile, err := openNetNS(o)
	if err != nil {
		return nil, &Error{Op: op, Message: "cannot open the network namespace", Err: err}
	}
	cfg := &netlink.Config{MessageBufferSize: dumpBufferSize}
	if nsFile != nil {
		cfg.NetNS = int(nsFile.Fd())
	}
	dial := func() (conn, error) {
		c, err := genetlink.Dial(cfg)
		if err != nil {
			return nil, err
		}
		// Best effort: kernel error texts, and errors that do not echo the
		// whole request.
		_ = c.SetOption(netlink.ExtendedAcknowledge, true)
		_ = c.SetOption(netlink.CapAcknowledge, true)
		return c, nil
	}
	c, err := initClient(dial)
	if err != nil {
		if nsFile != nil {
			_ = nsFile.Close()
		}
		return nil, err
	}
	c.nsFile = nsFile
	return c, nil
}

// initClient resolves the IPVS family on a first socket, which it keeps for
// the pool.
func initClient(dial func() (conn, error)) (*client, error) {
	const op = "new client"
	cn, err := dial()
	if err != nil {
		return nil, &Error{Op: op, Message: "cannot open a generic netlink socket", Err: err}
	}
	gc, ok := cn.(interface {
		GetFamily(string) (genetlink.Family, error)
	})
	if !ok {
		_ = cn.Close()
		return nil, &Error{Op: op, Err: errors.New("socket cannot resolve families")}
	}
	f, err := gc.GetFamily(uapi.GenlName)
	if err != nil {
		_ = cn.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{
				Op:      op,
				Message: "IPVS is unavailable: the kernel has no IPVS generic netlink family; load the ip_vs module (modprobe ip_vs) or use a kernel built with CONFIG_IP_VS",
				Err:     syscall.ENOENT,
			}
		}
		return nil, &Error{Op: op, Message: "cannot resolve the IPVS generic netlink family", Err: err}
	}
	return &client{family: f.ID, dial: dial, idle: []conn{cn}}, nil
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

func (c *client) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, cn := range c.idle {
		_ = cn.Close()
	}
	c.idle = nil
	if c.nsFile != nil {
		_ = c.nsFile.Close()
	}
	return nil
}

var errClosed = errors.New("client is closed")

// get takes an idle socket or dials one.
func (c *client) get() (conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if n := len(c.idle); n > 0 {
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, nil
	}
	c.mu.Unlock()
	return c.dial()
}

// put returns a healthy socket to the pool.
func (c *client) put(cn conn) {
	c.mu.Lock()
	if !c.closed && len(c.idle) < maxIdleConns {
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = cn.Close()
}

// requestFlags gives each command the netlink flags its kernel handler needs.
// It is the only place flags are chosen: a doit that returns data must not
// carry NLM_F_ACK, or the ACK that follows the reply is left queued and every
// later read on the socket gets the previous request's answer; a mutation
// must carry it, or success produces no message at all.
func requestFlags(cmd uint8, dump bool) netlink.HeaderFlags {
	switch {
	case cmd == uapi.CmdGetDest || cmd == uapi.CmdGetDaemon || (cmd == uapi.CmdGetService && dump):
		return netlink.Request | netlink.Dump
	case cmd == uapi.CmdGetService || cmd == uapi.CmdGetInfo || cmd == uapi.CmdGetConfig:
		return netlink.Request
	}
	return netlink.Request | netlink.Acknowledge
}

// execute is the one request path: it encodes the attributes, sends the
// command with the flags requestFlags gives, and bounds the exchange by ctx.
func (c *client) execute(ctx context.Context, op string, cmd uint8, dump bool, enc func(ae *netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	fail := func(err error) error { return &Error{Op: op, Err: err, cmd: cmd} }
	if err := ctx.Err(); err != nil {
		return nil, fail(err)
	}
	var data []byte
	if enc != nil {
		ae := netlink.NewAttributeEncoder()
		enc(ae)
		b, err := ae.Encode()
		if err != nil {
			return nil, fail(err)
		}
		data = b
	}
	cn, err := c.get()
	if err != nil {
		return nil, fail(err)
	}
	deadline, hasDeadline := ctx.Deadline()
	if err := cn.SetDeadline(deadline); err != nil {
		_ = cn.Close()
		return nil, fail(err)
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		// Wake a blocked read or write; the socket is discarded below.
		_ = cn.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	msgs, err := cn.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: uapi.GenlVersion},
		Data:   data,
	}, c.family, requestFlags(cmd, dump))
	if !stop() {
		// The interrupt ran or is running: wait, so that it cannot touch
		// the socket once it is reused. A completed exchange leaves the
		// socket clean; the next call sets a new deadline.
		<-interrupted
	}
	if err == nil {
		c.put(cn)
		return msgs, nil
	}
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		if errno, ok := oe.Err.(syscall.Errno); ok {
			// An error message from the kernel ends the exchange: the
			// socket is in sync.
			c.put(cn)
			return nil, &Error{Op: op, Message: oe.Message, Err: errno, cmd: cmd}
		}
	}
	// Anything else (a timeout, a truncated or unexpected message) may
	// leave replies queued: never reuse the socket.
	_ = cn.Close()
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case hasDeadline && errors.Is(err, os.ErrDeadlineExceeded):
		err = context.DeadlineExceeded
	}
	return nil, fail(err)
}

func (c *client) info(ctx context.Context) (Info, error) {
	const op = "get info"
	msgs, err := c.execute(ctx, op, uapi.CmdGetInfo, false, nil)
	if err != nil {
		return Info{}, err
	}
	info, err := parseInfo(msgs)
	if err != nil {
		return Info{}, &Error{Op: op, Err: err}
	}
	return info, nil
}

func (c *client) timeouts(ctx context.Context) (Timeouts, error) {
	const op = "get timeouts"
	msgs, err := c.execute(ctx, op, uapi.CmdGetConfig, false, nil)
	if err != nil {
		return Timeouts{}, err
	}
	t, err := parseTimeouts(msgs)
	if err != nil {
		return Timeouts{}, &Error{Op: op, Err: err}
	}
	return t, nil
}

func (c *client) setTimeouts(ctx context.Context, t Timeouts) error {
	_, err := c.execute(ctx, "set timeouts", uapi.CmdSetConfig, false, func(ae *netlink.AttributeEncoder) {
		encodeTimeouts(ae, t)
	})
	return err
}

func (c *client) zero(ctx context.Context, s *Service) error {
	op := "zero all"
	var enc func(ae *netlink.AttributeEncoder)
	if s != nil {
		op = "zero service"
		enc = func(ae *netlink.AttributeEncoder) { encodeServiceNest(ae, *s, false, 0, 0) }
	}
	_, err := c.execute(ctx, op, uapi.CmdZero, false, enc)
	return err
}

func (c *client) flush(ctx context.Context) error {
	_, err := c.execute(ctx, "flush", uapi.CmdFlush, false, nil)
	return err
}

func (c *client) setService(ctx context.Context, cmd uint8, s Service, flags, mask ServiceFlags) error {
	op := "create service"
	if cmd == uapi.CmdSetService {
		op = "update service"
	}
	_, err := c.execute(ctx, op, cmd, false, func(ae *netlink.AttributeEncoder) {
		encodeServiceNest(ae, s, true, flags, mask)
	})
	return err
}

func (c *client) serviceOnly(ctx context.Context, op string, cmd uint8, s Service) error {
	_, err := c.execute(ctx, op, cmd, false, func(ae *netlink.AttributeEncoder) {
		encodeServiceNest(ae, s, false, 0, 0)
	})
	return err
}

func (c *client) getService(ctx context.Context, s Service) (ServiceStats, error) {
	const op = "get service"
	msgs, err := c.execute(ctx, op, uapi.CmdGetService, false, func(ae *netlink.AttributeEncoder) {
		encodeServiceNest(ae, s, false, 0, 0)
	})
	if err != nil {
		return ServiceStats{}, err
	}
	svcs, err := parseServices(msgs)
	if err != nil {
		return ServiceStats{}, &Error{Op: op, Err: err}
	}
	if len(svcs) != 1 {
		return ServiceStats{}, &Error{Op: op, Err: fmt.Errorf("kernel returned %d services, want 1", len(svcs))}
	}
	return svcs[0], nil
}

func (c *client) services(ctx context.Context) ([]ServiceStats, error) {
	const op = "list services"
	msgs, err := c.execute(ctx, op, uapi.CmdGetService, true, nil)
	if err != nil {
		return nil, err
	}
	svcs, err := parseServices(msgs)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	return svcs, nil
}

func (c *client) setDestination(ctx context.Context, op string, cmd uint8, s Service, d Destination, full bool) error {
	_, err := c.execute(ctx, op, cmd, false, func(ae *netlink.AttributeEncoder) {
		encodeServiceNest(ae, s, false, 0, 0)
		encodeDestNest(ae, d, full)
	})
	return err
}

func (c *client) destinations(ctx context.Context, s Service) ([]DestinationStats, error) {
	const op = "list destinations"
	msgs, err := c.execute(ctx, op, uapi.CmdGetDest, true, func(ae *netlink.AttributeEncoder) {
		encodeServiceNest(ae, s, false, 0, 0)
	})
	if err != nil {
		return nil, err
	}
	dests, err := parseDestinations(msgs, s.family())
	if err != nil {
		return nil, &Error{Op: op, Err: err}
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
	_, err := c.execute(ctx, "start sync daemon", uapi.CmdNewDaemon, false, func(ae *netlink.AttributeEncoder) {
		encodeDaemonNest(ae, d)
	})
	return err
}

func (c *client) stopDaemon(ctx context.Context, state DaemonState) error {
	_, err := c.execute(ctx, "stop sync daemon", uapi.CmdDelDaemon, false, func(ae *netlink.AttributeEncoder) {
		// The kernel reads only the state; ipvsadm also sends an empty
		// interface and sync ID 0, which change nothing.
		ae.Nested(uapi.CmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
			nae.Uint32(uapi.DaemonAttrState, uint32(state))
			return nil
		})
	})
	return err
}

func (c *client) daemons(ctx context.Context) ([]SyncDaemon, error) {
	const op = "list sync daemons"
	msgs, err := c.execute(ctx, op, uapi.CmdGetDaemon, true, nil)
	if err != nil {
		return nil, err
	}
	ds, err := parseDaemons(msgs)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	return ds, nil
}

// Encoding. Attribute order follows ipvsadm's, so requests can be compared
// with its captured bytes; the kernel does not depend on the order.

// addr16 returns the 16-byte union nf_inet_addr form of a: an IPv4 address
// in the first four bytes, the rest zero.
func addr16(a netip.Addr) []byte {
	b := make([]byte, 16)
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	} else if a.IsValid() {
		v := a.As16()
		copy(b, v[:])
	}
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// encodeServiceNest writes IPVS_CMD_ATTR_SERVICE: the identity, and with full
// the configuration that NEW_SERVICE and SET_SERVICE require.
func encodeServiceNest(ae *netlink.AttributeEncoder, s Service, full bool, flags, mask ServiceFlags) {
	ae.Nested(uapi.CmdAttrService, func(nae *netlink.AttributeEncoder) error {
		fam := s.family()
		nae.Uint16(uapi.SvcAttrAF, uint16(fam))
		if s.FirewallMark != 0 {
			// Only for mark services: an FWMARK attribute of 0 would
			// still select the mark branch and mean TCP 0.0.0.0:0.
			nae.Uint32(uapi.SvcAttrFwmark, s.FirewallMark)
		} else {
			nae.Uint16(uapi.SvcAttrProtocol, uint16(s.Protocol))
			nae.Bytes(uapi.SvcAttrAddr, addr16(s.Address))
			nae.Bytes(uapi.SvcAttrPort, be16(s.Port))
		}
		if !full {
			return nil
		}
		nae.String(uapi.SvcAttrSchedName, s.Scheduler)
		if s.PersistenceEngine != "" {
			// Always sent when set: SET_SERVICE without it removes the
			// engine.
			nae.String(uapi.SvcAttrPEName, s.PersistenceEngine)
		}
		f := make([]byte, 8)
		binary.NativeEndian.PutUint32(f[0:4], uint32(flags&knownServiceFlags))
		binary.NativeEndian.PutUint32(f[4:8], uint32(mask))
		nae.Bytes(uapi.SvcAttrFlags, f)
		nae.Uint32(uapi.SvcAttrTimeout, uint32(s.Timeout/time.Second))
		if fam == IPv4 {
			n := s.Netmask
			if n == 0 {
				n = defaultNetmask4
			}
			nae.Bytes(uapi.SvcAttrNetmask, binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-n)))
		} else {
			n := s.Netmask
			if n == 0 {
				n = defaultNetmask6
			}
			nae.Uint32(uapi.SvcAttrNetmask, uint32(n))
		}
		return nil
	})
}

// encodeDestNest writes IPVS_CMD_ATTR_DEST: the identity (family, address,
// port), and with full the configuration NEW_DEST and SET_DEST require. The
// tunnel attributes are always sent, zero for non-tunnel destinations, as
// ipvsadm does; kernels before 5.2 ignore them.
func encodeDestNest(ae *netlink.AttributeEncoder, d Destination, full bool) {
	ae.Nested(uapi.CmdAttrDest, func(nae *netlink.AttributeEncoder) error {
		nae.Uint16(uapi.DestAttrAddrFamily, uint16(familyOf(d.Address)))
		nae.Bytes(uapi.DestAttrAddr, addr16(d.Address))
		nae.Bytes(uapi.DestAttrPort, be16(d.Port))
		if !full {
			return nil
		}
		nae.Uint32(uapi.DestAttrFwdMethod, uint32(d.ForwardMethod))
		nae.Uint32(uapi.DestAttrWeight, uint32(d.Weight))
		nae.Uint8(uapi.DestAttrTunType, uint8(d.TunnelType))
		nae.Bytes(uapi.DestAttrTunPort, be16(d.TunnelPort))
		nae.Uint16(uapi.DestAttrTunFlags, uint16(d.TunnelChecksum))
		nae.Uint32(uapi.DestAttrUThresh, d.UpperThreshold)
		nae.Uint32(uapi.DestAttrLThresh, d.LowerThreshold)
		return nil
	})
}

// encodeDaemonNest writes IPVS_CMD_ATTR_DAEMON for NEW_DAEMON. Optional
// attributes are sent only when set, so the kernel fills its defaults.
func encodeDaemonNest(ae *netlink.AttributeEncoder, d SyncDaemon) {
	ae.Nested(uapi.CmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(uapi.DaemonAttrState, uint32(d.State))
		nae.String(uapi.DaemonAttrMcastIfn, d.Interface)
		nae.Uint32(uapi.DaemonAttrSyncID, d.SyncID)
		if d.MaxLength != 0 {
			nae.Uint16(uapi.DaemonAttrSyncMaxLen, uint16(d.MaxLength))
		}
		if d.Port != 0 {
			nae.Uint16(uapi.DaemonAttrMcastPort, d.Port)
		}
		if d.TTL != 0 {
			nae.Uint8(uapi.DaemonAttrMcastTTL, d.TTL)
		}
		switch {
		case d.Group.Is4():
			g := d.Group.As4()
			nae.Bytes(uapi.DaemonAttrMcastGroup, g[:])
		case d.Group.Is6():
			g := d.Group.As16()
			nae.Bytes(uapi.DaemonAttrMcastGroup6, g[:])
		}
		return nil
	})
}

func encodeTimeouts(ae *netlink.AttributeEncoder, t Timeouts) {
	ae.Uint32(uapi.CmdAttrTimeoutTCP, uint32(t.TCP/time.Second))
	ae.Uint32(uapi.CmdAttrTimeoutTCPFin, uint32(t.TCPFin/time.Second))
	ae.Uint32(uapi.CmdAttrTimeoutUDP, uint32(t.UDP/time.Second))
}

// Decoding. Decoders never trust lengths: every fixed-size field is checked,
// unknown attributes are skipped, and messages of other commands are ignored.

// number reads a native-endian u8, u16, u32 or u64 of any of those sizes, so
// the 32-bit and 64-bit statistics nests share one reader.
func number(b []byte) (uint64, bool) {
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.NativeEndian.Uint16(b)), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(b)), true
	case 8:
		return binary.NativeEndian.Uint64(b), true
	}
	return 0, false
}

// attrs walks the attributes of b, calling fn for each with its type (flag
// bits masked) and payload.
func attrs(b []byte, fn func(typ uint16, data []byte) error) error {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return err
	}
	for ad.Next() {
		if err := fn(ad.Type(), ad.Bytes()); err != nil {
			return err
		}
	}
	return ad.Err()
}

// field returns the fixed-size number in data or an error naming the
// attribute.
func field(name string, data []byte, size int) (uint64, error) {
	v, ok := number(data)
	if !ok || len(data) != size {
		return 0, fmt.Errorf("attribute %s: %d bytes, want %d", name, len(data), size)
	}
	return v, nil
}

func parseStats(b []byte) (Stats, error) {
	var st Stats
	err := attrs(b, func(typ uint16, data []byte) error {
		var dst *uint64
		switch typ {
		case uapi.StatsAttrConns:
			dst = &st.Connections
		case uapi.StatsAttrInPkts:
			dst = &st.PacketsIn
		case uapi.StatsAttrOutPkts:
			dst = &st.PacketsOut
		case uapi.StatsAttrInBytes:
			dst = &st.BytesIn
		case uapi.StatsAttrOutBytes:
			dst = &st.BytesOut
		case uapi.StatsAttrCPS:
			dst = &st.ConnectionRate
		case uapi.StatsAttrInPPS:
			dst = &st.PacketRateIn
		case uapi.StatsAttrOutPPS:
			dst = &st.PacketRateOut
		case uapi.StatsAttrInBPS:
			dst = &st.ByteRateIn
		case uapi.StatsAttrOutBPS:
			dst = &st.ByteRateOut
		default:
			return nil // PAD and future attributes
		}
		v, ok := number(data)
		if !ok || len(data) < 4 {
			return fmt.Errorf("statistics attribute %d: %d bytes", typ, len(data))
		}
		*dst = v
		return nil
	})
	return st, err
}

// parseAddr decodes a union nf_inet_addr of the given family.
func parseAddr(name string, b []byte, fam Family) (netip.Addr, error) {
	switch fam {
	case IPv4:
		if len(b) < 4 {
			return netip.Addr{}, fmt.Errorf("attribute %s: %d bytes for an IPv4 address", name, len(b))
		}
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case IPv6:
		if len(b) < 16 {
			return netip.Addr{}, fmt.Errorf("attribute %s: %d bytes for an IPv6 address", name, len(b))
		}
		return netip.AddrFrom16([16]byte(b[:16])), nil
	}
	return netip.Addr{}, fmt.Errorf("attribute %s: unknown address family %d", name, fam)
}

// prefixLen returns the length of a contiguous IPv4 mask's prefix, or the
// number of its leading ones if the mask is not contiguous.
func prefixLen(mask uint32) int { return bits.LeadingZeros32(^mask) }

// parseServiceAttrs decodes the attributes of one IPVS_CMD_ATTR_SERVICE.
func parseServiceAttrs(b []byte) (ServiceStats, error) {
	var (
		s                     ServiceStats
		af                    Family
		addr, netmask         []byte
		hasMark               bool
		stats32, stats64      []byte
		hasStats32, hasStat64 bool
	)
	err := attrs(b, func(typ uint16, data []byte) error {
		switch typ {
		case uapi.SvcAttrAF:
			v, err := field("AF", data, 2)
			af = Family(v)
			return err
		case uapi.SvcAttrProtocol:
			v, err := field("PROTOCOL", data, 2)
			s.Protocol = Protocol(v)
			return err
		case uapi.SvcAttrAddr:
			addr = data
		case uapi.SvcAttrPort:
			if len(data) != 2 {
				return fmt.Errorf("attribute PORT: %d bytes, want 2", len(data))
			}
			s.Port = binary.BigEndian.Uint16(data)
		case uapi.SvcAttrFwmark:
			v, err := field("FWMARK", data, 4)
			s.FirewallMark = uint32(v)
			hasMark = true
			return err
		case uapi.SvcAttrSchedName:
			s.Scheduler = cString(data)
		case uapi.SvcAttrPEName:
			s.PersistenceEngine = cString(data)
		case uapi.SvcAttrFlags:
			if len(data) != 8 {
				return fmt.Errorf("attribute FLAGS: %d bytes, want 8", len(data))
			}
			f := binary.NativeEndian.Uint32(data[0:4]) & binary.NativeEndian.Uint32(data[4:8])
			s.Flags = ServiceFlags(f) & knownServiceFlags
		case uapi.SvcAttrTimeout:
			v, err := field("TIMEOUT", data, 4)
			s.Timeout = time.Duration(v) * time.Second
			return err
		case uapi.SvcAttrNetmask:
			if len(data) != 4 {
				return fmt.Errorf("attribute NETMASK: %d bytes, want 4", len(data))
			}
			netmask = data
		case uapi.SvcAttrStats:
			stats32, hasStats32 = data, true
		case uapi.SvcAttrStats64:
			stats64, hasStat64 = data, true
		}
		return nil
	})
	if err != nil {
		return ServiceStats{}, err
	}
	if af != IPv4 && af != IPv6 {
		return ServiceStats{}, fmt.Errorf("service with address family %d", af)
	}
	if hasMark {
		s.Family = af
		s.Protocol = 0 // the kernel forces TCP on mark services; it is not part of their identity
	} else {
		if s.Address, err = parseAddr("ADDR", addr, af); err != nil {
			return ServiceStats{}, err
		}
	}
	if netmask != nil {
		if af == IPv4 {
			if n := prefixLen(binary.BigEndian.Uint32(netmask)); n != defaultNetmask4 {
				s.Netmask = n
			}
		} else if n := int(binary.NativeEndian.Uint32(netmask)); n != defaultNetmask6 && n <= defaultNetmask6 {
			s.Netmask = n
		}
	}
	switch {
	case hasStat64:
		s.Stats, err = parseStats(stats64)
	case hasStats32:
		s.Stats, err = parseStats(stats32)
	}
	return s, err
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// nested finds the payload of the top-level attribute typ of a message.
func nested(m genetlink.Message, typ uint16) ([]byte, bool, error) {
	var (
		out   []byte
		found bool
	)
	err := attrs(m.Data, func(t uint16, data []byte) error {
		if t == typ && !found {
			out, found = data, true
		}
		return nil
	})
	return out, found, err
}

func parseServices(msgs []genetlink.Message) ([]ServiceStats, error) {
	svcs := make([]ServiceStats, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Command != uapi.CmdNewService {
			continue
		}
		b, ok, err := nested(m, uapi.CmdAttrService)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		s, err := parseServiceAttrs(b)
		if err != nil {
			return nil, err
		}
		svcs = append(svcs, s)
	}
	return svcs, nil
}

// parseDestAttrs decodes one IPVS_CMD_ATTR_DEST; svcFamily is the address
// family to assume when the kernel (before 3.18) sends none.
func parseDestAttrs(b []byte, svcFamily Family) (DestinationStats, error) {
	var (
		d                     DestinationStats
		af                    = svcFamily
		addr                  []byte
		stats32, stats64      []byte
		hasStats32, hasStat64 bool
	)
	err := attrs(b, func(typ uint16, data []byte) error {
		var err error
		var v uint64
		switch typ {
		case uapi.DestAttrAddr:
			addr = data
		case uapi.DestAttrPort:
			if len(data) != 2 {
				return fmt.Errorf("attribute PORT: %d bytes, want 2", len(data))
			}
			d.Port = binary.BigEndian.Uint16(data)
		case uapi.DestAttrFwdMethod:
			v, err = field("FWD_METHOD", data, 4)
			d.ForwardMethod = ForwardMethod(v & uapi.ConnFlagFwdMask)
		case uapi.DestAttrWeight:
			v, err = field("WEIGHT", data, 4)
			d.Weight = int(int32(v))
		case uapi.DestAttrUThresh:
			v, err = field("U_THRESH", data, 4)
			d.UpperThreshold = uint32(v)
		case uapi.DestAttrLThresh:
			v, err = field("L_THRESH", data, 4)
			d.LowerThreshold = uint32(v)
		case uapi.DestAttrActiveConns:
			v, err = field("ACTIVE_CONNS", data, 4)
			d.ActiveConnections = uint32(v)
		case uapi.DestAttrInactConns:
			v, err = field("INACT_CONNS", data, 4)
			d.InactiveConnections = uint32(v)
		case uapi.DestAttrPersistConns:
			v, err = field("PERSIST_CONNS", data, 4)
			d.PersistentConnections = uint32(v)
		case uapi.DestAttrAddrFamily:
			v, err = field("ADDR_FAMILY", data, 2)
			if v != 0 {
				af = Family(v)
			}
		case uapi.DestAttrTunType:
			v, err = field("TUN_TYPE", data, 1)
			d.TunnelType = TunnelType(v)
		case uapi.DestAttrTunPort:
			if len(data) != 2 {
				return fmt.Errorf("attribute TUN_PORT: %d bytes, want 2", len(data))
			}
			d.TunnelPort = binary.BigEndian.Uint16(data)
		case uapi.DestAttrTunFlags:
			v, err = field("TUN_FLAGS", data, 2)
			d.TunnelChecksum = TunnelChecksum(v)
		case uapi.DestAttrStats:
			stats32, hasStats32 = data, true
		case uapi.DestAttrStats64:
			stats64, hasStat64 = data, true
		}
		return err
	})
	if err != nil {
		return DestinationStats{}, err
	}
	if d.Address, err = parseAddr("ADDR", addr, af); err != nil {
		return DestinationStats{}, err
	}
	switch {
	case hasStat64:
		d.Stats, err = parseStats(stats64)
	case hasStats32:
		d.Stats, err = parseStats(stats32)
	}
	return d, err
}

func parseDestinations(msgs []genetlink.Message, svcFamily Family) ([]DestinationStats, error) {
	dests := make([]DestinationStats, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Command != uapi.CmdNewDest {
			continue
		}
		b, ok, err := nested(m, uapi.CmdAttrDest)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		d, err := parseDestAttrs(b, svcFamily)
		if err != nil {
			return nil, err
		}
		dests = append(dests, d)
	}
	return dests, nil
}

func parseDaemonAttrs(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	err := attrs(b, func(typ uint16, data []byte) error {
		var err error
		var v uint64
		switch typ {
		case uapi.DaemonAttrState:
			v, err = field("STATE", data, 4)
			d.State = DaemonState(v)
		case uapi.DaemonAttrMcastIfn:
			d.Interface = cString(data)
		case uapi.DaemonAttrSyncID:
			v, err = field("SYNC_ID", data, 4)
			d.SyncID = uint32(v)
		case uapi.DaemonAttrSyncMaxLen:
			v, err = field("SYNC_MAXLEN", data, 2)
			d.MaxLength = int(v)
		case uapi.DaemonAttrMcastGroup:
			if len(data) != 4 {
				return fmt.Errorf("attribute MCAST_GROUP: %d bytes, want 4", len(data))
			}
			d.Group = netip.AddrFrom4([4]byte(data))
		case uapi.DaemonAttrMcastGroup6:
			if len(data) != 16 {
				return fmt.Errorf("attribute MCAST_GROUP6: %d bytes, want 16", len(data))
			}
			d.Group = netip.AddrFrom16([16]byte(data))
		case uapi.DaemonAttrMcastPort:
			v, err = field("MCAST_PORT", data, 2)
			d.Port = uint16(v)
		case uapi.DaemonAttrMcastTTL:
			v, err = field("MCAST_TTL", data, 1)
			d.TTL = uint8(v)
		}
		return err
	})
	return d, err
}

func parseDaemons(msgs []genetlink.Message) ([]SyncDaemon, error) {
	ds := make([]SyncDaemon, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Command != uapi.CmdNewDaemon {
			continue
		}
		b, ok, err := nested(m, uapi.CmdAttrDaemon)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		d, err := parseDaemonAttrs(b)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// single returns the one message of a doit reply with the given command.
func single(msgs []genetlink.Message, cmd uint8) (genetlink.Message, error) {
	for _, m := range msgs {
		if m.Header.Command == cmd {
			return m, nil
		}
	}
	return genetlink.Message{}, fmt.Errorf("no reply with command %d among %d messages", cmd, len(msgs))
}

func parseInfo(msgs []genetlink.Message) (Info, error) {
	m, err := single(msgs, uapi.CmdSetInfo)
	if err != nil {
		return Info{}, err
	}
	var info Info
	err = attrs(m.Data, func(typ uint16, data []byte) error {
		var err error
		var v uint64
		switch typ {
		case uapi.InfoAttrVersion:
			v, err = field("VERSION", data, 4)
			info.Version = Version{Major: uint8(v >> 16), Minor: uint8(v >> 8), Patch: uint8(v)}
		case uapi.InfoAttrConnTabSize:
			v, err = field("CONN_TAB_SIZE", data, 4)
			info.ConnectionTableSize = uint32(v)
		}
		return err
	})
	return info, err
}

func parseTimeouts(msgs []genetlink.Message) (Timeouts, error) {
	m, err := single(msgs, uapi.CmdSetConfig)
	if err != nil {
		return Timeouts{}, err
	}
	var t Timeouts
	err = attrs(m.Data, func(typ uint16, data []byte) error {
		var dst *time.Duration
		switch typ {
		case uapi.CmdAttrTimeoutTCP:
			dst = &t.TCP
		case uapi.CmdAttrTimeoutTCPFin:
			dst = &t.TCPFin
		case uapi.CmdAttrTimeoutUDP:
			dst = &t.UDP
		default:
			return nil
		}
		v, err := field("TIMEOUT", data, 4)
		*dst = time.Duration(v) * time.Second
		return err
	})
	return t, err
}
