package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// list is ipvsadm -L (and no arguments).
func (m *cmd) list(ctx context.Context, c ipvsrules.Command) int {
	o := c.Options
	l := &lister{w: m.stdout, f: formatOf(o), names: newResolver(o.Has(ipvsrules.OptNumeric))}
	switch {
	case o.Has(ipvsrules.OptConnection):
		return m.listConnections(ctx, l)
	case o.Has(ipvsrules.OptService):
		s, err := m.c.Service(ctx, c.Service)
		var ds []ipvs.DestinationStats
		if err == nil {
			ds, err = m.c.Destinations(ctx, s.Service)
		}
		if err != nil {
			fmt.Fprintf(m.stderr, "%s\n", kernelMessage(ipvsrules.List, err))
			return 1
		}
		vs := []ipvs.VirtualServiceStats{{ServiceStats: s, Destinations: ds}}
		if m.ext.json {
			return m.writeJSON(jsonTable(nil, vs, l.f.noSort))
		}
		l.title()
		return m.done(l.services(vs))
	case o.Has(ipvsrules.OptTimeout):
		t, err := m.c.Timeouts(ctx)
		if err != nil {
			return 1
		}
		if m.ext.json {
			return m.writeJSON(jsonTimeouts(t))
		}
		return m.done(l.timeouts(t))
	case o.Has(ipvsrules.OptDaemon):
		ds, err := m.c.SyncDaemons(ctx)
		if err != nil {
			return 1
		}
		if m.ext.json {
			return m.writeJSON(jsonDaemons(ds))
		}
		return m.done(l.daemons(ds))
	}
	vs, err := m.c.VirtualServices(ctx)
	if err != nil {
		fmt.Fprintf(m.stderr, "%s\n", kernelMessage(ipvsrules.List, err))
		return 1
	}
	if m.ext.json {
		return m.writeJSON(jsonTable(&m.info, vs, l.f.noSort))
	}
	l.header(m.info)
	l.title()
	return m.done(l.services(vs))
}

func (m *cmd) done(err error) int {
	if err != nil {
		fmt.Fprintf(m.stderr, "%s: %v\n", m.prog, err)
		return 1
	}
	return 0
}

func (m *cmd) listConnections(ctx context.Context, l *lister) int {
	var conns []ipvs.Connection
	for c, err := range m.c.ConnectionsWithPE(ctx) {
		if err != nil {
			fmt.Fprintf(m.stderr, "cannot open file /proc/net/ip_vs_conn\n")
			return 1
		}
		conns = append(conns, c)
	}
	if m.ext.json {
		return m.writeJSON(jsonConnections(conns))
	}
	l.connHeader()
	for i := range conns {
		l.connection(&conns[i])
		if len(l.buf) > 64<<10 {
			if err := l.flush(); err != nil {
				return m.done(err)
			}
		}
	}
	return m.done(l.flush())
}

// save is ipvsadm -S.
func (m *cmd) save(ctx context.Context, c ipvsrules.Command) int {
	vs, err := m.c.VirtualServices(ctx)
	if err != nil {
		fmt.Fprintf(m.stderr, "%s\n", kernelMessage(ipvsrules.List, err))
		return 1
	}
	text := ipvsrules.Format(ipvs.Desired(vs), ipvsrules.FormatOptions{})
	if !c.Options.Has(ipvsrules.OptNumeric) {
		text = nameRules(text, newResolver(false))
	}
	_, err = m.stdout.Write(text)
	return m.done(err)
}

// nameRules rewrites the addresses and ports of rules text as names, as
// ipvsadm -S without -n writes them.
func nameRules(text []byte, r *resolver) []byte {
	var out []byte
	for line := range bytes.Lines(text) {
		w := strings.Fields(string(line))
		proto := ipvs.Protocol(0)
		for i := 0; i+1 < len(w); i++ {
			switch w[i] {
			case "-t":
				proto = ipvs.TCP
			case "-u":
				proto = ipvs.UDP
			case "--sctp-service":
				proto = ipvs.SCTP
			case "-r":
			default:
				continue
			}
			if ap, err := netip.ParseAddrPort(w[i+1]); err == nil {
				w[i+1] = string(r.appendAddrPort(nil, ap.Addr(), ap.Port(), proto))
			}
		}
		out = append(out, strings.Join(w, " ")...)
		out = append(out, '\n')
	}
	return out
}

