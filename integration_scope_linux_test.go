//go:build linux

package ipvs_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

// The real-kernel tests of ReconcileOptions.Owns: Reconcile sharing a
// namespace with other writers.

// The scope of these tests: address services in 10.30.0.0/16 or
// 2001:db8:30::/48, and marks 0x100-0x1ff of either family.
var (
	scopeV4 = netip.MustParsePrefix("10.30.0.0/16")
	scopeV6 = netip.MustParsePrefix("2001:db8:30::/48")
)

func scopeOwns(s ipvs.Service) bool {
	if s.FirewallMark != 0 {
		return s.FirewallMark>>8 == 1
	}
	return scopeV4.Contains(s.Address) || scopeV6.Contains(s.Address)
}

// scopeForeignRestore is another program's configuration, loaded with
// "ipvsadm -R": services outside the scope, some just outside it.
const scopeForeignRestore = `-A -t 192.168.50.1:80 -s wlc
-a -t 192.168.50.1:80 -r 192.168.60.1:8080 -m -w 3
-a -t 192.168.50.1:80 -r 192.168.60.2:8080 -m -w 0
-A -u 192.168.50.1:53 -s rr
-a -u 192.168.50.1:53 -r 192.168.60.3:53 -m -w 1
-A -t 192.168.50.2:443 -s rr -p 300 -M 255.255.255.0
-a -t 192.168.50.2:443 -r 192.168.60.4:443 -g -w 1
-A -f 77 -s sh -b sh-port
-a -f 77 -r 192.168.60.5 -i -w 2
-A -t 10.31.0.1:80 -s rr
-a -t 10.31.0.1:80 -r 10.30.0.7:80 -g -w 1
`

// scopeForeignSpecs are the services of scopeForeignRestore, and the two
// the library creates in scopeForeignLib, as "ipvsadm -S -n" prints them
// after "-A ".
var scopeForeignSpecs = []string{
	"-t 192.168.50.1:80 ", "-u 192.168.50.1:53 ", "-t 192.168.50.2:443 ", "-f 77 ", "-t 10.31.0.1:80 ",
	"-t [2001:db8:50::1]:443 ", "-f 78 ",
}

// scopeForeignLib creates, with c (another writer), two more foreign
// services: one IPv6, one IPv6 mark service.
func scopeForeignLib(t *testing.T, c *ipvs.Client) {
	t.Helper()
	ctx := testCtx(t)
	v6 := ipvs.Service{Protocol: ipvs.TCP, Address: addr("2001:db8:50::1"), Port: 443, Scheduler: ipvs.WeightedRoundRobin}
	mark := ipvs.Service{FirewallMark: 78, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: secs(60), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64)}
	mustCreate(t, ctx, c, v6, mark)
	mustCreateDest(t, ctx, c, v6,
		ipvs.Destination{Address: addr("2001:db8:60::1"), Port: 8443, Weight: 5},
		ipvs.Destination{Address: addr("2001:db8:30::9"), Port: 8443, Weight: 1}) // an address in the scope, under a foreign service
	mustCreateDest(t, ctx, c, mark, ipvs.Destination{Address: addr("2001:db8:60::2"), Weight: 1, ForwardMethod: ipvs.DR})
}

// scopeForeignSave runs "ipvsadm -S -n" in ns and returns the blocks of the
// foreign services (in specs), byte for byte, in the order printed. It
// fails the test unless every one of them is there.
func scopeForeignSave(t *testing.T, ns *netNS, specs []string) string {
	t.Helper()
	out := ns.ipvsadm(t, "", "-S", "-n")
	var b strings.Builder
	keep, found := false, 0
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "-A ") {
			keep = false
			for _, s := range specs {
				if strings.HasPrefix(line, "-A "+s) {
					keep = true
					found++
				}
			}
		}
		if keep {
			b.WriteString(line)
		}
	}
	if found != len(specs) {
		t.Fatalf("ipvsadm -S -n lists %d of the %d foreign services:\n%s", found, len(specs), out)
	}
	return b.String()
}

// scopeTable reads the table and keeps the services for which keep
// reports true.
func scopeTable(t *testing.T, c *ipvs.Client, keep func(ipvs.Service) bool) table {
	t.Helper()
	tab := readTable(t, testCtx(t), c)
	for s := range tab {
		if !keep(s) {
			delete(tab, s)
		}
	}
	return tab
}

