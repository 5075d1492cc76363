package ipvs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/ipvs-go/ipvs"
)

// The article's NAT lab: a round-robin service on the virtual address
// 10.0.1.1:80 with two masqueraded backends. Each call replaces one ipvsadm
// command.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err) // IPVS unavailable, or not permitted
	}
	defer c.Close()

	// ipvsadm -A -t 10.0.1.1:80 -s rr
	web := ipvs.Service{
		Protocol:  ipvs.TCP,
		Address:   netip.MustParseAddr("10.0.1.1"),
		Port:      80,
		Scheduler: ipvs.RoundRobin,
	}
	if err := c.CreateService(ctx, web); err != nil && !errors.Is(err, os.ErrExist) {
		log.Fatal(err)
	}

	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.1:80 -m
	// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.2:80 -m
	for _, backend := range []string{"10.0.2.1", "10.0.2.2"} {
		err := c.CreateDestination(ctx, web, ipvs.Destination{
			Address:       netip.MustParseAddr(backend),
			Port:          80,
			ForwardMethod: ipvs.NAT,
			Weight:        1,
		})
		if err != nil && !errors.Is(err, os.ErrExist) {
			log.Fatal(err)
		}
	}
}

// A listing with statistics, as ipvsadm -Ln --stats prints it.
func ExampleClient_Services() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	svcs, err := c.Services(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-33s %8s %8s %8s %8s %8s\n", "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	for _, s := range svcs {
		fmt.Printf("%-33s %8d %8d %8d %8d %8d\n", s.Service, s.Stats.Connections,
			s.Stats.PacketsIn, s.Stats.PacketsOut, s.Stats.BytesIn, s.Stats.BytesOut)
		dests, err := c.Destinations(ctx, s.Service)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range dests {
			fmt.Printf("  -> %-28s %8d %8d %8d %8d %8d\n", d.Destination, d.Stats.Connections,
				d.Stats.PacketsIn, d.Stats.PacketsOut, d.Stats.BytesIn, d.Stats.BytesOut)
		}
	}
}

// Starting the connection sync daemon of a master load balancer; the backup
// runs the same with ipvs.Backup.
func ExampleClient_StartSyncDaemon() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// ipvsadm --start-daemon master --mcast-interface eth0 --syncid 1
	err = c.StartSyncDaemon(ctx, ipvs.SyncDaemon{
		State:     ipvs.Master,
		Interface: "eth0",
		SyncID:    1,
	})
	if err != nil && !errors.Is(err, os.ErrExist) {
		log.Fatal(err)
	}

	daemons, err := c.SyncDaemons(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range daemons {
		// The kernel reports its defaults: group 224.0.0.81, port 8848.
		fmt.Printf("%s sync daemon (mcast=%s, syncid=%d, group=%s, port=%d)\n",
			d.State, d.Interface, d.SyncID, d.Group, d.Port)
	}
}

// Draining a destination, as kube-proxy does before deleting it: weight 0
// sends it no new connections while existing ones finish.
func ExampleClient_UpdateDestination() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	web := ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80}
	dests, err := c.Destinations(ctx, web)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range dests {
		if d.Address == netip.MustParseAddr("10.0.2.2") {
			d.Weight = 0 // ipvsadm -e -t 10.0.1.1:80 -r 10.0.2.2:80 -m -w 0
			if err := c.UpdateDestination(ctx, web, d.Destination); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// Changing one flag and the persistence timeout of a service while keeping
// its scheduler, netmask and persistence engine.
func ExampleClient_EditService() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	timeout := 10 * time.Minute
	err = c.EditService(ctx,
		ipvs.Service{Protocol: ipvs.UDP, Address: netip.MustParseAddr("10.0.1.1"), Port: 5060},
		ipvs.ServiceEdit{SetFlags: ipvs.FlagPersistent, Timeout: &timeout})
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("no such service")
	} else if err != nil {
		log.Fatal(err)
	}
}

