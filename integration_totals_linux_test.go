//go:build linux

package ipvs_test

import (
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// kernelTotals reads /proc/net/ip_vs_stats from a thread in ns (nil: the
// test's own namespace) and parses it apart from the package: the raw text,
// and the ten numbers in order (five counters, five rates). It reads
// through /proc/thread-self: /proc/net is /proc/self/net, the namespace of
// the process's main thread whichever thread reads it.
func kernelTotals(t *testing.T, ns *netNS) (string, []uint64) {
	t.Helper()
	var b []byte
	read := func() (err error) { b, err = os.ReadFile("/proc/thread-self/net/ip_vs_stats"); return err }
	var err error
	if ns == nil {
		err = read()
	} else {
		err = ns.do(read)
	}
	if err != nil {
		t.Fatalf("reading /proc/net/ip_vs_stats: %v", err)
	}
	var nums []uint64
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.ParseUint(f, 16, 64); err == nil {
			nums = append(nums, n)
		}
	}
	if len(nums) != 10 {
		t.Fatalf("/proc/net/ip_vs_stats has %d hex numbers, want 10:\n%s", len(nums), b)
	}
	return string(b), nums
}

func statsNumbers(s ipvs.Stats) []uint64 {
	return []uint64{s.Connections, s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut,
		s.ConnectionRate, s.PacketRateIn, s.PacketRateOut, s.ByteRateIn, s.ByteRateOut}
}

func counterSum(a, b ipvs.Stats) ipvs.Stats {
	return ipvs.Stats{Connections: a.Connections + b.Connections, PacketsIn: a.PacketsIn + b.PacketsIn,
		PacketsOut: a.PacketsOut + b.PacketsOut, BytesIn: a.BytesIn + b.BytesIn, BytesOut: a.BytesOut + b.BytesOut}
}

func countersOf(s ipvs.Stats) ipvs.Stats {
	return counterSum(s, ipvs.Stats{})
}

