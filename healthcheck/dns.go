package healthcheck

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DNS passes when the target, a DNS server, answers a query over UDP with
// NOERROR and at least one answer record (keepalived's DNS_CHECK).
type DNS struct {
	// Name is the name to query, such as "example.com"; the default is
	// the root, ".".
	Name string
	// Type is the query type, such as 1 (A, the default), 28 (AAAA) or 6
	// (SOA).
	Type uint16
}

// DNS record types for DNS.Type.
const (
	TypeA    uint16 = 1
	TypeNS   uint16 = 2
	TypeSOA  uint16 = 6
	TypeAAAA uint16 = 28
)

func (d DNS) validate(field string) error {
	if _, err := encodeQuery(0, d.Name, TypeA); err != nil {
		return invalid(field+".Name", "%v", err)
	}
	return nil
}

// Probe implements Probe.
func (d DNS) Probe(ctx context.Context, t Target) (int, error) {
	typ := d.Type
	if typ == 0 {
		typ = TypeA
	}
	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return KeepWeight, err
	}
	id := binary.BigEndian.Uint16(idb[:])
	q, err := encodeQuery(id, d.Name, typ)
	if err != nil {
		return KeepWeight, err
	}
	reply, err := exchangeUDP(ctx, t, q, false)
	if err != nil {
		return KeepWeight, err
	}
	h, err := parseReply(reply)
	if err != nil {
		return KeepWeight, err
	}
	switch {
	case h.id != id:
		return KeepWeight, fmt.Errorf("reply ID %d, want %d", h.id, id)
	case h.rcode != 0:
		return KeepWeight, fmt.Errorf("reply code %s", rcodeName(h.rcode))
	case h.answers == 0:
		return KeepWeight, errors.New("no answer records")
	}
	return KeepWeight, nil
}

// encodeQuery builds a DNS query (RFC 1035 4.1) for name, recursion
// desired, class IN.
func encodeQuery(id uint16, name string, typ uint16) ([]byte, error) {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], 1)      // QDCOUNT
	name = strings.TrimSuffix(name, ".")
	if name != "" {
		if len(name) > 253 {
			return nil, fmt.Errorf("name %q is longer than 253 bytes", name)
		}
		for _, l := range strings.Split(name, ".") {
			if l == "" || len(l) > 63 {
				return nil, fmt.Errorf("name %q has a label of %d bytes", name, len(l))
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, 1) // IN
	return b, nil
}

type dnsHeader struct {
	id      uint16
	rcode   uint8
	answers uint16
}

// parseReply reads the header of a DNS reply.
func parseReply(b []byte) (dnsHeader, error) {
	if len(b) < 12 {
		return dnsHeader{}, fmt.Errorf("reply of %d bytes is shorter than a DNS header", len(b))
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&0x8000 == 0 {
		return dnsHeader{}, errors.New("reply is not a DNS response")
	}
	return dnsHeader{
		id:      binary.BigEndian.Uint16(b[0:]),
		rcode:   uint8(flags & 0xf),
		answers: binary.BigEndian.Uint16(b[6:]),
	}, nil
}

func rcodeName(c uint8) string {
	names := [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}
	if int(c) < len(names) {
		return names[c]
	}
	return fmt.Sprintf("RCODE%d", c)
}
