//go:build linux

package ipvs_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

// roundTripCase is a service written with the library and the line
// "ipvsadm -S -n" saves for it.
type roundTripCase struct {
	svc  ipvs.Service
	save string
}

// TestIntegrationRoundTripServices creates services of both families, marks,
// every mask form and persistence with its engine, and checks that Service,
// Services and Reconcile see them exactly as written, that ipvsadm saves the
// same masks, and that services ipvsadm creates read back as the masks it
// was given.
func TestIntegrationRoundTripServices(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)
	v4, v6 := addr("10.31.0.1"), addr("2001:db8:31::1")
	p := func(s ipvs.Service, secs0 int) ipvs.Service {
		s.Flags |= ipvs.FlagPersistent
		s.Timeout = secs(secs0)
		return s
	}
	tcp := func(a netip.Addr, port uint16, m ipvs.Netmask) ipvs.Service {
		return ipvs.Service{Protocol: ipvs.TCP, Address: a, Port: port, Scheduler: ipvs.RoundRobin, Netmask: m}
	}
	cases := []roundTripCase{
		{p(tcp(v4, 1, ipvs.IPv4Mask(0, 0, 0, 0)), 300), "-A -t 10.31.0.1:1 -s rr -p 300 -M 0.0.0.0"},
		{p(tcp(v4, 2, ipvs.IPv4Mask(255, 0, 255, 0)), 300), "-A -t 10.31.0.1:2 -s rr -p 300 -M 255.0.255.0"},
		{p(tcp(v4, 3, ipvs.PrefixMask(ipvs.IPv4, 32)), 300), "-A -t 10.31.0.1:3 -s rr -p 300"},
		{p(tcp(v4, 4, ipvs.IPv4Mask(255, 255, 255, 255)), 300), "-A -t 10.31.0.1:4 -s rr -p 300"},
		{p(tcp(v4, 5, ipvs.PrefixMask(ipvs.IPv4, 24)), 300), "-A -t 10.31.0.1:5 -s rr -p 300 -M 255.255.255.0"},
		{p(tcp(v4, 6, ipvs.IPv4Mask(0, 0, 0, 1)), 300), "-A -t 10.31.0.1:6 -s rr -p 300 -M 0.0.0.1"},
		{p(tcp(v4, 7, ipvs.PrefixMask(ipvs.IPv4, 1)), 1), "-A -t 10.31.0.1:7 -s rr -p 1 -M 128.0.0.0"},
		// A mask without persistence is kept, but ipvsadm does not save it.
		{tcp(v4, 8, ipvs.IPv4Mask(255, 0, 255, 0)), "-A -t 10.31.0.1:8 -s rr"},
		{p(ipvs.Service{Protocol: ipvs.UDP, Address: v4, Port: 5060, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv4, 0), PersistenceEngine: ipvs.PersistenceEngineSIP}, 360),
			"-A -u 10.31.0.1:5060 -s rr -p 360 -M 0.0.0.0 --pe sip"},
		{p(tcp(v6, 1, ipvs.PrefixMask(ipvs.IPv6, 64)), 300), "-A -t [2001:db8:31::1]:1 -s rr -p 300 -M 64"},
		{p(tcp(v6, 2, ipvs.PrefixMask(ipvs.IPv6, 128)), 300), "-A -t [2001:db8:31::1]:2 -s rr -p 300"},
		{p(tcp(v6, 3, ipvs.PrefixMask(ipvs.IPv6, 1)), 300), "-A -t [2001:db8:31::1]:3 -s rr -p 300 -M 1"},
		{p(ipvs.Service{Protocol: ipvs.UDP, Address: v6, Port: 5060, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv6, 127), PersistenceEngine: ipvs.PersistenceEngineSIP}, 60),
			"-A -u [2001:db8:31::1]:5060 -s rr -p 60 -M 127 --pe sip"},
		{ipvs.Service{Protocol: ipvs.SCTP, Address: v6, Port: 0, Scheduler: ipvs.SourceHashing}, "-A --sctp-service [2001:db8:31::1]:0 -s sh"},
		{p(ipvs.Service{FirewallMark: 31, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin, Netmask: ipvs.IPv4Mask(255, 0, 255, 0)}, 120), "-A -f 31 -s rr -p 120 -M 255.0.255.0"},
		{p(ipvs.Service{FirewallMark: 32, Family: ipvs.IPv4, Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagOnePacket, Netmask: ipvs.IPv4Mask(0, 0, 0, 0)}, 120), "-A -f 32 -s wlc -p 120 -M 0.0.0.0 -o"},
		{p(ipvs.Service{FirewallMark: 33, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv6, 48)}, 30), "-A -f 33 -6 -s rr -p 30 -M 48"},
		{ipvs.Service{FirewallMark: 34, Family: ipvs.IPv6, Scheduler: ipvs.MaglevHashing, Flags: ipvs.FlagMHPort}, "-A -f 34 -6 -s mh -b mh-port"},
		{p(ipvs.Service{FirewallMark: 35, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv4, 32)}, 4294967), "-A -f 35 -s rr -p 4294967"},
		{p(ipvs.Service{FirewallMark: 35, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv6, 128)}, 1), "-A -f 35 -6 -s rr -p 1"},
	}
	created := map[ipvs.Service]bool{}
	wantSave := map[string][]string{}
	for _, tc := range cases {
		mustCreate(t, ctx, c, tc.svc)
		got, err := c.Service(ctx, identity(tc.svc))
		if err != nil {
			t.Fatalf("Service(%v): %v", tc.svc, err)
		}
		if got.Service != tc.svc {
			t.Errorf("Service(%v) read back differently (-want +got):\n%s", tc.svc, cmp.Diff(tc.svc, got.Service, cmpOpts))
		}
		created[tc.svc] = true
		wantSave[tc.save] = []string{}
	}
	out := ns.ipvsadm(t, "", "-S", "-n")
	if got := saveBlocks(t, out); !mapsEqual(got, wantSave) {
		t.Errorf("ipvsadm -S -n:\n%s\nwant the lines:\n%s", out, strings.Join(sortedKeys(wantSave), "\n"))
	}

	// The redundant forms are refused before anything is sent.
	wantInvalid(t, "Family on an address service", c.CreateService(ctx, ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: 99, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin}), "Service.Family")
	wantInvalid(t, "persistent without a timeout", c.CreateService(ctx, ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: 99, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent}), "Service.Timeout")
	wantInvalid(t, "IPv6 /0", c.CreateService(ctx, p(tcp(v6, 99, ipvs.PrefixMask(ipvs.IPv6, 0)), 300)), "Service.Netmask")
	wantInvalid(t, "IPv4 mask on an IPv6 service", c.CreateService(ctx, p(tcp(v6, 99, ipvs.IPv4Mask(255, 255, 0, 0)), 300)), "Service.Netmask")
	wantInvalid(t, "edit to no timeout", c.EditService(ctx, identity(cases[0].svc), ipvs.ServiceEdit{Timeout: ptr(secs(0))}), "Service.Timeout")

	// Services created by ipvsadm read back as the masks it was given.
	for _, tc := range []struct {
		args []string
		want ipvs.Service
	}{
		{[]string{"-A", "-t", "10.31.1.1:80", "-s", "rr", "-p", "300", "-M", "0.0.0.0"}, p(tcp(addr("10.31.1.1"), 80, ipvs.PrefixMask(ipvs.IPv4, 0)), 300)},
		{[]string{"-A", "-t", "10.31.1.1:81", "-s", "rr", "-p", "300", "-M", "255.0.255.0"}, p(tcp(addr("10.31.1.1"), 81, ipvs.IPv4Mask(255, 0, 255, 0)), 300)},
		{[]string{"-A", "-t", "10.31.1.1:82", "-s", "rr", "-p", "300", "-M", "255.255.255.255"}, p(tcp(addr("10.31.1.1"), 82, ipvs.Netmask{}), 300)},
		{[]string{"-A", "-t", "10.31.1.1:83", "-s", "rr", "-p"}, p(tcp(addr("10.31.1.1"), 83, ipvs.Netmask{}), 360)}, // ipvsadm's default timeout
		{[]string{"-A", "-t", "10.31.1.1:84", "-s", "rr", "-p", "300", "-M", "255.255.252.0"}, p(tcp(addr("10.31.1.1"), 84, ipvs.PrefixMask(ipvs.IPv4, 22)), 300)},
		{[]string{"-A", "-u", "10.31.1.1:5060", "-s", "rr", "-p", "300", "-M", "0.0.0.0", "--pe", "sip"},
			p(ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.31.1.1"), Port: 5060, Scheduler: ipvs.RoundRobin, Netmask: ipvs.IPv4Mask(0, 0, 0, 0), PersistenceEngine: ipvs.PersistenceEngineSIP}, 300)},
		{[]string{"-A", "-t", "[2001:db8:31:1::1]:80", "-s", "rr", "-p", "60", "-M", "64"}, p(tcp(addr("2001:db8:31:1::1"), 80, ipvs.PrefixMask(ipvs.IPv6, 64)), 60)},
		{[]string{"-A", "-t", "[2001:db8:31:1::1]:81", "-s", "rr", "-p", "60", "-M", "128"}, p(tcp(addr("2001:db8:31:1::1"), 81, ipvs.Netmask{}), 60)},
		{[]string{"-A", "-f", "40", "-s", "rr", "-p", "100", "-M", "255.255.0.0"}, p(ipvs.Service{FirewallMark: 40, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv4, 16)}, 100)},
		{[]string{"-A", "-f", "41", "-6", "-s", "rr", "-p", "100", "-M", "96"}, p(ipvs.Service{FirewallMark: 41, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv6, 96)}, 100)},
	} {
		ns.ipvsadm(t, "", tc.args...)
		got, err := c.Service(ctx, identity(tc.want))
		if err != nil {
			t.Fatalf("Service(%v) after ipvsadm %s: %v", tc.want, strings.Join(tc.args, " "), err)
		}
		if got.Service != tc.want {
			t.Errorf("ipvsadm %s reads back differently (-want +got):\n%s", strings.Join(tc.args, " "), cmp.Diff(tc.want, got.Service, cmpOpts))
		}
		created[tc.want] = true
	}

	// The whole table, listed at once, is == to what was created, and
	// Reconcile with it as the desired table has nothing to do.
	svcs, err := c.Services(ctx)
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	listed := map[ipvs.Service]bool{}
	for _, s := range svcs {
		listed[s.Service] = true
		if !created[s.Service] {
			t.Errorf("Services lists %s, which was not created", svcFields(s.Service))
		}
	}
	for s := range created {
		if !listed[s] {
			t.Errorf("Services does not list %s", svcFields(s))
		}
	}
	var desired []ipvs.VirtualService
	for s := range created {
		desired = append(desired, ipvs.VirtualService{Service: s})
	}
	res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("Reconcile with the table as it is: changes %v, %v; want none", res.Changes, err)
	}

	// An edit of another field writes back the mask it read.
	odd := cases[1].svc
	if err := c.EditService(ctx, identity(odd), ipvs.ServiceEdit{Scheduler: ptr(ipvs.WeightedLeastConnection)}); err != nil {
		t.Fatalf("EditService: %v", err)
	}
	odd.Scheduler = ipvs.WeightedLeastConnection
	wantService(t, ctx, c, odd)
	if out := ns.ipvsadm(t, "", "-S", "-n"); !strings.Contains(out, "-A -t 10.31.0.1:2 -s wlc -p 300 -M 255.0.255.0\n") {
		t.Errorf("after EditService of the scheduler, ipvsadm -S -n:\n%s\nwant -A -t 10.31.0.1:2 -s wlc -p 300 -M 255.0.255.0", out)
	}
	// And an edit of the mask sets that exact mask.
	if err := c.EditService(ctx, identity(odd), ipvs.ServiceEdit{Netmask: ptr(ipvs.IPv4Mask(0, 0, 0, 0))}); err != nil {
		t.Fatalf("EditService: %v", err)
	}
	odd.Netmask = ipvs.IPv4Mask(0, 0, 0, 0)
	wantService(t, ctx, c, odd)
}