// A batch of changes in one call: a new service with its backends, a
// drained backend and a deleted one. Each change has its own outcome; a
// failed one does not stop the others.
func ExampleClient_Apply() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	api := ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.2"), Port: 443, Scheduler: ipvs.WeightedRoundRobin}
	web := ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80}
	backend := func(addr string, port uint16, weight int) ipvs.Destination {
		return ipvs.Destination{Address: netip.MustParseAddr(addr), Port: port, ForwardMethod: ipvs.NAT, Weight: weight}
	}
	changes := []ipvs.Change{
		{Kind: ipvs.CreateService, Service: api},
		{Kind: ipvs.CreateDestination, Service: api, Destination: backend("10.0.2.1", 8443, 2)},
		{Kind: ipvs.CreateDestination, Service: api, Destination: backend("10.0.2.2", 8443, 1)},
		{Kind: ipvs.UpdateDestination, Service: web, Destination: backend("10.0.2.2", 80, 0)}, // drain
		{Kind: ipvs.DeleteDestination, Service: web, Destination: backend("10.0.2.3", 80, 0)},
	}
	errs, err := c.Apply(ctx, changes)
	if err != nil {
		log.Fatal(err) // the exchange failed: changes without an answer carry err too
	}
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, os.ErrExist) && changes[i].Kind == ipvs.CreateService:
			// Already there: the destinations are still added.
		case errors.Is(err, ipvs.ErrUnacknowledged):
			fmt.Printf("%v: outcome unknown, read the table back\n", changes[i])
		default:
			fmt.Printf("%v: %v\n", changes[i], err)
		}
	}
}

// A controller that adds a backend to one service and keeps the rest of the
// table as it is: it reads the table, turns it into the desired state with
// ipvs.Desired, edits that and reconciles. Only the difference is applied;
// run again, Reconcile changes nothing.
func ExampleClient_Reconcile() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	table, err := c.VirtualServices(ctx)
	if err != nil {
		log.Fatal(err)
	}
	desired := ipvs.Desired(table)
	web := netip.MustParseAddrPort("10.0.1.1:80")
	for i, vs := range desired {
		s := vs.Service
		if s.Protocol == ipvs.TCP && s.Address == web.Addr() && s.Port == web.Port() {
			desired[i].Destinations = append(vs.Destinations, ipvs.Destination{
				Address: netip.MustParseAddr("10.0.2.4"), Port: 80, ForwardMethod: ipvs.NAT, Weight: 1,
			})
		}
	}

	// With GracefulRemoval, a destination left out of desired is drained
	// (weight 0) and deleted by a later run once its connections are gone.
	res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{GracefulRemoval: true})
	for i, ch := range res.Changes {
		if res.Errors[i] != nil {
			fmt.Printf("%v failed: %v\n", ch, res.Errors[i])
		} else {
			fmt.Println(ch) // create destination 10.0.2.4:80 of TCP 10.0.1.1:80
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleForwardMethod_String() {
	for _, m := range []ipvs.ForwardMethod{ipvs.NAT, ipvs.DR, ipvs.IPIP, ipvs.Local} {
		fmt.Println(m)
	}
	// Output:
	// NAT
	// DR
	// IPIP
	// Local
}

// A persistence netmask has one value per mask, so a Service read back
// compares equal to the one written; String writes it as ipvsadm -S does.
func ExampleNetmask() {
	fmt.Println(ipvs.PrefixMask(ipvs.IPv4, 24), ipvs.PrefixMask(ipvs.IPv4, 24) == ipvs.IPv4Mask(255, 255, 255, 0))
	fmt.Println(ipvs.IPv4Mask(0, 0, 0, 0), ipvs.IPv4Mask(255, 0, 255, 0))
	fmt.Println(ipvs.PrefixMask(ipvs.IPv6, 64))
	fmt.Println(ipvs.PrefixMask(ipvs.IPv6, 128), ipvs.PrefixMask(ipvs.IPv6, 128) == ipvs.Netmask{})
	// Output:
	// 255.255.255.0 true
	// 0.0.0.0 255.0.255.0
	// 64
	// full true
}

func ExampleService_String() {
	fmt.Println(ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80})
	fmt.Println(ipvs.Service{Protocol: ipvs.UDP, Address: netip.MustParseAddr("2001:db8::1"), Port: 53})
	fmt.Println(ipvs.Service{FirewallMark: 100, Family: ipvs.IPv6})
	// Output:
	// TCP 10.0.1.1:80
	// UDP [2001:db8::1]:53
	// FWM 100 IPv6
}
