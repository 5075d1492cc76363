package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// The list formats, ipvsadm's FMT_* flags as the options that set them.
type format struct {
	numeric, stats, rate, thresholds, persistConn, noSort, exact, tunInfo bool
}

func formatOf(o ipvsrules.Options) format {
	return format{
		numeric:     o.Has(ipvsrules.OptNumeric),
		stats:       o.Has(ipvsrules.OptStats),
		rate:        o.Has(ipvsrules.OptRate),
		thresholds:  o.Has(ipvsrules.OptThresholds),
		persistConn: o.Has(ipvsrules.OptPersistentConn),
		noSort:      o.Has(ipvsrules.OptNoSort),
		exact:       o.Has(ipvsrules.OptExact),
		tunInfo:     o.Has(ipvsrules.OptTunInfo),
	}
}

// A lister writes ipvsadm's listings. Its names resolve addresses and
// ports unless the format is numeric.
type lister struct {
	w     io.Writer
	f     format
	names *resolver
	buf   []byte
}

func (l *lister) flush() error {
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	return err
}

// header is list_all's first line.
func (l *lister) header(info ipvs.Info) {
	l.buf = fmt.Appendf(l.buf, "IP Virtual Server version %d.%d.%d (size=%d)\n",
		info.Version.Major, info.Version.Minor, info.Version.Patch, info.ConnectionTableSize)
}

