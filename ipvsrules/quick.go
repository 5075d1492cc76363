package ipvsrules

import (
	"net/netip"

	"github.com/ipvs-go/ipvs"
)

// quick parses line into c, which must be the zero Command, if the line is
// one of the few forms that make up nearly all of a saved table: the lines
// Format (and ipvsadm -S -n) writes for TCP and UDP services of IPv4
// addresses and their servers, words separated by one space each:
//
//	-A -t 10.1.0.1:80 -s wlc                  (also -E)
//	-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 1  (also -e; -g, -i)
//	-d -t 10.1.0.1:80 -r 10.2.0.1:8080
//	-D -t 10.1.0.1:80
//
// with numeric addresses in their usual dotted form and a lower-case
// scheduler name. It reports whether it did; any other line, good or bad,
// is left to parseLine, and c is then untouched. On the lines it takes it
// gives what parseLine gives (FuzzQuick holds it to that), with a fraction
// of the work: a restore of a large table parses each line twice
// (ApplyText), and the parse is what it adds to the kernel's work.
func (p *Parser) quick(line string, c *Command) bool {
	if len(line) < 6 || line[0] != '-' || line[2] != ' ' {
		return false
	}
	var kind Kind
	switch line[1] {
	case 'A':
		kind = AddService
	case 'E':
		kind = EditService
	case 'D':
		kind = DeleteService
	case 'a':
		kind = AddServer
	case 'e':
		kind = EditServer
	case 'd':
		kind = DeleteServer
	default:
		return false
	}
	s := line[3:]
	var svc ipvs.Service
	switch {
	case len(s) > 3 && s[0] == '-' && s[1] == 't' && s[2] == ' ':
		svc.Protocol = ipvs.TCP
	case len(s) > 3 && s[0] == '-' && s[1] == 'u' && s[2] == ' ':
		svc.Protocol = ipvs.UDP
	default:
		return false
	}
	var ok bool
	// Port 0 is for persistent services only, which these lines are not.
	if svc.Address, svc.Port, s, ok = quickAddrPort(s[3:]); !ok || svc.Port == 0 {
		return false
	}
	opts := OptService
	var dst ipvs.Destination
	switch kind {
	case AddService, EditService:
		var sched string
		if sched, s, ok = quickArg(s, 's'); !ok || s != "" || !quickSched(sched) {
			return false
		}
		opts |= OptScheduler
		svc.Scheduler = sched
		svc.Netmask = ipvs.IPv4Mask(255, 255, 255, 255)
	case DeleteService:
		if s != "" {
			return false
		}
	default:
		var server string
		if server, s, ok = quickArg(s, 'r'); !ok {
			return false
		}
		var rest string
		if dst.Address, dst.Port, rest, ok = quickAddrPort(server); !ok || rest != "" {
			return false
		}
		opts |= OptServer
		if kind == DeleteServer {
			if s != "" {
				return false
			}
			break
		}
		if len(s) < 4 || s[0] != '-' || s[2] != ' ' {
			return false
		}
		switch s[1] {
		case 'm':
			dst.ForwardMethod = ipvs.NAT
		case 'g':
			dst.ForwardMethod = ipvs.DR
		case 'i':
			dst.ForwardMethod = ipvs.IPIP
		default:
			return false
		}
		if dst.ForwardMethod != ipvs.NAT {
			// ipvsadm: direct routing and tunnelling keep the
			// virtual port.
			dst.Port = svc.Port
		}
		var w string
		if w, s, ok = quickArg(s[3:], 'w'); !ok || s != "" {
			return false
		}
		n, ok := quickNumber(w, 10)
		if !ok || n > ipvs.MaxWeight {
			return false
		}
		dst.Weight = int(n)
		opts |= OptForward | OptWeight
	}
	c.Kind, c.Options, c.Service, c.Destination = kind, opts, svc, dst
	return true
}

// quickArg takes "-x word" from the start of s, and returns the word and
// what follows its space ("" at the end of the line).
func quickArg(s string, x byte) (word, rest string, ok bool) {
	if len(s) < 4 || s[0] != '-' || s[1] != x || s[2] != ' ' {
		return "", "", false
	}
	s = s[3:]
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == ' ':
			if i == 0 || i == len(s)-1 {
				return "", "", false
			}
			return s[:i], s[i+1:], true
		case s[i] < ' ' || s[i] == 0x7f:
			return "", "", false
		}
	}
	return s, "", s != ""
}

// quickAddrPort takes "a.b.c.d:port" from the start of s, which ends there
// or at a space, and returns what follows the space.
func quickAddrPort(s string) (netip.Addr, uint16, string, bool) {
	var a [4]byte
	i := 0
	for k := range 4 {
		start := i
		v := 0
		for i < len(s) && i-start < 3 && s[i] >= '0' && s[i] <= '9' {
			v = v*10 + int(s[i]-'0')
			i++
		}
		// inetAton reads a leading 0 as octal: those are for it.
		if i == start || v > 255 || s[start] == '0' && i-start > 1 {
			return netip.Addr{}, 0, "", false
		}
		a[k] = byte(v)
		sep := byte('.')
		if k == 3 {
			sep = ':'
		}
		if i == len(s) || s[i] != sep {
			return netip.Addr{}, 0, "", false
		}
		i++
	}
	end := i
	for end < len(s) && s[end] != ' ' {
		end++
	}
	port, ok := quickNumber(s[i:end], 5)
	if !ok || port > 65535 {
		return netip.Addr{}, 0, "", false
	}
	rest := ""
	if end < len(s) {
		rest = s[end+1:]
		if rest == "" {
			return netip.Addr{}, 0, "", false
		}
	}
	return netip.AddrFrom4(a), uint16(port), rest, true
}

// quickNumber parses 1 to max decimal digits.
func quickNumber(s string, max int) (int64, bool) {
	if s == "" || len(s) > max {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// quickSched reports whether s is a scheduler name the quick parse takes:
// lower-case letters, no longer than ipvsadm keeps.
func quickSched(s string) bool {
	if s == "" || len(s) > schedNameMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
