//go:build linux

package ipvs_test

// Table-wide calls (Info, Timeouts, Flush) and services: every protocol,
// family, scheduler and flag; UpdateService and EditService.

import (
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// TestIntegrationInfo checks Info against the kernel's own /proc/net/ip_vs
// header. The connection table has 4096 buckets on kernels with a fixed
// table (conn_tab_bits = 12); kernels with resizable tables (7.x, the ones
// with the conn_lfactor sysctl) report the current size, 0 in a namespace
// that never had a service, then a power of two.
func TestIntegrationInfo(t *testing.T) {
	c, ns := newClient(t)
	ctx := testCtx(t)
	resizable := ns.hasSysctl(t, "conn_lfactor")
	check := func(when string) uint32 {
		t.Helper()
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatalf("Info %s: %v", when, err)
		}
		if got := info.Version.String(); got != "1.2.1" || info.Version != (ipvs.Version{Major: 1, Minor: 2, Patch: 1}) {
			t.Errorf("Info %s: version %+v (%q), want 1.2.1", when, info.Version, got)
		}
		if got, want := info.ConnectionTableSize, ns.procTableSize(t); got != want {
			t.Errorf("Info %s: connection table size %d, /proc/net/ip_vs says %d", when, got, want)
		}
		t.Logf("kernel %s %s: IPVS %v, connection table size %d (resizable table: %v)", kernelRelease(), when, info.Version, info.ConnectionTableSize, resizable)
		return info.ConnectionTableSize
	}
	size := check("before any service")
	switch {
	case !resizable && size != 4096:
		t.Errorf("fixed-size table of %d buckets, want 4096 (conn_tab_bits=12)", size)
	case resizable && size != 0:
		t.Errorf("resizable table of %d buckets in a namespace without a service, want 0", size)
	}
	mustCreate(t, ctx, c, ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.8.0.1"), Port: 80, Scheduler: "rr"})
	size = check("with one service")
	if size == 0 || size&(size-1) != 0 || !resizable && size != 4096 {
		t.Errorf("connection table size %d with one service, want a power of two (4096 on a fixed-size table)", size)
	}
}

func TestIntegrationTimeouts(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	want := func(w ipvs.Timeouts) {
		t.Helper()
		got, err := c.Timeouts(ctx)
		if err != nil {
			t.Fatalf("Timeouts: %v", err)
		}
		if got != w {
			t.Errorf("Timeouts = %+v, want %+v", got, w)
		}
	}
	set := func(to ipvs.Timeouts) {
		t.Helper()
		if err := c.SetTimeouts(ctx, to); err != nil {
			t.Fatalf("SetTimeouts(%+v): %v", to, err)
		}
	}
	// A new namespace has the kernel's defaults.
	want(ipvs.Timeouts{TCP: secs(900), TCPFin: secs(120), UDP: secs(300)})
	// A zero field leaves that timeout unchanged.
	set(ipvs.Timeouts{TCP: secs(1000)})
	want(ipvs.Timeouts{TCP: secs(1000), TCPFin: secs(120), UDP: secs(300)})
	set(ipvs.Timeouts{TCPFin: secs(30), UDP: secs(45)})
	want(ipvs.Timeouts{TCP: secs(1000), TCPFin: secs(30), UDP: secs(45)})
	set(ipvs.Timeouts{})
	want(ipvs.Timeouts{TCP: secs(1000), TCPFin: secs(30), UDP: secs(45)})
	set(ipvs.Timeouts{TCP: secs(1), TCPFin: secs(1), UDP: secs(1)})
	want(ipvs.Timeouts{TCP: secs(1), TCPFin: secs(1), UDP: secs(1)})
	// The library's upper bound, INT_MAX/1000 s, is accepted by any HZ.
	set(ipvs.Timeouts{TCP: secs(2147483)})
	want(ipvs.Timeouts{TCP: secs(2147483), TCPFin: secs(1), UDP: secs(1)})
	// Refused before sending: nothing changes.
	wantInvalid(t, "SetTimeouts above the maximum", c.SetTimeouts(ctx, ipvs.Timeouts{TCP: secs(2147484)}), "Timeouts.TCP")
	wantInvalid(t, "SetTimeouts fractional", c.SetTimeouts(ctx, ipvs.Timeouts{UDP: 1500 * time.Millisecond}), "Timeouts.UDP")
	wantInvalid(t, "SetTimeouts negative", c.SetTimeouts(ctx, ipvs.Timeouts{TCPFin: -time.Second}), "Timeouts.TCPFin")
	want(ipvs.Timeouts{TCP: secs(2147483), TCPFin: secs(1), UDP: secs(1)})
	set(ipvs.Timeouts{TCP: secs(900), TCPFin: secs(120), UDP: secs(300)})
	want(ipvs.Timeouts{TCP: secs(900), TCPFin: secs(120), UDP: secs(300)})
}

func TestIntegrationFlush(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush of an empty table: %v", err)
	}
	v4 := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.10.0.1"), Port: 80, Scheduler: "rr"}
	v6 := ipvs.Service{Protocol: ipvs.UDP, Address: addr("2001:db8:10::1"), Port: 53, Scheduler: "wlc"}
	fwm := ipvs.Service{FirewallMark: 10, Family: ipvs.IPv6, Scheduler: "sh"}
	mustCreate(t, ctx, c, v4, v6, fwm)
	mustCreateDest(t, ctx, c, v4, ipvs.Destination{Address: addr("10.10.1.1"), Port: 8080, Weight: 1})
	mustCreateDest(t, ctx, c, fwm, ipvs.Destination{Address: addr("2001:db8:10::10"), Weight: 1, ForwardMethod: ipvs.DR})
	if n := len(readTable(t, ctx, c)); n != 3 {
		t.Fatalf("%d services before Flush, want 3", n)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	svcs, err := c.Services(ctx)
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	if svcs == nil || len(svcs) != 0 {
		t.Errorf("Services after Flush = %#v, want an empty non-nil slice", svcs)
	}
	_, err = c.Destinations(ctx, v4)
	wantKernelErr(t, "Destinations of a flushed service", err, syscall.ESRCH, os.ErrNotExist)
}

// TestIntegrationServices runs create, get, list, update, edit and delete
// for every protocol and family, and for mark services of both families.
func TestIntegrationServices(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	var svcs []ipvs.Service
	for _, a := range []string{"10.11.0.1", "2001:db8:11::1"} {
		for _, p := range []ipvs.Protocol{ipvs.TCP, ipvs.UDP, ipvs.SCTP} {
			svcs = append(svcs, ipvs.Service{Protocol: p, Address: addr(a), Port: 80})
		}
		// The same address and port with another protocol is another
		// service; port 0 is a catch-all port.
		svcs = append(svcs, ipvs.Service{Protocol: ipvs.TCP, Address: addr(a), Port: 0})
		svcs = append(svcs, ipvs.Service{Protocol: ipvs.UDP, Address: addr(a), Port: 65535})
	}
	// Mark 1 in each family: two different services.
	svcs = append(svcs,
		ipvs.Service{FirewallMark: 1, Family: ipvs.IPv4},
		ipvs.Service{FirewallMark: 1, Family: ipvs.IPv6},
		ipvs.Service{FirewallMark: 0xffffffff, Family: ipvs.IPv4},
	)
	want := table{}
	for i := range svcs {
		svcs[i].Scheduler = ipvs.WeightedLeastConnection
		mustCreate(t, ctx, c, svcs[i])
		want[svcs[i]] = nil
	}
	for _, s := range svcs {
		t.Run("read "+s.String(), func(t *testing.T) {
			wantService(t, ctx, c, s)
			err := c.CreateService(ctx, s)
			wantKernelErr(t, "CreateService of an existing "+s.String(), err, syscall.EEXIST, os.ErrExist)
		})
	}
	wantTable(t, ctx, c, want)

	// UpdateService is a full replace.
	for i, s := range svcs {
		t.Run("update "+s.String(), func(t *testing.T) {
			s.Scheduler = ipvs.RoundRobin
			s.Flags = ipvs.FlagSched3
			if i%2 == 0 {
				s.Flags |= ipvs.FlagPersistent
				s.Timeout = secs(120)
			}
			if err := c.UpdateService(ctx, s); err != nil {
				t.Fatalf("UpdateService(%v): %v", s, err)
			}
			wantService(t, ctx, c, s)
			svcs[i] = s
		})
	}
	// EditService changes only what it names.
	for i, s := range svcs {
		t.Run("edit "+s.String(), func(t *testing.T) {
			if err := c.EditService(ctx, identity(s), ipvs.ServiceEdit{SetFlags: ipvs.FlagPersistent, Timeout: ptr(secs(600))}); err != nil {
				t.Fatalf("EditService(%v): %v", s, err)
			}
			s.Flags |= ipvs.FlagPersistent
			s.Timeout = secs(600)
			wantService(t, ctx, c, s)
			svcs[i] = s
		})
	}
	want = table{}
	for _, s := range svcs {
		want[s] = nil
	}
	wantTable(t, ctx, c, want)

	// Delete one by one; the others stay.
	for _, s := range svcs {
		t.Run("delete "+s.String(), func(t *testing.T) {
			if err := c.DeleteService(ctx, identity(s)); err != nil {
				t.Fatalf("DeleteService(%v): %v", s, err)
			}
			delete(want, s)
			_, err := c.Service(ctx, identity(s))
			wantKernelErr(t, "Service after DeleteService "+s.String(), err, syscall.ESRCH, os.ErrNotExist)
			err = c.DeleteService(ctx, identity(s))
			wantKernelErr(t, "second DeleteService "+s.String(), err, syscall.ESRCH, os.ErrNotExist)
		})
	}
	wantTable(t, ctx, c, want)
	if len(want) != 0 {
		t.Fatalf("test bug: %d services left", len(want))
	}
}

func TestIntegrationSchedulers(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	names := schedulers(t, ctx, c)
	want := table{}
	var svcs []ipvs.Service
	for i, name := range names {
		s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.12.0.1"), Port: uint16(1000 + i), Scheduler: name}
		svcs = append(svcs, s)
		t.Run("create "+name, func(t *testing.T) {
			mustCreate(t, ctx, c, s)
			// A destination, so that the scheduler has something to bind.
			mustCreateDest(t, ctx, c, s, ipvs.Destination{Address: addr("10.12.1.1"), Port: 8080, Weight: 1})
			wantService(t, ctx, c, s)
		})
	}
	// Every scheduler replaced by every other one, in a ring.
	for i, s := range svcs {
		next, then := names[(i+1)%len(names)], names[(i+2)%len(names)]
		t.Run(s.Scheduler+" to "+next+" to "+then, func(t *testing.T) {
			u := s
			u.Scheduler = next
			if err := c.UpdateService(ctx, u); err != nil {
				t.Fatalf("UpdateService(%v) to %q: %v", u, u.Scheduler, err)
			}
			wantService(t, ctx, c, u)
			if err := c.EditService(ctx, identity(u), ipvs.ServiceEdit{Scheduler: ptr(then)}); err != nil {
				t.Fatalf("EditService(%v) to %q: %v", u, then, err)
			}
			u.Scheduler = then
			wantService(t, ctx, c, u)
		})
		s.Scheduler = then
		want[s] = []ipvs.Destination{{Address: addr("10.12.1.1"), Port: 8080, Weight: 1}}
	}
	wantTable(t, ctx, c, want)
}

// TestIntegrationServiceFlags covers every flag, persistence with netmasks,
// the sip engine and the extreme values, each read back equal.
func TestIntegrationServiceFlags(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	v4, v6 := addr("10.13.0.1"), addr("2001:db8:13::1")
	all := ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3
	port := uint16(1000)
	next := func() uint16 { port++; return port }
	var svcs []ipvs.Service
	for _, a := range []netip.Addr{v4, v6} {
		for _, f := range []ipvs.ServiceFlags{0, ipvs.FlagPersistent, ipvs.FlagOnePacket, ipvs.FlagSched1, ipvs.FlagSched2, ipvs.FlagSched3, all} {
			s := ipvs.Service{Protocol: ipvs.UDP, Address: a, Port: next(), Scheduler: ipvs.RoundRobin, Flags: f}
			if f&ipvs.FlagPersistent != 0 {
				s.Timeout = secs(300)
			}
			svcs = append(svcs, s)
		}
	}
	svcs = append(svcs,
		// sh and mh with their named flags.
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: next(), Scheduler: ipvs.SourceHashing, Flags: ipvs.FlagSHFallback | ipvs.FlagSHPort},
		ipvs.Service{Protocol: ipvs.TCP, Address: v6, Port: next(), Scheduler: ipvs.MaglevHashing, Flags: ipvs.FlagMHFallback | ipvs.FlagMHPort},
		// Persistence granularity: IPv4 /24 and other masks, IPv6 /64.
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: next(), Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)},
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: next(), Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 1)},
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: next(), Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 31)},
		ipvs.Service{Protocol: ipvs.TCP, Address: v6, Port: next(), Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64)},
		ipvs.Service{Protocol: ipvs.TCP, Address: v6, Port: next(), Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv6, 1)},
		ipvs.Service{Protocol: ipvs.TCP, Address: v6, Port: next(), Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv6, 127)},
		// A netmask without persistence is stored too.
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: next(), Scheduler: ipvs.RoundRobin, Netmask: ipvs.PrefixMask(ipvs.IPv4, 16)},
		// The sip persistence engine, with and without persistence.
		ipvs.Service{Protocol: ipvs.UDP, Address: v4, Port: 5060, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: secs(360), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24), PersistenceEngine: ipvs.PersistenceEngineSIP},
		ipvs.Service{Protocol: ipvs.UDP, Address: v6, Port: 5060, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: secs(360), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64), PersistenceEngine: ipvs.PersistenceEngineSIP},
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: 5060, Scheduler: ipvs.RoundRobin, PersistenceEngine: ipvs.PersistenceEngineSIP},
		// Extremes: the largest persistence timeout, port 0.
		ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: 0, Scheduler: ipvs.SourceHashing, Flags: ipvs.FlagPersistent, Timeout: secs(4294967)},
		// Mark services of both families with flags.
		ipvs.Service{FirewallMark: 13, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagOnePacket | ipvs.FlagSched1},
		ipvs.Service{FirewallMark: 13, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: secs(120), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64), PersistenceEngine: ipvs.PersistenceEngineSIP},
		ipvs.Service{FirewallMark: 14, Family: ipvs.IPv4, Scheduler: ipvs.WeightedLeastConnection, Flags: all, Timeout: secs(60), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)},
		ipvs.Service{FirewallMark: 14, Family: ipvs.IPv6, Scheduler: ipvs.WeightedLeastConnection, Flags: all, Timeout: secs(60), Netmask: ipvs.PrefixMask(ipvs.IPv6, 48)},
	)
	want := table{}
	for _, s := range svcs {
		want[s] = nil
		t.Run(describeService(s), func(t *testing.T) {
			mustCreate(t, ctx, c, s)
			wantService(t, ctx, c, s)
		})
	}
	wantTable(t, ctx, c, want)

	// The full-length netmask is the zero Netmask, as documented.
	for _, s := range []ipvs.Service{
		{Protocol: ipvs.TCP, Address: v4, Port: 2001, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 32)},
		{Protocol: ipvs.TCP, Address: v6, Port: 2001, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv6, 128)},
	} {
		t.Run(describeService(s), func(t *testing.T) {
			mustCreate(t, ctx, c, s)
			got, err := c.Service(ctx, identity(s))
			if err != nil {
				t.Fatalf("Service(%v): %v", s, err)
			}
			if got.Netmask != (ipvs.Netmask{}) {
				t.Errorf("Service(%v) Netmask = %v, want the zero Netmask (full)", s, got.Netmask)
			}
		})
	}
}

