//go:build linux

package ipvs_test

// How a Client behaves: bound to one namespace, shared by goroutines,
// bounded by contexts.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

func TestIntegrationNamespaceIsolation(t *testing.T) {
	c1, ns1 := newClient(t)
	c2, _ := newClient(t)
	ctx := testCtx(t)
	// The same key in both namespaces, configured differently.
	s1 := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.20.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	s2 := s1
	s2.Scheduler = ipvs.SourceHashing
	only1 := ipvs.Service{FirewallMark: 20, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin}
	mustCreate(t, ctx, c1, s1, only1)
	mustCreate(t, ctx, c2, s2)
	d1 := ipvs.Destination{Address: addr("10.20.1.1"), Port: 80, Weight: 1}
	mustCreateDest(t, ctx, c1, s1, d1)
	wantTable(t, ctx, c1, table{s1: {d1}, only1: nil})
	wantTable(t, ctx, c2, table{s2: nil})
	_, err := c2.Service(ctx, only1)
	wantKernelErr(t, "other namespace's service", err, syscall.ESRCH, os.ErrNotExist)

	if err := c1.SetTimeouts(ctx, ipvs.Timeouts{TCP: secs(42)}); err != nil {
		t.Fatalf("SetTimeouts: %v", err)
	}
	if to, err := c2.Timeouts(ctx); err != nil || to.TCP != secs(900) {
		t.Errorf("other namespace's timeouts = %+v, %v; want TCP 900s", to, err)
	}
	mustStartDaemon(t, ctx, c1, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"})
	wantDaemons(t, ctx, c2)
	if err := c2.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"}); err != nil {
		t.Errorf("a master in the other namespace: %v", err)
	}

	t.Run("WithNetNSPath", func(t *testing.T) {
		// Bind-mount the namespace on a file, as "ip netns add" does.
		path := filepath.Join(t.TempDir(), "ns1")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", ns1.fd), path, "", unix.MS_BIND, ""); err != nil {
			t.Skipf("cannot bind-mount a namespace file here: %v", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", path, err)
			}
		})
		c3, err := ipvs.New(ipvs.WithNetNSPath(path))
		if err != nil {
			t.Fatalf("New(WithNetNSPath(%s)): %v", path, err)
		}
		defer c3.Close()
		wantTable(t, ctx, c3, table{s1: {d1}, only1: nil})
		if to, err := c3.Timeouts(ctx); err != nil || to.TCP != secs(42) {
			t.Errorf("Timeouts through the path = %+v, %v; want TCP 42s", to, err)
		}
	})
	t.Run("WithNetNSPath missing", func(t *testing.T) {
		_, err := ipvs.New(ipvs.WithNetNSPath(filepath.Join(t.TempDir(), "nosuch")))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("New with a missing namespace path: %v, want os.ErrNotExist", err)
		}
	})
	t.Run("calling thread", func(t *testing.T) {
		// Without options, New binds to the calling thread's namespace,
		// and the client keeps it when used from other threads.
		var c4 *ipvs.Client
		if err := ns1.do(func() (err error) { c4, err = ipvs.New(); return err }); err != nil {
			t.Fatalf("New in the namespace: %v", err)
		}
		defer c4.Close()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				tab := readTable(t, ctx, c4)
				if len(tab) != 2 {
					t.Errorf("client made in ns1 sees %d services, want 2", len(tab))
				}
			})
		}
		wg.Wait()
	})
	// Flushing one namespace leaves the other alone.
	if err := c1.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wantTable(t, ctx, c1, table{})
	wantTable(t, ctx, c2, table{s2: nil})
}

