// Command health shows health checks driving IPVS weights, on the
// article's NAT network.
//
// IPVS itself never checks whether a backend is alive: a dead backend keeps
// its share of new connections until something sets its weight to 0. Here
// the healthcheck package does, as keepalived's checker would: an HTTP GET of
// each backend every second, from the load balancer's namespace. Backend
// 1's server stops: within the configured detection time its weight is 0
// and every request is answered by backend 2; it comes back, and so does its
// weight. Then both stop: the quorum is lost and the sorry server, a server
// on the load balancer itself, answers until they are back.
//
// With -pitfall no checks run, as with IPVS alone: after backend 1's server
// stops, the requests IPVS still sends it fail.
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
	"github.com/ipvs-go/ipvs/healthcheck"
)

var (
	pitfall  = flag.Bool("pitfall", false, "run no health checks (IPVS alone) and check that requests to the stopped backend fail")
	requests = flag.Int("n", 6, "number of HTTP requests the client sends at each step")
	timeout  = flag.Duration("timeout", 2*time.Second, "how long the client waits for each answer")
	interval = flag.Duration("interval", time.Second, "health check interval")
)

func main() {
	flag.Parse()
	lab.Run("health", 3*time.Minute, run)
}

func run(ctx context.Context, l *lab.Lab) error {
	t, err := l.BuildTopology(lab.LBIP, false)
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
	for _, k := range []string{"all", "eth0"} {
		if err := lb.Sysctl("net.ipv4.conf."+k+".send_redirects", "0"); err != nil {
			return err
		}
	}

	l.Section("backends")
	bodies := [2]string{"Hello from backend 1", "Hello from backend 2"}
	var servers [2]*lab.HTTPServer
	for i, b := range t.Backends {
		if servers[i], err = b.StartHTTP(":80", bodies[i]); err != nil {
			return err
		}
	}
	// The sorry server runs on the load balancer itself, on the VIP's
	// port: a destination that is a local address is delivered locally.
	const sorryBody = "Sorry, the service is down for maintenance"
	if !*pitfall {
		if _, err := lb.StartHTTP(lab.VIP+":80", sorryBody); err != nil {
			return err
		}
	}

	l.Section("IPVS rules on the load balancer")
	c, err := lb.IPVS()
	if err != nil {
		return err
	}
	svc := ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr(lab.VIP), Port: 80, Scheduler: ipvs.RoundRobin}
	l.Cmd(lb, "ipvsadm -A -t 10.0.1.1:80 -s rr")
	if err := c.CreateService(ctx, svc); err != nil {
		return err
	}
	l.Defer(func() {
		l.Cmd(lb, "ipvsadm -D -t 10.0.1.1:80")
		if err := c.DeleteService(context.Background(), svc); err != nil {
			l.Printf("warning: %v\n", err)
		}
	})
	var dests [2]ipvs.Destination
	for i := range dests {
		dests[i] = ipvs.Destination{Address: netip.MustParseAddr(lab.BackendIPs[i]), Port: 80, ForwardMethod: ipvs.NAT, Weight: 1}
		l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r %s:80 -m -w 1", lab.BackendIPs[i])
		if err := c.CreateDestination(ctx, svc, dests[i]); err != nil {
			return err
		}
	}
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}

	l.Section("client: both backends answer")
	res := t.Client.Curl(ctx, "http://"+lab.VIP+"/", *requests, *timeout)
	if err := lab.CheckRoundRobin(res, bodies); err != nil {
		return err
	}

	if *pitfall {
		l.Section("backend 1's server stops; nothing checks it")
		servers[0].Stop()
		res := t.Client.Curl(ctx, "http://"+lab.VIP+"/", *requests, *timeout)
		if err := lb.ListIPVS(ctx, c); err != nil {
			return err
		}
		l.Section("verdict")
		sum := lab.Summarise(res)
		if sum[""] == 0 || sum[bodies[1]] == 0 || sum[""]+sum[bodies[1]] != len(res) {
			return fmt.Errorf("pitfall NOT reproduced: answers %v; want some failures and the rest from backend 2", sum)
		}
		l.Printf("Pitfall reproduced: %d of %d requests failed. IPVS runs no health checks: backend 1\n"+
			"keeps weight 1 and its share of new connections, which its stopped server refuses.\n"+
			"Fix: run health checks that set its weight to 0 (keepalived, or the healthcheck package).\n", sum[""], len(res))
		l.Outcome = "pitfall reproduced"
		return nil
	}

	return withChecks(ctx, l, t, c, svc, dests, servers, bodies, sorryBody)
}