// describeService names a service by its identity and the settings it
// has, for a subtest: "TCP 10.13.0.1:1015 wlc persistent timeout=5m0s
// mask=24 pe=sip".
func describeService(s ipvs.Service) string {
	parts := []string{s.String(), s.Scheduler}
	if s.Flags != 0 {
		parts = append(parts, s.Flags.String())
	}
	if s.Timeout != 0 {
		parts = append(parts, "timeout="+s.Timeout.String())
	}
	if s.Netmask != (ipvs.Netmask{}) {
		parts = append(parts, "mask="+s.Netmask.String())
	}
	if s.PersistenceEngine != "" {
		parts = append(parts, "pe="+s.PersistenceEngine)
	}
	return strings.Join(parts, " ")
}

// TestIntegrationEditService checks that EditService changes only the
// fields it names, keeping the persistence engine, and that UpdateService is
// a full replace.
func TestIntegrationEditService(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	for _, s := range []ipvs.Service{
		{Protocol: ipvs.UDP, Address: addr("10.14.0.1"), Port: 5060, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent | ipvs.FlagSched1, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24), PersistenceEngine: ipvs.PersistenceEngineSIP},
		{Protocol: ipvs.TCP, Address: addr("2001:db8:14::1"), Port: 443, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent | ipvs.FlagSched1, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64), PersistenceEngine: ipvs.PersistenceEngineSIP},
		{FirewallMark: 14, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent | ipvs.FlagSched1, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv6, 48), PersistenceEngine: ipvs.PersistenceEngineSIP},
	} {
		t.Run(s.String(), func(t *testing.T) {
			mustCreate(t, ctx, c, s)
			d := ipvs.Destination{Address: s.Address, Port: 8080, Weight: 3}
			if s.FirewallMark != 0 {
				d.Address = addr("2001:db8:14::10")
			} else {
				d.Address = d.Address.Next()
			}
			mustCreateDest(t, ctx, c, s, d)
			id := identity(s)
			edit := func(e ipvs.ServiceEdit, change func(*ipvs.Service)) {
				t.Helper()
				if err := c.EditService(ctx, id, e); err != nil {
					t.Fatalf("EditService(%+v): %v", e, err)
				}
				change(&s)
				wantService(t, ctx, c, s)
			}
			edit(ipvs.ServiceEdit{SetFlags: ipvs.FlagSched2, ClearFlags: ipvs.FlagSched1}, func(s *ipvs.Service) {
				s.Flags = ipvs.FlagPersistent | ipvs.FlagSched2
			})
			edit(ipvs.ServiceEdit{Scheduler: ptr(ipvs.WeightedLeastConnection)}, func(s *ipvs.Service) { s.Scheduler = ipvs.WeightedLeastConnection })
			edit(ipvs.ServiceEdit{Timeout: ptr(secs(900))}, func(s *ipvs.Service) { s.Timeout = secs(900) })
			fam := ipvs.IPv4
			if s.Address.Is6() || s.Family == ipvs.IPv6 {
				fam = ipvs.IPv6
			}
			edit(ipvs.ServiceEdit{Netmask: ptr(ipvs.PrefixMask(fam, 16))}, func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(fam, 16) })
			edit(ipvs.ServiceEdit{}, func(*ipvs.Service) {})
			edit(ipvs.ServiceEdit{PersistenceEngine: ptr("")}, func(s *ipvs.Service) { s.PersistenceEngine = "" })
			edit(ipvs.ServiceEdit{PersistenceEngine: ptr(ipvs.PersistenceEngineSIP)}, func(s *ipvs.Service) { s.PersistenceEngine = ipvs.PersistenceEngineSIP })
			// A flag both set and cleared is turned on.
			edit(ipvs.ServiceEdit{SetFlags: ipvs.FlagSched3, ClearFlags: ipvs.FlagSched3 | ipvs.FlagPersistent}, func(s *ipvs.Service) {
				s.Flags = ipvs.FlagSched2 | ipvs.FlagSched3
			})
			// Several fields at once.
			edit(ipvs.ServiceEdit{Scheduler: ptr(ipvs.SourceHashing), Timeout: ptr(secs(60)), SetFlags: ipvs.FlagPersistent, ClearFlags: ipvs.FlagSched2}, func(s *ipvs.Service) {
				s.Scheduler, s.Timeout, s.Flags = ipvs.SourceHashing, secs(60), ipvs.FlagPersistent|ipvs.FlagSched3
			})
			// The edit leaves the destinations alone.
			ds, err := c.Destinations(ctx, id)
			if err != nil || len(ds) != 1 || ds[0].Destination != d {
				t.Errorf("Destinations after edits = %+v, %v; want [%+v]", ds, err, d)
			}
			// An edit whose result is invalid is refused and changes nothing.
			wantInvalid(t, "EditService to netmask 200", c.EditService(ctx, id, ipvs.ServiceEdit{Netmask: ptr(ipvs.PrefixMask(fam, 200))}), "Service.Netmask")
			wantService(t, ctx, c, s)
			// An unknown scheduler leaves the service as it was.
			err = c.EditService(ctx, id, ipvs.ServiceEdit{Scheduler: ptr("nosuch")})
			wantKernelErr(t, "EditService to scheduler nosuch", err, syscall.ENOENT, ipvs.ErrSchedulerNotFound)
			wantService(t, ctx, c, s)
			// UpdateService is a full replace: without the engine, it goes.
			u := s
			u.PersistenceEngine = ""
			if err := c.UpdateService(ctx, u); err != nil {
				t.Fatalf("UpdateService: %v", err)
			}
			wantService(t, ctx, c, u)
		})
	}
	missing := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.14.9.9"), Port: 1}
	err := c.EditService(ctx, missing, ipvs.ServiceEdit{Timeout: ptr(secs(1))})
	wantKernelErr(t, "EditService of a missing service", err, syscall.ESRCH, os.ErrNotExist)
}
