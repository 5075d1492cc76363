package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs"
)

// IPVS opens an IPVS client bound to the namespace. It is closed at the
// lab's Close.
func (n *NS) IPVS() (*ipvs.Client, error) {
	c, err := ipvs.New(ipvs.WithNetNSPath(n.Path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Role, err)
	}
	n.lab.Defer(func() { c.Close() })
	return c, nil
}

// forwardName is the forwarding method as ipvsadm -L names it.
func forwardName(m ipvs.ForwardMethod) string {
	switch m {
	case ipvs.NAT:
		return "Masq"
	case ipvs.DR:
		return "Route"
	case ipvs.IPIP:
		return "Tunnel"
	case ipvs.Local:
		return "Local"
	}
	return m.String()
}

// ListIPVS prints the namespace's IPVS table as "ipvsadm -Ln" does, read
// with the library.
func (n *NS) ListIPVS(ctx context.Context, c *ipvs.Client) error {
	n.lab.Cmd(n, "ipvsadm -Ln")
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	svcs, err := c.Services(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "IP Virtual Server version %v (size=%d)\n", info.Version, info.ConnectionTableSize)
	fmt.Fprintf(&b, "Prot LocalAddress:Port Scheduler Flags\n")
	fmt.Fprintf(&b, "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	for _, s := range svcs {
		fmt.Fprintf(&b, "%-4s %s:%d %s\n", s.Protocol, s.Address, s.Port, s.Scheduler)
		dests, err := c.Destinations(ctx, s.Service)
		if err != nil {
			return err
		}
		for _, d := range dests {
			fmt.Fprintf(&b, "  -> %-28s %-7s %-6d %-10d %d\n", d.Destination.String(), forwardName(d.ForwardMethod),
				d.Weight, d.ActiveConnections, d.InactiveConnections)
		}
	}
	n.lab.Printf("%s", b.String())
	return nil
}

// A Conn is an entry of an IPVS connection table.
type Conn struct {
	Protocol string
	Client   netip.AddrPort // the client's address ("FromIP")
	Virtual  netip.AddrPort // the virtual service ("ToIP")
	Dest     netip.AddrPort // the destination chosen ("DestIP")
	State    string         // such as "ESTABLISHED"
	// Origin is "Local" for a connection the load balancer scheduled
	// itself, "Sync" for one a sync daemon installed.
	Origin  string
	Expires time.Duration
}

// String formats the entry as "ipvsadm -Lnc" does, with its origin.
func (c Conn) String() string {
	e := int(c.Expires.Seconds())
	return fmt.Sprintf("%-4s %02d:%02d  %-11s %-21s %-15s %-15s (origin %s)",
		c.Protocol, e/60, e%60, c.State, c.Client, c.Virtual, c.Dest, c.Origin)
}

// Connections reads the namespace's IPVS connection table from
// /proc/net/ip_vs_conn_sync, which is /proc/net/ip_vs_conn with the origin
// of each entry. IPv4 entries only.
func (n *NS) Connections() ([]Conn, error) {
	s, err := n.ReadProcNet("ip_vs_conn_sync")
	if err != nil {
		return nil, err
	}
	var conns []Conn
	for _, line := range strings.Split(s, "\n")[1:] {
		// Pro FromIP FPrt ToIP TPrt DestIP DPrt State Origin Expires,
		// addresses and ports in hexadecimal.
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		var ap [3]netip.AddrPort
		ok := true
		for i := range ap {
			a, err1 := strconv.ParseUint(f[1+2*i], 16, 32)
			p, err2 := strconv.ParseUint(f[2+2*i], 16, 16)
			if err1 != nil || err2 != nil {
				ok = false
				break
			}
			ap[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), uint16(p))
		}
		exp, err := strconv.Atoi(f[9])
		if !ok || err != nil {
			continue
		}
		conns = append(conns, Conn{
			Protocol: f[0], Client: ap[0], Virtual: ap[1], Dest: ap[2],
			State: f[7], Origin: f[8], Expires: time.Duration(exp) * time.Second,
		})
	}
	return conns, nil
}

// ListConnections prints the connection table as "ipvsadm -Lnc" would.
func (n *NS) ListConnections() ([]Conn, error) {
	n.lab.Cmd(n, "ipvsadm -Lnc")
	conns, err := n.Connections()
	if err != nil {
		return nil, err
	}
	n.lab.Printf("pro  expire state       source                virtual         destination\n")
	for _, c := range conns {
		n.lab.Printf("%s\n", c)
	}
	return conns, nil
}
