package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// Protocol is the transport protocol of a virtual service (an IPPROTO_*
// value).
type Protocol uint16

// The protocols IPVS balances.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String returns "TCP", "UDP", "SCTP", or "Protocol(N)".
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// Family is an address family, needed to tell an IPv4 firewall-mark service
// from an IPv6 one.
type Family uint16

// Address families.
const (
	IPv4 Family = 2
	IPv6 Family = 10
)

// String returns "IPv4", "IPv6" or "Family(N)".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// familyOf returns the family of a valid address.
func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// The schedulers of the mainline kernel, for Service.Scheduler. Any other
// name is passed through: the kernel loads the module ip_vs_NAME on demand and
// answers ErrSchedulerNotFound if there is none.
const (
	RoundRobin                       = "rr"
	WeightedRoundRobin               = "wrr"
	LeastConnection                  = "lc"
	WeightedLeastConnection          = "wlc"
	LocalityBasedLeastConnection     = "lblc"
	LocalityBasedLeastConnectionRepl = "lblcr"
	DestinationHashing               = "dh"
	SourceHashing                    = "sh"
	ShortestExpectedDelay            = "sed"
	NeverQueue                       = "nq"
	WeightedFailover                 = "fo"
	WeightedOverflow                 = "ovf"
	MaglevHashing                    = "mh"
	WeightedRandomTwoChoices         = "twos" // recent kernels only (not 6.1)
	NoScheduler                      = "none" // no scheduler: new connections are dropped
)

// PersistenceEngineSIP is the kernel's only persistence engine, for
// Service.PersistenceEngine: SIP Call-ID persistence.
const PersistenceEngineSIP = "sip"

const (
	maxSchedulerLen         = uapi.SchedNameMaxLen - 1
	maxPersistenceEngineLen = uapi.PENameMaxLen
	// timeout*HZ must fit in 32 bits with HZ=1000.
	maxPersistenceTimeout = 4294967 * time.Second
	knownServiceFlags     = FlagPersistent | FlagOnePacket | FlagSched1 | FlagSched2 | FlagSched3
	// ipvsadm sends this mask for a full replace of the flags.
	serviceFlagsSentMask ServiceFlags = 0xffffffff
)

// ServiceFlags are the flags of a virtual service (IP_VS_SVC_F_*). The
// kernel-internal "hashed" flag is never reported.
type ServiceFlags uint32

// Service flags. The three scheduler flags mean different things to
// different schedulers; the aliases name their meaning for sh and mh.
const (
	// FlagPersistent sends all connections of a client (of clients equal
	// under Service.Netmask) to the same destination for Service.Timeout.
	FlagPersistent ServiceFlags = 0x0001
	// FlagOnePacket schedules every UDP datagram on its own, creating no
	// connection entry (ipvsadm -o). UDP and firewall-mark services only.
	FlagOnePacket ServiceFlags = 0x0004
	// FlagSched1, FlagSched2 and FlagSched3 are the raw scheduler flags
	// (ipvsadm -b flag-1, flag-2, flag-3).
	FlagSched1 ServiceFlags = 0x0008
	FlagSched2 ServiceFlags = 0x0010
	FlagSched3 ServiceFlags = 0x0020

	// FlagSHFallback makes sh pick another destination when the hashed one
	// is unavailable; FlagSHPort hashes the source port too.
	FlagSHFallback = FlagSched1
	FlagSHPort     = FlagSched2
	// FlagMHFallback and FlagMHPort are the same for mh.
	FlagMHFallback = FlagSched1
	FlagMHPort     = FlagSched2
)

// String returns the flags as ipvsadm names them, joined by "|", such as
// "persistent|flag-1"; unknown bits are printed in hexadecimal.
func (f ServiceFlags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	for _, n := range []struct {
		f    ServiceFlags
		name string
	}{
		{FlagPersistent, "persistent"},
		{FlagOnePacket, "ops"},
		{FlagSched1, "flag-1"},
		{FlagSched2, "flag-2"},
		{FlagSched3, "flag-3"},
	} {
		if f&n.f != 0 {
			parts = append(parts, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(f)))
	}
	return strings.Join(parts, "|")
}

