//go:build linux

package ipvs

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// Microbenchmarks of the request encoder and the reply decoders on canned
// messages (run with -benchmem). They measure the client's own CPU cost per
// object, which the VM benchmark (bench/cmd/ipvsbench) cannot separate from
// the kernel's.

var (
	benchService = Service{Protocol: TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Scheduler: RoundRobin}
	benchDest    = Destination{Address: netip.MustParseAddr("10.128.0.1"), Port: 8080, ForwardMethod: NAT, Weight: 1}
	benchSink    int
)

func BenchmarkEncodeService(b *testing.B) {
	var e encoder
	b.ReportAllocs()
	for b.Loop() {
		e.b = e.b[:0]
		off := e.beginMessage(0x20, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 1, 0, uapi.CmdNewService)
		encodeService(&e, benchService, 0, serviceFlagsSentMask)
		e.endMessage(off)
	}
	b.SetBytes(int64(len(e.b)))
}

func BenchmarkEncodeDestination(b *testing.B) {
	var e encoder
	b.ReportAllocs()
	for b.Loop() {
		e.b = e.b[:0]
		off := e.beginMessage(0x20, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 1, 0, uapi.CmdNewDest)
		encodeServiceID(&e, benchService)
		encodeDest(&e, benchDest)
		e.endMessage(off)
	}
	b.SetBytes(int64(len(e.b)))
}

// BenchmarkEncodeApplyBatch encodes one Apply datagram of 200 destination
// creations, validation included, as Apply does before each sendmsg.
func BenchmarkEncodeApplyBatch(b *testing.B) {
	const n = 200
	changes := make([]Change, n)
	for i := range changes {
		d := benchDest
		d.Port = uint16(1000 + i)
		changes[i] = Change{Kind: CreateDestination, Service: benchService, Destination: d}
	}
	c := newClientWith(0x20, nil)
	s := newSock(nil, false)
	b.ReportAllocs()
	for b.Loop() {
		s.enc.b = s.enc.b[:0]
		for _, ch := range changes {
			if err := ch.validate(); err != nil {
				b.Fatal(err)
			}
			c.encodeChange(s, ch)
		}
	}
	b.SetBytes(int64(len(s.enc.b)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/change")
}

func BenchmarkParseService(b *testing.B) {
	data := serviceReply().Data
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, ok, err := parseService(data)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		benchSink += int(s.Port)
	}
}

func BenchmarkParseDestination(b *testing.B) {
	data := destReply().Data
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d, ok, err := parseDest(data, IPv4)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		benchSink += int(d.Port)
	}
}

func BenchmarkParseStats(b *testing.B) {
	ae := netlink.NewAttributeEncoder()
	for i := uint16(1); i <= 10; i++ {
		ae.Uint64(i, uint64(i)<<20)
	}
	data, err := ae.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		st, err := parseStats(data)
		if err != nil {
			b.Fatal(err)
		}
		benchSink += int(st.Connections)
	}
}

// frameDump frames n copies of a generic netlink payload as one dump
// datagram.
func frameDump(cmd uint8, payload []byte, n int) []byte {
	var b []byte
	for i := range n {
		l := unix.NLMSG_HDRLEN + unix.GENL_HDRLEN + len(payload)
		b = binary.NativeEndian.AppendUint32(b, uint32(l))
		b = binary.NativeEndian.AppendUint16(b, 0x20)
		b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_MULTI)
		b = binary.NativeEndian.AppendUint32(b, uint32(i))
		b = binary.NativeEndian.AppendUint32(b, 0)
		b = append(b, cmd, 1, 0, 0)
		b = append(b, payload...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

// BenchmarkDecodeServiceDump decodes a full service dump datagram of one
// page (11 services) the way Services and VirtualServices do.
func BenchmarkDecodeServiceDump(b *testing.B) {
	const n = 11
	dg := frameDump(uapi.CmdNewService, serviceReply().Data, n)
	b.SetBytes(int64(len(dg)))
	b.ReportAllocs()
	for b.Loop() {
		svcs := make([]ServiceStats, 0, 16)
		collect := serviceCollector(&svcs)
		if err := messages(dg, collect); err != nil {
			b.Fatal(err)
		}
		if len(svcs) != n {
			b.Fatalf("%d services", len(svcs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/service")
}

// BenchmarkDecodeDestDump decodes one destination dump datagram of 4
// destinations, the per-service reply of VirtualServices in the VM benchmark.
func BenchmarkDecodeDestDump(b *testing.B) {
	const n = 4
	dg := frameDump(uapi.CmdNewDest, destReply().Data, n)
	b.SetBytes(int64(len(dg)))
	b.ReportAllocs()
	for b.Loop() {
		dests := make([]DestinationStats, 0, 4)
		if err := messages(dg, destCollector(&dests, IPv4)); err != nil {
			b.Fatal(err)
		}
		if len(dests) != n {
			b.Fatalf("%d destinations", len(dests))
		}
	}
}

// BenchmarkReconcileDiff is Reconcile's own work on 2000 services x 4
// destinations, for a table that already matches (noop) and for one where
// every weight differs (weights, 8000 updates): validating and normalizing
// the input and comparing it with the table.
func BenchmarkReconcileDiff(b *testing.B) {
	const n, m = 2000, 4
	for _, bc := range []struct {
		name    string
		weight  int
		changes int
	}{{"noop", benchDest.Weight, 0}, {"weights", benchDest.Weight + 1, n * m}} {
		b.Run(bc.name, func(b *testing.B) {
			desired := make([]VirtualService, n)
			cur := make([]VirtualServiceStats, n)
			for i := range n {
				s := benchService
				s.Address = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
				desired[i].Service = s
				cur[i].Service = s
				for j := range m {
					d := benchDest
					d.Address = netip.AddrFrom4([4]byte{10, 128 + byte(j), byte(i >> 8), byte(i)})
					cur[i].Destinations = append(cur[i].Destinations, DestinationStats{Destination: d})
					d.Weight = bc.weight
					desired[i].Destinations = append(desired[i].Destinations, d)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				want, err := prepareDesired(desired)
				if err != nil {
					b.Fatal(err)
				}
				if ch := diff(want, cur, ReconcileOptions{}); len(ch) != bc.changes {
					b.Fatalf("%d changes", len(ch))
				}
			}
		})
	}
}
