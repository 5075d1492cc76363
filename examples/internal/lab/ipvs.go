package lab

import (
	"context"
	"fmt"
	"strings"

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

// Connections returns the namespace's IPVS connection table, the lines of
// /proc/net/ip_vs_conn after its header ("ipvsadm -Lnc" shows the same).
func (n *NS) Connections() ([]string, error) {
	s, err := n.ReadProcNet("ip_vs_conn")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 0 {
		lines = lines[1:]
	}
	return lines, nil
}
