// Command nat reproduces the article's NAT lab: IPVS masquerading.
//
// The load balancer rewrites the destination of each new connection to
// 10.0.1.1:80 into one of the backends, and rewrites the replies back, so the
// replies must come back through it: the backends' default route is the load
// balancer. With -pitfall the backends keep the router as their default
// route, as the article shows first: their replies go straight to the
// router, carrying the backend's own address, and the client gets no answer.
//
// Run as root on a kernel with IPVS. Everything happens in network
// namespaces that are deleted at the end; see ../README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/examples/internal/lab"
)

var (
	pitfall  = flag.Bool("pitfall", false, "leave the backends' default route on the router (the article's pitfall) and check that the client gets no answer")
	requests = flag.Int("n", 6, "number of HTTP requests the client sends")
	timeout  = flag.Duration("timeout", 2*time.Second, "how long the client waits for each answer")
)

func main() {
	flag.Parse()
	lab.Run("nat", 3*time.Minute, run)
}

func run(ctx context.Context, l *lab.Lab) error {
	// NAT: the backends must send their replies back through the load
	// balancer, so their default route points at it. The pitfall keeps
	// the router.
	gw := lab.LBIP
	if *pitfall {
		gw = lab.RouterSrv
	}
	t, err := l.BuildTopology(gw, false)
	if err != nil {
		return err
	}
	lb := t.LB

	l.Section("load balancer: the VIP, and forwarding for the replies it un-NATs")
	if err := lb.AddrAdd("eth0", lab.VIP+"/32"); err != nil {
		return err
	}
	if err := lb.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	// Not in the article: the load balancer forwards the replies out of
	// the interface they came in on, which makes it send ICMP redirects
	// ("reach the router directly") to the backends. Linux backends ignore
	// them by default (secure_redirects), but a one-armed NAT director
	// should not send them, as the LVS documentation advises.
	for _, k := range []string{"all", "eth0"} {
		if err := lb.Sysctl("net.ipv4.conf."+k+".send_redirects", "0"); err != nil {
			return err
		}
	}

	l.Section("backends")
	bodies := [2]string{"Hello from backend 1", "Hello from backend 2"}
	for i, b := range t.Backends {
		if err := b.ServeHTTP(":80", bodies[i]); err != nil {
			return err
		}
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
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -m
	l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -m")
	if err := c.CreateDestination(ctx, svc, ipvs.Destination{
		Address:       netip.MustParseAddr(lab.Backend1IP),
		Port:          80,
		ForwardMethod: ipvs.NAT,
		Weight:        1,
	}); err != nil {
		return err
	}
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -m
	l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -m")
	if err := c.CreateDestination(ctx, svc, ipvs.Destination{
		Address:       netip.MustParseAddr(lab.Backend2IP),
		Port:          80,
		ForwardMethod: ipvs.NAT,
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

	l.Section("verdict")
	if *pitfall {
		answered := 0
		for _, r := range res {
			if r.Err == nil {
				answered++
			}
		}
		if answered > 0 {
			return fmt.Errorf("pitfall NOT reproduced: %d of %d requests were answered although the backends route via the router", answered, len(res))
		}
		l.Printf("Pitfall reproduced: none of the %d requests got an answer within %v.\n"+
			"IPVS rewrote each request to a backend, but the backend's default route is the router,\n"+
			"so its reply went straight to the router with the backend's own address (10.0.2.x) as\n"+
			"source instead of going back through the load balancer to be rewritten to 10.0.1.1:80.\n"+
			"The client does not recognise such a reply and the connection never opens.\n"+
			"Fix: ip netns exec backendN ip route replace default via %s\n", len(res), *timeout, lab.LBIP)
		l.Outcome = "pitfall reproduced"
		return nil
	}
	if err := lab.CheckRoundRobin(res, bodies); err != nil {
		return err
	}
	if len(res) < *requests {
		return errors.New("interrupted")
	}
	l.Printf("Both backends answered, alternately, as round-robin over NAT destinations implies.\n")
	return nil
}
