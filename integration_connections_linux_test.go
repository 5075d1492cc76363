//go:build linux

package ipvs_test

// The connection table: real connections through NAT services, IPv4 and
// IPv6, TCP and UDP, a persistence template, and the entries a backup sync
// daemon installs from a master in another namespace over a veth pair;
// every entry cross-checked with `ipvsadm -Lcn` in the same namespace.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

// addVeth creates a veth pair: name in ns, peer in peerNS, both up.
func (ns *netNS) addVeth(t testing.TB, name string, peerNS *netNS, peer string) {
	t.Helper()
	const vethInfoPeer = 1 // VETH_INFO_PEER
	peerAttrs := encodeAttrs(t, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.IFLA_IFNAME, peer)
		ae.Uint32(unix.IFLA_NET_NS_FD, uint32(peerNS.fd))
	})
	attrs := encodeAttrs(t, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.IFLA_IFNAME, name)
		ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
			nae.String(unix.IFLA_INFO_KIND, "veth")
			nae.Nested(unix.IFLA_INFO_DATA, func(dae *netlink.AttributeEncoder) error {
				dae.Bytes(vethInfoPeer, append(ifInfoMsg(0, 0, 0), peerAttrs...))
				return nil
			})
			return nil
		})
	})
	if _, err := ns.rtnl(unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, append(ifInfoMsg(0, 0, 0), attrs...)); err != nil {
		t.Fatalf("creating veth pair %s/%s: %v", name, peer, err)
	}
	ns.linkUp(t, name)
	peerNS.linkUp(t, peer)
}

// holdServer answers "ping\n" with "pong\n" and keeps the connection open
// until the client closes it, so that the entries stay ESTABLISHED.
func holdServer(ln net.Listener) {
	for {
		cn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer cn.Close()
			_ = cn.SetDeadline(time.Now().Add(10 * time.Minute))
			buf := make([]byte, 5)
			if _, err := io.ReadFull(cn, buf); err != nil {
				return
			}
			if _, err := cn.Write([]byte("pong\n")); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, cn)
		}()
	}
}

// openConn connects to vip, exchanges a ping and leaves the connection
// open.
func openConn(network, vip string) (net.Conn, error) {
	d := net.Dialer{Timeout: 20 * time.Second}
	cn, err := d.Dial(network, vip)
	if err != nil {
		return nil, err
	}
	_ = cn.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 5)
	if _, err := cn.Write([]byte("ping\n")); err != nil {
		cn.Close()
		return nil, err
	}
	if _, err := io.ReadFull(cn, buf); err != nil {
		cn.Close()
		return nil, fmt.Errorf("%s %s: %w", network, vip, err)
	}
	return cn, nil
}

// udpEcho echoes every datagram.
func udpEcho(pc net.PacketConn) {
	buf := make([]byte, 64)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// connKey is an entry as both this package and ipvsadm -Lcn show it.
func connKey(c ipvs.Connection) string {
	return fmt.Sprintf("%v %v %v %v %v", c.Protocol, c.State, c.Client, c.Virtual, c.Destination)
}

// readConns reads a table with seq.
func readConns(t *testing.T, seq func(context.Context) iter.Seq2[ipvs.Connection, error], ctx context.Context) []ipvs.Connection {
	t.Helper()
	var cs []ipvs.Connection
	for c, err := range seq(ctx) {
		if err != nil {
			t.Fatalf("reading connections: %v", err)
		}
		cs = append(cs, c)
	}
	return cs
}

// ipvsadmConns runs `ipvsadm -Lcn` in ns: entry keys and expiries.
func ipvsadmConns(t *testing.T, ns *netNS) (map[string][]time.Duration, string) {
	t.Helper()
	out := ns.ipvsadm(t, "", "-Lcn")
	m := map[string][]time.Duration{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		if i < 2 {
			continue // "IPVS connection entries" and the column titles
		}
		f := strings.Fields(sc.Text())
		if len(f) != 6 {
			t.Fatalf("ipvsadm -Lcn line %q: %d fields", sc.Text(), len(f))
		}
		mm, ss, ok := strings.Cut(f[1], ":")
		mi, err1 := strconv.Atoi(mm)
		si, err2 := strconv.Atoi(ss)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("ipvsadm -Lcn line %q: expiry %q", sc.Text(), f[1])
		}
		var aps [3]netip.AddrPort
		for j := range aps {
			ap, err := netip.ParseAddrPort(f[3+j])
			if err != nil {
				t.Fatalf("ipvsadm -Lcn line %q: %v", sc.Text(), err)
			}
			aps[j] = ap
		}
		k := fmt.Sprintf("%s %s %v %v %v", f[0], f[2], aps[0], aps[1], aps[2])
		m[k] = append(m[k], time.Duration(mi*60+si)*time.Second)
	}
	return m, out
}

