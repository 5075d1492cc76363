// Command dr reproduces the article's direct-routing (DR) lab.
//
// The load balancer only rewrites the destination MAC address of each packet
// to 10.0.1.1:80 and puts it back on the server segment; the backend, which
// holds the VIP on its loopback device, answers the client directly through
// the router. The backends must not answer ARP for the VIP
// (arp_ignore=1) nor announce it as the source of their own ARP requests
// (arp_announce=2), or the router may send the VIP's traffic straight to a
// backend. The load balancer sends a gratuitous ARP for the VIP.
//
// With -pitfall the backends keep the default ARP settings, and the program
// checks what goes wrong: the router's ARP entry for the VIP points at a
// backend, so the load balancer is bypassed and round-robin is lost.
//
// Run as root on a kernel with IPVS. Everything happens in network
// namespaces that are deleted at the end; see ../README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/examples/internal/lab"
)

var (
	pitfall  = flag.Bool("pitfall", false, "skip the backends' arp_ignore/arp_announce settings (the article's pitfall) and check that the load balancer is bypassed")
	requests = flag.Int("n", 6, "number of HTTP requests the client sends")
	timeout  = flag.Duration("timeout", 2*time.Second, "how long the client waits for each answer")
)

func main() {
	flag.Parse()
	lab.Run("dr", 3*time.Minute, run)
}

func run(ctx context.Context, l *lab.Lab) error {
	// DR: the backends answer the client directly, through the router.
	t, err := l.BuildTopology(lab.RouterSrv, false)
	if err != nil {
		return err
	}
	lb := t.LB

	l.Section("backends: the VIP on lo, hidden from ARP")
	bodies := [2]string{"Hello from backend 1", "Hello from backend 2"}
	for i, b := range t.Backends {
		if err := b.AddrAdd("lo", lab.VIP+"/32"); err != nil {
			return err
		}
		if *pitfall {
			l.Printf("# pitfall: %s keeps arp_ignore=0 and arp_announce=0\n", b.Role)
		} else {
			// Answer ARP only for addresses of the interface asked on
			// (not the VIP on lo), and never use the VIP as the source
			// address of ARP requests.
			for _, kv := range [][2]string{
				{"net.ipv4.conf.all.arp_ignore", "1"},
				{"net.ipv4.conf.lo.arp_ignore", "1"},
				{"net.ipv4.conf.all.arp_announce", "2"},
				{"net.ipv4.conf.lo.arp_announce", "2"},
			} {
				if err := b.Sysctl(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		if err := b.ServeHTTP(":80", bodies[i]); err != nil {
			return err
		}
	}

	l.Section("load balancer: the VIP, announced with a gratuitous ARP")
	if err := lb.AddrAdd("eth0", lab.VIP+"/32"); err != nil {
		return err
	}
	if err := lb.GratuitousARP("eth0", lab.VIP); err != nil {
		return err
	}
	// Linux hosts (arp_accept=0) only update existing entries from an
	// unsolicited ARP; this router has none yet, so it learns the VIP when
	// it first asks for it. The announcement matters when the VIP moves
	// (see the failover lab).
	if _, err := l.ShowARPOwner(t, lab.VIP); err != nil {
		return err
	}

	l.Section("IPVS rules on the load balancer")
	c, err := lb.IPVS()
	if err != nil {
		return err
	}
	svc := ipvs.Service{
		Protocol:  ipvs.TCP,
		Address:   netip.MustParseAddr(lab.VIP),
		Port:      80,
		Scheduler: ipvs.RoundRobin,
	}
	// ipvsadm -A -t 10.0.1.1:80 -s rr
	l.Cmd(lb, "ipvsadm -A -t 10.0.1.1:80 -s rr")
	if err := c.CreateService(ctx, svc); err != nil {
		return err
	}
	l.Defer(func() {
		// ipvsadm -D -t 10.0.1.1:80
		l.Cmd(lb, "ipvsadm -D -t 10.0.1.1:80")
		if err := c.DeleteService(context.Background(), svc); err != nil {
			l.Printf("warning: %v\n", err)
		}
	})
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -g
	l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -g")
	if err := c.CreateDestination(ctx, svc, ipvs.Destination{
		Address:       netip.MustParseAddr(lab.Backend1IP),
		Port:          80,
		ForwardMethod: ipvs.DR,
		Weight:        1,
	}); err != nil {
		return err
	}
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -g
	l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -g")
	if err := c.CreateDestination(ctx, svc, ipvs.Destination{
		Address:       netip.MustParseAddr(lab.Backend2IP),
		Port:          80,
		ForwardMethod: ipvs.DR,
		Weight:        1,
	}); err != nil {
		return err
	}
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}

	l.Section("client")
	res := t.Client.Curl(ctx, "http://"+lab.VIP+"/", *requests, *timeout)
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}

	// Whom does the router send the VIP's packets to?
	owner, err := l.ShowARPOwner(t, lab.VIP)
	if err != nil {
		return err
	}

	st, err := c.Service(ctx, svc)
	if err != nil {
		return err
	}

	l.Section("verdict")
	rrErr := lab.CheckRoundRobin(res, bodies)
	counts := lab.Summarise(res)
	if *pitfall {
		if rrErr == nil && owner.NS == lb {
			return fmt.Errorf("pitfall NOT reproduced: round-robin worked and the router's ARP entry for the VIP is the load balancer's")
		}
		if owner.NS == lb || owner.NS == nil {
			return fmt.Errorf("pitfall: round-robin failed (%v) but the router's ARP entry for the VIP is %s", rrErr, owner)
		}
		l.Printf("Pitfall reproduced: round-robin is lost (%v).\n"+
			"Answers: %d from backend 1, %d from backend 2, %d failed; IPVS scheduled %d of the %d connections.\n"+
			"The router's ARP entry for 10.0.1.1 is %s's MAC address, not the load balancer's.\n"+
			"When the router asked who has 10.0.1.1, the backends answered too: with the default\n"+
			"arp_ignore=0 a host answers ARP for any of its addresses, including the VIP on lo, and the\n"+
			"router kept a backend's answer. (With arp_announce=0 a backend's own ARP requests, sent\n"+
			"from the VIP, would teach the router the same.) The router then sends the client's packets\n"+
			"for 10.0.1.1 straight to that backend, bypassing IPVS.\n"+
			"Fix: net.ipv4.conf.{all,lo}.arp_ignore=1 and arp_announce=2 on the backends.\n",
			rrErr, counts[bodies[0]], counts[bodies[1]], counts[""], st.Stats.Connections, len(res), owner.NS.Role)
		l.Outcome = "pitfall reproduced"
		return nil
	}
	if rrErr != nil {
		return rrErr
	}
	if owner.NS != lb {
		return fmt.Errorf("round-robin worked, but the router's ARP entry for the VIP is %s, not the load balancer", owner)
	}
	l.Printf("Both backends answered, alternately, and the router reaches the VIP at the load balancer.\n")
	return nil
}
