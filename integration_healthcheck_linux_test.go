//go:build linux

package ipvs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/healthcheck"
)

// TestIntegrationHealthcheck runs the healthcheck package against the
// kernel: a NAT service in the test's namespace (the load balancer), two
// HTTP backends in namespaces of their own behind veth pairs, and a Monitor
// whose checks run in the load balancer's namespace although the test
// process is not in it (the backends are reachable only from there). The
// first backend's server stops: within the detection time its weight in the
// kernel is 0 and every connection to the VIP reaches the second; it
// restarts, and its weight comes back.
func TestIntegrationHealthcheck(t *testing.T) {
	c, lb := newClient(t)
	ctx := testCtx(t)
	lb.addDummy(t, "dummy0", "10.16.0.1/32")
	var backends [2]*netNS
	var servers [2]*backendServer
	for i := range backends {
		b := newNetNS(t)
		backends[i] = b
		lbSide, bSide := fmt.Sprintf("b%d", i+1), "eth0"
		lb.addVeth(t, lbSide, b, bSide)
		lb.addAddr(t, lbSide, netip.MustParsePrefix(fmt.Sprintf("10.16.%d.254/24", i+1)))
		b.addAddr(t, bSide, netip.MustParsePrefix(fmt.Sprintf("10.16.%d.1/24", i+1)))
		lb.linkUp(t, lbSide)
		b.linkUp(t, bSide)
		b.addDefaultRoute(t, netip.MustParseAddr(fmt.Sprintf("10.16.%d.254", i+1)))
		servers[i] = startBackend(t, b, fmt.Sprintf("10.16.%d.1:8080", i+1), fmt.Sprintf("backend %d", i+1))
	}

	svc := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.16.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	d1 := ipvs.Destination{Address: addr("10.16.1.1"), Port: 8080, Weight: 3}
	d2 := ipvs.Destination{Address: addr("10.16.2.1"), Port: 8080, Weight: 3}
	const (
		interval   = 500 * time.Millisecond
		timeout    = 400 * time.Millisecond
		retries    = 1
		retryDelay = 200 * time.Millisecond
	)
	// The HTTP check, wrapped to log the results of backend 1's checks.
	var logMu sync.Mutex
	var checkLog []string
	httpCheck := healthcheck.HTTP{Path: "/health", BodyContains: "ok"}
	probe := healthcheck.Func(func(ctx context.Context, tg healthcheck.Target) error {
		_, err := httpCheck.Probe(ctx, tg)
		if tg.Destination == d1 {
			logMu.Lock()
			checkLog = append(checkLog, fmt.Sprintf("%s %v", time.Now().Format("15:04:05.000"), err))
			logMu.Unlock()
		}
		return err
	})
	check := healthcheck.Check{
		Probe:    probe,
		Interval: interval, Timeout: timeout, Retries: retries, RetryDelay: retryDelay,
		Warmup: interval,
	}
	var mu sync.Mutex
	var events []healthcheck.Event
	m, err := healthcheck.New(c, []healthcheck.Service{{
		Service: svc,
		Destinations: []healthcheck.Destination{
			{Destination: d1, Checks: []healthcheck.Check{check}},
			{Destination: d2, Checks: []healthcheck.Check{check}},
		},
	}}, healthcheck.Options{OnEvent: func(e healthcheck.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("healthcheck.New: %v", err)
	}
	// run starts m and returns the function that stops it.
	run := func(m *healthcheck.Monitor) (stop func()) {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
	stop := run(m)

	weights := func() map[string]int {
		t.Helper()
		ds, err := c.Destinations(ctx, svc)
		if errors.Is(err, os.ErrNotExist) { // Run has not created it yet
			return nil
		}
		if err != nil {
			t.Fatalf("Destinations: %v", err)
		}
		w := map[string]int{}
		for _, d := range ds {
			w[d.Destination.String()] = d.Weight
		}
		return w
	}
	waitWeight := func(d ipvs.Destination, want int, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if w, ok := weights()[d.String()]; ok && w == want {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("weight of %v not %d within %v: %v", d, want, limit, weights())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The Monitor created the service and both destinations.
	waitWeight(d1, 3, 5*time.Second)
	waitWeight(d2, 3, 5*time.Second)
	answers := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		// A client in the load balancer's namespace, each request on a new
		// connection (the Transport dials from goroutines of its own).
		hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, a string) (cn net.Conn, err error) {
				err = lb.do(func() error { cn, err = (&net.Dialer{}).DialContext(ctx, network, a); return err })
				return cn, err
			},
		}}
		for range n {
			resp, err := hc.Get("http://10.16.0.1/")
			if err != nil {
				got["error: "+err.Error()]++
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(b)]++
		}
		return got
	}
	if got := answers(4); got["backend 1"] != 2 || got["backend 2"] != 2 {
		t.Fatalf("both up: answers %v, want 2 from each backend", got)
	}

	// Stop backend 1: connections to it are refused from now on.
	stopped := time.Now()
	servers[0].stop()
	// Detection: the next check (at most an interval away), then Retries
	// more, RetryDelay apart.
	limit := interval + retries*retryDelay + (retries+1)*timeout + time.Second
	waitWeight(d1, 0, limit)
	t.Logf("kernel %s: weight of %v went to 0 %v after its server stopped at %s (interval %v, %d retry %v later, timeout %v)",
		kernelRelease(), d1, time.Since(stopped).Round(time.Millisecond), stopped.Format("15:04:05.000"), interval, retries, retryDelay, timeout)
	logMu.Lock()
	t.Logf("checks of %v:\n  %s", d1, strings.Join(checkLog, "\n  "))
	logMu.Unlock()
	if got := answers(4); got["backend 2"] != 4 {
		t.Errorf("backend 1 down: answers %v, want all 4 from backend 2", got)
	}
	if w := weights()[d2.String()]; w != 3 {
		t.Errorf("weight of the live %v = %d, want 3", d2, w)
	}

	// Restart it: one success brings it back.
	restarted := time.Now()
	servers[0].start(t)
	waitWeight(d1, 3, interval+timeout+time.Second)
	t.Logf("kernel %s: weight of %v back to 3 %v after its server restarted", kernelRelease(), d1, time.Since(restarted).Round(time.Millisecond))
	if got := answers(4); got["backend 1"] != 2 || got["backend 2"] != 2 {
		t.Errorf("both up again: answers %v, want 2 from each backend", got)
	}

	// A new Monitor over the same table (a restart) changes nothing live.
	stop()
	m2, err := healthcheck.New(c, []healthcheck.Service{{
		Service: svc,
		Destinations: []healthcheck.Destination{
			{Destination: d1, Checks: []healthcheck.Check{check}, Alpha: true},
			{Destination: d2, Checks: []healthcheck.Check{check}, Alpha: true},
		},
	}}, healthcheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run(m2)
	for range 20 {
		if w := weights(); w[d1.String()] != 3 || w[d2.String()] != 3 {
			t.Fatalf("after a restart with Alpha: weights %v, want both still 3", w)
		}
		time.Sleep(25 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.String())
	}
	t.Logf("events:\n  %s", strings.Join(kinds, "\n  "))
	if len(events) != 2 || events[0].Kind != healthcheck.Down || events[1].Kind != healthcheck.Up || events[0].Err == nil {
		t.Errorf("events = %v, want Down (with the check's error) then Up for %v", events, d1)
	}
}

// A backendServer is an HTTP server in a backend's namespace that can be
// stopped and started again on the same address.
type backendServer struct {
	ns   *netNS
	addr string
	body string
	mu   sync.Mutex
	srv  *http.Server
}

func startBackend(t *testing.T, ns *netNS, addr, body string) *backendServer {
	b := &backendServer{ns: ns, addr: addr, body: body}
	b.start(t)
	t.Cleanup(b.stop)
	return b
}

func (b *backendServer) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if err := b.ns.do(func() (err error) { ln, err = net.Listen("tcp4", b.addr); return err }); err != nil {
		t.Fatalf("listen on %s: %v", b.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			io.WriteString(w, "ok\n")
			return
		}
		io.WriteString(w, b.body)
	}), ReadHeaderTimeout: 10 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

func (b *backendServer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		_ = b.srv.Close()
		b.srv = nil
	}
}