// crossCheck compares entries with ipvsadm -Lcn's: the same entries, with
// expiries within 3 s (the tables are read moments apart). Entries may
// change state between the reads, so it tries a few times.
func crossCheck(t *testing.T, ctx context.Context, ns *netNS, read func() []ipvs.Connection) []ipvs.Connection {
	t.Helper()
	var diffs []string
	for range 3 {
		ours := read()
		theirs, out := ipvsadmConns(t, ns)
		diffs = diffs[:0]
		n := 0
		for _, c := range ours {
			k := connKey(c)
			exp := theirs[k]
			if len(exp) == 0 {
				diffs = append(diffs, "only in Connections: "+k)
				continue
			}
			theirs[k] = exp[1:]
			if d := c.Expires - exp[0]; d > 3*time.Second || d < -3*time.Second {
				diffs = append(diffs, fmt.Sprintf("%s: expires in %v, ipvsadm says %v", k, c.Expires, exp[0]))
			}
			n++
		}
		for k, exp := range theirs {
			for range exp {
				diffs = append(diffs, "only in ipvsadm -Lcn: "+k)
			}
		}
		if len(diffs) == 0 {
			t.Logf("%d entries agree with ipvsadm -Lcn:\n%s", n, out)
			return ours
		}
		time.Sleep(time.Second)
	}
	t.Errorf("Connections and ipvsadm -Lcn differ:\n%s", strings.Join(diffs, "\n"))
	return read()
}

// procFile reads a /proc/net file in ns, as the kernel prints it.
func procFile(t *testing.T, ns *netNS, name string) string {
	t.Helper()
	var b []byte
	if err := ns.do(func() (err error) { b, err = os.ReadFile("/proc/thread-self/net/" + name); return err }); err != nil {
		t.Fatalf("reading /proc/net/%s: %v", name, err)
	}
	return string(b)
}

