package prometheus

import (
	"context"
	"io"
	"net/netip"
	"testing"

	"github.com/ipvs-go/ipvs"
	prom "github.com/prometheus/client_golang/prometheus"
)

// bigFake is a table of n services with m destinations each.
func bigFake(n, m int) *fakeReader {
	f := newFake()
	f.table = nil
	for i := range n {
		v := ipvs.VirtualServiceStats{ServiceStats: ipvs.ServiceStats{
			Service: ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 80, Scheduler: ipvs.WeightedLeastConnection},
			Stats:   st(uint64(i), 2, 3, 4, 5),
		}}
		for j := range m {
			k := i*m + j
			v.Destinations = append(v.Destinations, ipvs.DestinationStats{
				Destination: ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 2 + byte(k>>16), byte(k >> 8), byte(k)}), Port: 8080, Weight: 1 + j},
				Stats:       st(uint64(k), 2, 3, 4, 5), ActiveConnections: uint32(j),
			})
		}
		f.table = append(f.table, v)
	}
	return f
}

// BenchmarkWriteText is the Handler's work for 2000 x 4, without the read.
func BenchmarkWriteText(b *testing.B) {
	c := New(bigFake(2000, 4), Options{})
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteText(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGather is the same table through a registry (Collect, Gather).
func BenchmarkGather(b *testing.B) {
	reg := prom.NewRegistry()
	reg.MustRegister(New(bigFake(2000, 4), Options{}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteTextNode adds node_exporter's names.
func BenchmarkWriteTextNode(b *testing.B) {
	c := New(bigFake(2000, 4), Options{NodeExporterNames: true})
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteText(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
