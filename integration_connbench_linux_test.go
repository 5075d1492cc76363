//go:build linux

package ipvs_test

// BenchmarkConnectionTable compares reading the connection table with this
// package and with `ipvsadm -Lcn` on a real kernel. It fills a backup sync
// daemon's table with crafted sync messages (the kernel accepts up to 40
// IPv4 entries per 1472-byte message), then times Client.Connections (read
// and decode) against ipvsadm -Lcn writing to /dev/null, with user and
// system CPU apart. Sizes: IPVS_CONN_BENCH_SIZES (default "10000,50000").
//
// A second part compares the decoding alone on a generated file of
// IPVS_CONN_BENCH_FILE entries (default 1000000) in the ip_vs_conn format:
// ParseConnections on it against ipvsadm -Lcn reading it in place of
// /proc/net/ip_vs_conn (in a private mount namespace with a tmpfs on
// /proc).
//
//	go test -c -o /tmp/ipvs.test . && go run ./internal/vmrig -kernel 6.1 \
//	    -run 'bench@30m=/tmp/ipvs.test -test.run XXX -test.bench BenchmarkConnectionTable -test.benchtime 1x'

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

func benchSizes(env, def string) []int {
	s := os.Getenv(env)
	if s == "" {
		s = def
	}
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil && n > 0 {
			ns = append(ns, n)
		}
	}
	return ns
}

// syncMessages encodes entries [from, to) as version 1 sync messages
// (ip_vs_sync.c: struct ip_vs_sync_mesg and ip_vs_sync_v4) of at most 40
// IPv4 TCP connections each: client 10.20.x.y:port, virtual 10.19.0.1:80,
// destination 10.19.1.1:8080, ESTABLISHED, 900 s.
func syncMessages(syncID uint8, from, to int) [][]byte {
	const perMsg = 40
	var msgs [][]byte
	for i := from; i < to; {
		n := min(perMsg, to-i)
		m := make([]byte, 8, 8+36*n)
		m[1] = syncID
		binary.BigEndian.PutUint16(m[2:], uint16(8+36*n))
		m[4] = byte(n)
		m[5] = 1 // SYNC_PROTO_VER
		for range n {
			var e [36]byte
			e[1] = syscall.IPPROTO_TCP
			binary.BigEndian.PutUint16(e[2:], 36) // version 0, size
			binary.BigEndian.PutUint16(e[8:], 1)  // IP_VS_TCP_S_ESTABLISHED
			binary.BigEndian.PutUint16(e[10:], uint16(1024+i%60000))
			binary.BigEndian.PutUint16(e[12:], 80)
			binary.BigEndian.PutUint16(e[14:], 8080)
			binary.BigEndian.PutUint32(e[20:], 900)
			binary.BigEndian.PutUint32(e[24:], 10<<24|20<<16+uint32(i/60000))
			copy(e[28:], []byte{10, 19, 0, 1})
			copy(e[32:], []byte{10, 19, 1, 1})
			m = append(m, e[:]...)
			i++
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// fillTable brings the backup's table to n entries.
func fillTable(b *testing.B, ctx context.Context, sender *netNS, bc *ipvs.Client, svc ipvs.Service, n int) {
	b.Helper()
	count := func() int {
		ds, err := bc.Destinations(ctx, svc)
		if err != nil || len(ds) != 1 {
			b.Fatalf("Destinations: %v, %v", ds, err)
		}
		return int(ds[0].ActiveConnections + ds[0].InactiveConnections)
	}
	have := count()
	if have >= n {
		return
	}
	err := sender.do(func() error {
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 19, 9, 1)}, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 81), Port: 8848})
		if err != nil {
			return err
		}
		defer conn.Close()
		ifi, err := net.InterfaceByName("send0")
		if err != nil {
			return err
		}
		rc, err := conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		}); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
		// Batches the backup's socket buffer holds; a batch that does not
		// arrive whole is sent again (entries that exist are updated).
		const batch = 1600
		for from := have; from < n; {
			to := min(from+batch, n)
			for attempt := 0; ; attempt++ {
				for _, m := range syncMessages(19, from, to) {
					if _, err := conn.Write(m); err != nil {
						return err
					}
				}
				deadline := time.Now().Add(10 * time.Second)
				for count() < to && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if count() >= to {
					break
				}
				if attempt == 5 {
					return fmt.Errorf("the backup holds %d entries after sending %d", count(), to)
				}
			}
			from = to
		}
		return nil
	})
	if err != nil {
		b.Fatalf("filling the table: %v", err)
	}
}

