package ipvsrules

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/ipvs-go/ipvs"
)

// FormatOptions tune Format.
type FormatOptions struct {
	// Lossless writes what ipvsadm -S -n leaves out, so that parsing the
	// text with Parser.Extensions gives back every field (see the package
	// documentation): destination thresholds (-x, -y), the scheduler
	// flags ipvsadm does not name, a netmask or timeout without
	// persistence, the Local forwarding method, the port of a DR or IPIP
	// destination that differs from its service's, and firewall marks
	// above 2147483647 as themselves (ipvsadm 1.31 prints them negative).
	// ipvsadm -R refuses the extension options.
	Lossless bool
}

// Format returns vs as ipvsadm 1.31's "ipvsadm -S -n" writes it: byte for
// byte the same text for the same table, services and destinations sorted
// as ipvsadm sorts them (see the package documentation). vs is what
// ipvs.Desired makes of ipvs.Client.VirtualServices, or a desired state;
// Format does not change it.
func Format(vs []ipvs.VirtualService, o FormatOptions) []byte {
	n := 0
	for _, v := range vs {
		n += 48 + 64*len(v.Destinations)
	}
	return AppendFormat(make([]byte, 0, n), vs, o)
}

// AppendFormat appends what Format returns to b.
func AppendFormat(b []byte, vs []ipvs.VirtualService, o FormatOptions) []byte {
	order := make([]int, len(vs))
	for i := range order {
		order[i] = i
	}
	mergeSort(order, func(i, j int) int { return cmpServices(&vs[i].Service, &vs[j].Service) })
	var dorder, tmp []int
	var name []byte
	for _, i := range order {
		s := &vs[i].Service
		name = appendServiceName(name[:0], s, o)
		b = appendServiceLine(b, s, name, o)
		ds := vs[i].Destinations
		dorder = dorder[:0]
		for j := range ds {
			dorder = append(dorder, j)
		}
		tmp = mergeSortTmp(dorder, tmp, func(x, y int) int { return cmpDests(&ds[x], &ds[y]) })
		for _, j := range dorder {
			b = appendDestLine(b, s, &ds[j], name, o)
		}
	}
	return b
}

// appendServiceName appends the service's options as ipvsadm writes them
// after -A and -a: "-t 10.0.0.1:80", "-f 100 -6".
func appendServiceName(b []byte, s *ipvs.Service, o FormatOptions) []byte {
	if s.FirewallMark != 0 {
		b = append(b, "-f "...)
		if o.Lossless {
			b = strconv.AppendUint(b, uint64(s.FirewallMark), 10)
		} else {
			b = strconv.AppendInt(b, int64(int32(s.FirewallMark)), 10) // ipvsadm's "%d"
		}
		if s.Family == ipvs.IPv6 {
			b = append(b, " -6"...)
		}
		return b
	}
	switch s.Protocol {
	case ipvs.TCP:
		b = append(b, "-t "...)
	case ipvs.UDP:
		b = append(b, "-u "...)
	case ipvs.SCTP:
		b = append(b, "--sctp-service "...)
	default:
		b = append(b, "--xxx-service "...)
	}
	return appendAddrPort(b, s.Address, s.Port)
}

func appendAddrPort(b []byte, a netip.Addr, port uint16) []byte {
	if a.Is4() {
		b = appendAddr(b, a)
	} else {
		b = append(b, '[')
		b = appendAddr(b, a)
		b = append(b, ']')
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(port), 10)
}

const schedFlags = ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3

func appendServiceLine(b []byte, s *ipvs.Service, name []byte, o FormatOptions) []byte {
	b = append(b, "-A "...)
	b = append(b, name...)
	b = appendName(b, " -s ", " --scheduler=", s.Scheduler, o)
	persistent := s.Flags&ipvs.FlagPersistent != 0
	if persistent {
		b = append(b, " -p "...)
		b = strconv.AppendUint(b, uint64(s.Timeout/time.Second), 10)
		if s.Netmask != (ipvs.Netmask{}) {
			b = append(b, " -M "...)
			b = append(b, s.Netmask.String()...)
		}
	}
	if s.PersistenceEngine != "" {
		b = appendName(b, " --pe ", " --pe=", s.PersistenceEngine, o)
	}
	if s.Flags&ipvs.FlagOnePacket != 0 {
		b = append(b, " -o"...)
	}
	if s.Flags&schedFlags != 0 {
		b = append(b, " -b "...)
		b = appendSchedFlags(b, s, o.Lossless)
	}
	if o.Lossless && !persistent {
		if s.Netmask != (ipvs.Netmask{}) {
			b = append(b, " -M "...)
			b = append(b, s.Netmask.String()...)
		}
		if s.Timeout != 0 {
			b = append(b, " --svc-timeout "...)
			b = strconv.AppendUint(b, uint64(s.Timeout/time.Second), 10)
		}
	}
	return append(b, '\n')
}

// appendName appends a scheduler or engine name after its option. The rules
// text reader drops every word "ipvsadm", so Lossless attaches that name to
// its option.
func appendName(b []byte, opt, attached, name string, o FormatOptions) []byte {
	if o.Lossless && name == "ipvsadm" {
		opt = attached
	}
	b = append(b, opt...)
	return append(b, name...)
}

// appendSchedFlags is ipvsadm's print_sched_flags; lossless adds the flags
// it does not name for sh and mh.
func appendSchedFlags(b []byte, s *ipvs.Service, lossless bool) []byte {
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
		if lossless {
			flag(ipvs.FlagSched3, "flag-3")
		}
	case ipvs.MaglevHashing:
		flag(ipvs.FlagMHFallback, "mh-fallback")
		flag(ipvs.FlagMHPort, "mh-port")
		if lossless {
			flag(ipvs.FlagSched3, "flag-3")
		}
	default:
		flag(ipvs.FlagSched1, "flag-1")
		flag(ipvs.FlagSched2, "flag-2")
		flag(ipvs.FlagSched3, "flag-3")
	}
	return b
}

