//go:build linux

package ipvs

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// Decoders must never panic, whatever the bytes; what they accept must
// survive a round trip. The seeds are the captured ipvsadm requests and the
// canned kernel replies; `go test` runs the seeds, `go test -fuzz` explores.

// seedPayloads returns every captured request payload and canned reply.
func seedPayloads(t testing.TB) [][]byte {
	capturesOnce.Do(func() { captures, capturesErr = loadCaptures() })
	if capturesErr != nil {
		t.Fatalf("loading captures: %v", capturesErr)
	}
	var out [][]byte
	for _, reqs := range captures {
		for _, r := range reqs {
			out = append(out, r.data)
		}
	}
	for _, m := range []genetlink.Message{
		serviceReply(), serviceReplyUDP6(), serviceReplyFwmark(), destReply(),
		daemonReply(1, 1472), daemonReply(2, 65507), infoReply(), timeoutsReply(900, 120, 300),
	} {
		out = append(out, m.Data)
	}
	return out
}

// encodeAttrs returns the attributes enc writes.
func encodeAttrs(enc func(e *encoder)) []byte {
	var e encoder
	enc(&e)
	return e.b
}

func FuzzParseServices(f *testing.F) {
	for _, b := range seedPayloads(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok, err := parseService(b)
		if err != nil || !ok {
			return
		}
		// A valid service read from the kernel can be written back and
		// reads the same.
		if s.validate("fuzz") == nil {
			again, _, err := parseService(encodeAttrs(func(e *encoder) {
				encodeService(e, s.Service, s.Flags, serviceFlagsSentMask)
			}))
			if err != nil || again.Service != s.Service {
				t.Fatalf("round trip of %+v: %+v, %v", s.Service, again, err)
			}
		}
	})
}

func FuzzParseDestinations(f *testing.F) {
	for _, b := range seedPayloads(f) {
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, v4 bool) {
		fam := IPv6
		if v4 {
			fam = IPv4
		}
		d, ok, err := parseDest(b, fam)
		if err != nil || !ok {
			return
		}
		svc := Service{FirewallMark: 1, Family: fam}
		if d.validate("fuzz", &svc) == nil {
			again, _, err := parseDest(encodeAttrs(func(e *encoder) { encodeDest(e, d.Destination) }), fam)
			if err != nil || again.Destination != d.Destination {
				t.Fatalf("round trip of %+v: %+v, %v", d.Destination, again, err)
			}
		}
	})
}

func FuzzParseDaemons(f *testing.F) {
	for _, b := range seedPayloads(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok, err := parseDaemon(b)
		if err != nil || !ok {
			return
		}
		// Zero optional fields are not sent, so they only round trip when
		// set, as the kernel always reports them.
		if d.validate("fuzz") == nil && d.MaxLength != 0 && d.Port != 0 && d.TTL != 0 && d.Group.IsValid() {
			again, _, err := parseDaemon(encodeAttrs(func(e *encoder) { encodeDaemon(e, d) }))
			if err != nil || again != d {
				t.Fatalf("round trip of %+v: %+v, %v", d, again, err)
			}
		}
	})
}

func FuzzParseStats(f *testing.F) {
	for _, b := range seedPayloads(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStats(b)
		if err != nil {
			return
		}
		// Re-encoded as STATS64, the counters read the same.
		ae := netlink.NewAttributeEncoder()
		for i, v := range []uint64{st.Connections, st.PacketsIn, st.PacketsOut, st.BytesIn, st.BytesOut,
			st.ConnectionRate, st.PacketRateIn, st.PacketRateOut, st.ByteRateIn, st.ByteRateOut} {
			ae.Uint64(uint16(i+1), v)
		}
		enc, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseStats(enc)
		if err != nil || again != st {
			t.Fatalf("round trip of %+v: %+v, %v", st, again, err)
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	for _, b := range seedPayloads(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseInfo(b)
	})
}

func FuzzParseTimeouts(f *testing.F) {
	for _, b := range seedPayloads(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		to, err := parseTimeouts(b)
		if err != nil || to.TCP > maxConfigTimeout || to.TCPFin > maxConfigTimeout || to.UDP > maxConfigTimeout {
			return
		}
		again, err := parseTimeouts(encodeAttrs(func(e *encoder) { encodeTimeouts(e, to) }))
		if err != nil || again != to {
			t.Fatalf("round trip of %+v: %+v, %v", to, again, err)
		}
	})
}

