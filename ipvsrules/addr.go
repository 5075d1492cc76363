package ipvsrules

import (
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/internal/services"
)

// parseDecimal parses s as C's strtol(s, &end, 10) with the whole string
// consumed (ipvsadm's string_to_number): an optional sign and at least one
// decimal digit. ok is false for anything else and for values outside
// int64.
func parseDecimal(s string) (n int64, ok bool) {
	i, neg := 0, false
	// strtol skips leading white space; a token never has spaces or
	// tabs, but may have the other isspace characters.
	for i < len(s) && (s[i] == '\v' || s[i] == '\f') {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if i == len(s) {
		return 0, false
	}
	var u uint64
	for ; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// numberIn is ipvsadm's string_to_number: a decimal number in [min, max].
func numberIn(s string, min, max int64) (int64, bool) {
	n, ok := parseDecimal(s)
	if !ok || n < min || n > max {
		return 0, false
	}
	return n, true
}

// atoi is C's atoi: leading white space, a sign, digits up to the first
// other character; 0 if there are none. Values beyond int32 saturate (C
// leaves them undefined).
func atoi(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\v' || s[i] == '\f' || s[i] == '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var n int64
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<40 {
			n = n*10 + int64(s[i]-'0')
		}
	}
	if neg {
		n = -n
	}
	return n
}

// inetAton parses an IPv4 address as glibc's inet_aton does: one to four
// parts separated by dots, each decimal, octal (leading 0) or hexadecimal
// (leading 0x), the last part filling the remaining bytes ("10.1" is
// 10.0.0.1, "167772161" is 10.0.0.1). White space ends the address.
func inetAton(s string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	i := 0
	for {
		if i >= len(s) || !isDigit(s[i]) {
			return netip.Addr{}, false
		}
		base := uint64(10)
		if s[i] == '0' {
			base = 8
			if i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && isHex(s[i+2]) {
				base = 16
				i += 2
			}
		}
		var v uint64
		for i < len(s) {
			c := s[i]
			var d uint64
			switch {
			case c >= '0' && c <= '9' && uint64(c-'0') < base:
				d = uint64(c - '0')
			case base == 16 && c >= 'a' && c <= 'f':
				d = uint64(c-'a') + 10
			case base == 16 && c >= 'A' && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				goto endPart
			}
			v = v*base + d
			if v > 0xffffffff {
				return netip.Addr{}, false
			}
			i++
		}
	endPart:
		if n == 4 {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if i < len(s) && s[i] == '.' {
			if n == 4 {
				return netip.Addr{}, false
			}
			i++
			continue
		}
		break
	}
	if i < len(s) && !isSpace(s[i]) {
		return netip.Addr{}, false
	}
	var v uint32
	switch n {
	case 1:
		v = uint32(parts[0])
	case 2:
		if parts[0] > 0xff || parts[1] > 0xffffff {
			return netip.Addr{}, false
		}
		v = uint32(parts[0])<<24 | uint32(parts[1])
	case 3:
		if parts[0] > 0xff || parts[1] > 0xff || parts[2] > 0xffff {
			return netip.Addr{}, false
		}
		v = uint32(parts[0])<<24 | uint32(parts[1])<<16 | uint32(parts[2])
	case 4:
		if parts[0] > 0xff || parts[1] > 0xff || parts[2] > 0xff || parts[3] > 0xff {
			return netip.Addr{}, false
		}
		v = uint32(parts[0])<<24 | uint32(parts[1])<<16 | uint32(parts[2])<<8 | uint32(parts[3])
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// inetPton6 parses an IPv6 address as inet_pton(AF_INET6) does: no zone,
// no brackets. An IPv4-mapped address stays IPv6.
func inetPton6(s string) (netip.Addr, bool) {
	// An IPv6 address has two colons at least; "10.0.0.1:80" is not one,
	// and netip's error for it would cost an allocation.
	if strings.Count(s, ":") < 2 || strings.ContainsAny(s, "%[]") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

// inetPton4 parses a dotted quad as inet_pton(AF_INET) does: four decimal
// parts, no leading zeros.
func inetPton4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// hostPort is the result of ipvsadm's parse_service.
type hostPort struct {
	addr    netip.Addr
	port    uint16
	hasPort bool
}

// parseService is ipvsadm's parse_service: "host[:port]", "[v6]:port" or a
// bare IPv6 address; the port a number or a service name of protocol proto.
// ok is false where ipvsadm's result lacks SERVICE_ADDR.
func (p *Parser) parseService(buf string, proto ipvs.Protocol) (hostPort, bool) {
	var r hostPort
	if buf == "" || strDigits(buf) {
		return r, false
	}
	var port string
	hasPort := false
	if buf[0] == '[' {
		buf = buf[1:]
		end := strings.IndexByte(buf, ']')
		if end < 0 {
			return r, false
		}
		rest := buf[end+1:]
		buf = buf[:end]
		if !strings.HasPrefix(rest, ":") {
			return r, false
		}
		port, hasPort = rest[1:], true
	}
	if a, ok := inetPton6(buf); ok {
		r.addr = a
	} else {
		// ipvsadm looks for the port again, in what was inside the
		// brackets: "[10.0.0.1]:80" has no port for it.
		hasPort = false
		if i := strings.LastIndexByte(buf, ':'); i >= 0 {
			buf, port, hasPort = buf[:i], buf[i+1:], true
		}
		if a, ok := inetAton(buf); ok {
			r.addr = a
		} else if a, ok := p.lookupHost(buf); ok {
			r.addr = a
		} else {
			return r, false
		}
	}
	if hasPort {
		r.hasPort = true
		if n, ok := numberIn(port, 0, 65535); ok {
			r.port = uint16(n)
		} else if n, ok := p.lookupPort(port, proto); ok {
			r.port = n
		} else {
			return r, false
		}
	}
	return r, true
}

// strDigits is ipvsadm's str_is_digit: every byte a digit (true for "").
func strDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func (p *Parser) lookupHost(name string) (netip.Addr, bool) {
	if p.LookupHost == nil || name == "" {
		return netip.Addr{}, false
	}
	a, ok := p.LookupHost(name)
	if !ok || !a.Is4() {
		// ipvsadm's gethostbyname takes IPv4 answers only.
		return netip.Addr{}, false
	}
	return a, true
}

func (p *Parser) lookupPort(name string, proto ipvs.Protocol) (uint16, bool) {
	switch proto {
	case ipvs.TCP, ipvs.UDP, ipvs.SCTP:
	default:
		return 0, false
	}
	if name == "" {
		return 0, false
	}
	if p.LookupPort != nil {
		return p.LookupPort(name, proto)
	}
	return WellKnownPort(name, proto)
}

// wellKnown are the service names of Debian's /etc/services (netbase) that
// load balancers serve most, with their TCP and UDP ports (0: not that
// protocol). SCTP has none of them in netbase.
var wellKnown = map[string][2]uint16{
	"ftp-data":    {20, 0},
	"ftp":         {21, 0},
	"ssh":         {22, 0},
	"telnet":      {23, 0},
	"smtp":        {25, 0},
	"domain":      {53, 53},
	"http":        {80, 0},
	"www":         {80, 0},
	"kerberos":    {88, 88},
	"pop3":        {110, 0},
	"sunrpc":      {111, 111},
	"ntp":         {0, 123},
	"imap2":       {143, 0},
	"imap":        {143, 0},
	"snmp":        {161, 161},
	"ldap":        {389, 389},
	"https":       {443, 443},
	"submissions": {465, 0},
	"syslog":      {0, 514},
	"submission":  {587, 0},
	"ldaps":       {636, 636},
	"rsync":       {873, 0},
	"imaps":       {993, 0},
	"pop3s":       {995, 0},
	"socks":       {1080, 0},
	"openvpn":     {1194, 1194},
	"ms-sql-s":    {1433, 0},
	"radius":      {1812, 1812},
	"nfs":         {2049, 2049},
	"mysql":       {3306, 0},
	"sip":         {5060, 5060},
	"sip-tls":     {5061, 5061},
	"postgresql":  {5432, 0},
	"http-alt":    {8080, 0},
	"webcache":    {8080, 0},
}

// WellKnownPort is the default port lookup of a Parser: the ports of some
// common service names, as Debian's /etc/services lists them ("http",
// "https", "domain", "smtp", "ssh", "ldap", "mysql", "sip", ...). For the
// whole of a system's list, use ServicesFile.
func WellKnownPort(name string, proto ipvs.Protocol) (uint16, bool) {
	e, ok := wellKnown[name]
	if !ok {
		return 0, false
	}
	switch proto {
	case ipvs.TCP:
		return e[0], e[0] != 0
	case ipvs.UDP:
		return e[1], e[1] != 0
	}
	return 0, false
}

// ServicesFile reads a services(5) file, such as /etc/services, and returns
// a port lookup for Parser.LookupPort that answers as getservbyname(3)
// does from it: by name or alias, the first entry of that protocol wins.
func ServicesFile(r io.Reader) (func(name string, proto ipvs.Protocol) (uint16, bool), error) {
	type key struct {
		name  string
		proto ipvs.Protocol
	}
	m := map[key]uint16{}
	err := services.Each(r, func(names []string, port uint16, proto ipvs.Protocol) {
		for _, name := range names {
			k := key{name, proto}
			if _, dup := m[k]; !dup {
				m[k] = port
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return func(name string, proto ipvs.Protocol) (uint16, bool) {
		n, ok := m[key{name, proto}]
		return n, ok
	}, nil
}

// appendAddr appends a as glibc's inet_ntop writes it, which differs from
// netip's form for IPv4-compatible IPv6 addresses ("::1.2.3.4").
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		return a.AppendTo(b)
	}
	s := a.As16()
	var w [8]uint16
	for i := range w {
		w[i] = uint16(s[2*i])<<8 | uint16(s[2*i+1])
	}
	// The longest run of zero words (the first of equals), two or more.
	bestBase, bestLen := -1, 0
	for i := 0; i < 8; {
		if w[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && w[j] == 0 {
			j++
		}
		if j-i > bestLen {
			bestBase, bestLen = i, j-i
		}
		i = j
	}
	if bestLen < 2 {
		bestBase = -1
	}
	for i := 0; i < 8; i++ {
		if bestBase >= 0 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				b = append(b, ':')
			}
			continue
		}
		if i != 0 {
			b = append(b, ':')
		}
		if i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff)) {
			return netip.AddrFrom4([4]byte{s[12], s[13], s[14], s[15]}).AppendTo(b)
		}
		b = strconv.AppendUint(b, uint64(w[i]), 16)
	}
	if bestBase >= 0 && bestBase+bestLen == 8 {
		b = append(b, ':')
	}
	return b
}