// A Service is a virtual service: its identity and its configuration. It
// holds no counters, so it is comparable and usable as a map key.
//
// Every Service that validation accepts has exactly one form: a Service
// read back from the kernel (Service, Services, VirtualServices) is == to
// the one that created it, so a desired and a read-back Service can be
// compared with ==. Redundant forms are refused, not rewritten: Family is
// set only on firewall-mark services, and a Netmask equal to the full mask
// is the zero Netmask by construction.
//
// The identity is either Protocol, Address and Port, or FirewallMark and
// Family. Client methods that name an existing service (DeleteService,
// Destinations, ...) read only the identity fields.
type Service struct {
	// Protocol, Address and Port identify an address service. Address
	// must be a valid IPv4 or IPv6 address without a zone; Port 0 is a
	// catch-all port (normally used with persistence).
	Protocol Protocol
	Address  netip.Addr
	Port     uint16

	// FirewallMark identifies a firewall-mark service (ipvsadm -f) when
	// non-zero; Family then chooses IPv4 or IPv6 and must be set. Family
	// must be zero for an address service, whose Address gives the family.
	FirewallMark uint32
	Family       Family

	// Scheduler names the scheduling algorithm, such as RoundRobin. It is
	// required; NoScheduler ("none") is accepted.
	Scheduler string
	// Flags are the service flags.
	Flags ServiceFlags
	// Timeout is the persistence timeout, a whole number of seconds. It
	// must be non-zero with FlagPersistent (ipvsadm -p defaults to 360
	// seconds): with 0 the kernel's persistence entries expire at once.
	Timeout time.Duration
	// Netmask is the persistence granularity (ipvsadm -M); the zero value
	// is the full mask, one client address.
	Netmask Netmask
	// PersistenceEngine names an optional persistence engine; the kernel
	// has PersistenceEngineSIP.
	PersistenceEngine string
}

// String describes the service's identity as ipvsadm lists it, such as
// "TCP 10.0.0.1:80", "UDP [2001:db8::1]:53" or "FWM 100 IPv6".
func (s Service) String() string {
	if s.FirewallMark != 0 {
		if s.Family == IPv6 {
			return fmt.Sprintf("FWM %d IPv6", s.FirewallMark)
		}
		return fmt.Sprintf("FWM %d", s.FirewallMark)
	}
	return s.Protocol.String() + " " + netip.AddrPortFrom(s.Address, s.Port).String()
}

// family returns the address family of the service, valid after validation.
func (s Service) family() Family {
	if s.FirewallMark != 0 {
		return s.Family
	}
	return familyOf(s.Address)
}

// Stats are the traffic counters of a service or destination since it was
// created or last zeroed, and the rates estimated over the last seconds. The
// kernel folds per-CPU counters in about every two seconds, so a read just
// after traffic may not include it yet.
type Stats struct {
	Connections uint64 // connections scheduled
	PacketsIn   uint64 // packets from clients
	PacketsOut  uint64 // packets to clients
	BytesIn     uint64
	BytesOut    uint64

	ConnectionRate uint64 // connections per second
	PacketRateIn   uint64 // packets per second
	PacketRateOut  uint64
	ByteRateIn     uint64 // bytes per second
	ByteRateOut    uint64
}

// ServiceStats is a service as listed by the kernel, with its statistics.
type ServiceStats struct {
	Service
	Stats Stats
}

// CreateService creates a virtual service.
//
// If the service exists, an error compatible with errors.Is(err,
// os.ErrExist) is returned; if the scheduler or persistence engine does not
// exist, one compatible with errors.Is(err, ErrSchedulerNotFound).
func (c *Client) CreateService(ctx context.Context, s Service) error {
	const op = "create service"
	if err := s.validate(op); err != nil {
		return err
	}
	return c.c.setService(ctx, op, uapi.CmdNewService, s, s.Flags, serviceFlagsSentMask)
}

