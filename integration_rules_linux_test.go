//go:build linux

package ipvs_test

// Cross-checks of package ipvsrules with ipvsadm -S -n and -R.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// rulesTable is a broad table: every scheduler, flag, forwarding method,
// tunnel type and checksum mode, persistence with netmasks and engine,
// firewall marks of both families (one above 2^31), IPv6, mixed-family
// tunnels, and what ipvsadm -S loses (thresholds, Local, flag-3 of sh, a
// netmask or timeout without persistence, port 0 without persistence, a
// weight above 65535, a DR port that differs from the service's), with
// addresses whose order ipvsadm's signed comparison gets wrong.
func rulesTable(t *testing.T, ctx context.Context, c *ipvs.Client) []ipvs.VirtualService {
	t.Helper()
	tcp := func(a string, port uint16, sched string) ipvs.Service {
		return ipvs.Service{Protocol: ipvs.TCP, Address: addr(a), Port: port, Scheduler: sched}
	}
	fwm := func(mark uint32, f ipvs.Family, sched string) ipvs.Service {
		return ipvs.Service{FirewallMark: mark, Family: f, Scheduler: sched}
	}
	d := func(a string, port uint16, fwd ipvs.ForwardMethod, w int) ipvs.Destination {
		return ipvs.Destination{Address: addr(a), Port: port, ForwardMethod: fwd, Weight: w}
	}
	tun := tunnelDest
	vs := []ipvs.VirtualService{
		{Service: tcp("10.26.0.1", 80, "wlc"), Destinations: []ipvs.Destination{
			d("192.168.26.2", 8080, ipvs.Local, 2),
			{Address: addr("192.168.26.10"), Port: 8080, Weight: 1, UpperThreshold: 100, LowerThreshold: 50},
			d("192.168.26.11", 80, ipvs.DR, 0),
			d("192.168.26.19", 8080, ipvs.DR, 1),
			tun("192.168.26.12", 80, 3, ipvs.TunnelIPIP, 0, 0),
			tun("192.168.26.13", 81, 4, ipvs.TunnelGUE, 6080, ipvs.TunnelChecksumNone),
			tun("192.168.26.14", 80, 5, ipvs.TunnelGUE, 6081, ipvs.TunnelChecksumOn),
			tun("192.168.26.15", 80, 6, ipvs.TunnelGUE, 6082, ipvs.TunnelChecksumRemote),
			tun("192.168.26.16", 80, 7, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumNone),
			tun("192.168.26.17", 80, 8, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn),
			tun("2001:db8:26::100", 80, 1, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumOn),
			d("192.168.26.18", 8080, ipvs.NAT, ipvs.MaxWeight),
			d("200.26.0.1", 80, ipvs.NAT, 70000),
			d("100.26.0.1", 80, ipvs.NAT, 1),
			d("10.26.9.1", 80, ipvs.NAT, 1),
		}},
		{Service: ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.26.0.1"), Port: 53, Scheduler: "sh", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSHFallback | ipvs.FlagSHPort, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)},
			Destinations: []ipvs.Destination{d("192.168.26.20", 53, ipvs.DR, 0)}},
		{Service: ipvs.Service{Protocol: ipvs.TCP, Address: addr("2001:db8:26::1"), Port: 443, Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: secs(360), Netmask: ipvs.PrefixMask(ipvs.IPv6, 64), PersistenceEngine: "sip"},
			Destinations: []ipvs.Destination{
				d("2001:db8:26::10", 8443, ipvs.NAT, 100),
				d("fd00:26::10", 8443, ipvs.NAT, 1),
				tun("192.168.26.30", 443, 1, ipvs.TunnelGUE, 7000, ipvs.TunnelChecksumOn),
			}},
		{Service: with(fwm(100, ipvs.IPv4, "mh"), func(s *ipvs.Service) { s.Flags = ipvs.FlagMHPort }), Destinations: []ipvs.Destination{
			tun("192.168.26.40", 0, 3, ipvs.TunnelGUE, 6080, ipvs.TunnelChecksumOn),
			tun("2001:db8:26::40", 0, 1, ipvs.TunnelGRE, 0, ipvs.TunnelChecksumNone),
			d("192.168.26.41", 8080, ipvs.DR, 1),
		}},
		{Service: with(fwm(200, ipvs.IPv6, "rr"), func(s *ipvs.Service) { s.Flags = ipvs.FlagOnePacket }), Destinations: []ipvs.Destination{
			d("2001:db8:26::50", 80, ipvs.NAT, 1),
			tun("192.168.26.50", 0, 2, ipvs.TunnelIPIP, 0, 0),
		}},
		{Service: with(fwm(201, ipvs.IPv6, "wlc"), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(30), ipvs.PrefixMask(ipvs.IPv6, 48)
		})},
		{Service: with(fwm(300, ipvs.IPv4, "wlc"), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(120), ipvs.PrefixMask(ipvs.IPv4, 16)
		})},
		{Service: with(fwm(301, ipvs.IPv4, "sh"), func(s *ipvs.Service) { s.Flags = ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3 })},
		{Service: with(fwm(302, ipvs.IPv4, "sh"), func(s *ipvs.Service) { s.Flags = ipvs.FlagSched3 })},
		{Service: with(fwm(303, ipvs.IPv4, "mh"), func(s *ipvs.Service) { s.Flags = ipvs.FlagSched1 | ipvs.FlagSched3 })},
		{Service: fwm(0x80000005, ipvs.IPv4, "rr"), Destinations: []ipvs.Destination{d("192.168.26.42", 0, ipvs.DR, 1)}},
		{Service: fwm(0xffffffff, ipvs.IPv6, "rr")},
		{Service: ipvs.Service{Protocol: ipvs.SCTP, Address: addr("10.26.0.2"), Port: 9000, Scheduler: "lc"}, Destinations: []ipvs.Destination{d("192.168.26.60", 9000, ipvs.NAT, 1)}},
		{Service: ipvs.Service{Protocol: ipvs.SCTP, Address: addr("2001:db8:26::2"), Port: 9000, Scheduler: "sed", Flags: ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3}},
		{Service: ipvs.Service{Protocol: ipvs.UDP, Address: addr("2001:db8:26::3"), Port: 5060, Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: secs(60), PersistenceEngine: "sip"}},
		{Service: with(tcp("10.26.0.3", 5060, "rr"), func(s *ipvs.Service) { s.PersistenceEngine = "sip" })},
		{Service: with(tcp("10.26.0.4", 80, "rr"), func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(ipvs.IPv4, 24) })},
		{Service: with(tcp("10.26.0.8", 80, "rr"), func(s *ipvs.Service) { s.Timeout = secs(30) })},
		{Service: with(tcp("10.26.0.5", 0, "sh"), func(s *ipvs.Service) { s.Flags, s.Timeout = ipvs.FlagPersistent, secs(3600) })},
		{Service: tcp("10.26.0.9", 0, "rr")},
		{Service: ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.26.0.6"), Port: 5000, Scheduler: "wrr", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3, Timeout: secs(4294967)}},
		{Service: with(tcp("2001:db8:26::4", 80, "wlc"), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(100), ipvs.PrefixMask(ipvs.IPv6, 1)
		})},
		{Service: with(tcp("10.26.0.7", 80, "mh"), func(s *ipvs.Service) { s.Flags = ipvs.FlagMHFallback | ipvs.FlagMHPort })},
		// Orders that ipvsadm's signed comparison gets wrong.
		{Service: tcp("200.26.0.1", 80, "rr")},
		{Service: tcp("100.26.0.1", 80, "rr")},
		{Service: tcp("130.26.0.1", 80, "rr")},
		{Service: tcp("fd00:26::1", 80, "rr")},
		{Service: tcp("2001:db8:26::5", 80, "rr")},
		{Service: tcp("::10.26.0.1", 80, "rr")}, // IPv4-compatible: inet_ntop's "::10.26.0.1"
	}
	for i, name := range schedulers(t, ctx, c) {
		vs = append(vs, ipvs.VirtualService{Service: tcp(fmt.Sprintf("10.26.1.%d", i+1), 80, name)})
	}
	return vs
}