// svcFields prints every field of s; Service.String names only its identity.
func svcFields(s ipvs.Service) string {
	return fmt.Sprintf("%v family=%v scheduler=%s flags=%v timeout=%v netmask=%v pe=%q", s, s.Family, s.Scheduler, s.Flags, s.Timeout, s.Netmask, s.PersistenceEngine)
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestIntegrationRoundTripSyncMaxLength: every MaxLength validation accepts
// reads back as given, at the bounds for both states and group families;
// the values it refuses are the ones the kernel clamps, as ipvsadm, which
// does not refuse them, shows.
func TestIntegrationRoundTripSyncMaxLength(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)
	ns.addDummy(t, "sync1")
	ns.addAddr(t, "sync1", netip.MustParsePrefix("2001:db8:32::1/64"))
	ns.addAddr(t, "sync1", netip.MustParsePrefix("10.32.0.1/24"))
	g4, g6 := addr("224.0.0.81"), addr("ff02::1:81")
	run := func(d ipvs.SyncDaemon) {
		t.Helper()
		if err := c.StartSyncDaemon(ctx, d); err != nil {
			t.Fatalf("StartSyncDaemon(%+v): %v", d, err)
		}
		got, err := c.SyncDaemons(ctx)
		if err != nil || len(got) != 1 || got[0] != d {
			t.Errorf("StartSyncDaemon(%+v) reads back %+v, %v", d, got, err)
		}
		if err := stopDaemon(t, c, d.State); err != nil {
			t.Fatalf("StopSyncDaemon(%v): %v", d.State, err)
		}
	}
	for _, st := range []ipvs.DaemonState{ipvs.Master, ipvs.Backup} {
		lo := 1
		if st == ipvs.Backup {
			lo = 1024
		}
		for _, n := range []int{lo, ipvs.MaxSyncLength} {
			run(ipvs.SyncDaemon{State: st, Interface: "sync1", MaxLength: n, Group: g4, Port: 8848, TTL: 1})
		}
		for _, n := range []int{lo, ipvs.MaxSyncLength - 20} {
			run(ipvs.SyncDaemon{State: st, Interface: "sync1", MaxLength: n, Group: g6, Port: 8848, TTL: 1})
		}
		below := lo - 1
		if below == 0 {
			below = -1 // 0 is the default
		}
		wantInvalid(t, "MaxLength below the minimum", c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: st, Interface: "sync1", MaxLength: below}), "SyncDaemon.MaxLength")
		wantInvalid(t, "MaxLength above the IPv6 maximum", c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: st, Interface: "sync1", MaxLength: ipvs.MaxSyncLength - 19, Group: g6}), "SyncDaemon.MaxLength")
	}
	// What the kernel makes of the refused values, through ipvsadm.
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--start-daemon", "backup", "--mcast-interface", "sync1", "--sync-maxlen", "100"}, 1024},
		{[]string{"--start-daemon", "master", "--mcast-interface", "sync1", "--sync-maxlen", "65507", "--mcast-group", "ff02::1:81"}, 65487},
	} {
		ns.ipvsadm(t, "", tc.args...)
		got, err := c.SyncDaemons(ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("SyncDaemons after ipvsadm %s: %v, %v", strings.Join(tc.args, " "), got, err)
		}
		if got[0].MaxLength != tc.want {
			t.Errorf("ipvsadm %s: the kernel keeps MaxLength %d, want %d", strings.Join(tc.args, " "), got[0].MaxLength, tc.want)
		}
		if err := stopDaemon(t, c, got[0].State); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("StopSyncDaemon: %v", err)
		}
	}
}