// UpdateService replaces the configuration of the service identified by s
// with the configuration in s, including its flags and persistence engine:
// the kernel's update is a full replace, so a field left zero is set to zero.
// To change some fields only, use EditService.
//
// If the service does not exist, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned.
func (c *Client) UpdateService(ctx context.Context, s Service) error {
	const op = "update service"
	if err := s.validate(op); err != nil {
		return err
	}
	return c.c.setService(ctx, op, uapi.CmdSetService, s, s.Flags, serviceFlagsSentMask)
}

// A ServiceEdit lists the changes EditService makes; nil fields and zero
// flag sets are left as they are.
type ServiceEdit struct {
	Scheduler         *string
	Timeout           *time.Duration
	Netmask           *Netmask
	PersistenceEngine *string
	// SetFlags are turned on and ClearFlags turned off; the kernel applies
	// them atomically and leaves the other flags alone. A flag in both is
	// turned on.
	SetFlags, ClearFlags ServiceFlags
}

// EditService changes some fields of the service identified by s and keeps
// the rest. It is a read-modify-write in two requests: it reads the current
// configuration and writes all of it back with the changes, so a change
// another writer makes in between to a field e leaves nil (a scheduler
// change, say) is reverted. The flag changes are safe: the kernel applies
// them under a mask, so concurrent edits of other flags are never lost.
//
// If the service does not exist, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned.
func (c *Client) EditService(ctx context.Context, s Service, e ServiceEdit) error {
	const op = "edit service"
	if err := s.validateIdentity(op); err != nil {
		return err
	}
	cur, err := c.c.getService(ctx, op, s)
	if err != nil {
		return err
	}
	next := cur.Service
	if e.Scheduler != nil {
		next.Scheduler = *e.Scheduler
	}
	if e.Timeout != nil {
		next.Timeout = *e.Timeout
	}
	if e.Netmask != nil {
		next.Netmask = *e.Netmask
	}
	if e.PersistenceEngine != nil {
		next.PersistenceEngine = *e.PersistenceEngine
	}
	next.Flags = (next.Flags &^ e.ClearFlags) | e.SetFlags
	if err := next.validate(op); err != nil {
		return err
	}
	return c.c.setService(ctx, op, uapi.CmdSetService, next, e.SetFlags, e.SetFlags|e.ClearFlags)
}

// DeleteService deletes the service identified by s, with its destinations.
//
// If the service does not exist, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned.
func (c *Client) DeleteService(ctx context.Context, s Service) error {
	const op = "delete service"
	if err := s.validateIdentity(op); err != nil {
		return err
	}
	return c.c.deleteService(ctx, s)
}

// Service reads the service identified by s, with its statistics.
//
// If the service does not exist, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned.
func (c *Client) Service(ctx context.Context, s Service) (ServiceStats, error) {
	const op = "get service"
	if err := s.validateIdentity(op); err != nil {
		return ServiceStats{}, err
	}
	return c.c.getService(ctx, op, s)
}

// Services lists every service of the network namespace, in the kernel's
// hash order. An empty table is an empty slice.
//
// The kernel resumes a dump that spans several datagrams (11 to about 100
// services each) by position, and flags no inconsistency. 7.x kernels
// rehash a namespace's service table into one of another size a few
// milliseconds after services are added or deleted, and a dump resumed
// across that repeats services and misses as many; a dump that repeated a
// service is therefore made again, up to five in about 60 ms, and with no
// service added or deleted meanwhile one with no repeat missed none.
// Kernels before 7.0 share their tables and the dump's position between
// namespaces: while services are added or deleted in any namespace, a dump
// can repeat entries and, if longer than a datagram, miss others, and
// under steady churn every dump may; then the fifth is returned without
// its repeats. Reconcile copes with misses.
func (c *Client) Services(ctx context.Context) ([]ServiceStats, error) {
	return c.c.services(ctx)
}

// ZeroService resets the statistics of the service identified by s and of
// its destinations.
//
// If the service does not exist, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned.
func (c *Client) ZeroService(ctx context.Context, s Service) error {
	const op = "zero service"
	if err := s.validateIdentity(op); err != nil {
		return err
	}
	return c.c.zero(ctx, &s)
}