// title is ipvsadm's print_title.
func (l *lister) title() {
	f := l.f
	switch {
	case f.stats:
		l.buf = fmt.Appendf(l.buf, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f.rate:
		l.buf = fmt.Appendf(l.buf, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f.thresholds:
		l.buf = fmt.Appendf(l.buf, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f.persistConn:
		l.buf = fmt.Appendf(l.buf, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f.tunInfo:
		l.buf = append(l.buf, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"...)
	default:
		l.buf = append(l.buf, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"...)
	}
}

// services writes the services in ipvsadm's order (or the kernel's with
// --nosort).
func (l *lister) services(vs []ipvs.VirtualServiceStats) error {
	order := make([]int, len(vs))
	if l.f.noSort {
		for i := range order {
			order[i] = i
		}
	} else {
		ss := make([]ipvs.Service, len(vs))
		for i := range vs {
			ss[i] = vs[i].Service
		}
		order = ipvsrules.ServiceOrder(ss)
	}
	for _, i := range order {
		l.service(&vs[i].ServiceStats, vs[i].Destinations)
		if len(l.buf) > 64<<10 {
			if err := l.flush(); err != nil {
				return err
			}
		}
	}
	return l.flush()
}

func protocolName(p ipvs.Protocol) string {
	switch p {
	case ipvs.TCP:
		return "TCP"
	case ipvs.UDP:
		return "UDP"
	case ipvs.SCTP:
		return "SCTP"
	}
	return "???"
}

// service is ipvsadm's print_service_entry, without FMT_RULE.
func (l *lister) service(se *ipvs.ServiceStats, ds []ipvs.DestinationStats) {
	s := &se.Service
	f := l.f
	var name []byte
	if s.FirewallMark != 0 {
		name = append(name, "FWM  "...)
		name = strconv.AppendInt(name, int64(int32(s.FirewallMark)), 10) // "%d"
		if s.Family == ipvs.IPv6 {
			name = append(name, " IPv6"...)
		}
	} else {
		name = fmt.Appendf(name, "%-4s ", protocolName(s.Protocol))
		name = l.names.appendAddrPort(name, s.Address, s.Port, s.Protocol)
		if !s.Address.Is6() && len(name) > 33 {
			name = name[:33]
		}
	}
	switch {
	case f.stats:
		l.buf = fmt.Appendf(l.buf, "%-33s", name)
		st := &se.Stats
		for _, v := range [...]uint64{st.Connections, st.PacketsIn, st.PacketsOut, st.BytesIn, st.BytesOut} {
			l.largeNum(v)
		}
	case f.rate:
		l.buf = fmt.Appendf(l.buf, "%-33s", name)
		st := &se.Stats
		for _, v := range [...]uint64{st.ConnectionRate, st.PacketRateIn, st.PacketRateOut, st.ByteRateIn, st.ByteRateOut} {
			l.largeNum(v)
		}
	default:
		l.buf = append(l.buf, name...)
		l.buf = append(l.buf, ' ')
		l.buf = append(l.buf, s.Scheduler...)
		if s.Flags&(ipvs.FlagSched1|ipvs.FlagSched2|ipvs.FlagSched3) != 0 {
			l.buf = append(l.buf, " ("...)
			l.buf = appendSchedFlags(l.buf, s)
			l.buf = append(l.buf, ')')
		}
		if s.Flags&ipvs.FlagPersistent != 0 {
			l.buf = append(l.buf, " persistent "...)
			l.buf = strconv.AppendUint(l.buf, uint64(s.Timeout/time.Second), 10)
			if s.Netmask != (ipvs.Netmask{}) {
				l.buf = append(l.buf, " mask "...)
				l.buf = append(l.buf, s.Netmask.String()...)
			}
			if s.PersistenceEngine != "" {
				l.buf = append(l.buf, " pe "...)
				l.buf = append(l.buf, s.PersistenceEngine...)
			}
		}
		if s.Flags&ipvs.FlagOnePacket != 0 {
			l.buf = append(l.buf, " ops"...)
		}
	}
	l.buf = append(l.buf, '\n')

	order := make([]int, len(ds))
	if f.noSort {
		for i := range order {
			order[i] = i
		}
	} else {
		dd := make([]ipvs.Destination, len(ds))
		for i := range ds {
			dd[i] = ds[i].Destination
		}
		order = ipvsrules.DestinationOrder(dd)
	}
	for _, i := range order {
		l.destination(s, &ds[i])
	}
}

func (l *lister) destination(s *ipvs.Service, e *ipvs.DestinationStats) {
	f := l.f
	dname := l.names.appendAddrPort(nil, e.Address, e.Port, s.Protocol)
	if !e.Address.Is6() && len(dname) > 28 {
		dname = dname[:28]
	}
	switch {
	case f.stats:
		l.buf = fmt.Appendf(l.buf, "  -> %-28s", dname)
		st := &e.Stats
		for _, v := range [...]uint64{st.Connections, st.PacketsIn, st.PacketsOut, st.BytesIn, st.BytesOut} {
			l.largeNum(v)
		}
		l.buf = append(l.buf, '\n')
	case f.rate:
		st := &e.Stats
		l.buf = fmt.Appendf(l.buf, "  -> %-28s %8d %8d %8d", dname, st.ConnectionRate, st.PacketRateIn, st.PacketRateOut)
		l.largeNum(st.ByteRateIn)
		l.largeNum(st.ByteRateOut)
		l.buf = append(l.buf, '\n')
	case f.thresholds:
		l.buf = fmt.Appendf(l.buf, "  -> %-28s %-10d %-10d %-10d %-10d\n", dname,
			e.UpperThreshold, e.LowerThreshold, e.ActiveConnections, e.InactiveConnections)
	case f.persistConn:
		l.buf = fmt.Appendf(l.buf, "  -> %-28s %-9d %-11d %-10d %-10d\n", dname,
			uint32(e.Weight), e.PersistentConnections, e.ActiveConnections, e.InactiveConnections)
	case f.tunInfo:
		l.buf = fmt.Appendf(l.buf, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname,
			fwdName(e.ForwardMethod), tunInfo(&e.Destination), int32(e.Weight), e.ActiveConnections, e.InactiveConnections)
	default:
		l.buf = fmt.Appendf(l.buf, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname,
			fwdName(e.ForwardMethod), int32(e.Weight), e.ActiveConnections, e.InactiveConnections)
	}
}

// largeNum is ipvsadm's print_largenum.
func (l *lister) largeNum(i uint64) {
	if l.f.exact {
		n := len(strconv.FormatUint(i, 10))
		w := n + 1
		if n <= 8 {
			w = 9
		}
		l.buf = fmt.Appendf(l.buf, "%*d", w, i)
		return
	}
	switch {
	case i < 100000000:
		l.buf = fmt.Appendf(l.buf, "%9d", i)
	case i < 1000000000:
		l.buf = fmt.Appendf(l.buf, "%8dK", i/1000)
	case i < 100000000000:
		l.buf = fmt.Appendf(l.buf, "%8dM", i/1000000)
	case i < 100000000000000:
		l.buf = fmt.Appendf(l.buf, "%8dG", i/1000000000)
	default:
		l.buf = fmt.Appendf(l.buf, "%8dT", i/1000000000000)
	}
}

// appendSchedFlags is ipvsadm's print_sched_flags.
func appendSchedFlags(b []byte, s *ipvs.Service) []byte {
	start := len(b)
	flag := func(f ipvs.ServiceFlags, name string) {
		if s.Flags&f != 0 {
			if len(b) > start {
				b = append(b, ',')
			}
			b = append(b, name...)
		}
	}
	switch s.Scheduler {
	case ipvs.SourceHashing:
		flag(ipvs.FlagSHFallback, "sh-fallback")
		flag(ipvs.FlagSHPort, "sh-port")
	case ipvs.MaglevHashing:
		flag(ipvs.FlagMHFallback, "mh-fallback")
		flag(ipvs.FlagMHPort, "mh-port")
	default:
		flag(ipvs.FlagSched1, "flag-1")
		flag(ipvs.FlagSched2, "flag-2")
		flag(ipvs.FlagSched3, "flag-3")
	}
	return b
}

func fwdName(m ipvs.ForwardMethod) string {
	switch m {
	case ipvs.NAT:
		return "Masq"
	case ipvs.Local:
		return "Local"
	case ipvs.IPIP:
		return "Tunnel"
	case ipvs.DR:
		return "Route"
	}
	return "(null)"
}

// tunInfo is ipvsadm's fwd_tun_info, "n/a" where it has none.
func tunInfo(d *ipvs.Destination) string {
	if d.ForwardMethod != ipvs.IPIP {
		return "n/a"
	}
	flags := [...]string{"-c", "+c", "r+c"}
	fl := "(null)"
	if int(d.TunnelChecksum) < len(flags) {
		fl = flags[d.TunnelChecksum]
	}
	var s string
	switch d.TunnelType {
	case ipvs.TunnelIPIP:
		s = "ipip"
	case ipvs.TunnelGUE:
		s = fmt.Sprintf("gue:%d:%s", d.TunnelPort, fl)
	case ipvs.TunnelGRE:
		s = "gre:" + fl
	default:
		return "n/a"
	}
	if len(s) > 15 { // snprintf(info, 16, ...)
		s = s[:15]
	}
	return s
}

// timeouts is ipvsadm's list_timeout.
func (l *lister) timeouts(t ipvs.Timeouts) error {
	l.buf = fmt.Appendf(l.buf, "Timeout (tcp tcpfin udp): %d %d %d\n",
		int64(t.TCP/time.Second), int64(t.TCPFin/time.Second), int64(t.UDP/time.Second))
	return l.flush()
}

// daemons is ipvsadm's list_daemon.
func (l *lister) daemons(ds []ipvs.SyncDaemon) error {
	for _, st := range [...]ipvs.DaemonState{ipvs.Master, ipvs.Backup} {
		for _, d := range ds {
			if d.State != st {
				continue
			}
			l.buf = fmt.Appendf(l.buf, "%s sync daemon (mcast=%s, syncid=%d", st, d.Interface, d.SyncID)
			if d.MaxLength != 0 {
				l.buf = fmt.Appendf(l.buf, ", maxlen=%d", d.MaxLength)
			}
			if d.Group.IsValid() {
				l.buf = fmt.Appendf(l.buf, ", group=%s", d.Group)
			}
			if d.Port != 0 {
				l.buf = fmt.Appendf(l.buf, ", port=%d", d.Port)
			}
			if d.TTL != 0 {
				l.buf = fmt.Appendf(l.buf, ", ttl=%d", d.TTL)
			}
			l.buf = append(l.buf, ")\n"...)
		}
	}
	return l.flush()
}

// connHeader is list_conn's title.
func (l *lister) connHeader() {
	l.buf = append(l.buf, "IPVS connection entries\n"...)
	if l.f.persistConn {
		l.buf = fmt.Appendf(l.buf, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		l.buf = fmt.Appendf(l.buf, "pro expire %-11s %-18s %-18s %s\n",
			"state", "source", "virtual", "destination")
	}
}

// connection is ipvsadm's print_conn.
func (l *lister) connection(c *ipvs.Connection) {
	proto := "IP"
	switch c.Protocol {
	case ipvs.TCP, ipvs.UDP, ipvs.SCTP:
		proto = protocolName(c.Protocol)
	}
	vaddr := c.Virtual
	if c.FirewallMark != 0 || !vaddr.IsValid() {
		// A firewall-mark template: the kernel prints the mark in place
		// of the virtual address, which ipvsadm reads as an address.
		var a netip.Addr
		m := c.FirewallMark
		if c.Client.Addr().Is6() {
			var b [16]byte
			b[0], b[1], b[2], b[3] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
			a = netip.AddrFrom16(b)
		} else {
			a = netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
		}
		vaddr = netip.AddrPortFrom(a, c.Virtual.Port())
	}
	cname := l.names.appendAddrPort(nil, c.Client.Addr(), c.Client.Port(), c.Protocol)
	vname := l.names.appendAddrPort(nil, vaddr.Addr(), vaddr.Port(), c.Protocol)
	dname := l.names.appendAddrPort(nil, c.Destination.Addr(), c.Destination.Port(), c.Protocol)
	secs := int64(c.Expires / time.Second)
	expire := fmt.Sprintf("%02d:%02d", secs/60, secs%60)
	state := c.State.String()
	if l.f.persistConn && c.PEName != "" {
		l.buf = fmt.Appendf(l.buf, "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n",
			proto, expire, state, cname, vname, dname, c.PEName, c.PEData)
	} else {
		l.buf = fmt.Appendf(l.buf, "%-3s %-6s %-11s %-18s %-18s %s\n",
			proto, expire, state, cname, vname, dname)
	}
}
