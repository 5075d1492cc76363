package ipvsrules

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/ipvs-go/ipvs"
)

// benchTable is the benchmark program's workload: 2000 services x 4
// destinations.
func benchTable() ([]ipvs.VirtualService, []byte) {
	var text bytes.Buffer
	vs := make([]ipvs.VirtualService, 2000)
	for i := range vs {
		s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 80, Scheduler: "wlc"}
		fmt.Fprintf(&text, "-A -t %s:80 -s wlc\n", s.Address)
		vs[i].Service = s
		for j := range 4 {
			d := ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 2 + byte(j), byte(i >> 8), byte(i)}), Port: 8080, Weight: 1}
			fmt.Fprintf(&text, "-a -t %s:80 -r %s:8080 -m -w 1\n", s.Address, d.Address)
			vs[i].Destinations = append(vs[i].Destinations, d)
		}
	}
	return vs, text.Bytes()
}

func BenchmarkParse(b *testing.B) {
	_, text := benchTable()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		cmds, err := Parse(bytes.NewReader(text))
		if err != nil || len(cmds) != 10000 {
			b.Fatal(len(cmds), err)
		}
		if _, err := Changes(cmds); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	vs, _ := benchTable()
	b.ReportAllocs()
	for b.Loop() {
		Format(vs, FormatOptions{})
	}
}

// BenchmarkCheck is ApplyText's first reading of the workload's text (in
// one goroutine): every line checked, nothing kept.
func BenchmarkCheck(b *testing.B) {
	vs, create := benchTable()
	var update bytes.Buffer
	for _, v := range vs {
		for _, d := range v.Destinations {
			fmt.Fprintf(&update, "-e -t %s:80 -r %s:8080 -m -w 2\n", v.Service.Address, d.Address)
		}
	}
	for _, w := range []struct {
		name  string
		text  string
		lines int
	}{{"create", string(create), 10000}, {"update", update.String(), 8000}} {
		b.Run(w.name, func(b *testing.B) {
			var p Parser
			b.SetBytes(int64(len(w.text)))
			b.ReportAllocs()
			for b.Loop() {
				if n, bad := p.checkLines(w.text, 0); n != w.lines || bad != nil {
					b.Fatal(n, bad)
				}
			}
		})
	}
}