// TestIntegrationTotals sends real traffic through two NAT services of a
// new namespace and checks the totals against the services' counters,
// the per-CPU rows and the kernel's own text, then deletes a service and
// zeroes.
func TestIntegrationTotals(t *testing.T) {
	c, ns := newClient(t)
	ctx := testCtx(t)

	tot, err := c.Totals(ctx)
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	if tot.Stats != (ipvs.Stats{}) {
		t.Errorf("Totals of a new namespace = %+v, want zero", tot.Stats)
	}
	if len(tot.PerCPU) == 0 {
		t.Errorf("Totals of a new namespace has no per-CPU rows")
	}
	for i, p := range tot.PerCPU {
		if p.CPU != i || p.Stats != (ipvs.Stats{}) {
			t.Errorf("per-CPU row %d of a new namespace = %+v", i, p)
		}
	}

	ns.addDummy(t, "dummy0", "10.17.0.1/32", "10.17.0.2/32", "10.17.1.1/32")
	var ln net.Listener
	if err := ns.do(func() (err error) { ln, err = net.Listen("tcp4", "10.17.1.1:8080"); return err }); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go echoServer(ln)
	a := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.17.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	b := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.17.0.2"), Port: 80, Scheduler: ipvs.RoundRobin}
	dest := ipvs.Destination{Address: addr("10.17.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1}
	mustCreate(t, ctx, c, a, b)
	mustCreateDest(t, ctx, c, a, dest)
	mustCreateDest(t, ctx, c, b, dest)
	const conns = 3
	if err := ns.do(func() error {
		for i := range 2 * conns {
			vip := "10.17.0.1:80"
			if i%2 == 1 {
				vip = "10.17.0.2:80"
			}
			if err := ping(vip); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("traffic through IPVS: %v", err)
	}

	// The estimator folds the per-CPU counters in about every two
	// seconds, the services' and the totals' at their own moments: poll
	// until the totals equal the services' sum and the per-CPU rows'.
	start := time.Now()
	var services, perCPU ipvs.Stats
	for {
		tot, err = c.Totals(ctx)
		if err != nil {
			t.Fatalf("Totals: %v", err)
		}
		vs, err := c.VirtualServices(ctx)
		if err != nil {
			t.Fatalf("VirtualServices: %v", err)
		}
		services, perCPU = ipvs.Stats{}, ipvs.Stats{}
		for _, v := range vs {
			services = counterSum(services, v.Stats)
		}
		for _, p := range tot.PerCPU {
			perCPU = counterSum(perCPU, p.Stats)
		}
		if tot.Stats.Connections == 2*conns && countersOf(tot.Stats) == services && services == perCPU {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("within 30s the totals %+v did not settle at the services' sum %+v and the per-CPU sum %+v", tot.Stats, services, perCPU)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("totals settled %v after the traffic: %+v", time.Since(start).Round(time.Millisecond), tot.Stats)
	if tot.Stats.PacketsIn < 4*2*conns || tot.Stats.PacketsOut < 3*2*conns || tot.Stats.BytesIn < 40*tot.Stats.PacketsIn {
		t.Errorf("totals %+v are too small for %d connections", tot.Stats, 2*conns)
	}
	busy := 0
	for _, p := range tot.PerCPU {
		if p.Stats.Connections > 0 {
			busy++
		}
	}
	t.Logf("%d per-CPU rows, %d with connections", len(tot.PerCPU), busy)

	// The kernel's text, parsed apart, between two equal reads.
	for try := 0; ; try++ {
		before, err := c.Totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		text, nums := kernelTotals(t, ns)
		after, err := c.Totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if before.Stats != after.Stats {
			if try == 20 {
				t.Fatalf("the totals kept changing")
			}
			continue
		}
		if got := statsNumbers(after.Stats); !slices.Equal(got, nums) {
			t.Errorf("Totals %v, the kernel's text %v:\n%s", got, nums, text)
		}
		t.Logf("/proc/net/ip_vs_stats:\n%s", text)
		break
	}
	if err := ns.do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/ip_vs_stats_percpu")
		t.Logf("/proc/net/ip_vs_stats_percpu:\n%s", b)
		return err
	}); err != nil {
		t.Errorf("reading ip_vs_stats_percpu: %v", err)
	}

	// Rates after another estimator period.
	time.Sleep(2500 * time.Millisecond)
	if tot, err = c.Totals(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("rates 2.5s later: cps %d inpps %d outpps %d inBps %d outBps %d", tot.Stats.ConnectionRate, tot.Stats.PacketRateIn, tot.Stats.PacketRateOut, tot.Stats.ByteRateIn, tot.Stats.ByteRateOut)

	// The totals keep a deleted service's traffic.
	if err := c.DeleteService(ctx, identity(b)); err != nil {
		t.Fatalf("DeleteService: %v", err)
	}
	if after, err := c.Totals(ctx); err != nil || countersOf(after.Stats) != countersOf(tot.Stats) {
		t.Errorf("Totals after deleting a service = %+v, %v; want the counters %+v", after.Stats, err, countersOf(tot.Stats))
	}

	// ZeroAll zeroes the totals, not the per-CPU rows.
	if err := c.ZeroAll(ctx); err != nil {
		t.Fatalf("ZeroAll: %v", err)
	}
	zeroed, err := c.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if countersOf(zeroed.Stats) != (ipvs.Stats{}) {
		t.Errorf("Totals after ZeroAll = %+v, want zero counters", zeroed.Stats)
	}
	var perCPUAfter ipvs.Stats
	for _, p := range zeroed.PerCPU {
		perCPUAfter = counterSum(perCPUAfter, p.Stats)
	}
	if perCPUAfter != perCPU {
		t.Errorf("per-CPU sum after ZeroAll = %+v, want it unchanged at %+v", perCPUAfter, perCPU)
	}

	// The initial namespace's totals, through New(), match its own text.
	c0, err := ipvs.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c0.Close()
	t0, err := c0.Totals(ctx)
	if err != nil {
		t.Fatalf("Totals of the initial namespace: %v", err)
	}
	if _, nums := kernelTotals(t, nil); !slices.Equal(statsNumbers(t0.Stats), nums) {
		t.Errorf("initial namespace: Totals %v, the kernel's text %v", statsNumbers(t0.Stats), nums)
	}
}