// cpu returns the process's user and system CPU time so far.
func cpu() (time.Duration, time.Duration) {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// runIpvsadm runs ipvsadm -Lcn in ns (or under sh -c script when script is
// set) with its output to /dev/null, and returns its wall, user and system
// times.
func runIpvsadm(b *testing.B, ns *netNS, script string) (wall, user, sys time.Duration) {
	b.Helper()
	path := ipvsadmPathB(b)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	var stderr strings.Builder
	err = ns.do(func() error {
		cmd := exec.Command(path, "-Lcn")
		if script != "" {
			cmd = exec.Command("/bin/sh", "-c", script)
			cmd.Env = append(os.Environ(), "IPVSADM="+path)
		}
		cmd.Stdout, cmd.Stderr = null, &stderr
		start := time.Now()
		err := cmd.Run()
		wall = time.Since(start)
		if err == nil {
			user, sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
		}
		return err
	})
	if err != nil || stderr.Len() > 0 {
		b.Fatalf("ipvsadm -Lcn: %v: %s", err, stderr.String())
	}
	return wall, user, sys
}

func ipvsadmPathB(b *testing.B) string {
	for _, p := range []string{"/sbin/ipvsadm", "/usr/sbin/ipvsadm", "/bin/ipvsadm", "/usr/bin/ipvsadm"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("ipvsadm"); err == nil {
		return p
	}
	b.Skip("ipvsadm not found")
	return ""
}

func BenchmarkConnectionTable(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	ctx := context.Background()
	backupNS := newNetNS(b)
	sender := newNetNS(b)
	bc, err := ipvs.New(ipvs.WithNetNS(backupNS.fd))
	if err != nil {
		b.Skipf("IPVS unavailable on %s: %v", kernelRelease(), err)
	}
	b.Cleanup(func() { _ = bc.Flush(ctx); _ = bc.StopSyncDaemon(ctx, ipvs.Backup); bc.Close() })
	sender.addVeth(b, "send0", backupNS, "sync0")
	sender.addAddr(b, "send0", netip.MustParsePrefix("10.19.9.1/24"))
	backupNS.addAddr(b, "sync0", netip.MustParsePrefix("10.19.9.2/24"))
	if err := bc.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "sync0", SyncID: 19}); err != nil {
		b.Fatalf("StartSyncDaemon: %v", err)
	}
	svc := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.19.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	if err := bc.CreateService(ctx, svc); err != nil {
		b.Fatal(err)
	}
	if err := bc.CreateDestination(ctx, svc, ipvs.Destination{Address: addr("10.19.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 1}); err != nil {
		b.Fatal(err)
	}
	for _, n := range benchSizes("IPVS_CONN_BENCH_SIZES", "10000,50000") {
		b.Run(fmt.Sprintf("kernel-%d", n), func(b *testing.B) {
			start := time.Now()
			fillTable(b, ctx, sender, bc, svc, n)
			b.Logf("%s: %d entries installed by the backup in %v", kernelRelease(), n, time.Since(start).Round(time.Millisecond))
			var ours, theirs, ourCPU, theirUser, theirSys time.Duration
			for b.Loop() {
				u0, s0 := cpu()
				t0 := time.Now()
				m := 0
				for _, err := range bc.Connections(ctx) {
					if err != nil {
						b.Fatal(err)
					}
					m++
				}
				ours = time.Since(t0)
				u1, s1 := cpu()
				ourCPU = u1 - u0 + s1 - s0
				if m < n {
					b.Fatalf("read %d entries, want at least %d", m, n)
				}
				theirs, theirUser, theirSys = runIpvsadm(b, backupNS, "")
				b.Logf("n=%d: Connections %v (cpu user+sys %v: user %v sys %v); ipvsadm -Lcn %v (user %v, sys %v); ratio %.2f",
					n, ours.Round(time.Millisecond), ourCPU.Round(time.Millisecond), (u1 - u0).Round(time.Millisecond), (s1 - s0).Round(time.Millisecond),
					theirs.Round(time.Millisecond), theirUser.Round(time.Millisecond), theirSys.Round(time.Millisecond), float64(theirs)/float64(ours))
			}
			connRounds(b, bc, backupNS, n)
			b.ReportMetric(float64(ours.Milliseconds()), "ours-ms")
			b.ReportMetric(float64(theirs.Milliseconds()), "ipvsadm-ms")
			b.ReportMetric(float64(theirs)/float64(ours), "ipvsadm/ours")
		})
	}
	for _, n := range benchSizes("IPVS_CONN_BENCH_FILE", "1000000") {
		b.Run(fmt.Sprintf("file-%d", n), func(b *testing.B) {
			dir := b.TempDir()
			name := dir + "/ip_vs_conn"
			f, err := os.Create(name)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriter(f)
			fmt.Fprint(w, "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n")
			for i := range n {
				fmt.Fprintf(w, "TCP %08X %04X 0A130001 0050 0A130101 1F90 ESTABLISHED %7d\n", 10<<24|20<<16+i/60000, 1024+i%60000, i%900)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			// ipvsadm reads /proc/net/ip_vs_conn: a tmpfs over /proc in a
			// private mount namespace puts the file there.
			script := fmt.Sprintf(`unshare -m sh -c 'mount -t tmpfs none /proc && mkdir /proc/net && cp %s /proc/net/ip_vs_conn && exec "$IPVSADM" -Lcn'`, name)
			var ours, theirs, theirUser, theirSys time.Duration
			for b.Loop() {
				f, err := os.Open(name)
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				m := 0
				for _, err := range ipvs.ParseConnections(f) {
					if err != nil {
						b.Fatal(err)
					}
					m++
				}
				ours = time.Since(t0)
				f.Close()
				if m != n {
					b.Fatalf("parsed %d entries, want %d", m, n)
				}
				theirs, theirUser, theirSys = runIpvsadm(b, sender, script)
				b.Logf("file of %d entries: ParseConnections %v; ipvsadm -Lcn %v (user %v, sys %v, including the copy to the tmpfs); ratio %.2f",
					n, ours.Round(time.Millisecond), theirs.Round(time.Millisecond), theirUser.Round(time.Millisecond), theirSys.Round(time.Millisecond), float64(theirs)/float64(ours))
			}
			b.ReportMetric(float64(ours.Milliseconds()), "ours-ms")
			b.ReportMetric(float64(theirs.Milliseconds()), "ipvsadm-ms")
		})
	}
}