// TestIntegrationRulesFormat configures a broad table with the library and
// compares ipvsrules.Format with "ipvsadm -S -n" byte for byte, then
// restores the lossless text in a twin namespace and compares the tables.
func TestIntegrationRulesFormat(t *testing.T) {
	ipvsadmPath(t)
	c, ns := newClient(t)
	ctx := testCtx(t)
	want := rulesTable(t, ctx, c)
	for _, v := range want {
		mustCreate(t, ctx, c, v.Service)
		mustCreateDest(t, ctx, c, v.Service, v.Destinations...)
	}
	table := settledVirtualServices(t, ctx, c, ns)
	saved := ns.ipvsadm(t, "", "-S", "-n")
	got := string(ipvsrules.Format(ipvs.Desired(table), ipvsrules.FormatOptions{}))
	if diff := cmp.Diff(saved, got); diff != "" {
		t.Errorf("Format differs from ipvsadm -S -n (-ipvsadm +Format):\n%s", diff)
	}
	if !strings.Contains(saved, "-A -f -2147483643 -s rr\n") || !strings.Contains(saved, "-A -f 302 -s sh -b \n") {
		t.Errorf("ipvsadm -S -n no longer writes a negative mark or an empty -b:\n%s", saved)
	}
	if t.Failed() {
		t.Logf("ipvsadm -S -n:\n%s", saved)
	}

	// The lossless text, restored through the library in a twin
	// namespace, gives the same table; and Format still agrees with
	// ipvsadm there.
	lossless := ipvsrules.Format(ipvs.Desired(table), ipvsrules.FormatOptions{Lossless: true})
	p := ipvsrules.Parser{Extensions: true}
	cmds, err := p.Parse(strings.NewReader(string(lossless)))
	if err != nil {
		t.Fatalf("Parse of the lossless text: %v\n%s", err, lossless)
	}
	c2, ns2 := newClient(t)
	errs, err := ipvsrules.Apply(ctx, c2, cmds)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("line %d: %v", cmds[i].Line, err)
		}
	}
	settledVirtualServices(t, ctx, c2, ns2)
	if diff := cmp.Diff(readTable(t, ctx, c), readTable(t, ctx, c2), cmpOpts); diff != "" {
		t.Errorf("the lossless text through the kernel (-original +restored):\n%s\n%s", diff, lossless)
	}
	table2, err := c2.VirtualServices(ctx)
	if err != nil {
		t.Fatalf("VirtualServices: %v", err)
	}
	if diff := cmp.Diff(ns2.ipvsadm(t, "", "-S", "-n"), string(ipvsrules.Format(ipvs.Desired(table2), ipvsrules.FormatOptions{}))); diff != "" {
		t.Errorf("Format differs from ipvsadm -S -n in the twin namespace (-ipvsadm +Format):\n%s", diff)
	}
}

