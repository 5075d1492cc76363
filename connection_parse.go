package ipvs

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"math"
	"math/bits"
	"net/netip"
	"os"
	"time"
)

// ParseConnections parses the kernel's /proc/net/ip_vs_conn or
// /proc/net/ip_vs_conn_sync format (told apart by the header line) from r,
// yielding each entry. It stops at the first malformed line with an *Error
// naming the line and matching os.ErrInvalid, or at the first read error.
// It allocates nothing per entry, but a string for PEData and an unknown
// PEName.
func ParseConnections(r io.Reader) iter.Seq2[Connection, error] {
	return func(yield func(Connection, error) bool) {
		s := newConnScanner(r)
		for {
			cn, ok, err := s.next()
			if err != nil {
				yield(Connection{}, err)
				return
			}
			if !ok || !yield(cn, nil) {
				return
			}
		}
	}
}

const connOp = "read connections"

// connReadSize is the read buffer: the kernel returns at most a page per
// read of a /proc file, a regular file as much as asked.
const connReadSize = 64 << 10

// connScanner reads the table a line at a time.
type connScanner struct {
	br   *bufio.Reader
	line int
	sync bool // the ip_vs_conn_sync format
	// noQuick turns connQuickHead off: for the tests that hold it to
	// the general parse.
	noQuick bool
}

func newConnScanner(r io.Reader) *connScanner {
	return &connScanner{br: bufio.NewReaderSize(r, connReadSize)}
}

// next returns the next entry, or ok false at the end.
func (s *connScanner) next() (cn Connection, ok bool, err error) {
	for {
		b, err := s.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return cn, false, s.errorf("longer than %d bytes", connReadSize)
		}
		if err != nil && err != io.EOF {
			return cn, false, &Error{Op: connOp, Err: err}
		}
		if len(b) == 0 && err == io.EOF {
			if s.line == 0 {
				return cn, false, s.errorf("no header line")
			}
			return cn, false, nil
		}
		s.line++
		if b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		} else if len(b) > 0 {
			// The kernel ends every line, even the last.
			return cn, false, s.errorf("no newline at the end")
		}
		if s.line == 1 {
			if err := s.header(b); err != nil {
				return cn, false, err
			}
			continue
		}
		if len(b) == 0 {
			return cn, false, s.errorf("empty line")
		}
		cn, err := s.parse(b)
		return cn, err == nil, err
	}
}

func (s *connScanner) errorf(format string, args ...any) error {
	return &Error{Op: connOp, Message: fmt.Sprintf("line %d: ", s.line) + fmt.Sprintf(format, args...), Err: os.ErrInvalid}
}

// header recognizes the first line of either file.
func (s *connScanner) header(b []byte) error {
	const (
		conn = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires"
		sync = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires"
	)
	switch {
	case string(b) == sync:
		s.sync = true
	case len(b) >= len(conn) && string(b[:len(conn)]) == conn:
		// Kernels from 2.6.37 add " PEName PEData".
	default:
		return s.errorf("not the header of /proc/net/ip_vs_conn or ip_vs_conn_sync: %q", connTruncate(b))
	}
	return nil
}

// connTruncate shortens b for an error message.
func connTruncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// connField returns the next space-separated field of *b and advances *b past
// it.
func connField(b *[]byte) []byte {
	p := *b
	i := 0
	for i < len(p) && p[i] == ' ' {
		i++
	}
	j := i
	for j < len(p) && p[j] != ' ' {
		j++
	}
	*b = p[j:]
	return p[i:j]
}