// addDefaultRoute adds "default via gw" to ns's main table.
func (ns *netNS) addDefaultRoute(t *testing.T, gw netip.Addr) {
	t.Helper()
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
	// type, flags (u32).
	hdr := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	g := gw.As4()
	attrs := encodeAttrs(t, func(ae *netlink.AttributeEncoder) { ae.Bytes(unix.RTA_GATEWAY, g[:]) })
	if _, err := ns.rtnl(unix.RTM_NEWROUTE, netlink.Acknowledge|netlink.Create|netlink.Excl, append(hdr, attrs...)); err != nil {
		t.Fatalf("adding default via %v: %v", gw, err)
	}
}

// TestIntegrationInNetNS: a socket opened in Client.InNetNS belongs to the
// Client's namespace, and stays usable from other goroutines afterwards.
func TestIntegrationInNetNS(t *testing.T) {
	c, ns := newClient(t)
	ns.addDummy(t, "dummy0", "10.16.9.1/32")
	if ln, err := net.Listen("tcp4", "10.16.9.1:0"); err == nil {
		ln.Close()
		t.Fatal("10.16.9.1 is an address of the test's own namespace: the test proves nothing")
	}
	var ln net.Listener
	if err := c.InNetNS(func() (err error) { ln, err = net.Listen("tcp4", "10.16.9.1:0"); return err }); err != nil {
		t.Fatalf("InNetNS: listen on an address of the Client's namespace: %v", err)
	}
	defer ln.Close()
	go echoServer(ln)
	if err := ns.do(func() error { return ping(ln.Addr().String()) }); err != nil {
		t.Errorf("a connection to the listener from inside the namespace: %v", err)
	}
}

