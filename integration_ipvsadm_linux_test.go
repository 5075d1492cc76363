//go:build linux

package ipvs_test

// Cross-checks with ipvsadm, run in the test's namespace.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

// saveBlocks parses "ipvsadm -S -n" output into service lines and their
// destination lines, sorted.
func saveBlocks(t *testing.T, out string) map[string][]string {
	t.Helper()
	blocks := map[string][]string{}
	cur := ""
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "-A "):
			cur = line
			if _, dup := blocks[cur]; dup {
				t.Errorf("ipvsadm -S printed %q twice", cur)
			}
			blocks[cur] = []string{}
		case strings.HasPrefix(line, "-a ") && cur != "":
			blocks[cur] = append(blocks[cur], line)
		case line == "":
		default:
			t.Errorf("unexpected ipvsadm -S line %q", line)
		}
	}
	for _, ds := range blocks {
		slices.Sort(ds)
	}
	return blocks
}

// tunnelDest is a tunnel destination, in the order ipvsadm's options give
// it: address, port, weight, --tun-type, --tun-port, checksum mode.
func tunnelDest(a string, port uint16, weight int, tt ipvs.TunnelType, tp uint16, cs ipvs.TunnelChecksum) ipvs.Destination {
	return ipvs.Destination{Address: addr(a), Port: port, Weight: weight, ForwardMethod: ipvs.IPIP, TunnelType: tt, TunnelPort: tp, TunnelChecksum: cs}
}

type saveCase struct {
	svc   ipvs.Service
	line  string
	dests []saveDest
}

type saveDest struct {
	d    ipvs.Destination
	line string
}

