//go:build linux

package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// kernelServiceReply plays the kernel for one service: it stores the
// SERVICE nest of a NEW_SERVICE request as ip_vs_genl_parse_service and
// ip_vs_add_service do, and returns the GET_SERVICE reply that
// ip_vs_genl_fill_service writes. It is written from the kernel's rules, not
// from the library's decoder: the netmask is an opaque 4 bytes, an IPv6 one
// must be 1-128, the flags gain the hashed bit, a mark service's protocol is
// not reported.
func kernelServiceReply(req []byte) (genetlink.Message, error) {
	svc, ok, err := nested(req, uapi.CmdAttrService)
	if err != nil || !ok {
		return genetlink.Message{}, fmt.Errorf("no SERVICE nest: %v", err)
	}
	a := map[uint16][]byte{}
	if err := attrs(svc, func(typ uint16, data []byte) error { a[typ] = data; return nil }); err != nil {
		return genetlink.Message{}, err
	}
	for _, typ := range []uint16{uapi.SvcAttrAF, uapi.SvcAttrSchedName, uapi.SvcAttrFlags, uapi.SvcAttrTimeout, uapi.SvcAttrNetmask} {
		if len(a[typ]) == 0 {
			return genetlink.Message{}, fmt.Errorf("EINVAL: attribute %d missing", typ)
		}
	}
	af := binary.NativeEndian.Uint16(a[uapi.SvcAttrAF])
	mark, hasMark := a[uapi.SvcAttrFwmark]
	if !hasMark && (len(a[uapi.SvcAttrProtocol]) != 2 || len(a[uapi.SvcAttrAddr]) != 16 || len(a[uapi.SvcAttrPort]) != 2) {
		return genetlink.Message{}, errors.New("EINVAL: no mark and no protocol, address and port")
	}
	netmask := a[uapi.SvcAttrNetmask]
	if plen := binary.NativeEndian.Uint32(netmask); af == uapi.AFInet6 && (plen < 1 || plen > 128) {
		return genetlink.Message{}, fmt.Errorf("EINVAL: IPv6 netmask %d", plen)
	}
	fl := a[uapi.SvcAttrFlags]
	flags := binary.NativeEndian.Uint32(fl[0:4])&binary.NativeEndian.Uint32(fl[4:8]) | uapi.SvcFlagHashed
	return reply(uapi.CmdNewService, func(ae *netlink.AttributeEncoder) {
		nest(ae, uapi.CmdAttrService, func(s *netlink.AttributeEncoder) {
			s.Uint16(uapi.SvcAttrAF, af)
			if hasMark {
				s.Bytes(uapi.SvcAttrFwmark, mark)
			} else {
				s.Bytes(uapi.SvcAttrProtocol, a[uapi.SvcAttrProtocol])
				addr := make([]byte, 16)
				copy(addr, a[uapi.SvcAttrAddr])
				if af == uapi.AFInet {
					clear(addr[4:]) // the kernel keeps an nf_inet_addr
				}
				s.Bytes(uapi.SvcAttrAddr, addr)
				s.Bytes(uapi.SvcAttrPort, a[uapi.SvcAttrPort])
			}
			s.String(uapi.SvcAttrSchedName, string(cString(a[uapi.SvcAttrSchedName])))
			if pe := cString(a[uapi.SvcAttrPEName]); len(pe) > 0 {
				s.String(uapi.SvcAttrPEName, string(pe))
			}
			s.Bytes(uapi.SvcAttrFlags, flagsAttr(flags))
			s.Bytes(uapi.SvcAttrTimeout, a[uapi.SvcAttrTimeout])
			s.Bytes(uapi.SvcAttrNetmask, netmask)
			statsAttrs(s, uapi.SvcAttrStats, uapi.SvcAttrStats64, 0)
		})
	}), nil
}

// plainService prints every field of a Service with %+v; Service.String
// names only the identity.
type plainService Service

// kernelRoundTrip creates s in the simulated kernel and reads it back.
func kernelRoundTrip(t testing.TB, s Service) Service {
	t.Helper()
	req := encodeAttrs(func(e *encoder) { encodeService(e, s, s.Flags, serviceFlagsSentMask) })
	m, err := kernelServiceReply(req)
	if err != nil {
		t.Fatalf("the kernel refuses valid %+v: %v", plainService(s), err)
	}
	got, ok, err := parseService(m.Data)
	if err != nil || !ok {
		t.Fatalf("decoding the reply for %+v: %v", plainService(s), err)
	}
	return got.Service
}

