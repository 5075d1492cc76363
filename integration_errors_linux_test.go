//go:build linux

package ipvs_test

// Errors: every kernel errno the library can reach, inputs the library
// refuses before sending, and a caller without CAP_NET_ADMIN.

import (
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

// TestIntegrationErrors provokes every kernel errno the library can reach
// and checks the typed error and its errors.Is mapping.
func TestIntegrationErrors(t *testing.T) {
	logKernelErrs = true
	defer func() { logKernelErrs = false }()
	c, _ := newClient(t)
	ctx := testCtx(t)
	s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.18.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	s6 := ipvs.Service{Protocol: ipvs.TCP, Address: addr("2001:db8:18::1"), Port: 80, Scheduler: ipvs.RoundRobin}
	d := ipvs.Destination{Address: addr("10.18.1.1"), Port: 8080, Weight: 1}
	mustCreate(t, ctx, c, s, s6)
	mustCreateDest(t, ctx, c, s, d)
	missing := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.18.9.9"), Port: 80, Scheduler: ipvs.RoundRobin}
	missingDest := ipvs.Destination{Address: addr("10.18.9.10"), Port: 8080, Weight: 1}
	before := readTable(t, ctx, c)

	// EEXIST
	wantKernelErr(t, "CreateService existing", c.CreateService(ctx, s), syscall.EEXIST, os.ErrExist)
	wantKernelErr(t, "CreateDestination existing", c.CreateDestination(ctx, s, d), syscall.EEXIST, os.ErrExist)

	// ESRCH: no such service.
	_, err := c.Service(ctx, missing)
	wantKernelErr(t, "Service missing", err, syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "UpdateService missing", c.UpdateService(ctx, missing), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "DeleteService missing", c.DeleteService(ctx, missing), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "ZeroService missing", c.ZeroService(ctx, missing), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "EditService missing", c.EditService(ctx, missing, ipvs.ServiceEdit{}), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "CreateDestination under a missing service", c.CreateDestination(ctx, missing, d), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "UpdateDestination under a missing service", c.UpdateDestination(ctx, missing, d), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "DeleteDestination under a missing service", c.DeleteDestination(ctx, missing, d), syscall.ESRCH, os.ErrNotExist)
	_, err = c.Destinations(ctx, missing)
	wantKernelErr(t, "Destinations of a missing service", err, syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "StopSyncDaemon master, none running", c.StopSyncDaemon(ctx, ipvs.Master), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "StopSyncDaemon backup, none running", c.StopSyncDaemon(ctx, ipvs.Backup), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "ZeroService fwmark missing", c.ZeroService(ctx, ipvs.Service{FirewallMark: 7, Family: ipvs.IPv4}), syscall.ESRCH, os.ErrNotExist)

	// ENOENT from a service write: unknown scheduler or engine. It must
	// not look like a missing service.
	bad := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.18.0.2"), Port: 80, Scheduler: "nosuch"}
	wantKernelErr(t, "CreateService scheduler nosuch", c.CreateService(ctx, bad), syscall.ENOENT, ipvs.ErrSchedulerNotFound)
	bad.Scheduler = "abcdefghijklmno" // 15 bytes, the longest name
	wantKernelErr(t, "CreateService 15-byte unknown scheduler", c.CreateService(ctx, bad), syscall.ENOENT, ipvs.ErrSchedulerNotFound)
	bad.Scheduler, bad.PersistenceEngine = ipvs.RoundRobin, "nosuch"
	wantKernelErr(t, "CreateService engine nosuch", c.CreateService(ctx, bad), syscall.ENOENT, ipvs.ErrSchedulerNotFound)
	bad.PersistenceEngine = "abcdefghijklmnop" // 16 bytes, the longest name
	wantKernelErr(t, "CreateService 16-byte unknown engine", c.CreateService(ctx, bad), syscall.ENOENT, ipvs.ErrSchedulerNotFound)
	upd := s
	upd.Scheduler = "nosuch"
	wantKernelErr(t, "UpdateService scheduler nosuch", c.UpdateService(ctx, upd), syscall.ENOENT, ipvs.ErrSchedulerNotFound)
	upd.Scheduler, upd.PersistenceEngine = ipvs.RoundRobin, "nosuch"
	wantKernelErr(t, "UpdateService engine nosuch", c.UpdateService(ctx, upd), syscall.ENOENT, ipvs.ErrSchedulerNotFound)

	// ENOENT from a destination write: no such destination.
	wantKernelErr(t, "UpdateDestination missing", c.UpdateDestination(ctx, s, missingDest), syscall.ENOENT, os.ErrNotExist)
	wantKernelErr(t, "DeleteDestination missing", c.DeleteDestination(ctx, s, missingDest), syscall.ENOENT, os.ErrNotExist)
	// The port is part of the identity.
	wantKernelErr(t, "DeleteDestination other port", c.DeleteDestination(ctx, s, ipvs.Destination{Address: d.Address, Port: d.Port + 1}), syscall.ENOENT, os.ErrNotExist)

	// EINVAL: a link-local IPv6 destination passes the library's checks
	// but not the kernel's.
	wantKernelErr(t, "CreateDestination fe80::1", c.CreateDestination(ctx, s6, ipvs.Destination{Address: addr("fe80::1"), Port: 80, Weight: 1, ForwardMethod: ipvs.IPIP}), syscall.EINVAL, os.ErrInvalid)
	wantKernelErr(t, "CreateDestination fe80::1 under IPv4", c.CreateDestination(ctx, s, ipvs.Destination{Address: addr("fe80::1"), Port: 80, Weight: 1, ForwardMethod: ipvs.IPIP}), syscall.EINVAL, os.ErrInvalid)

	// ENODEV: unknown multicast interface.
	wantKernelErr(t, "StartSyncDaemon nosuch0", c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "nosuch0"}), syscall.ENODEV)

	// Nothing above changed the table.
	wantUnchanged(t, ctx, c, before, "failed calls")

	// EINVAL: mixed address families and sync daemons exclude each other.
	mixed := ipvs.Destination{Address: addr("2001:db8:18::100"), Port: 80, Weight: 1, ForwardMethod: ipvs.IPIP}
	mustCreateDest(t, ctx, c, s, mixed)
	for _, st := range []ipvs.DaemonState{ipvs.Master, ipvs.Backup} {
		t.Run(st.String()+" with a mixed-family destination", func(t *testing.T) {
			err := c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: st, Interface: "lo"})
			wantKernelErr(t, "StartSyncDaemon "+st.String()+" with a mixed-family destination", err, syscall.EINVAL, os.ErrInvalid)
		})
	}
	if err := c.DeleteDestination(ctx, s, mixed); err != nil {
		t.Fatalf("DeleteDestination: %v", err)
	}
	mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"})
	wantKernelErr(t, "CreateDestination mixed family while a daemon runs", c.CreateDestination(ctx, s, mixed), syscall.EINVAL, os.ErrInvalid)
	wantKernelErr(t, "StartSyncDaemon master twice", c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"}), syscall.EEXIST, os.ErrExist)
	mustStopDaemon(t, c, ipvs.Master)
	wantUnchanged(t, ctx, c, before, "the mixed-family and sync daemon calls")
}

