package ipvs

import (
	"net/netip"
	"strconv"
)

// A Netmask is the persistence granularity of a service (ipvsadm -M):
// clients whose addresses are equal under the mask stick to the same
// destination. The zero value is the full mask of the service's family
// (/32 or /128: each client address on its own), as ipvsadm uses without -M.
//
// IPv4 takes any 32-bit mask, such as 0.0.0.0 (all clients together) or the
// non-contiguous 255.0.255.0; IPv6 takes a prefix length of 1-128, the
// range the kernel accepts. Each mask has a single value, so masks compare
// with ==: PrefixMask(IPv4, 24) == IPv4Mask(255, 255, 255, 0), and a full
// mask, such as PrefixMask(IPv6, 128), is the zero value.
type Netmask struct {
	fam  Family // IPv4 or IPv6; 0 for the full mask
	bad  bool   // made from an invalid family or prefix length
	bits uint32 // IPv4: the mask; IPv6: the prefix length, 1-127
}

// PrefixMask returns the mask of the first bits bits of an address of
// family f: 0-32 for IPv4 and 1-128 for IPv6. Other arguments give a
// Netmask that validation refuses.
func PrefixMask(f Family, bits int) Netmask {
	switch {
	case f == IPv4 && bits >= 0 && bits <= 32:
		return ipv4Mask(^uint32(0) << (32 - bits))
	case f == IPv6 && bits == 128:
		return Netmask{}
	case f == IPv6 && bits >= 1 && bits < 128:
		return Netmask{fam: IPv6, bits: uint32(bits)}
	}
	return Netmask{fam: f, bad: true}
}

// IPv4Mask returns the IPv4 mask a.b.c.d.
func IPv4Mask(a, b, c, d byte) Netmask {
	return ipv4Mask(uint32(a)<<24 | uint32(b)<<16 | uint32(c)<<8 | uint32(d))
}

// ipv4Mask returns the IPv4 mask m, the full one as the zero value.
func ipv4Mask(m uint32) Netmask {
	if m == ^uint32(0) {
		return Netmask{}
	}
	return Netmask{fam: IPv4, bits: m}
}

// String returns the mask as ipvsadm -S writes it after -M: "255.255.255.0"
// for IPv4 and "64" for IPv6. The zero value is "full", and a mask made
// from invalid arguments "invalid".
func (m Netmask) String() string {
	switch {
	case m.bad:
		return "invalid"
	case m.fam == IPv4:
		b := m.bits
		return netip.AddrFrom4([4]byte{byte(b >> 24), byte(b >> 16), byte(b >> 8), byte(b)}).String()
	case m.fam == IPv6:
		return strconv.Itoa(int(m.bits))
	}
	return "full"
}

// Equal reports whether m and o are the same mask, as m == o does; it lets
// comparison libraries such as go-cmp compare Services without options.
func (m Netmask) Equal(o Netmask) bool { return m == o }

// check validates m for a service of family f.
func (m Netmask) check(op string, f Family) error {
	switch {
	case m.bad && m.fam == IPv4:
		return invalid(op, "Service.Netmask", "PrefixMask(IPv4, n) takes n in 0-32")
	case m.bad && m.fam == IPv6:
		return invalid(op, "Service.Netmask", "PrefixMask(IPv6, n) takes n in 1-128 (the kernel refuses an IPv6 /0)")
	case m.bad:
		return invalid(op, "Service.Netmask", "PrefixMask(%v, n) needs the family IPv4 or IPv6", m.fam)
	case m.fam != 0 && m.fam != f:
		return invalid(op, "Service.Netmask", "the %v mask %v is not for an %v service", m.fam, m, f)
	}
	return nil
}

// wire returns the NETMASK attribute's value for a service of family f: the
// IPv4 mask (to be sent big-endian) or the IPv6 prefix length.
func (m Netmask) wire(f Family) uint32 {
	switch {
	case m.fam != 0:
		return m.bits
	case f == IPv4:
		return ^uint32(0)
	}
	return 128
}

// netmaskFromWire returns the Netmask of a NETMASK attribute's value for a
// service of family f; ok is false for an IPv6 prefix length outside 1-128.
func netmaskFromWire(f Family, v uint32) (m Netmask, ok bool) {
	if f == IPv4 {
		return ipv4Mask(v), true
	}
	if v < 1 || v > 128 {
		return Netmask{}, false
	}
	return PrefixMask(IPv6, int(v)), true
}