// roundTripServices covers every mask form of both families, marks,
// persistence and its engine.
func roundTripServices() []Service {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	p := func(s Service) Service { s.Flags |= FlagPersistent; s.Timeout = 300 * time.Second; return s }
	return []Service{
		{Protocol: TCP, Address: v4, Port: 80, Scheduler: "rr"},
		p(Service{Protocol: TCP, Address: v4, Port: 81, Scheduler: "rr", Netmask: IPv4Mask(0, 0, 0, 0)}),
		p(Service{Protocol: TCP, Address: v4, Port: 82, Scheduler: "rr", Netmask: IPv4Mask(255, 0, 255, 0)}),
		p(Service{Protocol: TCP, Address: v4, Port: 83, Scheduler: "rr", Netmask: PrefixMask(IPv4, 24)}),
		p(Service{Protocol: TCP, Address: v4, Port: 84, Scheduler: "rr", Netmask: PrefixMask(IPv4, 32)}),
		p(Service{Protocol: TCP, Address: v4, Port: 85, Scheduler: "rr", Netmask: IPv4Mask(255, 255, 255, 255)}),
		p(Service{Protocol: TCP, Address: v4, Port: 86, Scheduler: "rr", Netmask: IPv4Mask(0, 0, 0, 1)}),
		p(Service{Protocol: UDP, Address: v6, Port: 5060, Scheduler: "rr", Netmask: PrefixMask(IPv6, 64), PersistenceEngine: PersistenceEngineSIP}),
		p(Service{Protocol: UDP, Address: v6, Port: 5061, Scheduler: "rr", Netmask: PrefixMask(IPv6, 1)}),
		p(Service{Protocol: UDP, Address: v6, Port: 5062, Scheduler: "rr", Netmask: PrefixMask(IPv6, 128)}),
		{Protocol: SCTP, Address: v6, Port: 0, Scheduler: NoScheduler, Netmask: PrefixMask(IPv6, 127)},
		{FirewallMark: 1, Family: IPv4, Scheduler: "mh", Flags: FlagOnePacket | FlagMHPort, Netmask: IPv4Mask(255, 0, 255, 0)},
		p(Service{FirewallMark: 2, Family: IPv4, Scheduler: "wlc", Netmask: PrefixMask(IPv4, 0)}),
		p(Service{FirewallMark: 3, Family: IPv6, Scheduler: "sh", Flags: FlagSHFallback, Netmask: PrefixMask(IPv6, 48)}),
		p(Service{FirewallMark: 4, Family: IPv6, Scheduler: "rr"}),
	}
}

// TestServiceKernelRoundTrip: every valid service reads back from the
// kernel's reply equal to itself, with no normalisation.
func TestServiceKernelRoundTrip(t *testing.T) {
	for _, s := range roundTripServices() {
		if err := s.validate("test"); err != nil {
			t.Errorf("%+v: %v", plainService(s), err)
			continue
		}
		if got := kernelRoundTrip(t, s); got != s {
			t.Errorf("round trip of %v:\n got %+v\nwant %+v", s, plainService(got), plainService(s))
		}
	}
}