func scopeWant(desired []ipvs.VirtualService) table {
	want := table{}
	for _, vs := range desired {
		ds := append([]ipvs.Destination{}, vs.Destinations...)
		sortDests(ds)
		want[vs.Service] = ds
	}
	return want
}

// scopeCheckChanges fails the test for every change of res outside the
// scope.
func scopeCheckChanges(t *testing.T, res ipvs.ReconcileResult) {
	t.Helper()
	for _, ch := range res.Changes {
		if !scopeOwns(ch.Service) {
			t.Errorf("Reconcile made a change outside its scope: %v", ch)
		}
	}
}

// TestIntegrationReconcileScope: services of other writers (ipvsadm, and
// another client) share the namespace. Reconcile with Owns creates,
// corrects and deletes its own, and leaves the others byte-identical in
// "ipvsadm -S -n". Without Owns the same call deletes them.
func TestIntegrationReconcileScope(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)
	ns.ipvsadm(t, scopeForeignRestore, "-R")
	scopeForeignLib(t, ns.client(t))

	// Owned and out of date: one stale service of each kind, one with
	// another scheduler and a destination too many.
	stale := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.30.0.9"), Port: 80, Scheduler: ipvs.RoundRobin}
	staleMark := ipvs.Service{FirewallMark: 0x1ff, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin}
	web := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.30.0.1"), Port: 80, Scheduler: ipvs.WeightedLeastConnection}
	mustCreate(t, ctx, c, stale, staleMark, web)
	mustCreateDest(t, ctx, c, stale, ipvs.Destination{Address: addr("10.40.0.9"), Port: 8080, Weight: 1})
	mustCreateDest(t, ctx, c, web,
		ipvs.Destination{Address: addr("10.40.0.1"), Port: 8080, Weight: 1},
		ipvs.Destination{Address: addr("10.40.0.99"), Port: 8080, Weight: 1})

	before := scopeForeignSave(t, ns, scopeForeignSpecs)
	t.Logf("the foreign services, as ipvsadm -S -n saves them:\n%s", before)
	foreign := scopeTable(t, c, func(s ipvs.Service) bool { return !scopeOwns(s) })

	web.Scheduler = ipvs.RoundRobin
	desired := []ipvs.VirtualService{
		{Service: web, Destinations: []ipvs.Destination{
			{Address: addr("10.40.0.1"), Port: 8080, Weight: 2},
			{Address: addr("10.40.0.2"), Port: 8080, Weight: 1},
		}},
		{Service: ipvs.Service{Protocol: ipvs.UDP, Address: addr("2001:db8:30::1"), Port: 53, Scheduler: ipvs.RoundRobin},
			Destinations: []ipvs.Destination{{Address: addr("2001:db8:40::1"), Port: 53, Weight: 1}}},
		{Service: ipvs.Service{FirewallMark: 0x100, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin},
			Destinations: []ipvs.Destination{{Address: addr("10.40.0.3"), Weight: 1, ForwardMethod: ipvs.DR}}},
	}
	opts := ipvs.ReconcileOptions{Owns: scopeOwns}
	res, err := c.Reconcile(ctx, desired, opts)
	if err != nil {
		t.Fatalf("Reconcile: %v (changes %v, errors %v)", err, res.Changes, res.Errors)
	}
	scopeCheckChanges(t, res)
	if len(res.Changes) == 0 {
		t.Fatalf("Reconcile changed nothing")
	}
	if after := scopeForeignSave(t, ns, scopeForeignSpecs); after != before {
		t.Errorf("the foreign services changed.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if diff := cmp.Diff(foreign, scopeTable(t, c, func(s ipvs.Service) bool { return !scopeOwns(s) }), cmpOpts); diff != "" {
		t.Errorf("the foreign services (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(scopeWant(desired), scopeTable(t, c, scopeOwns), cmpOpts); diff != "" {
		t.Errorf("the owned services (-want +got):\n%s", diff)
	}
	if res, err := c.Reconcile(ctx, desired, opts); err != nil || len(res.Changes) != 0 {
		t.Errorf("second run: %v, %v; want no changes", res.Changes, err)
	}

	// A desired service outside the scope is refused, and nothing changes.
	bad := append(desired, ipvs.VirtualService{Service: ipvs.Service{Protocol: ipvs.TCP, Address: addr("192.168.50.1"), Port: 80, Scheduler: ipvs.RoundRobin}})
	bad[0].Destinations = nil
	_, err = c.Reconcile(ctx, bad, opts)
	wantInvalid(t, "Reconcile with a desired service outside Owns", err, "VirtualService.Service")
	if after := scopeForeignSave(t, ns, scopeForeignSpecs); after != before {
		t.Errorf("the foreign services changed after a refused Reconcile.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if diff := cmp.Diff(scopeWant(desired), scopeTable(t, c, scopeOwns), cmpOpts); diff != "" {
		t.Errorf("the owned services after a refused Reconcile (-want +got):\n%s", diff)
	}

	// The default owns the whole table.
	res, err = c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile without Owns: %v", err)
	}
	if n := len(res.Changes); n != len(scopeForeignSpecs) {
		t.Errorf("Reconcile without Owns made %d changes, want %d deletions: %v", n, len(scopeForeignSpecs), res.Changes)
	}
	if diff := cmp.Diff(scopeWant(desired), readTable(t, ctx, c), cmpOpts); diff != "" {
		t.Errorf("the table after Reconcile without Owns (-want +got):\n%s", diff)
	}
}

// scopeWriterService is the foreign writer's service i: TCP over IPv4,
// UDP over IPv6 and IPv4 marks in turn, all outside the scope.
func scopeWriterService(i int) (ipvs.Service, func(j int) ipvs.Destination) {
	switch i % 3 {
	case 0:
		return ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{192, 168, byte(100 + i/250), byte(1 + i%250)}), Port: 80, Scheduler: ipvs.RoundRobin},
			func(j int) ipvs.Destination {
				return ipvs.Destination{Address: netip.AddrFrom4([4]byte{192, 168, 200, byte(j)}), Port: 8080, Weight: 1 + j}
			}
	case 1:
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x70, 14: byte(i >> 8), 15: byte(i)})
		return ipvs.Service{Protocol: ipvs.UDP, Address: a, Port: 53, Scheduler: ipvs.RoundRobin},
			func(j int) ipvs.Destination {
				return ipvs.Destination{Address: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x71, 15: byte(j)}), Port: 53, Weight: 1 + j}
			}
	default:
		return ipvs.Service{FirewallMark: uint32(1000 + i), Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin},
			func(j int) ipvs.Destination {
				return ipvs.Destination{Address: netip.AddrFrom4([4]byte{192, 168, 201, byte(j)}), Weight: 1 + j, ForwardMethod: ipvs.DR}
			}
	}
}