func withChecks(ctx context.Context, l *lab.Lab, t *lab.Topology, c *ipvs.Client, svc ipvs.Service,
	dests [2]ipvs.Destination, servers [2]*lab.HTTPServer, bodies [2]string, sorryBody string) error {
	lb := t.LB
	l.Section("health checks: HTTP GET / every %v from the load balancer's namespace", *interval)
	check := healthcheck.Check{
		Probe:      healthcheck.HTTP{Path: "/", BodyContains: "Hello"},
		Interval:   *interval,
		Timeout:    *interval / 2,
		Retries:    1,
		RetryDelay: *interval / 2,
		Warmup:     *interval,
	}
	// The longest a failure can take to be acted upon: the next check,
	// then Retries more, each up to the timeout.
	detection := check.Interval + time.Duration(check.Retries)*check.RetryDelay + time.Duration(check.Retries+1)*check.Timeout
	l.Printf("# HTTP_GET { url { path / } } delay_loop %v connect_timeout %v retry %d delay_before_retry %v\n",
		check.Interval, check.Timeout, check.Retries, check.RetryDelay)
	l.Printf("# detection time at most %v; sorry server %s:80 (on the load balancer) below quorum 1\n", detection, lab.VIP)
	sorry := ipvs.Destination{Address: netip.MustParseAddr(lab.VIP), Port: 80, ForwardMethod: ipvs.Local, Weight: 1}
	events := make(chan healthcheck.Event, 16)
	m, err := healthcheck.New(c, []healthcheck.Service{{
		Service: svc,
		Destinations: []healthcheck.Destination{
			{Destination: dests[0], Checks: []healthcheck.Check{check}},
			{Destination: dests[1], Checks: []healthcheck.Check{check}},
		},
		Sorry: &sorry,
	}}, healthcheck.Options{Events: events})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()

	// await prints the events until want arrives for d (or arrived
	// already), or the limit passes, and says how long it took.
	type key struct {
		kind healthcheck.EventKind
		dest ipvs.Destination
	}
	seen := map[key]time.Time{}
	await := func(want healthcheck.EventKind, d ipvs.Destination, since time.Time, limit time.Duration) (time.Duration, error) {
		timer := time.NewTimer(limit + *interval)
		defer timer.Stop()
		for {
			if at, ok := seen[key{want, d}]; ok && !at.Before(since) {
				took := at.Sub(since)
				l.Printf("#   (%v %v %v after the change)\n", d, want, took.Round(time.Millisecond))
				if took > limit {
					return took, fmt.Errorf("%v took %v, over the detection time %v", want, took, limit)
				}
				return took, nil
			}
			select {
			case e := <-events:
				l.Printf("# healthcheck: %v\n", e)
				printIPVSCommand(l, lb, e)
				seen[key{e.Kind, e.Destination}] = time.Now()
			case <-timer.C:
				return 0, fmt.Errorf("no %v event for %v within %v", want, d, limit)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	url := "http://" + lab.VIP + "/"

	l.Section("backend 1's server stops")
	stopped := time.Now()
	servers[0].Stop()
	took, err := await(healthcheck.Down, dests[0], stopped, detection)
	if err != nil {
		return err
	}
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}
	res := t.Client.Curl(ctx, url, *requests, *timeout)
	if sum := lab.Summarise(res); sum[bodies[1]] != len(res) {
		return fmt.Errorf("with backend 1 down: answers %v, want all from backend 2", sum)
	}
	l.Printf("Backend 1's weight went to 0 in %v (detection time at most %v); backend 2 answered every request.\n",
		took.Round(time.Millisecond), detection)

	l.Section("backend 1's server is back")
	back := time.Now()
	if err := servers[0].Start(); err != nil {
		return err
	}
	if _, err := await(healthcheck.Up, dests[0], back, check.Interval+check.Timeout); err != nil {
		return err
	}
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}
	res = t.Client.Curl(ctx, url, *requests, *timeout)
	if err := lab.CheckRoundRobin(res, bodies); err != nil {
		return err
	}
	l.Printf("Backend 1's weight is back to 1; the requests alternate again.\n")

	l.Section("both servers stop: below quorum, the sorry server answers")
	stopped = time.Now()
	servers[0].Stop()
	servers[1].Stop()
	if _, err := await(healthcheck.QuorumLost, sorry, stopped, detection); err != nil {
		return err
	}
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}
	res = t.Client.Curl(ctx, url, 2, *timeout)
	if sum := lab.Summarise(res); sum[sorryBody] != len(res) {
		return fmt.Errorf("below quorum: answers %v, want all from the sorry server", sum)
	}

	l.Section("both servers are back: the sorry server steps aside")
	// Each destination's time runs from when its own server is back: a
	// check that ran between the two starts failed, rightly.
	backAt := make([]time.Time, len(servers))
	for i, s := range servers {
		backAt[i] = time.Now()
		if err := s.Start(); err != nil {
			return err
		}
	}
	if _, err := await(healthcheck.QuorumGained, sorry, backAt[0], check.Interval+check.Timeout); err != nil {
		return err
	}
	for i, d := range dests {
		if _, err := await(healthcheck.Up, d, backAt[i], check.Interval+check.Timeout); err != nil {
			return err
		}
	}
	if err := lb.ListIPVS(ctx, c); err != nil {
		return err
	}
	res = t.Client.Curl(ctx, url, *requests, *timeout)
	if err := lab.CheckRoundRobin(res, bodies); err != nil {
		return err
	}
	if len(res) < *requests {
		return errors.New("interrupted")
	}
	l.Section("verdict")
	l.Printf("Health checks set a stopped backend's weight to 0 within the detection time and restored\n" +
		"it when it came back; below quorum the sorry server answered.\n")
	return nil
}

// printIPVSCommand prints the ipvsadm command that an event's change
// stands for.
func printIPVSCommand(l *lab.Lab, lb *lab.NS, e healthcheck.Event) {
	switch e.Kind {
	case healthcheck.Up, healthcheck.Down:
		if e.Held {
			return
		}
		l.Cmd(lb, "ipvsadm -e -t 10.0.1.1:80 -r %s -m -w %d   # done by the healthcheck package", e.Destination, e.Weight)
	case healthcheck.QuorumLost:
		l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r %s   # the sorry server, done by the healthcheck package", e.Destination)
	case healthcheck.QuorumGained:
		l.Cmd(lb, "ipvsadm -d -t 10.0.1.1:80 -r %s   # done by the healthcheck package", e.Destination)
	}
}