// TestNetmaskWire checks the NETMASK bytes sent for each form, and that
// the kernel's bytes decode to the exact mask.
func TestNetmaskWire(t *testing.T) {
	v4 := Service{Protocol: TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Scheduler: "rr"}
	v6 := Service{Protocol: TCP, Address: netip.MustParseAddr("2001:db8::1"), Port: 80, Scheduler: "rr"}
	le := func(n uint32) []byte { return binary.NativeEndian.AppendUint32(nil, n) }
	for _, tt := range []struct {
		svc  Service
		m    Netmask
		wire []byte
		str  string
	}{
		{v4, Netmask{}, []byte{255, 255, 255, 255}, "full"},
		{v4, IPv4Mask(0, 0, 0, 0), []byte{0, 0, 0, 0}, "0.0.0.0"},
		{v4, PrefixMask(IPv4, 0), []byte{0, 0, 0, 0}, "0.0.0.0"},
		{v4, IPv4Mask(255, 0, 255, 0), []byte{255, 0, 255, 0}, "255.0.255.0"},
		{v4, PrefixMask(IPv4, 24), []byte{255, 255, 255, 0}, "255.255.255.0"},
		{v4, PrefixMask(IPv4, 1), []byte{128, 0, 0, 0}, "128.0.0.0"},
		{v4, PrefixMask(IPv4, 31), []byte{255, 255, 255, 254}, "255.255.255.254"},
		{v6, Netmask{}, le(128), "full"},
		{v6, PrefixMask(IPv6, 64), le(64), "64"},
		{v6, PrefixMask(IPv6, 1), le(1), "1"},
		{v6, PrefixMask(IPv6, 127), le(127), "127"},
	} {
		s := tt.svc
		s.Netmask = tt.m
		if got := tt.m.String(); got != tt.str {
			t.Errorf("%#v.String() = %q, want %q", tt.m, got, tt.str)
		}
		sent := topAttrs(t, topAttrs(t, encodeAttrs(func(e *encoder) { encodeService(e, s, 0, serviceFlagsSentMask) }))[uapi.CmdAttrService])
		if got := sent[uapi.SvcAttrNetmask]; string(got) != string(tt.wire) {
			t.Errorf("%v on %v: sent % x, want % x", tt.m, s, got, tt.wire)
		}
		if got := kernelRoundTrip(t, s); got.Netmask != tt.m {
			t.Errorf("%v on %v: read back %v", tt.m, s, got.Netmask)
		}
	}
	// One value per mask: the forms compare equal.
	for _, eq := range [][2]Netmask{
		{PrefixMask(IPv4, 24), IPv4Mask(255, 255, 255, 0)},
		{PrefixMask(IPv4, 0), IPv4Mask(0, 0, 0, 0)},
		{PrefixMask(IPv4, 32), Netmask{}},
		{IPv4Mask(255, 255, 255, 255), Netmask{}},
		{PrefixMask(IPv6, 128), Netmask{}},
	} {
		if eq[0] != eq[1] {
			t.Errorf("%#v != %#v", eq[0], eq[1])
		}
	}
	if PrefixMask(IPv4, 8) == IPv4Mask(255, 0, 255, 0) || PrefixMask(IPv6, 32) == (Netmask{}) || PrefixMask(IPv4, 0) == (Netmask{}) {
		t.Error("different masks compare equal")
	}
	// The kernel never stores an IPv6 prefix length outside 1-128; a reply
	// with one is refused rather than misread.
	for _, n := range []uint32{0, 129} {
		m := reply(uapi.CmdNewService, func(ae *netlink.AttributeEncoder) {
			nest(ae, uapi.CmdAttrService, func(s *netlink.AttributeEncoder) {
				s.Uint16(uapi.SvcAttrAF, uapi.AFInet6)
				s.Uint32(uapi.SvcAttrFwmark, 1)
				s.String(uapi.SvcAttrSchedName, "rr")
				s.Uint32(uapi.SvcAttrNetmask, n)
			})
		})
		if s, _, err := parseService(m.Data); err == nil {
			t.Errorf("IPv6 netmask %d decoded as %+v", n, s)
		}
	}
}

// TestRedundantFormsRefused: the inputs that would read back differently
// are refused, naming the field, before anything is sent.
func TestRedundantFormsRefused(t *testing.T) {
	v4 := Service{Protocol: TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Scheduler: "rr"}
	v6 := Service{Protocol: TCP, Address: netip.MustParseAddr("2001:db8::1"), Port: 80, Scheduler: "rr"}
	with := func(s Service, f func(*Service)) Service { f(&s); return s }
	for _, tt := range []struct {
		name  string
		svc   Service
		field string
	}{
		{"Family on an IPv4 address service", with(v4, func(s *Service) { s.Family = IPv4 }), "Service.Family"},
		{"Family on an IPv6 address service", with(v6, func(s *Service) { s.Family = IPv6 }), "Service.Family"},
		{"IPv4 mask on an IPv6 service", with(v6, func(s *Service) { s.Netmask = IPv4Mask(255, 255, 0, 0) }), "Service.Netmask"},
		{"IPv6 prefix on an IPv4 service", with(v4, func(s *Service) { s.Netmask = PrefixMask(IPv6, 64) }), "Service.Netmask"},
		{"IPv6 prefix on an IPv4 mark service", Service{FirewallMark: 1, Family: IPv4, Scheduler: "rr", Netmask: PrefixMask(IPv6, 64)}, "Service.Netmask"},
		{"IPv6 /0", with(v6, func(s *Service) { s.Netmask = PrefixMask(IPv6, 0) }), "Service.Netmask"},
		{"IPv6 /129", with(v6, func(s *Service) { s.Netmask = PrefixMask(IPv6, 129) }), "Service.Netmask"},
		{"IPv4 /33", with(v4, func(s *Service) { s.Netmask = PrefixMask(IPv4, 33) }), "Service.Netmask"},
		{"IPv4 /-1", with(v4, func(s *Service) { s.Netmask = PrefixMask(IPv4, -1) }), "Service.Netmask"},
		{"prefix of no family", with(v4, func(s *Service) { s.Netmask = PrefixMask(0, 8) }), "Service.Netmask"},
		{"persistent without a timeout", with(v4, func(s *Service) { s.Flags = FlagPersistent }), "Service.Timeout"},
		{"persistent mark service without a timeout", Service{FirewallMark: 1, Family: IPv6, Scheduler: "rr", Flags: FlagPersistent | FlagSched1}, "Service.Timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sent := 0
			c := testClient(t, func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) { sent++; return nil, nil })
			err := c.CreateService(context.Background(), tt.svc)
			var e *Error
			if !errors.As(err, &e) || e.Field != tt.field || !errors.Is(err, os.ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("CreateService(%+v) = %v, want os.ErrInvalid naming %s", plainService(tt.svc), err, tt.field)
			}
			if sent != 0 {
				t.Errorf("%d requests reached the kernel", sent)
			}
		})
	}
	if s := PrefixMask(IPv6, 0).String(); s != "invalid" {
		t.Errorf("an invalid mask prints %q", s)
	}
}

