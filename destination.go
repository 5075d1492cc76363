package ipvs

import (
	"context"
	"math"
	"net/netip"
	"strconv"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// ForwardMethod is how IPVS delivers a service's packets to a destination
// (IP_VS_CONN_F_* forwarding methods).
type ForwardMethod uint32

// Forwarding methods. The zero value is NAT, as in the kernel.
const (
	// NAT (masquerading, ipvsadm -m) rewrites the destination address and
	// port; the destination's replies must route back through the load
	// balancer, which rewrites them again.
	NAT ForwardMethod = 0
	// Local delivers to a local process (a destination that is an address
	// of the load balancer). ipvsadm lists it as "Local".
	Local ForwardMethod = 1
	// IPIP tunnels the packet to the destination (ipvsadm -i), which holds
	// the virtual address on its tunnel device and replies directly. The
	// tunnel can be IPIP, GUE or GRE (Destination.TunnelType).
	IPIP ForwardMethod = 2
	// DR (direct routing, gatewaying, ipvsadm -g) rewrites only the MAC
	// address; the destination is on the same L2 segment, holds the virtual
	// address on a loopback device without answering ARP for it, and
	// replies directly.
	DR ForwardMethod = 3
)

// String returns "NAT", "Local", "IPIP", "DR" or "ForwardMethod(N)".
func (m ForwardMethod) String() string {
	switch m {
	case NAT:
		return "NAT"
	case Local:
		return "Local"
	case IPIP:
		return "IPIP"
	case DR:
		return "DR"
	}
	return "ForwardMethod(" + strconv.FormatUint(uint64(m), 10) + ")"
}

// TunnelType is the encapsulation of an IPIP-forwarded destination (kernel
// 5.2 for GUE, 5.3 for GRE; older kernels ignore it and use IPIP).
type TunnelType uint8

// Tunnel types.
const (
	TunnelIPIP TunnelType = 0 // IP in IP (the default)
	TunnelGUE  TunnelType = 1 // Generic UDP Encapsulation; needs TunnelPort
	TunnelGRE  TunnelType = 2 // GRE
)

// String returns "ipip", "gue", "gre" or "TunnelType(N)".
func (t TunnelType) String() string {
	switch t {
	case TunnelIPIP:
		return "ipip"
	case TunnelGUE:
		return "gue"
	case TunnelGRE:
		return "gre"
	}
	return "TunnelType(" + strconv.Itoa(int(t)) + ")"
}

// TunnelChecksum is the checksum mode of a GUE or GRE tunnel (kernel 5.3).
type TunnelChecksum uint16

// Tunnel checksum modes.
const (
	TunnelChecksumNone   TunnelChecksum = 0 // no checksum (the default)
	TunnelChecksumOn     TunnelChecksum = 1 // outer checksum
	TunnelChecksumRemote TunnelChecksum = 2 // remote checksum offload (GUE only)
)

// String returns "nocsum", "csum", "remcsum" or "TunnelChecksum(N)".
func (t TunnelChecksum) String() string {
	switch t {
	case TunnelChecksumNone:
		return "nocsum"
	case TunnelChecksumOn:
		return "csum"
	case TunnelChecksumRemote:
		return "remcsum"
	}
	return "TunnelChecksum(" + strconv.Itoa(int(t)) + ")"
}

// MaxWeight is the largest destination weight the kernel accepts.
const MaxWeight = math.MaxInt32

// A Destination is a real server of a service: its identity (Address and
// Port) and configuration. It holds no counters, so it is comparable.
type Destination struct {
	// Address is the real server's address. Its family may differ from the
	// service's only with ForwardMethod IPIP (kernel 3.18).
	Address netip.Addr
	// Port is the real server's port. ipvsadm forces it to the service's
	// port for DR and IPIP; the kernel does not, and neither does this
	// package.
	Port uint16
	// ForwardMethod is NAT (the zero value), DR, IPIP or Local.
	ForwardMethod ForwardMethod
	// Weight is the share of new connections, 0 to MaxWeight; 0 sends the
	// destination no new connections (quiescent).
	Weight int
	// UpperThreshold stops new connections to the destination while it has
	// that many connections; 0 means no limit. LowerThreshold re-enables it
	// when it falls below that many, and needs an UpperThreshold at least
	// as large.
	UpperThreshold uint32
	LowerThreshold uint32
	// TunnelType, TunnelPort (GUE's UDP port) and TunnelChecksum
	// configure the encapsulation of an IPIP destination and must be zero
	// for the others.
	TunnelType     TunnelType
	TunnelPort     uint16
	TunnelChecksum TunnelChecksum
}

// String returns the destination's address and port, such as
// "192.168.1.10:8080" or "[2001:db8::10]:80".
func (d Destination) String() string {
	return netip.AddrPortFrom(d.Address, d.Port).String()
}

// DestinationStats is a destination as listed by the kernel, with its
// connection counts and statistics.
type DestinationStats struct {
	Destination
	// ActiveConnections and InactiveConnections are the destination's
	// current connection entries (ipvsadm's ActiveConn and InActConn);
	// PersistentConnections counts its persistence templates.
	ActiveConnections     uint32
	InactiveConnections   uint32
	PersistentConnections uint32
	Stats                 Stats
}

// CreateDestination adds d to the service identified by s.
//
// If the service does not exist, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned; if the destination exists, one compatible with
// errors.Is(err, os.ErrExist). The kernel refuses (os.ErrInvalid) an address
// that the namespace's routes do not call unicast or local: in a new network
// namespace, bring lo up first, or every IPv4 destination is refused.
func (c *Client) CreateDestination(ctx context.Context, s Service, d Destination) error {
	const op = "create destination"
	if err := d.validate(op, &s); err != nil {
		return err
	}
	return c.c.setDestination(ctx, op, uapi.CmdNewDest, s, d)
}

// UpdateDestination replaces the configuration of the destination of s
// identified by d's Address and Port with the configuration in d. Changing
// only the weight, as controllers do to drain a destination, is an update
// with the other fields as read.
//
// If the service or the destination does not exist, an error compatible with
// errors.Is(err, os.ErrNotExist) is returned.
func (c *Client) UpdateDestination(ctx context.Context, s Service, d Destination) error {
	const op = "update destination"
	if err := d.validate(op, &s); err != nil {
		return err
	}
	return c.c.setDestination(ctx, op, uapi.CmdSetDest, s, d)
}

// DeleteDestination removes the destination identified by d's Address and
// Port from the service identified by s.
//
// If the service or the destination does not exist, an error compatible with
// errors.Is(err, os.ErrNotExist) is returned.
func (c *Client) DeleteDestination(ctx context.Context, s Service, d Destination) error {
	const op = "delete destination"
	if err := s.validateIdentity(op); err != nil {
		return err
	}
	if err := d.validateAddress(op); err != nil {
		return err
	}
	return c.c.deleteDestination(ctx, s, d)
}

// Destinations lists the destinations of the service identified by s. A
// service without destinations gives an empty slice.
//
// The kernel answers a missing service with an empty list, so when the list
// is empty Destinations checks that the service exists: if it does not, an
// error compatible with errors.Is(err, os.ErrNotExist) is returned.
func (c *Client) Destinations(ctx context.Context, s Service) ([]DestinationStats, error) {
	if err := s.validateIdentity("list destinations"); err != nil {
		return nil, err
	}
	return c.c.destinations(ctx, s)
}

// validateAddress checks that a destination's address is a unicast address
// the wire can carry.
func (d *Destination) validateAddress(op string) error {
	if !d.Address.IsValid() {
		return invalid(op, "Destination.Address", "a destination needs an address")
	}
	if err := checkAddr(op, "Destination.Address", d.Address); err != nil {
		return err
	}
	if d.Address.IsUnspecified() || d.Address.IsMulticast() || d.Address == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return invalid(op, "Destination.Address", "%v is not a unicast address", d.Address)
	}
	return nil
}