// restoreLines are rules text for ipvsadm -R: every command it takes in -R,
// short and long forms, combined options, port names, inet_aton forms, -E
// and -e replacing what they do not name.
func restoreLines(t *testing.T, ctx context.Context, c *ipvs.Client) []string {
	lines := []string{
		"-C",
		"--set 1000 30 45",
		"-A -t 10.27.0.1:80 -s wlc",
		"-a -t 10.27.0.1:80 -r 192.168.27.10:8080 -m -w 1 -x 100 -y 50",
		"-a -t 10.27.0.1:80 -r 192.168.27.11 -g -w 0",
		"-a -t 10.27.0.1:80 -r 192.168.27.12:8080 -i -w 2",
		"-a -t 10.27.0.1:80 -r 192.168.27.13 -i -w 3 --tun-type gue --tun-port 6080 --tun-remcsum",
		"-a -t 10.27.0.1:80 -r 192.168.27.14 -i --tun-type gre --tun-csum",
		"-a -t 10.27.0.1:80 -r [2001:db8:27::100]:80 -i -w 4 --tun-type gre --tun-nocsum",
		"-a -t 10.27.0.1:80 -r 192.168.27.15:8080 -m -w 65535 -x 2147483647",
		"-a -t 10.27.0.1:80 -r 200.27.1.1:80 -m",
		"-a -t 10.27.0.1:80 -r 100.27.1.1:80 -m",
		"-A -u 10.27.0.1:domain -s sh -p 300 -M 255.255.255.0 -o -b sh-fallback,sh-port",
		"-a -u 10.27.0.1:53 -r 192.168.27.20:5353 -m -w 5",
		"-A -t [2001:db8:27::1]:https -s rr -p 360 -M 64 --pe sip",
		"-a -t [2001:db8:27::1]:443 -r [2001:db8:27::10]:8443 -m -w 100",
		"-a -t [2001:db8:27::1]:443 -r 192.168.27.30 -i -w 1 --tun-type ipip",
		"-A -f 100 -s mh -b mh-fallback,mh-port",
		"-a -f 100 -r 192.168.27.40 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum",
		"-a -f 100 -r [2001:db8:27::40]:0 -i -w 1 --tun-type gre --tun-csum",
		"-A -f 200 -6 -s none -o",
		"-a -f 200 -6 -r [2001:db8:27::50]:8080 -m -w 7",
		"-A --sctp-service 10.27.0.2:9000 -s lc -b flag-1,flag-3",
		"-a --sctp-service 10.27.0.2:9000 -r 192.168.27.60:9001 -m",
		"-A --sctp-service [2001:db8:27::2]:9000 -s nq",
		"-A -t 10.27.0.3:0 -s dh -p 3600 -M 255.255.0.0",
		"-A -u [2001:db8:27::3]:0 -s lblcr -p 10 -M 48 -o",
		"-A -t 10.27.0.4:80",
		"-A -f 300 -s fo -p 120",
		"-A -f 301 -6 -s ovf -p 30 -M 96",
		"-A -f 4294967295 -s rr",
		"-A -t 10.27.0.5:5060 -s rr --pe sip",
		"ipvsadm -At 10.27.0.6:80 -s rr -p=60 -M 24",
		"\t-a\t-t 10.27.0.6:80 -r 192.168.27.70 -mw5\r",
		"--add-service --tcp-service=10.27.0.7:http --scheduler=wrr --persistent",
		"--add-server --tcp-service 10.27.0.7:80 --real-server=192.168.27.71:81 --masquerading --weight=2 --u-threshold 9",
		"-a -r 192.168.27.72 -t 10.27.0.7:80 -m",
		"-A -t 10.27.11:80 -s sed -M 0.0.0.0",
		"-A -t 0x0a1b000c:80 -s rr",
		"-A -t 200.27.0.1:80 -s rr",
		"-A -t 100.27.0.1:80 -s rr",
		"-A -t 130.27.0.1:80 -s rr",
		"-E -t 10.27.0.4:80 -s rr -p 20",
		"-E -u 10.27.0.1:53 -s sh",
		"-E -t [2001:db8:27::1]:443 -s wrr -M 64",
		"-e -t 10.27.0.1:80 -r 192.168.27.10:8080 -m -w 9",
		"-e -t 10.27.0.1:80 -r 192.168.27.14 -i",
		"--edit-server -f 100 -r [2001:db8:27::40]:0 -i -w 6 --tun-type gue --tun-port 1",
		"-d -t 10.27.0.1:80 -r 192.168.27.11",
		"--delete-server -f 200 -6 -r [2001:db8:27::50]:8080",
		"-D -t 10.27.0.5:5060",
		"--delete-service --fwmark-service 301 -6",
		"-Z",
		"-Z -t 10.27.0.1:80",
	}
	for i, name := range schedulers(t, ctx, c) {
		lines = append(lines, fmt.Sprintf("-A -t 10.27.1.%d:80 -s %s", i+1, name))
	}
	return lines
}

