package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/internal/services"
)

// A resolver turns addresses and ports into names as ipvsadm does
// without -n: gethostbyaddr(3) and getservbyport(3). Here the address goes
// to Go's resolver (/etc/hosts, then DNS as /etc/resolv.conf says) and the
// port to /etc/services. A nil *resolver, or numeric, prints numbers.
type resolver struct {
	numeric bool
	ports   map[portKey]string // from /etc/services
	hosts   map[netip.Addr]string
}

type portKey struct {
	port  uint16
	proto ipvs.Protocol
}

func newResolver(numeric bool) *resolver {
	r := &resolver{numeric: numeric}
	if numeric {
		return r
	}
	r.hosts = make(map[netip.Addr]string)
	if f, err := os.Open("/etc/services"); err == nil {
		r.ports = readServicesByPort(f)
		f.Close()
	}
	return r
}

// readServicesByPort reads services(5): the first name of each port and
// protocol, as getservbyport(3) answers.
func readServicesByPort(r io.Reader) map[portKey]string {
	m := make(map[portKey]string)
	_ = services.Each(r, func(names []string, port uint16, proto ipvs.Protocol) {
		k := portKey{port, proto}
		if _, dup := m[k]; !dup {
			m[k] = names[0]
		}
	})
	return m
}

func (r *resolver) host(a netip.Addr) string {
	if n, ok := r.hosts[a]; ok {
		return n
	}
	name := string(appendAddr(nil, a))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if names, err := net.DefaultResolver.LookupAddr(ctx, a.String()); err == nil && len(names) > 0 {
		name = strings.TrimSuffix(names[0], ".")
	}
	r.hosts[a] = name
	return name
}

// appendAddrPort is ipvsadm's addrport_to_anyname.
func (r *resolver) appendAddrPort(b []byte, a netip.Addr, port uint16, proto ipvs.Protocol) []byte {
	v6 := a.Is6()
	if v6 {
		b = append(b, '[')
	}
	if r == nil || r.numeric {
		b = appendAddr(b, a)
	} else {
		b = append(b, r.host(a)...)
	}
	if v6 {
		b = append(b, ']')
	}
	b = append(b, ':')
	if r != nil && !r.numeric {
		if n, ok := r.ports[portKey{port, proto}]; ok {
			return append(b, n...)
		}
	}
	return strconv.AppendUint(b, uint64(port), 10)
}

// appendAddr appends a as glibc's inet_ntop writes it: as Go does, but
// for the IPv4-compatible addresses ::a.b.c.d, which Go writes in hex.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is6() && !a.Is4In6() {
		x := a.As16()
		if [12]byte(x[:12]) == [12]byte{} && (x[12] != 0 || x[13] != 0) {
			b = append(b, "::"...)
			return netip.AddrFrom4([4]byte(x[12:])).AppendTo(b)
		}
	}
	return a.AppendTo(b)
}