// TestIntegrationIpvsadmSave configures IPVS with the library and compares
// "ipvsadm -S -n", run in the same namespace, with the exact expected lines.
func TestIntegrationIpvsadmSave(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)
	tcp := func(a string, port uint16, sched string) ipvs.Service {
		return ipvs.Service{Protocol: ipvs.TCP, Address: addr(a), Port: port, Scheduler: sched}
	}
	nat := func(a string, port uint16, w int) ipvs.Destination {
		return ipvs.Destination{Address: addr(a), Port: port, Weight: w}
	}
	tun := tunnelDest
	cases := []saveCase{
		{tcp("10.24.0.1", 80, "wlc"), "-A -t 10.24.0.1:80 -s wlc", []saveDest{
			// Local is saved as -g; thresholds are not saved.
			{ipvs.Destination{Address: addr("192.168.24.2"), Port: 8080, Weight: 2, ForwardMethod: ipvs.Local}, "-a -t 10.24.0.1:80 -r 192.168.24.2:8080 -g -w 2"},
			{ipvs.Destination{Address: addr("192.168.24.10"), Port: 8080, Weight: 1, UpperThreshold: 100, LowerThreshold: 50}, "-a -t 10.24.0.1:80 -r 192.168.24.10:8080 -m -w 1"},
			{ipvs.Destination{Address: addr("192.168.24.11"), Port: 80, ForwardMethod: ipvs.DR}, "-a -t 10.24.0.1:80 -r 192.168.24.11:80 -g -w 0"},
			{tun("192.168.24.12", 80, 3, ipvs.TunnelIPIP, 0, 0), "-a -t 10.24.0.1:80 -r 192.168.24.12:80 -i -w 3 --tun-type ipip"},
			{tun("192.168.24.13", 80, 4, ipvs.TunnelGUE, 6080, ipvs.TunnelChecksumNone), "-a -t 10.24.0.1:80 -r 192.168.24.13:80 -i -w 4 --tun-type gue --tun-port 6080 --tun-nocsum"},
			{tun("192.168.24.14", 80, 5, ipvs.TunnelGUE, 6081, ipvs.TunnelChecksumOn), "-a -t 10.24.0.1:80 -r 192.168.24.14:80 -i -w 5 --tun-type gue --tun-port 6081 --tun-csum"},
			{tun("192.168.24.15", 80, 6, ipvs.TunnelGUE, 6082, ipvs.TunnelChecksumRemote), "-a -t 10.24.0.1:80 -r 192.168.24.15:80 -i -w 6 --tun-type gue --tun-port 6082 --tun-remcsum"},
			{tun("192.168.24.16", 80, 7, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumNone), "-a -t 10.24.0.1:80 -r 192.168.24.16:80 -i -w 7 --tun-type gre --tun-nocsum"},
			{tun("192.168.24.17", 80, 8, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn), "-a -t 10.24.0.1:80 -r 192.168.24.17:80 -i -w 8 --tun-type gre --tun-csum"},
			{tun("2001:db8:24::100", 80, 1, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn), "-a -t 10.24.0.1:80 -r [2001:db8:24::100]:80 -i -w 1 --tun-type gre --tun-csum"},
			{nat("192.168.24.18", 8080, ipvs.MaxWeight), "-a -t 10.24.0.1:80 -r 192.168.24.18:8080 -m -w 2147483647"},
		}},
		{ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.24.0.1"), Port: 53, Scheduler: "sh", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSHFallback | ipvs.FlagSHPort, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)},
			"-A -u 10.24.0.1:53 -s sh -p 300 -M 255.255.255.0 -o -b sh-fallback,sh-port", []saveDest{
				{ipvs.Destination{Address: addr("192.168.24.20"), Port: 53, ForwardMethod: ipvs.DR}, "-a -u 10.24.0.1:53 -r 192.168.24.20:53 -g -w 0"},
			}},
		{ipvs.Service{Protocol: ipvs.TCP, Address: addr("2001:db8:24::1"), Port: 443, Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: secs(360), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64), PersistenceEngine: "sip"},
			"-A -t [2001:db8:24::1]:443 -s rr -p 360 -M 64 --pe sip", []saveDest{
				{nat("2001:db8:24::10", 8443, 100), "-a -t [2001:db8:24::1]:443 -r [2001:db8:24::10]:8443 -m -w 100"},
				{tun("192.168.24.30", 443, 1, ipvs.TunnelGUE, 7000, ipvs.TunnelChecksumOn), "-a -t [2001:db8:24::1]:443 -r 192.168.24.30:443 -i -w 1 --tun-type gue --tun-port 7000 --tun-csum"},
			}},
		{ipvs.Service{FirewallMark: 100, Family: ipvs.IPv4, Scheduler: "mh", Flags: ipvs.FlagMHPort}, "-A -f 100 -s mh -b mh-port", []saveDest{
			{tun("192.168.24.40", 0, 3, ipvs.TunnelGUE, 6080, ipvs.TunnelChecksumOn), "-a -f 100 -r 192.168.24.40:0 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum"},
			{tun("2001:db8:24::40", 0, 1, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumNone), "-a -f 100 -r [2001:db8:24::40]:0 -i -w 1 --tun-type gre --tun-nocsum"},
		}},
		{ipvs.Service{FirewallMark: 200, Family: ipvs.IPv6, Scheduler: "rr", Flags: ipvs.FlagOnePacket}, "-A -f 200 -6 -s rr -o", []saveDest{
			{nat("2001:db8:24::50", 80, 1), "-a -f 200 -6 -r [2001:db8:24::50]:80 -m -w 1"},
			{tun("192.168.24.50", 0, 2, ipvs.TunnelIPIP, 0, 0), "-a -f 200 -6 -r 192.168.24.50:0 -i -w 2 --tun-type ipip"},
		}},
		{ipvs.Service{FirewallMark: 201, Family: ipvs.IPv6, Scheduler: "wlc", Flags: ipvs.FlagPersistent, Timeout: secs(30), Netmask: ipvs.PrefixMask(ipvs.IPv6, 48)}, "-A -f 201 -6 -s wlc -p 30 -M 48", nil},
		{ipvs.Service{FirewallMark: 300, Family: ipvs.IPv4, Scheduler: "wlc", Flags: ipvs.FlagPersistent, Timeout: secs(120), Netmask: ipvs.PrefixMask(ipvs.IPv4, 16)}, "-A -f 300 -s wlc -p 120 -M 255.255.0.0", nil},
		// ipvsadm 1.31 names only sh-fallback and sh-port for sh: it
		// drops flag-3 from the saved line.
		{ipvs.Service{FirewallMark: 301, Family: ipvs.IPv4, Scheduler: "sh", Flags: ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3}, "-A -f 301 -s sh -b sh-fallback,sh-port", nil},
		{ipvs.Service{Protocol: ipvs.SCTP, Address: addr("10.24.0.2"), Port: 9000, Scheduler: "lc"}, "-A --sctp-service 10.24.0.2:9000 -s lc", []saveDest{
			{nat("192.168.24.60", 9000, 1), "-a --sctp-service 10.24.0.2:9000 -r 192.168.24.60:9000 -m -w 1"},
		}},
		{ipvs.Service{Protocol: ipvs.SCTP, Address: addr("2001:db8:24::2"), Port: 9000, Scheduler: "sed", Flags: ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3}, "-A --sctp-service [2001:db8:24::2]:9000 -s sed -b flag-1,flag-2,flag-3", nil},
		{ipvs.Service{Protocol: ipvs.UDP, Address: addr("2001:db8:24::3"), Port: 5060, Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: secs(60), PersistenceEngine: "sip"}, "-A -u [2001:db8:24::3]:5060 -s rr -p 60 --pe sip", nil},
		{with(tcp("10.24.0.3", 5060, "rr"), func(s *ipvs.Service) { s.PersistenceEngine = "sip" }), "-A -t 10.24.0.3:5060 -s rr --pe sip", nil},
		// A netmask is saved only with persistence.
		{with(tcp("10.24.0.4", 80, "rr"), func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(ipvs.IPv4, 24) }), "-A -t 10.24.0.4:80 -s rr", nil},
		{with(tcp("10.24.0.5", 0, "sh"), func(s *ipvs.Service) { s.Flags, s.Timeout = ipvs.FlagPersistent, secs(3600) }), "-A -t 10.24.0.5:0 -s sh -p 3600", nil},
		{ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.24.0.6"), Port: 5000, Scheduler: "wrr", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3, Timeout: secs(4294967)},
			"-A -u 10.24.0.6:5000 -s wrr -p 4294967 -o -b flag-1,flag-2,flag-3", nil},
		{with(tcp("2001:db8:24::4", 80, "wlc"), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(100), ipvs.PrefixMask(ipvs.IPv6, 1)
		}), "-A -t [2001:db8:24::4]:80 -s wlc -p 100 -M 1", nil},
		{ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.24.0.7"), Port: 80, Scheduler: "mh", Flags: ipvs.FlagSched1 | ipvs.FlagSched2}, "-A -t 10.24.0.7:80 -s mh -b mh-fallback,mh-port", nil},
	}
	for i, name := range schedulers(t, ctx, c) {
		a := fmt.Sprintf("10.24.1.%d", i+1)
		cases = append(cases, saveCase{tcp(a, 80, name), fmt.Sprintf("-A -t %s:80 -s %s", a, name), nil})
	}
	for _, tc := range cases {
		mustCreate(t, ctx, c, tc.svc)
		for _, d := range tc.dests {
			mustCreateDest(t, ctx, c, tc.svc, d.d)
		}
	}
	out := ns.ipvsadm(t, "", "-S", "-n")
	got := saveBlocks(t, out)
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.line, "-A "), func(t *testing.T) {
			lines, ok := got[tc.line]
			if !ok {
				t.Fatalf("ipvsadm -S -n has no line %q", tc.line)
			}
			delete(got, tc.line)
			var want []string
			for _, d := range tc.dests {
				want = append(want, d.line)
			}
			slices.Sort(want)
			if diff := cmp.Diff(want, lines, cmpOpts); diff != "" {
				t.Errorf("ipvsadm -S -n, destinations of %q (-want +got):\n%s", tc.line, diff)
			}
		})
	}
	for line := range got {
		t.Errorf("ipvsadm -S -n has a service line no case wants: %q", line)
	}
	if t.Failed() {
		t.Logf("ipvsadm -S -n, full output:\n%s", out)
	}
}