// portNames returns a port lookup from /etc/services, which ipvsadm reads
// too, and whether there is one. Without it (the VM rig's guest has none
// unless given one with -file /etc/services:/etc/services) the rules use
// port numbers, and port names are left to the unit tests.
func portNames(t *testing.T) (func(string, ipvs.Protocol) (uint16, bool), bool) {
	f, err := os.Open("/etc/services")
	if err != nil {
		t.Logf("no /etc/services on this system (%v): the rules use port numbers only", err)
		return nil, false
	}
	defer f.Close()
	look, err := ipvsrules.ServicesFile(f)
	if err != nil {
		t.Fatalf("reading /etc/services: %v", err)
	}
	return look, true
}

// TestIntegrationRulesRestore feeds the same rules text to ipvsadm -R in
// one namespace and to ipvsrules.Parse and Apply in a twin, and compares
// the two namespaces' "ipvsadm -S -n" byte for byte, their tables and
// timeouts.
func TestIntegrationRulesRestore(t *testing.T) {
	ipvsadmPath(t)
	c1, ns1 := newClient(t)
	c2, ns2 := newClient(t)
	ctx := testCtx(t)
	text := strings.Join(restoreLines(t, ctx, c1), "\n") + "\n"
	look, ok := portNames(t)
	if !ok {
		text = strings.NewReplacer(":domain ", ":53 ", ":https ", ":443 ", ":http ", ":80 ").Replace(text)
	}

	ns1.ipvsadm(t, text, "-R")

	p := ipvsrules.Parser{LookupPort: look}
	cmds, err := p.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	errs, err := ipvsrules.Apply(ctx, c2, cmds)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("line %d (%v): %v", cmds[i].Line, cmds[i].Kind, err)
		}
	}

	// The same table can be listed in different orders in two
	// namespaces: the kernel's service hash mixes in the namespace, so
	// the dumps differ in order, and ipvsadm's inconsistent comparison
	// (see package ipvsrules) sorts them differently. The lines are
	// compared as sets here; Format is compared byte for byte with
	// ipvsadm in each namespace below.
	settledVirtualServices(t, ctx, c1, ns1)
	settledVirtualServices(t, ctx, c2, ns2)
	s1, s2 := ns1.ipvsadm(t, "", "-S", "-n"), ns2.ipvsadm(t, "", "-S", "-n")
	if diff := cmp.Diff(saveBlocks(t, s1), saveBlocks(t, s2)); diff != "" {
		t.Errorf("ipvsadm -S -n after ipvsadm -R and after Parse+Apply (-ipvsadm +ipvsrules):\n%s", diff)
	}
	if s1 != s2 {
		t.Logf("ipvsadm -S -n lists the same table in two orders in the two namespaces")
	}
	if diff := cmp.Diff(readTable(t, ctx, c1), readTable(t, ctx, c2), cmpOpts); diff != "" {
		t.Errorf("tables after ipvsadm -R and after Parse+Apply (-ipvsadm +ipvsrules):\n%s", diff)
	}
	for _, c := range []*ipvs.Client{c1, c2} {
		if to, err := c.Timeouts(ctx); err != nil || to != (ipvs.Timeouts{TCP: secs(1000), TCPFin: secs(30), UDP: secs(45)}) {
			t.Errorf("Timeouts after --set 1000 30 45: %+v, %v", to, err)
		}
	}
	// What the text says in a few places, so that both being wrong alike
	// cannot pass.
	for _, line := range []string{
		"-A -t 10.27.0.6:80 -s rr -p 60 -M 0.0.0.24\n",
		"-a -t 10.27.0.6:80 -r 192.168.27.70:80 -m -w 5\n",
		"-a -t 10.27.0.7:80 -r 192.168.27.72:0 -m -w 1\n",
		"-A -t 10.27.0.11:80 -s sed\n",
		"-A -t 10.27.0.12:80 -s rr\n",
		"-A -t 10.27.0.4:80 -s rr -p 20\n",
		"-A -u 10.27.0.1:53 -s sh\n",
		"-A -t [2001:db8:27::1]:443 -s wrr\n",
		"-a -t 10.27.0.1:80 -r 192.168.27.14:80 -i -w 1 --tun-type ipip\n",
		"-a -f 100 -r [2001:db8:27::40]:0 -i -w 6 --tun-type gue --tun-port 1 --tun-nocsum\n",
		"-A -f -1 -s rr\n",
	} {
		if !strings.Contains(s2, line) {
			t.Errorf("ipvsadm -S -n after Parse+Apply has no line %q", line)
		}
	}
	for i, c := range []*ipvs.Client{c1, c2} {
		table, err := c.VirtualServices(ctx)
		if err != nil {
			t.Fatalf("VirtualServices: %v", err)
		}
		if diff := cmp.Diff([]string{s1, s2}[i], string(ipvsrules.Format(ipvs.Desired(table), ipvsrules.FormatOptions{}))); diff != "" {
			t.Errorf("namespace %d: Format differs from ipvsadm -S -n (-ipvsadm +Format):\n%s", i+1, diff)
		}
	}
	if t.Failed() {
		t.Logf("ipvsadm -S -n after ipvsadm -R:\n%s", s1)
	}
}
