// Command ipip reproduces the article's IP-in-IP tunnelling (IPIP) lab.
//
// The load balancer wraps each packet to 10.0.1.1:80 in an IPIP header
// addressed to the chosen backend. The backend unwraps it on tunl0, the
// ipip module's catch-all tunnel device, which holds the VIP, and answers the
// client directly through the router. Reverse-path filtering must be off on
// the backends, because the unwrapped packets arrive on tunl0 while the route
// back to the client leaves through eth0.
//
// With -pitfall the backends turn strict reverse-path filtering on
// (rp_filter=1) instead, and the program checks that the client then gets no
// answer.
//
// Run as root on a kernel with IPVS and the ipip module. Everything happens
// in network namespaces that are deleted at the end; see ../README.md.
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
	pitfall  = flag.Bool("pitfall", false, "set strict reverse-path filtering (rp_filter=1) on the backends instead of turning it off, and check that the client gets no answer")
	requests = flag.Int("n", 6, "number of HTTP requests the client sends")
	timeout  = flag.Duration("timeout", 2*time.Second, "how long the client waits for each answer")
)

func main() {
	flag.Parse()
	lab.Run("ipip", 3*time.Minute, run)
}

func run(ctx context.Context, l *lab.Lab) error {
	// IPIP: the backends answer the client directly, through the router.
	t, err := l.BuildTopology(lab.RouterSrv, false)
	if err != nil {
		return err
	}
	lb := t.LB

	l.Section("backends: tunl0 up with the VIP, reverse-path filtering off")
	bodies := [2]string{"Hello from backend 1", "Hello from backend 2"}
	rpFilter := "0"
	if *pitfall {
		rpFilter = "1"
		l.Printf("# pitfall: strict reverse-path filtering (rp_filter=1) instead of 0\n")
	}
	for i, b := range t.Backends {
		if err := b.EnsureTunl0(); err != nil {
			return err
		}
		if err := b.LinkUp("tunl0"); err != nil {
			return err
		}
		if err := b.AddrAdd("tunl0", lab.VIP+"/32"); err != nil {
			return err
		}
		for _, k := range []string{"all", "default", "tunl0"} {
			if err := b.Sysctl("net.ipv4.conf."+k+".rp_filter", rpFilter); err != nil {
				return err
			}
		}
		// Not in the article's IPIP steps: here the backends share the
		// router's L2 segment, so, as in DR, they must neither answer ARP
		// for the VIP they hold on tunl0 nor announce it, or the router
		// would send the VIP's packets straight to a backend.
		for _, kv := range [][2]string{
			{"net.ipv4.conf.all.arp_ignore", "1"},
			{"net.ipv4.conf.all.arp_announce", "2"},
		} {
			if err := b.Sysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		if err := b.ServeHTTP(":80", bodies[i]); err != nil {
			return err
		}
	}

	l.Section("load balancer: the VIP")
	if err := lb.AddrAdd("eth0", lab.VIP+"/32"); err != nil {
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
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -i
	l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -i")
	if err := c.CreateDestination(ctx, svc, ipvs.Destination{
		Address:       netip.MustParseAddr(lab.Backend1IP),
		Port:          80,
		ForwardMethod: ipvs.IPIP,
		Weight:        1,
	}); err != nil {
		return err
	}
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -i
	l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -i")
	if err := c.CreateDestination(ctx, svc, ipvs.Destination{
		Address:       netip.MustParseAddr(lab.Backend2IP),
		Port:          80,
		ForwardMethod: ipvs.IPIP,
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
		if n := lab.Summarise(res)[""]; n != len(res) {
			return fmt.Errorf("pitfall NOT reproduced: %d of %d requests were answered with rp_filter=1 on the backends", len(res)-n, len(res))
		}
		l.Printf("Pitfall reproduced: none of the %d requests got an answer within %v.\n"+
			"IPVS tunnelled each request to a backend, which unwrapped it on tunl0; but the route\n"+
			"back to the client (192.168.88.2) leaves through eth0, not tunl0, so strict reverse-path\n"+
			"filtering dropped the packet as spoofed.\n"+
			"Fix: sysctl -w net.ipv4.conf.{all,default,tunl0}.rp_filter=0 on the backends.\n", len(res), *timeout)
		l.Outcome = "pitfall reproduced"
		return nil
	}
	if err := lab.CheckRoundRobin(res, bodies); err != nil {
		return err
	}
	if len(res) < *requests {
		return errors.New("interrupted")
	}
	l.Printf("Both backends answered, alternately, through the IPIP tunnel.\n")
	return nil
}
