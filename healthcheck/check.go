package healthcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/ipvs-go/ipvs"
)

// A Probe checks a destination once. It returns nil if the destination
// passed, and the weight it should have: KeepWeight for its configured one
// (every probe but a dynamic Command), or a weight from 0 to ipvs.MaxWeight.
// It must return when ctx is done; ctx's deadline is the check's Timeout.
type Probe interface {
	Probe(ctx context.Context, t Target) (weight int, err error)
}

// KeepWeight is the weight a Probe returns to leave the destination's
// weight as configured (or as last set by the same check).
const KeepWeight = -1

// Func is a Probe written in Go: nil means up.
type Func func(ctx context.Context, t Target) error

// Probe calls f.
func (f Func) Probe(ctx context.Context, t Target) (int, error) { return KeepWeight, f(ctx, t) }

// A Target is what a Probe checks: a destination of a service, the address
// to connect to, and how to open sockets there.
type Target struct {
	Service     ipvs.Service
	Destination ipvs.Destination
	// Addr is where to connect: the check's Address and Port, or the
	// destination's.
	Addr netip.AddrPort

	d *dialer
}

// Dial opens a "tcp" or "udp" connection to t.Addr from the Client's
// network namespace, bound to the check's Source and marked with its Mark.
func (t Target) Dial(ctx context.Context, network string) (net.Conn, error) {
	return t.DialAddr(ctx, network, t.Addr)
}

// DialAddr is Dial to another address, with the same namespace, source and
// mark.
func (t Target) DialAddr(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	if t.d == nil {
		return nil, fmt.Errorf("healthcheck: dial %s: target has no dialer", addr)
	}
	return t.d.dial(ctx, network, addr)
}

// InNetNS runs fn on a thread in the Client's network namespace (see
// ipvs.Client.InNetNS), or on the calling goroutine for a Target without a
// Client.
func (t Target) InNetNS(fn func() error) error {
	if t.d == nil || t.d.ns == nil {
		return fn()
	}
	return t.d.ns.InNetNS(fn)
}

// A Check is one health check of a destination, with keepalived's timing.
// A zero duration takes keepalived's default.
type Check struct {
	// Name tells the check apart in events; the default is the probe's
	// type, such as "HTTP".
	Name  string
	Probe Probe

	// Interval is the time between checks (keepalived's delay_loop),
	// 60s by default: between their starts, so that the time a check
	// takes does not slow the rate (keepalived counts it from the end of
	// the previous check); a check that takes longer is followed by the
	// next at once.
	Interval time.Duration
	// Timeout bounds each check (connect_timeout), 5s by default.
	Timeout time.Duration
	// Retries is how many times a failing check of a destination that is
	// up is repeated, RetryDelay apart, before the check counts as failed:
	// it fails after Retries+1 failures in a row (keepalived's retry,
	// whose default is 1; here the zero value means no retry).
	Retries    int
	RetryDelay time.Duration // delay_before_retry, 1s by default
	// Rise is how many successes in a row, Interval apart, a failed check
	// needs to pass again; 0 or 1 is keepalived's single success.
	Rise int
	// Warmup spreads the first checks: each starts after a random delay
	// below Warmup, so that thousands of checks do not fire in step.
	// 0: the first check runs at once.
	Warmup time.Duration

	// Address and Port override the destination's address and port
	// (keepalived's connect_ip and connect_port).
	Address netip.Addr
	Port    uint16
	// Source is the local address the check's sockets are bound to
	// (bindto); the zero value lets the kernel choose.
	Source netip.Addr
	// Mark is the firewall mark (SO_MARK) of the check's packets, so that
	// they follow the same policy routes and rules as the traffic they
	// stand for. Setting it needs CAP_NET_ADMIN (Linux only).
	Mark uint32
}

// Defaults from keepalived.
const (
	defaultInterval   = 60 * time.Second
	defaultTimeout    = 5 * time.Second
	defaultRetryDelay = time.Second
)

func (c *Check) interval() time.Duration   { return orDefault(c.Interval, defaultInterval) }
func (c *Check) timeout() time.Duration    { return orDefault(c.Timeout, defaultTimeout) }
func (c *Check) retryDelay() time.Duration { return orDefault(c.RetryDelay, defaultRetryDelay) }
func (c *Check) rise() int                 { return max(c.Rise, 1) }

// slack is how early a check may start, so that the Monitor starts the
// checks due close together at once: coalesce (Options.Coalesce), or by
// default a 20th of its interval, at most 50 ms; never more than a quarter
// of the interval.
func (c *Check) slack(coalesce time.Duration) time.Duration {
	if coalesce <= 0 {
		return min(c.interval()/20, defaultCoalesce)
	}
	return min(coalesce, c.interval()/4)
}

// defaultCoalesce bounds the default Options.Coalesce. In a slow guest,
// with 1000 TCP checks a second, 50 ms took a third off the Monitor's CPU
// time per check against 10 ms (fewer wake-ups of its threads;
// BENCHMARKS.md).
const defaultCoalesce = 50 * time.Millisecond

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (c *Check) name() string {
	if c.Name != "" {
		return c.Name
	}
	switch c.Probe.(type) {
	case *TCP, TCP:
		return "TCP"
	case *HTTP, HTTP:
		return "HTTP"
	case *UDP, UDP:
		return "UDP"
	case *DNS, DNS:
		return "DNS"
	case *Command, Command:
		return "command"
	case Func:
		return "func"
	}
	return fmt.Sprintf("%T", c.Probe)
}

func (c *Check) validate(field string) error {
	switch {
	case c.Probe == nil:
		return invalid(field+".Probe", "is nil")
	case c.Interval < 0:
		return invalid(field+".Interval", "is negative")
	case c.Timeout < 0:
		return invalid(field+".Timeout", "is negative")
	case c.RetryDelay < 0:
		return invalid(field+".RetryDelay", "is negative")
	case c.Warmup < 0:
		return invalid(field+".Warmup", "is negative")
	case c.Retries < 0:
		return invalid(field+".Retries", "is negative")
	case c.Rise < 0:
		return invalid(field+".Rise", "is negative")
	case c.Address.IsValid() && c.Address.Zone() != "":
		return invalid(field+".Address", "has a zone")
	}
	if v, ok := c.Probe.(interface{ validate(string) error }); ok {
		return v.validate(field + ".Probe")
	}
	return nil
}

// target is the Target of c for destination d of s.
func (c *Check) target(s ipvs.Service, d ipvs.Destination, ns NetNS) Target {
	addr, port := d.Address, d.Port
	if c.Address.IsValid() {
		addr = c.Address
	}
	if c.Port != 0 {
		port = c.Port
	}
	return Target{
		Service:     s,
		Destination: d,
		Addr:        netip.AddrPortFrom(addr, port),
		d:           &dialer{ns: ns, source: c.Source, mark: c.Mark},
	}
}

// invalid is a validation error, as the ipvs package makes them.
func invalid(field, format string, args ...any) error {
	return &ipvs.Error{Op: "health check", Field: field, Message: fmt.Sprintf(format, args...), Err: os.ErrInvalid}
}