// TestEditServiceKeepsMask: EditService writes back the mask it read,
// whatever its form, when the edit does not name it.
func TestEditServiceKeepsMask(t *testing.T) {
	for _, mask := range [][]byte{{0, 0, 0, 0}, {255, 0, 255, 0}, {255, 255, 255, 255}, {255, 255, 0, 0}} {
		var set []byte
		c := testClient(t, func(g genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
			if g.Header.Command == uapi.CmdGetService {
				return []genetlink.Message{reply(uapi.CmdNewService, func(ae *netlink.AttributeEncoder) {
					nest(ae, uapi.CmdAttrService, func(s *netlink.AttributeEncoder) {
						s.Uint16(uapi.SvcAttrAF, uapi.AFInet)
						s.Uint32(uapi.SvcAttrFwmark, 7)
						s.String(uapi.SvcAttrSchedName, "rr")
						s.Bytes(uapi.SvcAttrFlags, flagsAttr(uapi.SvcFlagPersistent|uapi.SvcFlagHashed))
						s.Uint32(uapi.SvcAttrTimeout, 300)
						s.Bytes(uapi.SvcAttrNetmask, mask)
					})
				})}, nil
			}
			set = topAttrs(t, topAttrs(t, g.Data)[uapi.CmdAttrService])[uapi.SvcAttrNetmask]
			return nil, nil
		})
		id := Service{FirewallMark: 7, Family: IPv4}
		if err := c.EditService(context.Background(), id, ServiceEdit{Scheduler: ptrTo(WeightedLeastConnection)}); err != nil {
			t.Fatalf("EditService: %v", err)
		}
		if string(set) != string(mask) {
			t.Errorf("mask % x read, % x written back", mask, set)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestSyncMaxLength: a MaxLength the kernel would clamp is refused; one it
// keeps is sent as is.
func TestSyncMaxLength(t *testing.T) {
	g6 := netip.MustParseAddr("ff02::1:81")
	for _, tt := range []struct {
		d  SyncDaemon
		ok bool
	}{
		{SyncDaemon{State: Master, MaxLength: 1}, true},
		{SyncDaemon{State: Master, MaxLength: 65507}, true},
		{SyncDaemon{State: Master, MaxLength: 65508}, false},
		{SyncDaemon{State: Master, MaxLength: -1}, false},
		{SyncDaemon{State: Master, MaxLength: 65487, Group: g6}, true},
		{SyncDaemon{State: Master, MaxLength: 65488, Group: g6}, false},
		{SyncDaemon{State: Backup, MaxLength: 1023}, false},
		{SyncDaemon{State: Backup, MaxLength: 1}, false},
		{SyncDaemon{State: Backup, MaxLength: 1024}, true},
		{SyncDaemon{State: Backup, MaxLength: 65507}, true},
		{SyncDaemon{State: Backup, MaxLength: 65487, Group: g6}, true},
		{SyncDaemon{State: Backup, MaxLength: 65507, Group: g6}, false},
		{SyncDaemon{State: Backup, MaxLength: 1023, Group: g6}, false},
		{SyncDaemon{State: Backup}, true}, // the default
	} {
		tt.d.Interface = "eth0"
		err := tt.d.validate("test")
		var e *Error
		switch {
		case tt.ok && err != nil:
			t.Errorf("%+v refused: %v", tt.d, err)
		case !tt.ok && (!errors.As(err, &e) || e.Field != "SyncDaemon.MaxLength" || !errors.Is(err, os.ErrInvalid)):
			t.Errorf("%+v: %v, want os.ErrInvalid naming SyncDaemon.MaxLength", tt.d, err)
		}
	}
}