// parse decodes one entry line.
func (s *connScanner) parse(b []byte) (Connection, error) {
	var cn Connection
	var rest []byte
	ok := false
	if !s.noQuick {
		rest, ok = connQuickHead(b, &cn)
	}
	if !ok {
		rest = b
		proto := connField(&rest)
		p, ok := parseConnProtocol(proto)
		if !ok {
			return cn, s.errorf("unknown protocol %q", connTruncate(proto))
		}
		cn.Protocol = p
		var addrs [3]netip.AddrPort
		for i, name := range [3]string{"client", "virtual", "destination"} {
			a := connField(&rest)
			addr, ok := parseConnAddr(a)
			if !ok {
				return cn, s.errorf("bad %s address %q", name, connTruncate(a))
			}
			pt := connField(&rest)
			port, ok := connHex16(pt)
			if !ok {
				return cn, s.errorf("bad %s port %q", name, connTruncate(pt))
			}
			addrs[i] = netip.AddrPortFrom(addr, port)
		}
		cn.Client, cn.Virtual, cn.Destination = addrs[0], addrs[1], addrs[2]
	}
	st := connField(&rest)
	if len(st) == 0 {
		return cn, s.errorf("no state")
	}
	cn.State = parseConnectionState(st)
	if s.sync {
		o := connField(&rest)
		switch string(o) {
		case "LOCAL":
			cn.Origin = OriginLocal
		case "SYNC":
			cn.Origin = OriginSync
		default:
			return cn, s.errorf("bad origin %q", connTruncate(o))
		}
	}
	e := connField(&rest)
	secs, ok := connDecimal(e)
	if !ok {
		return cn, s.errorf("bad expiry %q", connTruncate(e))
	}
	// Saturated where a Duration ends (292 years).
	cn.Expires = time.Duration(min(secs, uint64(math.MaxInt64/time.Second))) * time.Second
	if !s.sync && len(rest) > 0 {
		// " NAME DATA": the data is the rest of the line, as the engine
		// printed it.
		if rest[0] != ' ' {
			return cn, s.errorf("bad persistence engine %q", connTruncate(rest))
		}
		rest = rest[1:]
		name := rest
		data := []byte(nil)
		for i, c := range rest {
			if c == ' ' {
				name, data = rest[:i], rest[i+1:]
				break
			}
		}
		if len(name) == 0 {
			return cn, s.errorf("bad persistence engine %q", connTruncate(rest))
		}
		if string(name) == "sip" {
			cn.PEName = "sip"
		} else {
			cn.PEName = string(name)
		}
		cn.PEData = string(data)
	} else if len(connField(&rest)) > 0 {
		return cn, s.errorf("unexpected text after the expiry")
	}
	cn.Template = cn.Client.Port() == 0
	if cn.Protocol == 0 {
		// A firewall-mark template: the mark in place of the virtual
		// address, in its first four bytes.
		v := cn.Virtual.Addr().As16()
		if cn.Virtual.Addr().Is4() {
			v4 := cn.Virtual.Addr().As4()
			copy(v[:4], v4[:])
		}
		cn.FirewallMark = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
		cn.Virtual = netip.AddrPort{}
	}
	return cn, nil
}

// connQuickHead decodes the head of the commonest line, a TCP or UDP entry
// of IPv4 addresses as the kernel prints it ("%-3s %08X %04X %08X %04X
// %08X %04X", upper-case digits, one space apart), at fixed places and
// without a field split, into cn; it returns the rest of the line, from
// the space before the state. Any other line is not ok, and goes to the
// general parse, which decodes what this one takes the same way.
func connQuickHead(b []byte, cn *Connection) ([]byte, bool) {
	const head = 45 // "TCP " + 3 * "AAAAAAAA PPPP " - the last space
	if len(b) <= head || b[3] != ' ' || b[12] != ' ' || b[17] != ' ' || b[26] != ' ' ||
		b[31] != ' ' || b[40] != ' ' || b[head] != ' ' {
		return nil, false
	}
	switch string(b[:3]) {
	case "TCP":
		cn.Protocol = TCP
	case "UDP":
		cn.Protocol = UDP
	default:
		return nil, false
	}
	a1, p1 := connHex8(b[4:12]), connHex4(b[13:17])
	a2, p2 := connHex8(b[18:26]), connHex4(b[27:31])
	a3, p3 := connHex8(b[32:40]), connHex4(b[41:45])
	if (a1|p1|a2|p2|a3|p3)>>32 != 0 {
		cn.Protocol = 0
		return nil, false
	}
	ap := func(a, p uint64) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), uint16(p))
	}
	cn.Client, cn.Virtual, cn.Destination = ap(a1, p1), ap(a2, p2), ap(a3, p3)
	return b[head:], true
}