// restore is ipvsadm -R: every line checked first, then applied through
// ipvsrules.ApplyText, a chunk at a time.
func (m *cmd) restore(ctx context.Context) int {
	// Little memory stays live (the text and a chunk of changes), and the
	// rest is garbage of a short process: collect only if the heap reaches
	// 256 MiB.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(256 << 20))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	in := &readErr{r: m.stdin}
	res, err := m.parser().ApplyText(ctx, m.c, in)
	if in.err != nil {
		fmt.Fprintf(m.stderr, "%s: %v\n", m.prog, in.err)
		return 2
	}
	var ses ipvsrules.SyntaxErrors
	if errors.As(err, &ses) && len(ses) > 0 {
		for _, se := range ses {
			fmt.Fprintf(m.stderr, "%s\n", se)
		}
		return ses[0].Status
	}
	for _, f := range res.Failed {
		fmt.Fprintf(m.stderr, "%s\n", kernelMessage(f.Kind, f.Err))
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "%s: %v\n", m.prog, err)
		return 1
	}
	if n := len(res.Failed); n > 0 && res.Failed[n-1].Index == res.Commands-1 {
		return 255 // ipvsadm -R exits with the last line's status
	}
	return 0
}

// readErr is a reader that keeps the error of r.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// An ownSpec is one --owns: a prefix of service addresses or a range of
// firewall marks.
type ownSpec struct {
	prefix       netip.Prefix
	markLo, mark uint32
}

func parseOwn(s string) (ownSpec, error) {
	if rest, ok := strings.CutPrefix(s, "fwmark:"); ok {
		lo, hi, isRange := strings.Cut(rest, "-")
		a, err1 := strconv.ParseUint(lo, 0, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 0, 32)
		}
		if err1 != nil || err2 != nil || a == 0 || b < a {
			return ownSpec{}, fmt.Errorf("--owns %s: want fwmark:N or fwmark:LO-HI", s)
		}
		return ownSpec{markLo: uint32(a), mark: uint32(b)}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return ownSpec{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return ownSpec{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	return ownSpec{}, fmt.Errorf("--owns %s: want an address, a prefix (10.0.0.0/24) or fwmark:LO-HI", s)
}

func (o ownSpec) owns(s ipvs.Service) bool {
	if s.FirewallMark != 0 {
		return o.mark != 0 && s.FirewallMark >= o.markLo && s.FirewallMark <= o.mark
	}
	return o.prefix.IsValid() && o.prefix.Contains(s.Address)
}

// reconcile is --reconcile FILE: make the table equal to the file's rules
// through ipvs.Client.Reconcile, within the scope of --owns.
func (m *cmd) reconcile(ctx context.Context) int {
	var r io.Reader = m.stdin
	if m.ext.reconcile != "-" {
		f, err := os.Open(m.ext.reconcile)
		if err != nil {
			fmt.Fprintf(m.stderr, "%s: %v\n", m.prog, err)
			return 2
		}
		defer f.Close()
		r = f
	}
	p := m.parser()
	cmds, err := p.Parse(r)
	var desired []ipvs.VirtualService
	if err == nil {
		desired, err = ipvsrules.Desired(cmds)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "%s\n", err)
		return 2
	}
	var opts ipvs.ReconcileOptions
	if len(m.ext.owns) > 0 {
		opts.Owns = func(s ipvs.Service) bool {
			for _, o := range m.ext.owns {
				if o.owns(s) {
					return true
				}
			}
			return false
		}
		for _, v := range desired {
			if !opts.Owns(v.Service) {
				fmt.Fprintf(m.stderr, "%s: the rules name %s, outside --owns\n", m.prog, v.Service)
				return 2
			}
		}
	}
	if m.ext.dryRun {
		cur, err := m.c.VirtualServices(ctx)
		if err != nil {
			fmt.Fprintf(m.stderr, "%s\n", kernelMessage(ipvsrules.List, err))
			return 1
		}
		for _, ch := range plan(ipvs.Desired(cur), desired, opts.Owns) {
			io.WriteString(m.stdout, changeCommand(ch))
		}
		return 0
	}
	res, err := m.c.Reconcile(ctx, desired, opts)
	status := 0
	for i, ch := range res.Changes {
		if res.Errors[i] != nil {
			fmt.Fprintf(m.stderr, "%s# %v\n", changeCommand(ch), res.Errors[i])
			status = 1
		}
	}
	if err != nil && status == 0 {
		fmt.Fprintf(m.stderr, "%s: %v\n", m.prog, err)
		status = 1
	}
	return status
}