// TestIntegrationHealthcheckForwardingPath checks a DR destination through
// the forwarding path, as the package documentation describes: the check
// connects to the VIP from a real address of the load balancer, with the
// mark of a firewall-mark service that holds only that destination, so IPVS
// sends it by direct routing to the backend, which holds the VIP itself and
// answers directly. The same check without the mark reaches nothing (the
// VIP is local to the load balancer, where nothing listens).
func TestIntegrationHealthcheckForwardingPath(t *testing.T) {
	c, lb := newClient(t)
	ctx := testCtx(t)
	lb.addDummy(t, "dummy0", "10.16.0.1/32")
	b := newNetNS(t)
	lb.addVeth(t, "b1", b, "eth0")
	lb.addAddr(t, "b1", netip.MustParsePrefix("10.16.1.254/24"))
	b.addAddr(t, "eth0", netip.MustParsePrefix("10.16.1.1/24"))
	lb.linkUp(t, "b1")
	b.linkUp(t, "eth0")
	b.addDummy(t, "vip0", "10.16.0.1/32") // DR: the backend holds the VIP
	// The backend's answers come from the VIP, an address of the load
	// balancer too: without accept_local it drops them as martians.
	for _, kv := range [][2]string{
		{"net/ipv4/conf/all/rp_filter", "0"}, {"net/ipv4/conf/b1/rp_filter", "0"}, {"net/ipv4/conf/b1/accept_local", "1"},
	} {
		if err := lb.do(func() error { return os.WriteFile("/proc/sys/"+kv[0], []byte(kv[1]), 0o644) }); err != nil {
			t.Fatalf("sysctl %s: %v", kv[0], err)
		}
	}
	server := startBackend(t, b, ":80", "backend 1")

	d := ipvs.Destination{Address: addr("10.16.1.1"), Port: 80, ForwardMethod: ipvs.DR, Weight: 1}
	path := ipvs.Service{FirewallMark: 101, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin}
	mustCreate(t, ctx, c, path)
	mustCreateDest(t, ctx, c, path, d)
	svc := ipvs.Service{FirewallMark: 102, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin}

	monitor := func(mark uint32) (<-chan healthcheck.Event, func()) {
		check := healthcheck.Check{
			Probe:    healthcheck.HTTP{Path: "/", BodyContains: "backend 1"},
			Interval: 300 * time.Millisecond, Timeout: 500 * time.Millisecond,
			Address: addr("10.16.0.1"), Port: 80, Mark: mark, Source: addr("10.16.1.254"),
		}
		events := make(chan healthcheck.Event, 16)
		m, err := healthcheck.New(c, []healthcheck.Service{{Service: svc, Destinations: []healthcheck.Destination{
			{Destination: d, Checks: []healthcheck.Check{check}, Alpha: true},
		}}}, healthcheck.Options{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		return events, func() { cancel(); <-done }
	}
	next := func(events <-chan healthcheck.Event, within time.Duration) (healthcheck.Event, bool) {
		select {
		case e := <-events:
			return e, true
		case <-time.After(within):
			return healthcheck.Event{}, false
		}
	}

	// Without the mark: refused by the load balancer itself, never up.
	events, stop := monitor(0)
	for {
		e, ok := next(events, 1500*time.Millisecond)
		if !ok {
			break
		}
		if e.Kind == healthcheck.Up {
			t.Fatalf("without the mark the check passed: %v", e)
		}
	}
	stop()

	// With it: through IPVS to the backend.
	events, stop = monitor(101)
	defer stop()
	for {
		e, ok := next(events, 5*time.Second)
		if !ok {
			t.Fatalf("kernel %s: the marked check did not pass within 5s", kernelRelease())
		}
		t.Logf("event: %v", e)
		if e.Kind == healthcheck.Up {
			break
		}
	}
	server.stop()
	for {
		e, ok := next(events, 5*time.Second)
		if !ok {
			t.Fatal("no Down event within 5s of stopping the backend")
		}
		t.Logf("event: %v", e)
		if e.Kind == healthcheck.Down {
			break
		}
	}
	ds, err := c.Destinations(ctx, svc)
	if err != nil || len(ds) != 1 || ds[0].Weight != 0 {
		t.Errorf("after Down: destinations %v, %v; want one at weight 0", ds, err)
	}
}