// TestIntegrationValidationSendsNothing shows that inputs the library
// refuses never reach the kernel, including inputs the kernel would have
// accepted or stored as garbage.
func TestIntegrationValidationSendsNothing(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	s := ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.19.0.1"), Port: 53, Scheduler: ipvs.RoundRobin}
	d := ipvs.Destination{Address: addr("10.19.1.1"), Port: 53, Weight: 1}
	mustCreate(t, ctx, c, s)
	mustCreateDest(t, ctx, c, s, d)
	before := readTable(t, ctx, c)
	timeouts, err := c.Timeouts(ctx)
	if err != nil {
		t.Fatalf("Timeouts: %v", err)
	}

	v4 := addr("10.19.0.2")
	svc := func(f func(*ipvs.Service)) ipvs.Service {
		return with(ipvs.Service{Protocol: ipvs.TCP, Address: v4, Port: 80, Scheduler: ipvs.RoundRobin}, f)
	}
	for _, tc := range []struct {
		name  string
		s     ipvs.Service
		field string
	}{
		// The kernel would accept these three.
		{"protocol 99", svc(func(s *ipvs.Service) { s.Protocol = 99 }), "Service.Protocol"},
		{"one-packet on TCP", svc(func(s *ipvs.Service) { s.Flags = ipvs.FlagOnePacket }), "Service.Flags"},
		{"unknown flag bit", svc(func(s *ipvs.Service) { s.Flags = 0x100 }), "Service.Flags"},
		{"hashed flag bit", svc(func(s *ipvs.Service) { s.Flags = 0x2 }), "Service.Flags"},
		{"netmask 33", svc(func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(ipvs.IPv4, 33) }), "Service.Netmask"},
		{"netmask -1", svc(func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(ipvs.IPv4, -1) }), "Service.Netmask"},
		{"IPv6 netmask 129", svc(func(s *ipvs.Service) { s.Address = addr("2001:db8:19::1"); s.Netmask = ipvs.PrefixMask(ipvs.IPv6, 129) }), "Service.Netmask"},
		{"fractional timeout", svc(func(s *ipvs.Service) { s.Timeout = 1500 * time.Millisecond }), "Service.Timeout"},
		{"timeout overflow", svc(func(s *ipvs.Service) { s.Timeout = secs(4294968) }), "Service.Timeout"},
		{"no scheduler", svc(func(s *ipvs.Service) { s.Scheduler = "" }), "Service.Scheduler"},
		{"16-byte scheduler", svc(func(s *ipvs.Service) { s.Scheduler = "abcdefghijklmnop" }), "Service.Scheduler"},
		{"17-byte engine", svc(func(s *ipvs.Service) { s.PersistenceEngine = "abcdefghijklmnopq" }), "Service.PersistenceEngine"},
		{"NUL in scheduler", svc(func(s *ipvs.Service) { s.Scheduler = "r\x00r" }), "Service.Scheduler"},
		{"IPv4-mapped address", svc(func(s *ipvs.Service) { s.Address = addr("::ffff:10.19.0.2") }), "Service.Address"},
		{"zoned address", svc(func(s *ipvs.Service) { s.Address = addr("fe80::1%lo") }), "Service.Address"},
		{"family mismatch", svc(func(s *ipvs.Service) { s.Family = ipvs.IPv6 }), "Service.Family"},
		{"no address", svc(func(s *ipvs.Service) { s.Address = netip.Addr{} }), "Service.Address"},
		{"mark with address", svc(func(s *ipvs.Service) { s.FirewallMark = 1; s.Family = ipvs.IPv4 }), "Service.Address"},
		{"mark without family", ipvs.Service{FirewallMark: 1, Scheduler: ipvs.RoundRobin}, "Service.Family"},
		{"mark with protocol", ipvs.Service{FirewallMark: 1, Family: ipvs.IPv4, Protocol: ipvs.TCP, Scheduler: ipvs.RoundRobin}, "Service.Protocol"},
	} {
		t.Run("service "+tc.name, func(t *testing.T) {
			wantInvalid(t, "CreateService "+tc.name, c.CreateService(ctx, tc.s), tc.field)
			if tc.s.Address == v4 || tc.s.FirewallMark != 0 {
				wantInvalid(t, "UpdateService "+tc.name, c.UpdateService(ctx, tc.s), tc.field)
			}
		})
	}
	dst := func(f func(*ipvs.Destination)) ipvs.Destination {
		return with(ipvs.Destination{Address: addr("10.19.1.2"), Port: 53, Weight: 1}, f)
	}
	for _, tc := range []struct {
		name  string
		d     ipvs.Destination
		field string
	}{
		// The kernel answers ERANGE to these three.
		{"weight -1", dst(func(d *ipvs.Destination) { d.Weight = -1 }), "Destination.Weight"},
		{"lower above upper", dst(func(d *ipvs.Destination) { d.UpperThreshold, d.LowerThreshold = 50, 100 }), "Destination.LowerThreshold"},
		{"lower without upper", dst(func(d *ipvs.Destination) { d.LowerThreshold = 50 }), "Destination.LowerThreshold"},
		{"weight above MaxWeight", dst(func(d *ipvs.Destination) { d.Weight = int(tooHeavy) }), "Destination.Weight"},
		{"upper threshold above INT_MAX", dst(func(d *ipvs.Destination) { d.UpperThreshold = 1 << 31 }), "Destination.UpperThreshold"},
		// The kernel answers EINVAL to these.
		{"multicast", dst(func(d *ipvs.Destination) { d.Address = addr("224.0.0.1") }), "Destination.Address"},
		{"broadcast", dst(func(d *ipvs.Destination) { d.Address = addr("255.255.255.255") }), "Destination.Address"},
		{"unspecified", dst(func(d *ipvs.Destination) { d.Address = addr("0.0.0.0") }), "Destination.Address"},
		{"mixed family NAT", dst(func(d *ipvs.Destination) { d.Address = addr("2001:db8:19::2") }), "Destination.Address"},
		{"mixed family DR", dst(func(d *ipvs.Destination) { d.Address = addr("2001:db8:19::2"); d.ForwardMethod = ipvs.DR }), "Destination.Address"},
		{"GUE without port", dst(func(d *ipvs.Destination) { d.ForwardMethod = ipvs.IPIP; d.TunnelType = ipvs.TunnelGUE }), "Destination.TunnelPort"},
		// The kernel would store these.
		{"forward method 5", dst(func(d *ipvs.Destination) { d.ForwardMethod = 5 }), "Destination.ForwardMethod"},
		{"tunnel type 3", dst(func(d *ipvs.Destination) { d.ForwardMethod = ipvs.IPIP; d.TunnelType = 3 }), "Destination.TunnelType"},
		{"GRE remote checksum", dst(func(d *ipvs.Destination) {
			d.ForwardMethod = ipvs.IPIP
			d.TunnelType = ipvs.TunnelGRE
			d.TunnelChecksum = ipvs.TunnelChecksumRemote
		}), "Destination.TunnelChecksum"},
		{"GRE with port", dst(func(d *ipvs.Destination) {
			d.ForwardMethod = ipvs.IPIP
			d.TunnelType = ipvs.TunnelGRE
			d.TunnelPort = 1
		}), "Destination.TunnelPort"},
		{"IPIP with checksum", dst(func(d *ipvs.Destination) { d.ForwardMethod = ipvs.IPIP; d.TunnelChecksum = ipvs.TunnelChecksumOn }), "Destination.TunnelChecksum"},
		{"tunnel options on NAT", dst(func(d *ipvs.Destination) { d.TunnelType = ipvs.TunnelGUE; d.TunnelPort = 6080 }), "Destination.TunnelType"},
		{"checksum mode 4", dst(func(d *ipvs.Destination) {
			d.ForwardMethod = ipvs.IPIP
			d.TunnelType = ipvs.TunnelGUE
			d.TunnelPort = 1
			d.TunnelChecksum = 4
		}), "Destination.TunnelChecksum"},
		{"no address", dst(func(d *ipvs.Destination) { d.Address = netip.Addr{} }), "Destination.Address"},
	} {
		t.Run("destination "+tc.name, func(t *testing.T) {
			wantInvalid(t, "CreateDestination "+tc.name, c.CreateDestination(ctx, s, tc.d), tc.field)
			// The same changes on the existing destination.
			u := tc.d
			if u.Address == addr("10.19.1.2") {
				u.Address = d.Address
				wantInvalid(t, "UpdateDestination "+tc.name, c.UpdateDestination(ctx, s, u), tc.field)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		d     ipvs.SyncDaemon
		field string
	}{
		{"state 0", ipvs.SyncDaemon{Interface: "lo"}, "SyncDaemon.State"},
		{"state 3", ipvs.SyncDaemon{State: 3, Interface: "lo"}, "SyncDaemon.State"},
		{"no interface", ipvs.SyncDaemon{State: ipvs.Master}, "SyncDaemon.Interface"},
		{"16-byte interface", ipvs.SyncDaemon{State: ipvs.Master, Interface: "abcdefghijklmnop"}, "SyncDaemon.Interface"},
		{"sync ID 256", ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", SyncID: 256}, "SyncDaemon.SyncID"},
		{"max length 65508", ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", MaxLength: 65508}, "SyncDaemon.MaxLength"},
		{"unicast group", ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", Group: addr("10.0.0.1")}, "SyncDaemon.Group"},
		{"IPv6 unicast group", ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", Group: addr("2001:db8::1")}, "SyncDaemon.Group"},
	} {
		t.Run("daemon "+tc.name, func(t *testing.T) {
			wantInvalid(t, "StartSyncDaemon "+tc.name, c.StartSyncDaemon(ctx, tc.d), tc.field)
		})
	}
	wantInvalid(t, "StopSyncDaemon state 3", c.StopSyncDaemon(ctx, 3), "state")
	wantInvalid(t, "DeleteService without identity", c.DeleteService(ctx, ipvs.Service{}), "Service.Address")
	_, err = c.Service(ctx, ipvs.Service{Protocol: 99, Address: v4})
	wantInvalid(t, "Service protocol 99", err, "Service.Protocol")
	_, err = c.Destinations(ctx, ipvs.Service{FirewallMark: 1})
	wantInvalid(t, "Destinations mark without family", err, "Service.Family")
	wantInvalid(t, "ZeroService without identity", c.ZeroService(ctx, ipvs.Service{}), "Service.Address")
	wantInvalid(t, "EditService to netmask 40", c.EditService(ctx, ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.19.0.1"), Port: 53}, ipvs.ServiceEdit{Netmask: ptr(ipvs.PrefixMask(ipvs.IPv4, 40))}), "Service.Netmask")

	wantUnchanged(t, ctx, c, before, "refused calls")
	wantDaemons(t, ctx, c)
	if got, err := c.Timeouts(ctx); err != nil || got != timeouts {
		t.Errorf("Timeouts = %+v, %v; want %+v", got, err, timeouts)
	}
}

// TestIntegrationPermissionDenied sends requests from a thread without
// CAP_NET_ADMIN.
func TestIntegrationPermissionDenied(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.23.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	mustCreate(t, ctx, c, s)
	type result struct {
		name string
		err  error
	}
	ch := make(chan []result, 1)
	go func() {
		// Never unlocked: the thread loses a capability for good.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			ch <- []result{{"capget", err}}
			return
		}
		data[unix.CAP_NET_ADMIN/32].Effective &^= 1 << (unix.CAP_NET_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			ch <- []result{{"capset", err}}
			return
		}
		var rs []result
		_, err := c.Info(ctx)
		rs = append(rs, result{"Info", err})
		_, err = c.Services(ctx)
		rs = append(rs, result{"Services", err})
		rs = append(rs, result{"CreateService", c.CreateService(ctx, ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.23.0.2"), Port: 53, Scheduler: ipvs.RoundRobin})})
		rs = append(rs, result{"DeleteService", c.DeleteService(ctx, s)})
		_, err = c.SyncDaemons(ctx)
		rs = append(rs, result{"SyncDaemons", err})
		ch <- rs
	}()
	rs := <-ch
	if len(rs) == 1 && (rs[0].name == "capget" || rs[0].name == "capset") {
		t.Skipf("cannot drop CAP_NET_ADMIN on a thread: %s: %v", rs[0].name, rs[0].err)
	}
	for _, r := range rs {
		t.Run(r.name, func(t *testing.T) {
			wantKernelErr(t, r.name+" without CAP_NET_ADMIN", r.err, syscall.EPERM, os.ErrPermission)
		})
	}
	// Nothing changed, and the client still works from other threads.
	wantTable(t, ctx, c, table{s: nil})
}

// tooHeavy is MaxWeight + 1 as a variable, so that the test builds where int
// has 32 bits (there int(tooHeavy) is negative, refused as well).
var tooHeavy = int64(ipvs.MaxWeight) + 1