// TestIntegrationIpvsadmRestore configures IPVS with "ipvsadm -R" and reads
// it back with the library, comparing every field.
func TestIntegrationIpvsadmRestore(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)
	lines := []string{
		"-A -t 10.25.0.1:80 -s wlc",
		"-a -t 10.25.0.1:80 -r 192.168.25.10:8080 -m -w 1 -x 100 -y 50",
		"-a -t 10.25.0.1:80 -r 192.168.25.11 -g -w 0",
		"-a -t 10.25.0.1:80 -r 192.168.25.12:80 -i -w 2",
		"-a -t 10.25.0.1:80 -r 192.168.25.13 -i -w 3 --tun-type gue --tun-port 6080 --tun-remcsum",
		"-a -t 10.25.0.1:80 -r 192.168.25.14 -i --tun-type gre --tun-csum",
		"-a -t 10.25.0.1:80 -r [2001:db8:25::100]:80 -i -w 4 --tun-type gre --tun-nocsum",
		"-a -t 10.25.0.1:80 -r 192.168.25.15:8080 -m -w 65535 -x 2147483647",
		"-A -u 10.25.0.1:53 -s sh -p 300 -M 255.255.255.0 -o -b sh-fallback,sh-port",
		"-a -u 10.25.0.1:53 -r 192.168.25.20:5353 -m -w 5",
		"-A -t [2001:db8:25::1]:443 -s rr -p 360 -M 64 --pe sip",
		"-a -t [2001:db8:25::1]:443 -r [2001:db8:25::10]:8443 -m -w 100",
		"-a -t [2001:db8:25::1]:443 -r 192.168.25.30 -i -w 1 --tun-type ipip",
		"-A -f 100 -s mh -b mh-fallback,mh-port",
		"-a -f 100 -r 192.168.25.40 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum",
		"-a -f 100 -r [2001:db8:25::40]:0 -i -w 1 --tun-type gre --tun-csum",
		"-A -f 200 -6 -s none -o",
		"-a -f 200 -6 -r [2001:db8:25::50]:8080 -m -w 7",
		"-A --sctp-service 10.25.0.2:9000 -s lc -b flag-1,flag-3",
		"-a --sctp-service 10.25.0.2:9000 -r 192.168.25.60:9001 -m",
		"-A --sctp-service [2001:db8:25::2]:9000 -s nq",
		"-A -t 10.25.0.3:0 -s dh -p 3600 -M 255.255.0.0",
		"-A -u [2001:db8:25::3]:0 -s lblcr -p 10 -M 48 -o",
		"-A -t 10.25.0.4:80",
		"-A -f 300 -s fo -p 120",
		"-A -f 301 -6 -s ovf -p 30 -M 96",
		"-A -t 10.25.0.5:5060 -s rr --pe sip",
	}
	w := func(a string, port uint16, fwd ipvs.ForwardMethod, weight int) ipvs.Destination {
		return ipvs.Destination{Address: addr(a), Port: port, ForwardMethod: fwd, Weight: weight}
	}
	tun := tunnelDest
	want := table{
		{Protocol: ipvs.TCP, Address: addr("10.25.0.1"), Port: 80, Scheduler: "wlc"}: {
			{Address: addr("192.168.25.10"), Port: 8080, Weight: 1, UpperThreshold: 100, LowerThreshold: 50},
			// ipvsadm forces the service port on DR and tunnel destinations.
			w("192.168.25.11", 80, ipvs.DR, 0),
			tun("192.168.25.12", 80, 2, ipvs.TunnelIPIP, 0, 0),
			tun("192.168.25.13", 80, 3, ipvs.TunnelGUE, 6080, ipvs.TunnelChecksumRemote),
			tun("192.168.25.14", 80, 1, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn),
			tun("2001:db8:25::100", 80, 4, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumNone),
			{Address: addr("192.168.25.15"), Port: 8080, Weight: 65535, UpperThreshold: 2147483647},
		},
		{Protocol: ipvs.UDP, Address: addr("10.25.0.1"), Port: 53, Scheduler: "sh", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSHFallback | ipvs.FlagSHPort, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)}: {
			w("192.168.25.20", 5353, ipvs.NAT, 5),
		},
		{Protocol: ipvs.TCP, Address: addr("2001:db8:25::1"), Port: 443, Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: secs(360), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64), PersistenceEngine: "sip"}: {
			w("2001:db8:25::10", 8443, ipvs.NAT, 100),
			tun("192.168.25.30", 443, 1, ipvs.TunnelIPIP, 0, 0),
		},
		{FirewallMark: 100, Family: ipvs.IPv4, Scheduler: "mh", Flags: ipvs.FlagMHFallback | ipvs.FlagMHPort}: {
			tun("192.168.25.40", 0, 3, ipvs.TunnelGUE, 6080, ipvs.TunnelChecksumOn),
			tun("2001:db8:25::40", 0, 1, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn),
		},
		{FirewallMark: 200, Family: ipvs.IPv6, Scheduler: "none", Flags: ipvs.FlagOnePacket}: {
			w("2001:db8:25::50", 8080, ipvs.NAT, 7),
		},
		{Protocol: ipvs.SCTP, Address: addr("10.25.0.2"), Port: 9000, Scheduler: "lc", Flags: ipvs.FlagSched1 | ipvs.FlagSched3}: {
			w("192.168.25.60", 9001, ipvs.NAT, 1),
		},
		{Protocol: ipvs.SCTP, Address: addr("2001:db8:25::2"), Port: 9000, Scheduler: "nq"}:                                                                                                             nil,
		{Protocol: ipvs.TCP, Address: addr("10.25.0.3"), Port: 0, Scheduler: "dh", Flags: ipvs.FlagPersistent, Timeout: secs(3600), Netmask: ipvs.PrefixMask(ipvs.IPv4, 16)}:                            nil,
		{Protocol: ipvs.UDP, Address: addr("2001:db8:25::3"), Port: 0, Scheduler: "lblcr", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket, Timeout: secs(10), Netmask: ipvs.PrefixMask(ipvs.IPv6, 48)}: nil,
		{Protocol: ipvs.TCP, Address: addr("10.25.0.4"), Port: 80, Scheduler: "wlc"}:                                                                                                                    nil,
		{FirewallMark: 300, Family: ipvs.IPv4, Scheduler: "fo", Flags: ipvs.FlagPersistent, Timeout: secs(120)}:                                                                                         nil,
		{FirewallMark: 301, Family: ipvs.IPv6, Scheduler: "ovf", Flags: ipvs.FlagPersistent, Timeout: secs(30), Netmask: ipvs.PrefixMask(ipvs.IPv6, 96)}:                                                nil,
		{Protocol: ipvs.TCP, Address: addr("10.25.0.5"), Port: 5060, Scheduler: "rr", PersistenceEngine: "sip"}:                                                                                         nil,
	}
	for i, name := range schedulers(t, ctx, c) {
		a := fmt.Sprintf("10.25.1.%d", i+1)

		lines = append(lines, fmt.Sprintf("-A -t %s:80 -s %s", a, name))
		want[ipvs.Service{Protocol: ipvs.TCP, Address: addr(a), Port: 80, Scheduler: name}] = nil
	}
	ns.ipvsadm(t, strings.Join(lines, "\n")+"\n", "-R")
	wantTable(t, ctx, c, want)

	// Connection counters and stats of the restored entries are zero, and
	// ipvsadm's listing agrees with the library's count.
	svcs, err := c.Services(ctx)
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	for _, s := range svcs {
		if s.Stats != (ipvs.Stats{}) {
			t.Errorf("%v: stats %+v, want zero", s.Service, s.Stats)
		}
	}
	list := ns.ipvsadm(t, "", "-L", "-n")
	if got := strings.Count(list, "\n  -> ") - 1; got != 14 { // minus the header line
		t.Errorf("ipvsadm -L -n lists %d destinations, want 14:\n%s", got, list)
	}
}

