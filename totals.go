package ipvs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Totals are the traffic totals of IPVS in a network namespace, what
// /proc/net/ip_vs_stats and /proc/net/ip_vs_stats_percpu show: every packet
// IPVS handled, whether or not its service still exists.
type Totals struct {
	// Stats are the counters since the namespace's IPVS started or the
	// last ZeroAll, and the rates, as the estimator folded them in (about
	// every two seconds).
	Stats Stats
	// PerCPU are the counters of each possible CPU, counted as packets
	// arrive and never zeroed (not even by ZeroAll); their rates are zero.
	// Nil where the kernel has no /proc/net/ip_vs_stats_percpu.
	PerCPU []CPUStats
}

// CPUStats are the counters of one CPU.
type CPUStats struct {
	CPU   int
	Stats Stats
}

// Totals reads the IPVS traffic totals of the Client's namespace. It needs
// no capability.
func (c *Client) Totals(ctx context.Context) (Totals, error) { return c.c.totals(ctx) }

// errTotalsFormat is the error of a totals file that is not in the
// kernel's format.
var errTotalsFormat = errors.New("not in the format of /proc/net/ip_vs_stats")

// totalsScanner reads the lines of a totals file, counting them for errors.
type totalsScanner struct {
	s    *bufio.Scanner
	line int
}

func newTotalsScanner(r io.Reader) *totalsScanner {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 512), 4096)
	return &totalsScanner{s: s}
}

// next returns the next line, io.ErrUnexpectedEOF at the end.
func (t *totalsScanner) next() (string, error) {
	if !t.s.Scan() {
		if err := t.s.Err(); err != nil {
			return "", fmt.Errorf("line %d: %w", t.line+1, err)
		}
		return "", fmt.Errorf("line %d: %w", t.line+1, io.ErrUnexpectedEOF)
	}
	t.line++
	return t.s.Text(), nil
}

// header reads a header line whose first field is first.
func (t *totalsScanner) header(first string) error {
	l, err := t.next()
	if err != nil {
		return err
	}
	if f := strings.Fields(l); len(f) == 0 || f[0] != first {
		return fmt.Errorf("line %d: %q: %w", t.line, l, errTotalsFormat)
	}
	return nil
}

// values reads a line of len(dst) hex numbers after the given prefix
// field ("" for none) and returns that field.
func (t *totalsScanner) values(dst []*uint64, prefix bool) (string, error) {
	l, err := t.next()
	if err != nil {
		return "", err
	}
	f := strings.Fields(l)
	var first string
	if prefix && len(f) > 0 {
		first, f = f[0], f[1:]
	}
	if len(f) != len(dst) {
		return "", fmt.Errorf("line %d: %q: %w", t.line, l, errTotalsFormat)
	}
	for i, s := range f {
		v, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			return "", fmt.Errorf("line %d: %q: %w", t.line, l, errTotalsFormat)
		}
		*dst[i] = v
	}
	return first, nil
}

func counters(s *Stats) []*uint64 {
	return []*uint64{&s.Connections, &s.PacketsIn, &s.PacketsOut, &s.BytesIn, &s.BytesOut}
}

func rates(s *Stats) []*uint64 {
	return []*uint64{&s.ConnectionRate, &s.PacketRateIn, &s.PacketRateOut, &s.ByteRateIn, &s.ByteRateOut}
}

// parseTotals parses /proc/net/ip_vs_stats: two header lines, the five
// counters, an empty line, a header and the five rates, all in hex.
func parseTotals(r io.Reader) (Stats, error) {
	var st Stats
	t := newTotalsScanner(r)
	if err := t.header("Total"); err != nil {
		return Stats{}, err
	}
	if err := t.header("Conns"); err != nil {
		return Stats{}, err
	}
	if _, err := t.values(counters(&st), false); err != nil {
		return Stats{}, err
	}
	if err := t.blankThen("Conns/s"); err != nil {
		return Stats{}, err
	}
	if _, err := t.values(rates(&st), false); err != nil {
		return Stats{}, err
	}
	return st, nil
}

// blankThen reads an empty line, then a header starting with first.
func (t *totalsScanner) blankThen(first string) error {
	l, err := t.next()
	if err != nil {
		return err
	}
	if strings.TrimSpace(l) != "" {
		return fmt.Errorf("line %d: %q: %w", t.line, l, errTotalsFormat)
	}
	return t.header(first)
}

// parseTotalsPerCPU parses /proc/net/ip_vs_stats_percpu: two header lines,
// a line per possible CPU (its number and five counters), the total ("~"
// and five counters), an empty line, a header and the five rates.
func parseTotalsPerCPU(r io.Reader) ([]CPUStats, Stats, error) {
	var cpus []CPUStats
	var total Stats
	t := newTotalsScanner(r)
	if err := t.header("Total"); err != nil {
		return nil, Stats{}, err
	}
	if err := t.header("CPU"); err != nil {
		return nil, Stats{}, err
	}
	for {
		var st Stats
		first, err := t.values(counters(&st), true)
		if err != nil {
			return nil, Stats{}, err
		}
		if first == "~" {
			total = st
			break
		}
		cpu, err := strconv.ParseUint(first, 16, 31)
		if err != nil {
			return nil, Stats{}, fmt.Errorf("line %d: CPU %q: %w", t.line, first, errTotalsFormat)
		}
		cpus = append(cpus, CPUStats{CPU: int(cpu), Stats: st})
	}
	if err := t.blankThen("Conns/s"); err != nil {
		return nil, Stats{}, err
	}
	if _, err := t.values(rates(&total), false); err != nil {
		return nil, Stats{}, err
	}
	return cpus, total, nil
}