// TestIntegrationConcurrency runs 8 goroutines of 500 mixed operations each
// on one Client, then checks the exact final table.
func TestIntegrationConcurrency(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	const workers, ops = 8, 500
	vip := func(g int) netip.Addr {
		if g%2 == 0 {
			return netip.AddrFrom4([4]byte{10, 21, byte(g), 1})
		}
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x21, 15: byte(g)})
	}
	svc := func(g, k int) ipvs.Service {
		return ipvs.Service{Protocol: ipvs.TCP, Address: vip(g), Port: uint16(1000 + k), Scheduler: ipvs.RoundRobin}
	}
	dst := func(g, k int) ipvs.Destination {
		return ipvs.Destination{Address: vip(g).Next(), Port: 8080, Weight: k + 2}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range ops {
				k := i / 5
				s, d := svc(g, k), dst(g, k)
				var err error
				switch i % 5 {
				case 0:
					err = c.CreateService(ctx, s)
				case 1:
					d.Weight = 1
					err = c.CreateDestination(ctx, s, d)
				case 2:
					err = c.UpdateDestination(ctx, s, d)
				case 3:
					var got ipvs.ServiceStats
					if got, err = c.Service(ctx, s); err == nil && got.Service != s {
						err = fmt.Errorf("read back %+v", got.Service)
					}
					if err == nil && k%10 == 0 {
						// A dump while the others write: no error, and
						// this goroutine's own service is in it (a dump
						// under churn may skip others' entries).
						_, err = c.Services(ctx)
					}
					if err == nil && k%25 == 0 {
						_, err = c.Info(ctx)
					}
				case 4:
					if k%4 == 0 {
						err = c.DeleteService(ctx, s)
						break
					}
					var ds []ipvs.DestinationStats
					if ds, err = c.Destinations(ctx, s); err == nil && (len(ds) != 1 || ds[0].Destination != d) {
						err = fmt.Errorf("destinations %+v", ds)
					}
				}
				if err != nil {
					t.Errorf("worker %d op %d (%d) on %v: %v", g, i, i%5, s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d workers x %d operations took %v", workers, ops, time.Since(start).Round(time.Millisecond))
	want := table{}
	for g := range workers {
		for k := range ops / 5 {
			if k%4 != 0 {
				want[svc(g, k)] = []ipvs.Destination{dst(g, k)}
			}
		}
	}
	wantTable(t, ctx, c, want)
}

// TestIntegrationContextDeadline checks that contexts bound real calls and
// that the client keeps working afterwards.
func TestIntegrationContextDeadline(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)

	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.22.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	for name, err := range map[string]error{
		"Info":          func() error { _, err := c.Info(expired); return err }(),
		"CreateService": c.CreateService(expired, s),
		"Services":      func() error { _, err := c.Services(expired); return err }(),
	} {
		t.Run(name+" with an expired context", func(t *testing.T) {
			var e *ipvs.Error
			if !errors.As(err, &e) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with an expired context: %v, want an *ipvs.Error matching context.DeadlineExceeded", name, err)
			}
		})
	}
	cancelled, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := c.CreateService(cancelled, s); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateService with a cancelled context: %v, want context.Canceled", err)
	}
	_, err := c.Service(ctx, s)
	wantKernelErr(t, "service created with an expired context", err, syscall.ESRCH, os.ErrNotExist)

	// A large table, so that a dump takes many datagrams.
	const n = 1500
	begin := time.Now()
	for i := range n {
		mustCreate(t, ctx, c, ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 22, byte(1 + i/250), byte(1 + i%250)}), Port: 80, Scheduler: ipvs.RoundRobin})
	}
	t.Logf("creating %d services took %v", n, time.Since(begin).Round(time.Millisecond))
	full := func(t *testing.T) time.Duration {
		t.Helper()
		t0 := time.Now()
		svcs, err := c.Services(ctx)
		if err != nil || len(svcs) != n {
			t.Fatalf("Services = %d services, %v; want %d", len(svcs), err, n)
		}
		return time.Since(t0)
	}
	dump := full(t)
	t.Logf("a full dump of %d services takes %v", n, dump)
	timedOut := 0
	for _, d := range []time.Duration{time.Microsecond, 50 * time.Microsecond, 200 * time.Microsecond, dump / 20, dump / 8, dump / 4, dump / 2, dump * 10} {
		t.Run(fmt.Sprintf("deadline %v", d), func(t *testing.T) {
			short, cancel := context.WithTimeout(ctx, d)
			t0 := time.Now()
			svcs, err := c.Services(short)
			took := time.Since(t0)
			cancel()
			switch {
			case err == nil:
				if len(svcs) != n {
					t.Errorf("Services with deadline %v returned %d services without error, want %d", d, len(svcs), n)
				}
				t.Logf("deadline %v: complete dump in %v", d, took)
			case errors.Is(err, context.DeadlineExceeded):
				timedOut++
				var e *ipvs.Error
				if !errors.As(err, &e) {
					t.Errorf("deadline %v: %T is not an *ipvs.Error", d, err)
				}
				t.Logf("deadline %v: %v after %v", d, err, took)
				if took > d+5*time.Second {
					t.Errorf("deadline %v: the call returned only after %v", d, took)
				}
			default:
				t.Errorf("Services with deadline %v: %v, want success or context.DeadlineExceeded", d, err)
			}
			// The client keeps working after each abandoned call.
			full(t)
		})
	}
	if timedOut == 0 {
		t.Errorf("no short deadline cut a dump short")
	}
	if _, err := c.Info(ctx); err != nil {
		t.Errorf("Info after the deadlines: %v", err)
	}
	mustCreate(t, ctx, c, s)
	wantService(t, ctx, c, s)
}