// TestIntegrationIpvsadmDaemonsTimeouts cross-checks timeouts, daemons and
// the version line in both directions.
func TestIntegrationIpvsadmDaemonsTimeouts(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if got, want := firstLine(ns.ipvsadm(t, "", "-L", "-n")), fmt.Sprintf("IP Virtual Server version 1.2.1 (size=%d)", info.ConnectionTableSize); got != want {
		t.Errorf("ipvsadm -L -n header = %q, want %q", got, want)
	}
	if err := c.SetTimeouts(ctx, ipvs.Timeouts{TCP: secs(1000), TCPFin: secs(30), UDP: secs(45)}); err != nil {
		t.Fatalf("SetTimeouts: %v", err)
	}
	if got, want := ns.ipvsadm(t, "", "-L", "--timeout"), "Timeout (tcp tcpfin udp): 1000 30 45\n"; got != want {
		t.Errorf("ipvsadm -L --timeout = %q, want %q", got, want)
	}
	ns.ipvsadm(t, "", "--set", "800", "0", "60")
	if got, err := c.Timeouts(ctx); err != nil || got != (ipvs.Timeouts{TCP: secs(800), TCPFin: secs(30), UDP: secs(60)}) {
		t.Errorf("Timeouts after ipvsadm --set 800 0 60 = %+v, %v", got, err)
	}

	mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", SyncID: 7})
	ns.ipvsadm(t, "", "--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "9", "--sync-maxlen", "1300", "--mcast-group", "239.2.3.4", "--mcast-port", "9999", "--mcast-ttl", "3")
	wantDaemons(t, ctx, c,
		ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", SyncID: 7, MaxLength: 1472, Group: addr("224.0.0.81"), Port: 8848, TTL: 1},
		ipvs.SyncDaemon{State: ipvs.Backup, Interface: "lo", SyncID: 9, MaxLength: 1300, Group: addr("239.2.3.4"), Port: 9999, TTL: 3},
	)
	want := "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=lo, syncid=9, maxlen=1300, group=239.2.3.4, port=9999, ttl=3)\n"
	if got := ns.ipvsadm(t, "", "-L", "--daemon"); got != want {
		t.Errorf("ipvsadm -L --daemon:\n%s\nwant:\n%s", got, want)
	}
	ns.ipvsadm(t, "", "--stop-daemon", "master")
	mustStopDaemon(t, c, ipvs.Backup)
	if got := ns.ipvsadm(t, "", "-L", "--daemon"); got != "" {
		t.Errorf("ipvsadm -L --daemon after stopping both = %q", got)
	}
	wantDaemons(t, ctx, c)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