// validate checks a destination's configuration against its service.
func (d *Destination) validate(op string, s *Service) error {
	if err := s.validateIdentity(op); err != nil {
		return err
	}
	return d.validateConfig(op, s)
}

// validateConfig is validate for a service whose identity is valid.
func (d *Destination) validateConfig(op string, s *Service) error {
	if err := d.validateAddress(op); err != nil {
		return err
	}
	if f := familyOf(d.Address); f != s.family() && d.ForwardMethod != IPIP {
		return invalid(op, "Destination.Address", "an %v destination under an %v service needs ForwardMethod IPIP, not %v", f, s.family(), d.ForwardMethod)
	}
	switch d.ForwardMethod {
	case NAT, Local, IPIP, DR:
	default:
		return invalid(op, "Destination.ForwardMethod", "%v is not NAT, Local, IPIP or DR", d.ForwardMethod)
	}
	if d.Weight < 0 || d.Weight > MaxWeight {
		return invalid(op, "Destination.Weight", "%d is outside 0-%d", d.Weight, MaxWeight)
	}
	if d.UpperThreshold > math.MaxInt32 {
		return invalid(op, "Destination.UpperThreshold", "%d is above %d", d.UpperThreshold, math.MaxInt32)
	}
	if d.LowerThreshold > d.UpperThreshold {
		return invalid(op, "Destination.LowerThreshold", "%d is above UpperThreshold %d (a lower threshold needs an upper one at least as large)", d.LowerThreshold, d.UpperThreshold)
	}
	if d.ForwardMethod != IPIP {
		if d.TunnelType != 0 || d.TunnelPort != 0 || d.TunnelChecksum != 0 {
			return invalid(op, "Destination.TunnelType", "tunnel options need ForwardMethod IPIP, not %v", d.ForwardMethod)
		}
		return nil
	}
	switch d.TunnelType {
	case TunnelIPIP:
		if d.TunnelPort != 0 {
			return invalid(op, "Destination.TunnelPort", "an IPIP tunnel has no port")
		}
		if d.TunnelChecksum != TunnelChecksumNone {
			return invalid(op, "Destination.TunnelChecksum", "an IPIP tunnel has no checksum option")
		}
	case TunnelGUE:
		if d.TunnelPort == 0 {
			return invalid(op, "Destination.TunnelPort", "a GUE tunnel needs a UDP port")
		}
	case TunnelGRE:
		if d.TunnelPort != 0 {
			return invalid(op, "Destination.TunnelPort", "a GRE tunnel has no port")
		}
		if d.TunnelChecksum == TunnelChecksumRemote {
			return invalid(op, "Destination.TunnelChecksum", "remote checksum offload is for GUE tunnels only")
		}
	default:
		return invalid(op, "Destination.TunnelType", "%v is not TunnelIPIP, TunnelGUE or TunnelGRE", d.TunnelType)
	}
	switch d.TunnelChecksum {
	case TunnelChecksumNone, TunnelChecksumOn, TunnelChecksumRemote:
	default:
		return invalid(op, "Destination.TunnelChecksum", "%v is not a checksum mode", d.TunnelChecksum)
	}
	return nil
}