// FuzzServiceRoundTrip builds services from arbitrary field values: every
// one that validates must be stored by a kernel (kernelServiceReply) and
// read back equal, with no normalisation. maskKind picks the Netmask form:
// 0 the zero value, 1 IPv4Mask of mask's bytes, 2 PrefixMask(IPv4, mask),
// 3 PrefixMask(IPv6, mask), other PrefixMask(maskKind, mask).
func FuzzServiceRoundTrip(f *testing.F) {
	f.Add(uint16(6), []byte{10, 0, 0, 1}, uint16(80), uint32(0), uint16(0), "wlc", uint32(0), uint32(0), uint8(0), int32(0), "")
	f.Add(uint16(17), netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(443), uint32(0), uint16(0), "rr", uint32(1), uint32(360), uint8(3), int32(64), "sip")
	f.Add(uint16(0), []byte{}, uint16(0), uint32(100), uint16(10), "mh", uint32(0x10), uint32(0), uint8(3), int32(128), "")
	f.Add(uint16(132), []byte{192, 168, 1, 1}, uint16(0), uint32(0), uint16(0), "sh", uint32(0x19), uint32(300), uint8(2), int32(24), "")
	f.Add(uint16(6), []byte{10, 0, 0, 1}, uint16(80), uint32(0), uint16(2), "rr", uint32(1), uint32(300), uint8(1), int32(0), "")
	f.Add(uint16(6), []byte{10, 0, 0, 1}, uint16(80), uint32(0), uint16(0), "rr", uint32(1), uint32(300), uint8(1), int32(-16711936), "") // 255.0.255.0
	f.Add(uint16(0), []byte{}, uint16(0), uint32(5), uint16(2), "rr", uint32(1), uint32(300), uint8(2), int32(32), "")
	f.Fuzz(func(t *testing.T, proto uint16, addr []byte, port uint16, mark uint32, fam uint16,
		sched string, flags, timeout uint32, maskKind uint8, mask int32, pe string) {
		a, _ := netip.AddrFromSlice(addr)
		var m Netmask
		switch maskKind {
		case 0:
		case 1:
			m = IPv4Mask(byte(mask>>24), byte(mask>>16), byte(mask>>8), byte(mask))
		case 2:
			m = PrefixMask(IPv4, int(mask))
		case 3:
			m = PrefixMask(IPv6, int(mask))
		default:
			m = PrefixMask(Family(maskKind), int(mask))
		}
		s := Service{
			Protocol: Protocol(proto), Address: a, Port: port, FirewallMark: mark, Family: Family(fam),
			Scheduler: sched, Flags: ServiceFlags(flags), Timeout: time.Duration(timeout) * time.Second,
			Netmask: m, PersistenceEngine: pe,
		}
		if s.validate("fuzz") != nil {
			return
		}
		if got := kernelRoundTrip(t, s); got != s {
			t.Fatalf("round trip of %+v: %+v", plainService(s), plainService(got))
		}
	})
}

func FuzzDestinationRoundTrip(f *testing.F) {
	f.Add([]byte{192, 168, 1, 10}, uint16(8080), uint32(0), 5, uint32(100), uint32(50), uint8(0), uint16(0), uint16(0), true)
	f.Add([]byte{192, 168, 1, 20}, uint16(0), uint32(2), 1, uint32(0), uint32(0), uint8(1), uint16(6080), uint16(1), true)
	f.Add(netip.MustParseAddr("2001:db8::20").AsSlice(), uint16(0), uint32(2), 1, uint32(0), uint32(0), uint8(2), uint16(0), uint16(0), true)
	f.Fuzz(func(t *testing.T, addr []byte, port uint16, method uint32, weight int, upper, lower uint32,
		tunType uint8, tunPort, tunCsum uint16, v4service bool) {
		a, _ := netip.AddrFromSlice(addr)
		svc := Service{FirewallMark: 1, Family: IPv6}
		if v4service {
			svc.Family = IPv4
		}
		d := Destination{
			Address: a, Port: port, ForwardMethod: ForwardMethod(method), Weight: weight,
			UpperThreshold: upper, LowerThreshold: lower,
			TunnelType: TunnelType(tunType), TunnelPort: tunPort, TunnelChecksum: TunnelChecksum(tunCsum),
		}
		if d.validate("fuzz", &svc) != nil {
			return
		}
		got, _, err := parseDest(encodeAttrs(func(e *encoder) { encodeDest(e, d) }), svc.Family)
		if err != nil || got.Destination != d {
			t.Fatalf("round trip of %+v: %+v, %v", d, got, err)
		}
	})
}

func FuzzDaemonRoundTrip(f *testing.F) {
	f.Add(uint32(1), "eth0", uint32(7), 1400, []byte{239, 1, 2, 3}, uint16(9000), uint8(3))
	f.Add(uint32(2), "lo", uint32(0), 65507, netip.MustParseAddr("ff02::1:81").AsSlice(), uint16(8848), uint8(1))
	f.Fuzz(func(t *testing.T, state uint32, ifname string, id uint32, maxlen int, group []byte, port uint16, ttl uint8) {
		g, _ := netip.AddrFromSlice(group)
		d := SyncDaemon{State: DaemonState(state), Interface: ifname, SyncID: id, MaxLength: maxlen, Group: g, Port: port, TTL: ttl}
		if d.validate("fuzz") != nil {
			return
		}
		got, _, err := parseDaemon(encodeAttrs(func(e *encoder) { encodeDaemon(e, d) }))
		if err != nil || got != d {
			t.Fatalf("round trip of %+v: %+v, %v", d, got, err)
		}
	})
}