// connHex8 decodes 8 digits 0-9 A-F, all at once in a 64-bit word: the
// value, or bit 32 set if a byte is not such a digit.
func connHex8(b []byte) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := binary.LittleEndian.Uint64(b) // the first digit in the low byte
	hi, lo := x>>4&(0x0f*ones), x&(0x0f*ones)
	// Per byte, bit 7 set when hi or lo (at most 15) is at least k; a
	// byte is zero when it is not at least 1.
	atLeast := func(v, k uint64) uint64 { return (v + (0x80-k)*ones) & highs }
	digit := ^atLeast(hi^0x03*ones, 1) & ^atLeast(lo, 10) & highs
	letter := ^atLeast(hi^0x04*ones, 1) & atLeast(lo, 1) & ^atLeast(lo, 7) & highs
	if digit|letter != highs {
		return 1 << 32
	}
	v := lo + (letter>>7)*9 // each byte its digit's value
	// Pairs of digits into bytes, then the four bytes together, the first
	// digit the highest.
	v = (v<<4 | v>>8) & 0x00ff00ff00ff00ff
	v = (v | v>>8) & 0x0000ffff0000ffff
	v = (v | v>>16) & 0xffffffff
	return uint64(bits.ReverseBytes32(uint32(v)))
}

// connHex4 is connHex8 for 4 digits.
func connHex4(b []byte) uint64 {
	var w [8]byte
	copy(w[:], "0000")
	copy(w[4:], b[:4])
	return connHex8(w[:])
}

// parseConnProtocol maps ip_vs_proto_name's names to protocol numbers.
func parseConnProtocol(b []byte) (Protocol, bool) {
	switch string(b) {
	case "TCP":
		return TCP, true
	case "UDP":
		return UDP, true
	case "SCTP":
		return SCTP, true
	case "IP":
		return 0, true
	case "ICMP":
		return 1, true
	case "IPIP":
		return 4, true
	case "GRE":
		return 47, true
	case "ICMPv6":
		return 58, true
	}
	if len(b) > 3 && string(b[:3]) == "IP_" {
		n, ok := connDecimal(b[3:])
		if ok && n <= 0xffff {
			return Protocol(n), true
		}
	}
	return 0, false
}

func connUnhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// connHex16 parses 1 to 4 hexadecimal digits.
func connHex16(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 4 {
		return 0, false
	}
	var n uint16
	for _, c := range b {
		d, ok := connUnhex(c)
		if !ok {
			return 0, false
		}
		n = n<<4 | uint16(d)
	}
	return n, true
}

// parseConnAddr parses an IPv4 address as 8 hexadecimal digits (%08X of
// the address in host order) or an IPv6 one as %pI6 prints it: eight
// colon-separated groups of up to 4 hexadecimal digits.
func parseConnAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 8 {
		var a [4]byte
		for i := range 4 {
			hi, ok1 := connUnhex(b[2*i])
			lo, ok2 := connUnhex(b[2*i+1])
			if !ok1 || !ok2 {
				return netip.Addr{}, false
			}
			a[i] = hi<<4 | lo
		}
		return netip.AddrFrom4(a), true
	}
	var a [16]byte
	g := 0
	for len(b) > 0 {
		if g == 8 {
			return netip.Addr{}, false
		}
		i := 0
		for i < len(b) && b[i] != ':' {
			i++
		}
		v, ok := connHex16(b[:i])
		if !ok {
			return netip.Addr{}, false
		}
		a[2*g], a[2*g+1] = byte(v>>8), byte(v)
		g++
		if i == len(b) {
			break
		}
		b = b[i+1:]
		if len(b) == 0 { // a trailing colon
			return netip.Addr{}, false
		}
	}
	if g != 8 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(a), true
}

// connDecimal parses an unsigned decimal number of at most 20 digits that
// fits a uint64 (the kernel prints the expiry as an unsigned int; kernels
// before 4.x printed an unsigned long, which wraps for a timer just
// expired).
func connDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// ctxReader checks ctx before each read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