// scopeOwnedDesired is what the reconciler wants in its run k: some of 12
// services, their weights changing from run to run, and a mark service.
func scopeOwnedDesired(k int) []ipvs.VirtualService {
	var out []ipvs.VirtualService
	for x := 1; x <= 12; x++ {
		if (x+k)%4 == 0 {
			continue
		}
		s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 30, 0, byte(x)}), Port: 80, Scheduler: ipvs.RoundRobin}
		var ds []ipvs.Destination
		for j := range 1 + x%3 {
			ds = append(ds, ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 40, byte(x), byte(j)}), Port: 8080, Weight: 1 + (x+k+j)%3})
		}
		out = append(out, ipvs.VirtualService{Service: s, Destinations: ds})
	}
	out = append(out, ipvs.VirtualService{
		Service:      ipvs.Service{FirewallMark: 0x100 + uint32(k%2), Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin},
		Destinations: []ipvs.Destination{{Address: addr("10.40.100.1"), Weight: 1 + k%5, ForwardMethod: ipvs.DR}},
	})
	return out
}

// TestIntegrationReconcileScopeConcurrentWriter runs Reconcile with Owns
// again and again while another writer creates, changes and deletes its
// own services and destinations in the same namespace. Every operation of
// the other writer must succeed (none of its services or destinations
// vanishes under it), every change of Reconcile must be in its scope, the
// owned part must converge, and in the end the other writer's services
// must be exactly what it alone produced; the services loaded with
// ipvsadm meanwhile byte-identical.
func TestIntegrationReconcileScopeConcurrentWriter(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	w := ns.client(t)
	ctx := testCtx(t)
	ns.ipvsadm(t, scopeForeignRestore, "-R")
	static := scopeForeignSpecs[:5]
	before := scopeForeignSave(t, ns, static)

	const minRuns, minIters = 30, 60
	var (
		runs       atomic.Int64 // Reconcile runs done
		iters      int          // writer iterations done (read after wg.Wait)
		stop       atomic.Bool
		writerDone atomic.Bool
		wg         sync.WaitGroup
	)
	wg.Go(func() {
		defer writerDone.Store(true)
		for iters = 0; iters < minIters || runs.Load() < minRuns && !stop.Load(); iters++ {
			i := iters
			s, dest := scopeWriterService(i)
			step := func(what string, err error) bool {
				if err != nil {
					t.Errorf("foreign writer, iteration %d, %s %v: %v", i, what, s, err)
				}
				return err == nil
			}
			ok := step("CreateService", w.CreateService(ctx, s))
			for j := range 3 {
				ok = ok && step("CreateDestination", w.CreateDestination(ctx, s, dest(j)))
			}
			d0 := dest(0)
			d0.Weight = 10
			ok = ok && step("UpdateDestination", w.UpdateDestination(ctx, s, d0))
			ok = ok && step("DeleteDestination", w.DeleteDestination(ctx, s, dest(1)))
			if i%4 == 1 {
				s2 := s
				s2.Scheduler = ipvs.WeightedLeastConnection
				ok = ok && step("UpdateService", w.UpdateService(ctx, s2))
			}
			if i%5 == 0 {
				ok = ok && step("DeleteService", w.DeleteService(ctx, s))
			}
			if !ok {
				return
			}
		}
	})

	k := 0
	for ; ; k++ {
		done := runs.Load() >= minRuns && writerDone.Load()
		res, err := c.Reconcile(ctx, scopeOwnedDesired(k), ipvs.ReconcileOptions{Owns: scopeOwns})
		if err != nil {
			t.Errorf("Reconcile run %d: %v (changes %v, errors %v)", k, err, res.Changes, res.Errors)
		}
		scopeCheckChanges(t, res)
		runs.Add(1)
		if done || t.Failed() || k > 5000 {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d Reconcile runs while the other writer made %d iterations", k+1, iters)

	// The owned part converged: the last run's input is the table, and a
	// new run changes nothing.
	last := scopeOwnedDesired(k)
	if res, err := c.Reconcile(ctx, last, ipvs.ReconcileOptions{Owns: scopeOwns}); err != nil || len(res.Changes) != 0 {
		t.Errorf("a run after the writer stopped: %v, %v; want no changes", res.Changes, err)
	}
	if diff := cmp.Diff(scopeWant(last), scopeTable(t, c, scopeOwns), cmpOpts); diff != "" {
		t.Errorf("the owned services (-want +got):\n%s", diff)
	}

	// The other writer's services are what it alone produced.
	want := table{}
	for i := range iters {
		if i%5 == 0 {
			continue
		}
		s, dest := scopeWriterService(i)
		if i%4 == 1 {
			s.Scheduler = ipvs.WeightedLeastConnection
		}
		d0 := dest(0)
		d0.Weight = 10
		ds := []ipvs.Destination{d0, dest(2)}
		sortDests(ds)
		want[s] = ds
	}
	isStatic := func(s ipvs.Service) bool {
		for _, spec := range static {
			if strings.HasPrefix(scopeSpec(s), spec) {
				return true
			}
		}
		return false
	}
	got := scopeTable(t, c, func(s ipvs.Service) bool { return !scopeOwns(s) && !isStatic(s) })
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("the other writer's services (-what it made +table):\n%s", diff)
	}
	if after := scopeForeignSave(t, ns, static); after != before {
		t.Errorf("the services loaded with ipvsadm changed.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// scopeSpec returns the service as "ipvsadm -S -n" names it after "-A ",
// for the kinds of scopeForeignRestore.
func scopeSpec(s ipvs.Service) string {
	switch {
	case s.FirewallMark != 0:
		return fmt.Sprintf("-f %d ", s.FirewallMark)
	case s.Protocol == ipvs.UDP:
		return "-u " + netip.AddrPortFrom(s.Address, s.Port).String() + " "
	default:
		return "-t " + netip.AddrPortFrom(s.Address, s.Port).String() + " "
	}
}