// validateIdentity checks the fields that identify a service.
func (s Service) validateIdentity(op string) error {
	if s.FirewallMark != 0 {
		if s.Address.IsValid() {
			return invalid(op, "Service.Address", "a service has either an address or a firewall mark, not both")
		}
		if s.Family != IPv4 && s.Family != IPv6 {
			return invalid(op, "Service.Family", "a firewall-mark service needs Family IPv4 or IPv6, not %v", s.Family)
		}
		if s.Protocol != 0 || s.Port != 0 {
			return invalid(op, "Service.Protocol", "a firewall-mark service has no protocol or port (the mark selects the traffic)")
		}
		return nil
	}
	if !s.Address.IsValid() {
		return invalid(op, "Service.Address", "a service needs an address or a firewall mark (a mark of 0 is no mark)")
	}
	if err := checkAddr(op, "Service.Address", s.Address); err != nil {
		return err
	}
	if s.Family != 0 {
		return invalid(op, "Service.Family", "is for firewall-mark services; leave it zero, the address %v gives the family", s.Address)
	}
	switch s.Protocol {
	case TCP, UDP, SCTP:
	default:
		return invalid(op, "Service.Protocol", "%v is not TCP, UDP or SCTP", s.Protocol)
	}
	return nil
}

// validate checks a service's identity and configuration.
func (s Service) validate(op string) error {
	if err := s.validateIdentity(op); err != nil {
		return err
	}
	if err := checkName(op, "Service.Scheduler", s.Scheduler, maxSchedulerLen); err != nil {
		return err
	}
	if s.Scheduler == "" {
		return invalid(op, "Service.Scheduler", "a scheduler is required, such as %q", RoundRobin)
	}
	if err := checkName(op, "Service.PersistenceEngine", s.PersistenceEngine, maxPersistenceEngineLen); err != nil {
		return err
	}
	if unknown := s.Flags &^ knownServiceFlags; unknown != 0 {
		return invalid(op, "Service.Flags", "unknown flag bits %#x", uint32(unknown))
	}
	if s.Flags&FlagOnePacket != 0 && s.FirewallMark == 0 && s.Protocol != UDP {
		return invalid(op, "Service.Flags", "one-packet scheduling is for UDP and firewall-mark services, not %v", s.Protocol)
	}
	if err := checkSeconds(op, "Service.Timeout", s.Timeout, maxPersistenceTimeout); err != nil {
		return err
	}
	if s.Flags&FlagPersistent != 0 && s.Timeout == 0 {
		return invalid(op, "Service.Timeout", "a persistent service needs a timeout (ipvsadm -p uses 360s): with 0 persistence expires at once")
	}
	return s.Netmask.check(op, s.family())
}

// checkAddr rejects addresses the wire cannot carry as given.
func checkAddr(op, field string, a netip.Addr) error {
	if a.Zone() != "" {
		return invalid(op, field, "%v has a zone, which IPVS cannot carry", a)
	}
	if a.Is4In6() {
		return invalid(op, field, "%v is an IPv4-mapped IPv6 address; use Unmap for IPv4", a)
	}
	return nil
}

// checkName validates a NUL-terminated string attribute.
func checkName(op, field, name string, max int) error {
	if len(name) > max {
		return invalid(op, field, "%q is %d bytes long, more than the kernel's %d", name, len(name), max)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return invalid(op, field, "%q contains a NUL byte", name)
	}
	return nil
}

// serviceKey is a service's identity as a compact map key.
type serviceKey struct {
	addr  netip.Addr
	mark  uint32
	proto Protocol
	port  uint16
	fam   Family
}

// key returns the identity of s as a map key.
func (s Service) key() serviceKey {
	if s.FirewallMark != 0 {
		return serviceKey{mark: s.FirewallMark, fam: s.Family}
	}
	return serviceKey{addr: s.Address, proto: s.Protocol, port: s.Port}
}

// sameIdentity reports whether a and b have the same identity fields.
func sameIdentity(a, b Service) bool {
	return a.Protocol == b.Protocol && a.Address == b.Address && a.Port == b.Port &&
		a.FirewallMark == b.FirewallMark && a.Family == b.Family
}
