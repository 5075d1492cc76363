//go:build linux

package ipvs_test

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// TestIntegrationStats sends real traffic through two NAT services inside
// the test's namespace (local clients, a local real server, VIPs on a dummy
// interface), then checks the counters and zeroes them.
func TestIntegrationStats(t *testing.T) {
	c, ns := newClient(t)
	ctx := testCtx(t)
	ns.addDummy(t, "dummy0", "10.16.0.1/32", "10.16.0.2/32", "10.16.1.1/32")
	var ln net.Listener
	if err := ns.do(func() (err error) { ln, err = net.Listen("tcp4", "10.16.1.1:8080"); return err }); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go echoServer(ln)

	a := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.16.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	b := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.16.0.2"), Port: 80, Scheduler: ipvs.RoundRobin}
	dest := ipvs.Destination{Address: addr("10.16.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1}
	mustCreate(t, ctx, c, a, b)
	mustCreateDest(t, ctx, c, a, dest)
	mustCreateDest(t, ctx, c, b, dest)

	const conns = 3
	start := time.Now()
	if err := ns.do(func() error {
		for _, vip := range []string{"10.16.0.1:80", "10.16.0.2:80"} {
			for range conns {
				if err := ping(vip); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("traffic through IPVS: %v", err)
	}
	t.Logf("%d connections through each service took %v", conns, time.Since(start).Round(time.Millisecond))

	get := func(s ipvs.Service) (ipvs.Stats, ipvs.DestinationStats) {
		t.Helper()
		st, err := c.Service(ctx, s)
		if err != nil {
			t.Fatalf("Service(%v): %v", s, err)
		}
		ds, err := c.Destinations(ctx, s)
		if err != nil || len(ds) != 1 {
			t.Fatalf("Destinations(%v) = %v, %v", s, ds, err)
		}
		return st.Stats, ds[0]
	}
	// The kernel folds per-CPU counters in from its estimator, about every
	// two seconds: poll.
	trafficDone := time.Now()
	var sa, sb ipvs.Stats
	var da, db ipvs.DestinationStats
	for {
		sa, da = get(a)
		sb, db = get(b)
		if sa.Connections >= conns && sb.Connections >= conns && sa.BytesOut > 0 && sb.BytesOut > 0 && da.Stats.Connections >= conns {
			break
		}
		if time.Since(trafficDone) > 30*time.Second {
			t.Fatalf("counters did not move within 30s: A %+v, B %+v", sa, sb)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("counters appeared %v after the traffic", time.Since(trafficDone).Round(time.Millisecond))
	t.Logf("service A stats: %+v", sa)
	t.Logf("service B stats: %+v", sb)
	t.Logf("dest under A: active %d inactive %d persistent %d stats %+v", da.ActiveConnections, da.InactiveConnections, da.PersistentConnections, da.Stats)
	for _, x := range []struct {
		name string
		st   ipvs.Stats
	}{{"service A", sa}, {"service B", sb}, {"destination under A", da.Stats}, {"destination under B", db.Stats}} {
		t.Run(x.name, func(t *testing.T) {
			if x.st.Connections != conns {
				t.Errorf("%s: Connections = %d, want %d", x.name, x.st.Connections, conns)
			}
			// SYN, ACK, data, FIN, ACK at least in; SYN-ACK, data, FIN out.
			if x.st.PacketsIn < 4*conns || x.st.PacketsOut < 3*conns {
				t.Errorf("%s: PacketsIn %d, PacketsOut %d; want at least %d and %d", x.name, x.st.PacketsIn, x.st.PacketsOut, 4*conns, 3*conns)
			}
			// Every packet carries at least a 40-byte IPv4+TCP header.
			if x.st.BytesIn < 40*x.st.PacketsIn || x.st.BytesOut < 40*x.st.PacketsOut {
				t.Errorf("%s: BytesIn %d, BytesOut %d for %d and %d packets", x.name, x.st.BytesIn, x.st.BytesOut, x.st.PacketsIn, x.st.PacketsOut)
			}
		})
	}
	if sa.ConnectionRate == 0 && sa.PacketRateIn == 0 && sa.ByteRateIn == 0 {
		t.Logf("rates of A are still zero right after the counters moved")
	}
	// Look at the rates once more after another estimator period.
	time.Sleep(2500 * time.Millisecond)
	sa, _ = get(a)
	t.Logf("service A 2.5s later: rates cps %d inpps %d outpps %d inBps %d outBps %d", sa.ConnectionRate, sa.PacketRateIn, sa.PacketRateOut, sa.ByteRateIn, sa.ByteRateOut)

	// ZeroService zeroes A and its destination only.
	if err := c.ZeroService(ctx, identity(a)); err != nil {
		t.Fatalf("ZeroService: %v", err)
	}
	sa, da = get(a)
	sb, db = get(b)
	if sa != (ipvs.Stats{}) || da.Stats != (ipvs.Stats{}) {
		t.Errorf("after ZeroService(A): A %+v, its destination %+v; want zero", sa, da.Stats)
	}
	if sb.Connections != conns || db.Stats.Connections != conns {
		t.Errorf("after ZeroService(A): B has %d connections, its destination %d; want %d", sb.Connections, db.Stats.Connections, conns)
	}
	time.Sleep(2500 * time.Millisecond)
	sa, da = get(a)
	if sa.Connections != 0 || sa.PacketsIn != 0 || sa.BytesIn != 0 || da.Stats.Connections != 0 {
		t.Errorf("2.5s after ZeroService(A): A %+v, destination %+v; want zero counters", sa, da.Stats)
	}
	// ZeroAll zeroes the rest.
	if err := c.ZeroAll(ctx); err != nil {
		t.Fatalf("ZeroAll: %v", err)
	}
	sb, db = get(b)
	if sb != (ipvs.Stats{}) || db.Stats != (ipvs.Stats{}) {
		t.Errorf("after ZeroAll: B %+v, its destination %+v; want zero", sb, db.Stats)
	}
	err := c.ZeroService(ctx, ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.16.9.9"), Port: 80})
	wantKernelErr(t, "ZeroService of a missing service", err, syscall.ESRCH, os.ErrNotExist)
}