func appendDestLine(b []byte, s *ipvs.Service, d *ipvs.Destination, name []byte, o FormatOptions) []byte {
	b = append(b, "-a "...)
	b = append(b, name...)
	b = append(b, " -r "...)
	b = appendAddrPort(b, d.Address, d.Port)
	switch d.ForwardMethod {
	case ipvs.NAT:
		b = append(b, " -m"...)
	case ipvs.IPIP:
		b = append(b, " -i"...)
	case ipvs.Local:
		if o.Lossless {
			b = append(b, " --local-node"...)
		} else {
			b = append(b, " -g"...)
		}
	default:
		b = append(b, " -g"...)
	}
	b = append(b, " -w "...)
	b = strconv.AppendInt(b, int64(d.Weight), 10)
	if d.ForwardMethod == ipvs.IPIP {
		switch d.TunnelType {
		case ipvs.TunnelGRE:
			b = append(b, " --tun-type gre "...)
			b = appendTunFlags(b, d.TunnelChecksum)
		case ipvs.TunnelGUE:
			b = append(b, " --tun-type gue --tun-port "...)
			b = strconv.AppendUint(b, uint64(d.TunnelPort), 10)
			b = append(b, ' ')
			b = appendTunFlags(b, d.TunnelChecksum)
		case ipvs.TunnelIPIP:
			b = append(b, " --tun-type ipip"...)
		}
	}
	if o.Lossless {
		if s.FirewallMark == 0 && (d.ForwardMethod == ipvs.DR || d.ForwardMethod == ipvs.IPIP) && d.Port != s.Port {
			b = append(b, " --keep-port"...)
		}
		if d.UpperThreshold != 0 {
			b = append(b, " -x "...)
			b = strconv.AppendUint(b, uint64(d.UpperThreshold), 10)
		}
		if d.LowerThreshold != 0 {
			b = append(b, " -y "...)
			b = strconv.AppendUint(b, uint64(d.LowerThreshold), 10)
		}
	}
	return append(b, '\n')
}

func appendTunFlags(b []byte, c ipvs.TunnelChecksum) []byte {
	switch c {
	case ipvs.TunnelChecksumOn:
		return append(b, "--tun-csum"...)
	case ipvs.TunnelChecksumRemote:
		return append(b, "--tun-remcsum"...)
	}
	return append(b, "--tun-nocsum"...)
}

// addrWords returns a's 32-bit words in host order as libipvs holds them
// in a union nf_inet_addr: an IPv4 address in the first, the rest zero.
func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b := a.As4()
		w[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return w
}

func familyCode(s *ipvs.Service) int {
	if s.FirewallMark != 0 {
		return int(s.Family)
	}
	if s.Address.Is6() {
		return int(ipvs.IPv6)
	}
	return int(ipvs.IPv4)
}

// cmpServices is libipvs's ipvs_cmp_services. Its differences of unsigned
// 32-bit values are taken as a signed int, so it is not a consistent order
// (10.0.0.1 sorts after 200.0.0.1, yet after 100.0.0.1): mergeSort then
// reproduces glibc's result exactly.
func cmpServices(a, b *ipvs.Service) int {
	if r := int32(a.FirewallMark - b.FirewallMark); r != 0 {
		return int(r)
	}
	af, bf := familyCode(a), familyCode(b)
	if r := af - bf; r != 0 {
		return r
	}
	if r := int(a.Protocol) - int(b.Protocol); r != 0 {
		return r
	}
	wa, wb := addrWords(a.Address), addrWords(b.Address)
	n := 1
	if af == int(ipvs.IPv6) {
		n = 4
	}
	for i := range n {
		if r := int32(wa[i] - wb[i]); r != 0 {
			return int(r)
		}
	}
	return int(a.Port) - int(b.Port)
}

// cmpDests is libipvs's ipvs_cmp_dests: the first destination's family
// decides how many words of the addresses are compared.
func cmpDests(a, b *ipvs.Destination) int {
	wa, wb := addrWords(a.Address), addrWords(b.Address)
	n := 1
	if a.Address.Is6() {
		n = 4
	}
	for i := range n {
		if r := int32(wa[i] - wb[i]); r != 0 {
			return int(r)
		}
	}
	return int(a.Port) - int(b.Port)
}

// mergeSort sorts x as glibc's qsort does (its msort_with_tmp: top-down,
// the first half n/2, ties to the left), which the order of an
// inconsistent comparison depends on.
func mergeSort(x []int, cmp func(a, b int) int) {
	mergeSortTmp(x, nil, cmp)
}

func mergeSortTmp(x, tmp []int, cmp func(a, b int) int) []int {
	if cap(tmp) < len(x) {
		tmp = make([]int, len(x))
	}
	msort(x, tmp[:len(x)], cmp)
	return tmp
}

func msort(b, tmp []int, cmp func(a, b int) int) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msort(b1, tmp, cmp)
	msort(b2, tmp, cmp)
	t := tmp[:0]
	for len(b1) > 0 && len(b2) > 0 {
		if cmp(b1[0], b2[0]) <= 0 {
			t = append(t, b1[0])
			b1 = b1[1:]
		} else {
			t = append(t, b2[0])
			b2 = b2[1:]
		}
	}
	t = append(t, b1...)
	copy(b, t) // what is left of b2 is in place already
}
