package ipvs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Captured from Debian's 6.12 kernel after 6 connections through two NAT
// services (TestIntegrationTotals).
var (
	totals612 = Stats{Connections: 6, PacketsIn: 0x1f, PacketsOut: 0x1e, BytesIn: 0x69a, BytesOut: 0x666,
		ConnectionRate: 1, PacketRateIn: 4, PacketRateOut: 4, ByteRateIn: 0xd3, ByteRateOut: 0xcd}
	perCPU612 = []CPUStats{
		{CPU: 0, Stats: Stats{Connections: 0, PacketsIn: 6, PacketsOut: 0xd, BytesIn: 0x138, BytesOut: 0x2c2}},
		{CPU: 1, Stats: Stats{Connections: 6, PacketsIn: 0x19, PacketsOut: 0x11, BytesIn: 0x562, BytesOut: 0x3a4}},
	}
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// formatTotals prints st as the kernel's ip_vs_stats_show does.
func formatTotals(st Stats) string {
	return "   Total Incoming Outgoing         Incoming         Outgoing\n" +
		"   Conns  Packets  Packets            Bytes            Bytes\n" +
		fmt.Sprintf("%8X %8X %8X %16X %16X\n\n", st.Connections, st.PacketsIn, st.PacketsOut, st.BytesIn, st.BytesOut) +
		" Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n" +
		fmt.Sprintf("%8X %8X %8X %16X %16X\n", st.ConnectionRate, st.PacketRateIn, st.PacketRateOut, st.ByteRateIn, st.ByteRateOut)
}

// formatTotalsPerCPU prints as the kernel's ip_vs_stats_percpu_show does.
func formatTotalsPerCPU(cpus []CPUStats, total Stats) string {
	var b strings.Builder
	b.WriteString("       Total Incoming Outgoing         Incoming         Outgoing\n")
	b.WriteString("CPU    Conns  Packets  Packets            Bytes            Bytes\n")
	for _, c := range cpus {
		s := c.Stats
		fmt.Fprintf(&b, "%3X %8X %8X %8X %16X %16X\n", c.CPU, s.Connections, s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut)
	}
	fmt.Fprintf(&b, "  ~ %8X %8X %8X %16X %16X\n\n", total.Connections, total.PacketsIn, total.PacketsOut, total.BytesIn, total.BytesOut)
	b.WriteString("     Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n")
	fmt.Fprintf(&b, "    %8X %8X %8X %16X %16X\n", total.ConnectionRate, total.PacketRateIn, total.PacketRateOut, total.ByteRateIn, total.ByteRateOut)
	return b.String()
}

func TestParseTotals(t *testing.T) {
	text := readTestdata(t, "ip_vs_stats-6.12.txt")
	got, err := parseTotals(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parseTotals: %v", err)
	}
	if got != totals612 {
		t.Errorf("parseTotals = %+v, want %+v", got, totals612)
	}
	if f := formatTotals(totals612); f != text {
		t.Errorf("the test's kernel format differs from the capture:\n%q\n%q", f, text)
	}

	text = readTestdata(t, "ip_vs_stats_percpu-6.12.txt")
	cpus, total, err := parseTotalsPerCPU(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parseTotalsPerCPU: %v", err)
	}
	if d := cmp.Diff(perCPU612, cpus); d != "" {
		t.Errorf("per-CPU rows (-want +got):\n%s", d)
	}
	if total != totals612 {
		t.Errorf("per-CPU file's total = %+v, want %+v", total, totals612)
	}
	if f := formatTotalsPerCPU(perCPU612, totals612); f != text {
		t.Errorf("the test's kernel format differs from the capture:\n%q\n%q", f, text)
	}

	// 64-bit values overflow the columns' widths (%8LX), and CPU numbers
	// are hex.
	big := Stats{Connections: 1<<40 + 1, PacketsIn: 1<<63 + 5, PacketsOut: 0xffffffff, BytesIn: 1<<64 - 1, BytesOut: 1 << 62,
		ConnectionRate: 0x123456789, PacketRateIn: 1, PacketRateOut: 2, ByteRateIn: 1 << 50, ByteRateOut: 3}
	if got, err := parseTotals(strings.NewReader(formatTotals(big))); err != nil || got != big {
		t.Errorf("parseTotals of 64-bit values = %+v, %v; want %+v", got, err, big)
	}
	many := make([]CPUStats, 300)
	for i := range many {
		many[i] = CPUStats{CPU: i, Stats: Stats{Connections: uint64(i) << 33, BytesOut: 1<<64 - 1}}
	}
	cpus, total, err = parseTotalsPerCPU(strings.NewReader(formatTotalsPerCPU(many, big)))
	if err != nil || total != big || !cmp.Equal(cpus, many) {
		t.Errorf("parseTotalsPerCPU of 300 CPUs and 64-bit values: %v, total %+v", err, total)
	}
}

func TestParseTotalsErrors(t *testing.T) {
	good := readTestdata(t, "ip_vs_stats-6.12.txt")
	goodCPU := readTestdata(t, "ip_vs_stats_percpu-6.12.txt")
	for _, tc := range []struct {
		name, text string
		perCPU     bool
		want       error
	}{
		{"empty", "", false, io.ErrUnexpectedEOF},
		{"header only", strings.Join(strings.SplitAfter(good, "\n")[:2], ""), false, io.ErrUnexpectedEOF},
		{"no rates", strings.Join(strings.SplitAfter(good, "\n")[:4], ""), false, io.ErrUnexpectedEOF},
		{"four counters", strings.Replace(good, "     666\n", "\n", 1), false, errTotalsFormat},
		{"six counters", strings.Replace(good, "     666\n", "     666 1\n", 1), false, errTotalsFormat},
		{"not hex", strings.Replace(good, "1F", "1G", 1), false, errTotalsFormat},
		{"negative", strings.Replace(good, "  1F", " -1F", 1), false, errTotalsFormat},
		{"over 64 bits", strings.Replace(good, "69A", "10000000000000000", 1), false, errTotalsFormat},
		{"other header", strings.Replace(good, "Total", "Sum", 1), false, errTotalsFormat},
		{"no blank line", strings.Replace(good, "\n\n", "\n", 1), false, errTotalsFormat},
		{"percpu empty", "", true, io.ErrUnexpectedEOF},
		{"percpu no total", strings.Replace(goodCPU, "  ~", "  2", 1), true, errTotalsFormat},
		{"percpu bad CPU", strings.Replace(goodCPU, "  1  ", "  x  ", 1), true, errTotalsFormat},
		{"percpu short row", strings.Replace(goodCPU, "3A4\n", "\n", 1), true, errTotalsFormat},
		{"percpu no rates", strings.Split(goodCPU, "\n\n")[0] + "\n", true, io.ErrUnexpectedEOF},
		{"ip_vs_stats as percpu", good, true, errTotalsFormat},
		{"percpu as ip_vs_stats", goodCPU, false, errTotalsFormat},
		{"long line", strings.Repeat("x", 5000) + "\n", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.perCPU {
				_, _, err = parseTotalsPerCPU(strings.NewReader(tc.text))
			} else {
				_, err = parseTotals(strings.NewReader(tc.text))
			}
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func FuzzParseTotals(f *testing.F) {
	f.Add(readTestdata(f, "ip_vs_stats-6.12.txt"))
	f.Add(readTestdata(f, "ip_vs_stats_percpu-6.12.txt"))
	f.Add(formatTotals(Stats{Connections: 1 << 40}))
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		if st, err := parseTotals(strings.NewReader(text)); err == nil {
			// What parses prints back, in the kernel's format, to the same.
			if again, err := parseTotals(strings.NewReader(formatTotals(st))); err != nil || again != st {
				t.Errorf("%+v printed and parsed again: %+v, %v", st, again, err)
			}
		}
		if cpus, total, err := parseTotalsPerCPU(strings.NewReader(text)); err == nil {
			again, againTotal, err := parseTotalsPerCPU(strings.NewReader(formatTotalsPerCPU(cpus, total)))
			if err != nil || againTotal != total || !cmp.Equal(again, cpus) {
				t.Errorf("per-CPU %+v %+v printed and parsed again: %v", cpus, total, err)
			}
		}
	})
}
