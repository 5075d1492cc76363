package healthcheck_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/healthcheck"
)

// A virtual service of two web servers, checked with an HTTP GET every 5
// seconds; a failed server gets weight 0 until it passes again.
func Example() {
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	check := healthcheck.Check{
		Probe:      healthcheck.HTTP{Path: "/health", Status: []healthcheck.StatusRange{{Min: 200, Max: 299}}},
		Interval:   5 * time.Second,
		Timeout:    2 * time.Second,
		Retries:    2,
		RetryDelay: time.Second,
		Warmup:     5 * time.Second,
	}
	m, err := healthcheck.New(c, []healthcheck.Service{{
		Service: ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80, Scheduler: ipvs.RoundRobin},
		Destinations: []healthcheck.Destination{
			{Destination: ipvs.Destination{Address: netip.MustParseAddr("10.0.2.1"), Port: 80, ForwardMethod: ipvs.NAT, Weight: 1}, Checks: []healthcheck.Check{check}},
			{Destination: ipvs.Destination{Address: netip.MustParseAddr("10.0.2.2"), Port: 80, ForwardMethod: ipvs.NAT, Weight: 1}, Checks: []healthcheck.Check{check}},
		},
	}}, healthcheck.Options{
		OnEvent: func(e healthcheck.Event) { log.Print(e) },
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// A sorry server below quorum, a depool threshold, flap damping, and the
// events on a channel.
func ExampleMonitor_Run() {
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	tcp := []healthcheck.Check{{Probe: healthcheck.TCP{}, Interval: 2 * time.Second, Timeout: time.Second, Retries: 1}}
	var dests []healthcheck.Destination
	for _, a := range []string{"10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4"} {
		dests = append(dests, healthcheck.Destination{
			Destination: ipvs.Destination{Address: netip.MustParseAddr(a), Port: 443, ForwardMethod: ipvs.DR, Weight: 10},
			Checks:      tcp,
			Alpha:       true,
		})
	}
	events := make(chan healthcheck.Event)
	m, err := healthcheck.New(c, []healthcheck.Service{{
		Service:         ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 443, Scheduler: ipvs.WeightedRoundRobin},
		Destinations:    dests,
		Quorum:          20, // two destinations' worth
		Hysteresis:      5,
		Sorry:           &ipvs.Destination{Address: netip.MustParseAddr("10.0.3.1"), Port: 443, ForwardMethod: ipvs.DR, Weight: 1},
		DepoolThreshold: 0.5, // never take out more than half at once
	}}, healthcheck.Options{
		Events:  events,
		Damping: healthcheck.Damping{HalfLife: time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	go func() {
		if err := m.Run(ctx); err != nil {
			log.Print(err)
		}
	}()
	for e := range events { // closed when Run returns
		fmt.Println(e)
	}
}

// keepalived's misc_dynamic: a script whose exit status sets the weight
// (2 to 255: weight status-2), and a check in Go.
func ExampleCommand() {
	_ = []healthcheck.Check{
		{Probe: healthcheck.Command{Path: "/etc/lb/check-load.sh", Dynamic: true}, Interval: 10 * time.Second},
		{Probe: healthcheck.Func(func(ctx context.Context, t healthcheck.Target) error {
			conn, err := t.Dial(ctx, "tcp") // from the load balancer's namespace
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = conn.Write([]byte("PING\r\n"))
			return err
		})},
	}
}

// Options.OnCheck sees every check's result: here, failures and slow checks
// per destination, as a metrics exporter would count them.
func ExampleOptions_onCheck() {
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	failures := map[netip.AddrPort]int{}
	opts := healthcheck.Options{
		OnCheck: func(r healthcheck.CheckResult) { // on Run's goroutine: no lock needed
			if r.Err != nil {
				failures[netip.AddrPortFrom(r.Destination.Address, r.Destination.Port)]++
			}
			if r.Duration > time.Second {
				log.Printf("%s check of %v took %v", r.Check, r.Destination, r.Duration)
			}
		},
		MaxInFlight: 1024,
	}
	m, err := healthcheck.New(c, []healthcheck.Service{{
		Service: ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("192.0.2.10"), Port: 443, Scheduler: ipvs.RoundRobin},
		Destinations: []healthcheck.Destination{{
			Destination: ipvs.Destination{Address: netip.MustParseAddr("10.0.0.1"), Port: 443, Weight: 1, ForwardMethod: ipvs.DR},
			Checks:      []healthcheck.Check{{Probe: healthcheck.TCP{}, Interval: time.Second, Timeout: time.Second}},
		}},
	}}, opts)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(failures)
}