// TestIntegrationConnections makes real connections through NAT services in
// a load balancer's namespace, whose master sync daemon sends them over a
// veth pair to a backup daemon in a second namespace, and reads both tables.
func TestIntegrationConnections(t *testing.T) {
	c, lb := newClient(t)
	ctx := testCtx(t)
	backupNS := newNetNS(t)
	bc := backupNS.client(t)

	lb.addDummy(t, "dummy0", "10.18.0.1/32", "10.18.0.3/32", "10.18.1.1/32", "fd00:18::1/128", "fd00:18::1:1/128")
	lb.addVeth(t, "sync0", backupNS, "sync0")
	lb.addAddr(t, "sync0", netip.MustParsePrefix("10.18.9.1/24"))
	backupNS.addAddr(t, "sync0", netip.MustParsePrefix("10.18.9.2/24"))
	mustStartDaemon(t, ctx, bc, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "sync0", SyncID: 18})
	mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: ipvs.Master, Interface: "sync0", SyncID: 18})

	rs4 := ipvs.Destination{Address: addr("10.18.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1}
	rs6 := ipvs.Destination{Address: addr("fd00:18::1:1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1}
	rsUDP := ipvs.Destination{Address: addr("10.18.1.1"), Port: 5353, ForwardMethod: ipvs.NAT, Weight: 1}
	a := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.18.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	b := ipvs.Service{Protocol: ipvs.TCP, Address: addr("fd00:18::1"), Port: 80, Scheduler: ipvs.RoundRobin}
	p := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.18.0.3"), Port: 80, Scheduler: ipvs.RoundRobin,
		Flags: ipvs.FlagPersistent, Timeout: 300 * time.Second, Netmask: ipvs.IPv4Mask(255, 255, 255, 255)}
	u := ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.18.0.1"), Port: 53, Scheduler: ipvs.RoundRobin}
	// The backup has the same services, as a failover pair would.
	for _, cl := range []*ipvs.Client{c, bc} {
		mustCreate(t, ctx, cl, a, b, p, u)
		mustCreateDest(t, ctx, cl, a, rs4)
		mustCreateDest(t, ctx, cl, b, rs6)
		mustCreateDest(t, ctx, cl, p, rs4)
		mustCreateDest(t, ctx, cl, u, rsUDP)
	}

	var lns []io.Closer
	t.Cleanup(func() {
		for _, l := range slices.Backward(lns) {
			_ = l.Close()
		}
	})
	if err := lb.do(func() error {
		for _, l := range []struct{ network, addr string }{{"tcp4", "10.18.1.1:8080"}, {"tcp6", "[fd00:18::1:1]:8080"}} {
			ln, err := net.Listen(l.network, l.addr)
			if err != nil {
				return err
			}
			lns = append(lns, ln)
			go holdServer(ln)
		}
		pc, err := net.ListenPacket("udp4", "10.18.1.1:5353")
		if err != nil {
			return err
		}
		lns = append(lns, pc)
		go udpEcho(pc)
		return nil
	}); err != nil {
		t.Fatalf("servers: %v", err)
	}

	// Traffic: 3 connections to A, 3 to B, 4 to P (one template), and
	// one UDP flow of 3 datagrams (a master syncs a connection at its
	// third packet).
	const nA, nB, nP = 3, 3, 4
	if err := lb.do(func() error {
		for _, x := range []struct {
			network, vip string
			n            int
		}{{"tcp4", "10.18.0.1:80", nA}, {"tcp6", "[fd00:18::1]:80", nB}, {"tcp4", "10.18.0.3:80", nP}} {
			for range x.n {
				cn, err := openConn(x.network, x.vip)
				if err != nil {
					return err
				}
				lns = append(lns, cn)
			}
		}
		uc, err := net.Dial("udp4", "10.18.0.1:53")
		if err != nil {
			return err
		}
		lns = append(lns, uc)
		_ = uc.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 16)
		for i := range 3 {
			if _, err := fmt.Fprintf(uc, "ping%d", i); err != nil {
				return err
			}
			if _, err := uc.Read(buf); err != nil {
				return fmt.Errorf("UDP echo through %v: %w", u, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("traffic through IPVS: %v", err)
	}

	t.Logf("/proc/net/ip_vs_conn of the load balancer (kernel %s):\n%s", kernelRelease(), procFile(t, lb, "ip_vs_conn"))
	t.Logf("/proc/net/ip_vs_conn_sync of the load balancer:\n%s", procFile(t, lb, "ip_vs_conn_sync"))

	// The master's table, as ipvsadm -Lcn sees it.
	local := crossCheck(t, ctx, lb, func() []ipvs.Connection { return readConns(t, c.Connections, ctx) })
	count := map[ipvs.Service]int{}
	templates := 0
	for _, cn := range local {
		if cn.Origin != ipvs.OriginLocal {
			t.Errorf("master entry %s: origin %v, want LOCAL", connKey(cn), cn.Origin)
		}
		if cn.PEName != "" || cn.PEData != "" || cn.FirewallMark != 0 {
			t.Errorf("master entry %+v: PE data or mark", cn)
		}
		switch {
		case cn.Template:
			templates++
			if cn.Protocol != ipvs.TCP || cn.Virtual != netip.AddrPortFrom(p.Address, p.Port) || cn.Destination != netip.AddrPortFrom(rs4.Address, rs4.Port) ||
				cn.Client.Port() != 0 || !cn.Client.Addr().Is4() || (cn.State != ipvs.StateAssured && cn.State != ipvs.StateNone) {
				t.Errorf("template %+v: want TCP, client port 0, %v:%d -> %v:%d, NONE or ASSURED", cn, p.Address, p.Port, rs4.Address, rs4.Port)
			}
			if cn.Expires <= 0 || cn.Expires > p.Timeout {
				t.Errorf("template %s expires in %v, want within the service's %v", connKey(cn), cn.Expires, p.Timeout)
			}
		default:
			for _, x := range []struct {
				s ipvs.Service
				d ipvs.Destination
			}{{a, rs4}, {b, rs6}, {p, rs4}, {u, rsUDP}} {
				if cn.Protocol == x.s.Protocol && cn.Virtual == netip.AddrPortFrom(x.s.Address, x.s.Port) {
					count[x.s]++
					if cn.Destination != netip.AddrPortFrom(x.d.Address, x.d.Port) {
						t.Errorf("%s: destination, want %v:%d", connKey(cn), x.d.Address, x.d.Port)
					}
				}
			}
			want := ipvs.StateEstablished
			if cn.Protocol == ipvs.UDP {
				want = ipvs.StateUDP
			}
			if cn.State != want || cn.Client.Port() == 0 || cn.Client.Addr().Is4() != cn.Virtual.Addr().Is4() {
				t.Errorf("connection %s: want %v, a client port, the client's family that of the service", connKey(cn), want)
			}
		}
	}
	if count[a] != nA || count[b] != nB || count[p] != nP || count[u] != 1 || templates != 1 || len(local) != nA+nB+nP+1+1 {
		t.Errorf("master table: %d entries, %d to A, %d to B (IPv6), %d to P, %d UDP, %d templates; want %d, %d, %d, %d, 1, 1",
			len(local), count[a], count[b], count[p], count[u], templates, nA+nB+nP+2, nA, nB, nP)
	}

	// ip_vs_conn: the same entries without their origin.
	withPE := readConns(t, c.ConnectionsWithPE, ctx)
	var k1, k2 []string
	for _, cn := range local {
		k1 = append(k1, connKey(cn))
	}
	for _, cn := range withPE {
		if cn.Origin != ipvs.OriginUnknown {
			t.Errorf("ConnectionsWithPE entry %s: origin %v", connKey(cn), cn.Origin)
		}
		k2 = append(k2, connKey(cn))
	}
	slices.Sort(k1)
	slices.Sort(k2)
	if !slices.Equal(k1, k2) {
		t.Errorf("ConnectionsWithPE differs from Connections:\n%s\nvs\n%s", strings.Join(k2, "\n"), strings.Join(k1, "\n"))
	}

	// The counts match the kernel's own counters of each destination.
	counts, err := c.ConnectionCounts(ctx)
	if err != nil {
		t.Fatalf("ConnectionCounts: %v", err)
	}
	for _, x := range []struct {
		s ipvs.Service
		d ipvs.Destination
	}{{a, rs4}, {b, rs6}, {p, rs4}, {u, rsUDP}} {
		ds, err := c.Destinations(ctx, x.s)
		if err != nil || len(ds) != 1 {
			t.Fatalf("Destinations(%v) = %v, %v", x.s, ds, err)
		}
		k := ipvs.ConnectionKey{Protocol: x.s.Protocol, Virtual: netip.AddrPortFrom(x.s.Address, x.s.Port), Destination: netip.AddrPortFrom(x.d.Address, x.d.Port)}
		n := counts[k]
		got := [3]uint32{uint32(n.Active), uint32(n.Inactive), uint32(n.Templates)}
		want := [3]uint32{ds[0].ActiveConnections, ds[0].InactiveConnections, ds[0].PersistentConnections}
		if got != want {
			t.Errorf("%v -> %v: counted active, inactive, templates %v; the kernel's counters say %v", x.s, x.d.Address, got, want)
		}
		if n.Drained() {
			t.Errorf("%v -> %v: Drained with connections open", x.s, x.d.Address)
		}
		t.Logf("%v -> %v: %+v (kernel: ActiveConn %d InActConn %d PersistConn %d)", x.s, x.d.Address, n,
			ds[0].ActiveConnections, ds[0].InactiveConnections, ds[0].PersistentConnections)
	}

	// The backup installs the master's entries with origin SYNC, within
	// a few seconds (the master sends its buffer every 2 s or when full).
	var synced []ipvs.Connection
	deadline := time.Now().Add(60 * time.Second)
	for {
		synced = readConns(t, bc.Connections, ctx)
		if len(synced) >= len(local) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("/proc/net/ip_vs_conn_sync of the backup:\n%s", procFile(t, backupNS, "ip_vs_conn_sync"))
	synced = crossCheck(t, ctx, backupNS, func() []ipvs.Connection { return readConns(t, bc.Connections, ctx) })
	master := map[string]ipvs.Connection{}
	for _, cn := range local {
		master[fmt.Sprint(cn.Protocol, cn.Client, cn.Virtual, cn.Destination)] = cn
	}
	var v6, tpl int
	for _, cn := range synced {
		if cn.Origin != ipvs.OriginSync {
			t.Errorf("backup entry %s: origin %v, want SYNC", connKey(cn), cn.Origin)
		}
		m, ok := master[fmt.Sprint(cn.Protocol, cn.Client, cn.Virtual, cn.Destination)]
		if !ok {
			t.Errorf("backup entry %s is not on the master", connKey(cn))
			continue
		}
		if m.Template != cn.Template {
			t.Errorf("backup entry %s: template %v, master's %v", connKey(cn), cn.Template, m.Template)
		}
		if cn.Client.Addr().Is6() {
			v6++
		}
		if cn.Template {
			tpl++
		}
	}
	if len(synced) != len(local) || v6 != nB || tpl != 1 {
		t.Errorf("backup: %d entries (%d IPv6, %d templates), want the master's %d (%d, 1)", len(synced), v6, tpl, len(local), nB)
	}

	// A Client bound by path reads that namespace's table, not the
	// caller's.
	byPath, err := ipvs.New(ipvs.WithNetNSPath(fmt.Sprintf("/proc/self/fd/%d", backupNS.fd)))
	if err != nil {
		t.Fatalf("New(WithNetNSPath): %v", err)
	}
	defer byPath.Close()
	got := readConns(t, byPath.Connections, ctx)
	if len(got) != len(synced) {
		t.Errorf("Client bound by path to the backup's namespace read %d entries, want the backup's %d", len(got), len(synced))
	}
	for _, cn := range got {
		if cn.Origin != ipvs.OriginSync {
			t.Errorf("Client bound by path: entry %s of origin %v: not the backup's table", connKey(cn), cn.Origin)
		}
	}
	own, err := ipvs.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer own.Close()
	for _, cn := range readConns(t, own.Connections, ctx) {
		if strings.HasPrefix(cn.Client.Addr().String(), "10.18.") || strings.HasPrefix(cn.Client.Addr().String(), "fd00:18:") {
			t.Errorf("the caller's own namespace shows the test's entry %s", connKey(cn))
		}
	}

	// A cancelled context stops the read with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, err := range c.Connections(cctx) {
		var e *ipvs.Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &e) {
			t.Errorf("Connections with a cancelled context: %v, want an *ipvs.Error matching context.Canceled", err)
		}
	}
}
