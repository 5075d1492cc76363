package main

// Cross-checks with ipvsadm 1.31 on a real kernel (run in the VM by
// internal/vmrig: go test -c ./cmd/goipvsadm). Each test makes its own
// network namespaces; ipvsadm runs in them from a thread that joined
// them, and so does run, this command's main.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

// newNS creates a network namespace with lo up, released at the end of
// the test, and returns its file descriptor.
func newNS(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("the cross-check needs root, running as uid %d", os.Geteuid())
	}
	ipvsadmBin(t)
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("new network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.f.Close() })
	fd := int(r.f.Fd())
	if err := inNS(fd, func() error {
		c, err := ipvs.New()
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Skipf("IPVS unavailable on this kernel (%s): %v", kernelRelease(), err)
	}
	mustSh(t, fd, "ip link set lo up")
	return fd
}

// inNS runs fn on a thread that joined the namespace fd.
func inNS(fd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see newNS
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func ipvsadmBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/sbin/ipvsadm", "/usr/sbin/ipvsadm", "/bin/ipvsadm", "/usr/bin/ipvsadm"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no ipvsadm to cross-check with")
	return ""
}

// result is one run of a command.
type result struct {
	stdout, stderr string
	status         int
}

func (r result) String() string {
	return fmt.Sprintf("status %d\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
}

// theirs runs ipvsadm in fd's namespace.
func theirs(t *testing.T, fd int, stdin string, args ...string) result {
	t.Helper()
	var r result
	var out, errb bytes.Buffer
	err := inNS(fd, func() error {
		cmd := exec.Command(ipvsadmBin(t), args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			r.status = ee.ExitCode()
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("ipvsadm %q: %v", args, err)
	}
	r.stdout, r.stderr = out.String(), errb.String()
	return r
}

// ours runs this command's run in fd's namespace, with ipvsadm's path as
// its program name.
func ours(t *testing.T, fd int, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	var status int
	if err := inNS(fd, func() error {
		status = run(append([]string{ipvsadmBin(t)}, args...), strings.NewReader(stdin), &out, &errb)
		return nil
	}); err != nil {
		t.Fatalf("run %q: %v", args, err)
	}
	return result{out.String(), errb.String(), status}
}

func mustSh(t *testing.T, fd int, script string) {
	t.Helper()
	var out bytes.Buffer
	if err := inNS(fd, func() error {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd.Run()
	}); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out.String())
	}
}

func mustIpvsadm(t *testing.T, fd int, stdin string, args ...string) string {
	t.Helper()
	r := theirs(t, fd, stdin, args...)
	if r.status != 0 || r.stderr != "" {
		t.Fatalf("ipvsadm %q: %v", args, r)
	}
	return r.stdout
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// compare runs args with both tools in fd's namespace; when the output
// can change between the two runs (rates, connection expiry), it tries a
// few times.
func compare(t *testing.T, fd int, stdin string, args ...string) {
	t.Helper()
	var want, got result
	for try := 0; try < 5; try++ {
		want = theirs(t, fd, stdin, args...)
		got = ours(t, fd, stdin, args...)
		if want == got {
			return
		}
	}
	t.Errorf("%s: ipvsadm and goipvsadm differ (kernel %s)\nipvsadm: %v\ngoipvsadm: %v", strings.Join(args, " "), kernelRelease(), want, got)
}

// tableRules is a broad table: every scheduler and its flags, every
// forwarding method and tunnel option, persistence, the SIP engine,
// one-packet scheduling, firewall marks of both families (one above
// 2^31), IPv6 and SCTP services, a destination of the other family,
// thresholds and large weights.
const tableRules = `-A -t 10.16.0.1:80 -s rr
-a -t 10.16.0.1:80 -r 10.16.1.1:8080 -m -w 1
-A -t 10.16.0.2:80 -s wlc -p 60
-a -t 10.16.0.2:80 -r 10.16.1.1:8080 -m -w 3
-A -t 10.0.0.1:80 -s wrr
-a -t 10.0.0.1:80 -r 192.168.1.2:80 -g -w 2
-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 65535 -x 1000 -y 800
-a -t 10.0.0.1:80 -r 200.0.0.1:8080 -m -w 0
-a -t 10.0.0.1:80 -r 100.0.0.1:8080 -m -w 7
-A -t 200.0.0.1:80 -s lc
-A -t 100.0.0.1:80 -s lblc
-A -t 10.0.0.2:443 -s lblcr -p 300 -M 255.255.255.0
-A -t 10.0.0.3:443 -s dh
-A -u 10.0.0.1:53 -s sh -p 300 -M 255.255.0.0 -o -b sh-fallback,sh-port
-a -u 10.0.0.1:53 -r 192.168.1.11:53 -g -w 0
-A -u 10.0.0.4:53 -s sed -o
-A -t 10.0.0.5:80 -s nq
-a -t 10.0.0.5:80 -r [2001:db8::5]:80 -i -w 4
-a -t 10.0.0.5:80 -r 192.168.2.1:80 -i --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.0.0.5:80 -r 192.168.2.2:80 -i --tun-type gue --tun-port 6081 --tun-remcsum
-a -t 10.0.0.5:80 -r 192.168.2.3:80 -i --tun-type gue --tun-port 6082 --tun-nocsum
-a -t 10.0.0.5:80 -r 192.168.2.4:80 -i --tun-type gre --tun-csum
-a -t 10.0.0.5:80 -r 192.168.2.5:80 -i --tun-type gre --tun-nocsum
-a -t 10.0.0.5:80 -r 192.168.2.6:80 -i --tun-type ipip
-A -t 10.0.0.6:80 -s fo
-A -t 10.0.0.7:80 -s ovf
-A -t 10.0.0.8:80 -s mh -b mh-fallback,mh-port
-A -t 10.0.0.9:80 -s rr -b flag-1,flag-3
-A -t 10.0.0.10:0 -s rr -p 60
-A -u 10.0.0.11:5060 -s rr -p 120 --pe sip
-A --sctp-service 10.0.0.12:5000 -s rr
-a --sctp-service 10.0.0.12:5000 -r 192.168.3.1:5000 -m
-A -t [2001:db8::1]:443 -s rr -p 360 -M 64
-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m -w 100
-a -t [2001:db8::1]:443 -r [2001:db8::2]:8443 -m -w 1
-a -t [2001:db8::1]:443 -r [::1.2.3.4]:8443 -m -w 1
-A -u [2001:db8::1]:53 -s sh -b sh-port
-A -f 1 -s rr
-a -f 1 -r 192.168.4.1:0 -g
-a -f 1 -r 192.168.4.2:0 -i --tun-type gre --tun-nocsum
-A -f 2 -6 -s wlc -p 30
-a -f 2 -6 -r [2001:db8::30]:0 -m
-a -f 2 -6 -r 192.168.4.3:0 -i
-A -f 3000000000 -s rr
-A -f 100 -s mh -b mh-port
-a -f 100 -r 192.168.1.20:0 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum
`

// listings are the list command lines compared.
var listings = [][]string{
	{}, {"-L"}, {"-l"}, {"-Ln"}, {"-L", "-n"}, {"--list", "--numeric"},
	{"-Ln", "--stats"}, {"-Ln", "--rate"}, {"-Ln", "--stats", "--exact"}, {"-Ln", "--rate", "-X"},
	{"-Ln", "--thresholds"}, {"-Ln", "--persistent-conn"}, {"-Ln", "--tun-info"},
	{"-Ln", "--nosort"}, {"-Ln", "--sort"}, {"-Ln", "--stats", "--nosort"},
	{"-Ln", "-t", "10.0.0.1:80"}, {"-Ln", "-t", "10.0.0.1:80", "--stats"}, {"-L", "-u", "10.0.0.1:53", "-n"},
	{"-Ln", "-f", "1"}, {"-Ln", "-f", "2", "-6"}, {"-Ln", "-t", "[2001:db8::1]:443", "--thresholds"},
	{"-Ln", "--sctp-service", "10.0.0.12:5000"},
	{"-Lnc"}, {"-L", "-c", "-n"}, {"-Lnc", "--persistent-conn"}, {"-Lc"},
	{"-L", "--timeout"}, {"-L", "--daemon"}, {"-S"}, {"-S", "-n"}, {"--save", "--numeric"},
}

func TestIntegrationGoipvsadmListings(t *testing.T) {
	fd := newNS(t)
	mustSh(t, fd, "ip addr add 10.16.0.1/32 dev lo && ip addr add 10.16.0.2/32 dev lo && ip addr add 10.16.1.1/32 dev lo")
	mustIpvsadm(t, fd, tableRules, "-R")
	mustIpvsadm(t, fd, "", "--set", "901", "121", "301")

	// Traffic, so that counters, rates and the connection table are not
	// all zero: a NAT service (local destination) and a persistent one.
	var ln net.Listener
	if err := inNS(fd, func() (err error) { ln, err = net.Listen("tcp4", "10.16.1.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	if err := inNS(fd, func() error {
		for _, vip := range []string{"10.16.0.1:80", "10.16.0.2:80"} {
			for range 3 {
				c, err := net.DialTimeout("tcp4", vip, 10*time.Second)
				if err != nil {
					return err
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				msg := []byte("hello through IPVS")
				if _, err := c.Write(msg); err != nil {
					return err
				}
				if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
					return err
				}
				c.Close()
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("traffic through IPVS: %v", err)
	}
	// The kernel folds the counters in every two seconds; the estimator
	// needs a few more for the rates.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(mustIpvsadm(t, fd, "", "-Ln", "--stats", "-t", "10.16.0.2:80"), "    3 ") {
		if time.Now().After(deadline) {
			t.Fatalf("no counters after 30s:\n%s", mustIpvsadm(t, fd, "", "-Ln", "--stats"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	t.Logf("kernel %s, table:\n%s", kernelRelease(), mustIpvsadm(t, fd, "", "-Ln", "--stats"))
	t.Logf("connections:\n%s", mustIpvsadm(t, fd, "", "-Lnc"))
	// Sync daemons, in a namespace of their own: the kernel refuses a
	// destination of the other family while one runs, and the reverse.
	dfd := newNS(t)
	mustIpvsadm(t, dfd, "", "--start-daemon", "master", "--mcast-interface", "lo", "--syncid", "7")
	mustIpvsadm(t, dfd, "", "--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "8", "--mcast-port", "9000", "--mcast-group", "239.1.1.1", "--mcast-ttl", "3")
	compare(t, dfd, "", "-L", "--daemon")
	compare(t, dfd, "", "--list", "--daemon")
	for _, args := range listings {
		t.Run(strings.Join(append([]string{"ipvsadm"}, args...), " "), func(t *testing.T) {
			compare(t, fd, "", args...)
		})
	}
	// JSON and --netns: the same table through a path to the namespace.
	r := ours(t, fd, "", "-L", "--json")
	if r.status != 0 || !strings.Contains(r.stdout, `"scheduler": "mh"`) {
		t.Errorf("-L --json: %v", r)
	}
	var out, errb bytes.Buffer
	if st := run([]string{"goipvsadm", "--netns", fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd), "-Sn"}, nil, &out, &errb); st != 0 || out.String() != mustIpvsadm(t, fd, "", "-Sn") {
		t.Errorf("--netns: status %d, stderr %s, stdout:\n%s", st, errb.String(), out.String())
	}
}

// mutations are command lines run by both tools, in order, on twin
// namespaces; good and bad ones.
var mutations = [][]string{
	{"-A", "-t", "10.1.0.1:80"},
	{"-A", "-t", "10.1.0.1:80"}, // already exists
	{"-A", "-t", "10.1.0.2:80", "-s", "nosuch"},
	{"-A", "-t", "10.1.0.3:80", "-s", "sh", "-b", "sh-port", "-p"},
	{"-A", "-u", "10.1.0.4:53", "-o", "-p", "100", "-M", "255.255.255.128"},
	{"-A", "-f", "5", "-s", "rr", "-p"},
	{"-A", "-f", "6", "-6", "-s", "mh", "-b", "mh-fallback"},
	{"-A", "-t", "[2001:db8::9]:80", "-s", "wrr", "--pe", "sip", "-p", "10", "-M", "96"},
	{"-E", "-t", "10.1.0.3:80", "-s", "rr"},
	{"-E", "-t", "10.1.0.99:80", "-s", "rr"}, // no such service
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1:8080", "-m", "-w", "5"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1:8080", "-m"}, // already exists
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.2"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.3", "-i", "--tun-type", "gue", "--tun-port", "5555"},
	{"-a", "-t", "10.1.0.1:80", "-r", "[2001:db8::3]", "-i", "--tun-type", "gre", "--tun-csum"},
	{"-a", "-t", "10.1.0.99:80", "-r", "192.168.9.1"}, // service not defined
	{"-a", "-f", "6", "-6", "-r", "[2001:db8::7]:0", "-m", "-x", "10", "-y", "5"},
	{"-a", "-f", "6", "-6", "-r", "[2001:db8::8]:0", "-m", "-x", "5", "-y", "10"}, // lower above upper
	{"-a", "-f", "6", "-6", "-r", "[2001:db8::9]:0", "-m", "-x", "2147483648"},
	{"-a", "-f", "6", "-6", "-r", "[2001:db8::a]:0", "-m", "-w", "2147483647"},
	{"-a", "-f", "6", "-6", "-r", "[2001:db8::b]:0", "-m", "-w", "2147483648"},
	{"-e", "-t", "10.1.0.1:80", "-r", "192.168.9.1:8080", "-m", "-w", "9"},
	{"-e", "-t", "10.1.0.1:80", "-r", "192.168.9.9:8080", "-m"}, // no such destination
	{"-d", "-t", "10.1.0.1:80", "-r", "192.168.9.2"},
	{"-d", "-t", "10.1.0.1:80", "-r", "192.168.9.2"}, // no such destination
	{"-d", "-t", "10.1.0.99:80", "-r", "192.168.9.2"},
	{"-Z"},
	{"-Z", "-t", "10.1.0.1:80"},
	{"-Z", "-t", "10.1.0.99:80"},
	{"-D", "-t", "10.1.0.3:80"},
	{"-D", "-t", "10.1.0.3:80"}, // no such service
	{"--set", "100", "50", "200"},
	{"--set", "0", "0", "10"},
	{"--start-daemon", "master", "--mcast-interface", "lo", "--syncid", "3", "--sync-maxlen", "1000", "--mcast-group", "239.0.0.9", "--mcast-port", "9999", "--mcast-ttl", "4"},
	{"--start-daemon", "master", "--mcast-interface", "lo"}, // already runs
	{"--start-daemon", "backup", "--mcast-interface", "lo"},
	{"--stop-daemon", "backup"},
	{"--stop-daemon", "backup"}, // none runs
	{"--stop-daemon", "master"},
	// Command lines ipvsadm refuses before it asks the kernel.
	{"-A"},
	{"-A", "-t", "300.0.0.1:80"},
	{"-A", "-t", "10.1.0.5:0"},
	{"-A", "-t", "10.1.0.5:80", "-o"},
	{"-A", "-t", "10.1.0.5:80", "-r", "1.2.3.4"},
	{"-A", "-t", "10.1.0.5:80", "-s", "sh", "-b", "flag-9"},
	{"-A", "-t", "10.1.0.5:80", "-s", "rr", "-s", "wrr"},
	{"-A", "-t", "10.1.0.5:80", "-p", "0"},
	{"-A", "-f", "0"},
	{"-A", "-f", "abc"},
	{"-A", "-t", "10.1.0.5:80", "-6"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-w", "70000"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-w", "-1"},
	{"-a", "-t", "10.1.0.1:80", "-r", "[2001:db8::1]", "-m"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-m", "--tun-type", "gue"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-i", "--tun-type", "gue"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-i", "--tun-type", "gre", "--tun-port", "1"},
	{"-a", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-i", "--tun-type", "vxlan"},
	{"-a", "-t", "10.1.0.1:80"},
	{"-d", "-t", "10.1.0.1:80", "-r", "192.168.9.1", "-w", "3"},
	{"--set", "1", "2"},
	{"--set", "1", "2", "x"},
	{"--start-daemon", "primary"},
	{"--stop-daemon", "primary"},
	{"-L", "-c", "-t", "10.1.0.1:80"},
	{"-L", "-c", "--stats"},
	{"-L", "--timeout", "--persistent-conn"},
	{"-L", "-t", "10.1.0.99:80"},
	{"-L", "extra"},
	{"-S", "--stats"},
	{"-C", "-n"},
	{"-Q"},
	{"--bogus"},
	{"-t", "10.1.0.1:80"},
	{"-v"},
	{"-w", "5"},
	{"-A", "-t"},
	{"-C"},
	{"-A", "-t", "10.1.0.1:80", "-s", "rr"},
}

// saved is ipvsadm -S -n of fd's namespace, each service's lines together
// but the services and destinations sorted: the kernel mixes the address
// of the namespace into its hash, so the same table in two namespaces is
// listed in two orders, and ipvsadm's sort (an inconsistent comparison,
// see the package documentation) depends on that order.
func saved(t *testing.T, fd int) result {
	t.Helper()
	r := theirs(t, fd, "", "-Sn")
	var blocks []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			slices.Sort(cur[1:])
			blocks = append(blocks, strings.Join(cur, "\n"))
		}
		cur = nil
	}
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if strings.HasPrefix(l, "-A ") {
			flush()
		}
		cur = append(cur, l)
	}
	flush()
	slices.Sort(blocks)
	r.stdout = strings.Join(blocks, "\n")
	return r
}

func TestIntegrationGoipvsadmMutations(t *testing.T) {
	a, b := newNS(t), newNS(t)
	for _, args := range mutations {
		want := theirs(t, a, "", args...)
		got := ours(t, b, "", args...)
		if want != got {
			t.Errorf("%s: ipvsadm and goipvsadm differ (kernel %s)\nipvsadm: %v\ngoipvsadm: %v", strings.Join(args, " "), kernelRelease(), want, got)
		}
		sa, sb := saved(t, a), saved(t, b)
		ta, tb := theirs(t, a, "", "-L", "--timeout"), theirs(t, b, "", "-L", "--timeout")
		da, db := theirs(t, a, "", "-L", "--daemon"), theirs(t, b, "", "-L", "--daemon")
		if sa != sb || ta != tb || da != db {
			t.Fatalf("after %s the tables differ:\nipvsadm's:\n%s%s%s\ngoipvsadm's:\n%s%s%s", strings.Join(args, " "),
				sa.stdout, ta.stdout, da.stdout, sb.stdout, tb.stdout, db.stdout)
		}
	}
	// -h: ipvsadm's help, then the extensions.
	want, got := theirs(t, a, "", "-h"), ours(t, b, "", "-h")
	if got.status != want.status || !strings.HasPrefix(got.stdout, want.stdout) || !strings.Contains(got.stdout, "--netns") {
		t.Errorf("-h:\nipvsadm: %v\ngoipvsadm: %v", want, got)
	}

	// -R of the broad table, then of rules with a kernel error in the
	// middle: the same tables, the same messages and status.
	for _, in := range []string{tableRules, "-A -t 10.2.0.1:80\n-A -t 10.2.0.1:80\n-a -t 10.2.0.1:80 -r 10.3.0.1\n",
		"-A -t 10.2.0.2:80\n-D -t 10.9.9.9:80\n"} {
		theirs(t, a, "", "-C")
		theirs(t, b, "", "-C")
		want, got := theirs(t, a, in, "-R"), ours(t, b, in, "-R")
		if want != got {
			t.Errorf("-R: ipvsadm and goipvsadm differ (kernel %s)\ninput:\n%s\nipvsadm: %v\ngoipvsadm: %v", kernelRelease(), in, want, got)
		}
		if sa, sb := saved(t, a), saved(t, b); sa != sb {
			t.Errorf("after -R the tables differ:\ninput:\n%s\nipvsadm's:\n%s\ngoipvsadm's:\n%s", in, sa.stdout, sb.stdout)
		}
	}
	// A bad line: ipvsadm applies the lines before it and stops; we
	// report it with its line number and apply nothing.
	theirs(t, b, "", "-C")
	got = ours(t, b, "-A -t 10.4.0.1:80\n-A -t 10.4.0.2:80 -w 3\n-a -t 10.4.0.1:80 -r 1.2.3.4 -w 2147483648\n", "-R")
	if got.status != 2 || !strings.Contains(got.stderr, "line 2") || !strings.Contains(got.stderr, "line 3") {
		t.Errorf("-R with bad lines: %v", got)
	}
	if s := theirs(t, b, "", "-Sn"); s.stdout != "" {
		t.Errorf("-R with bad lines applied some:\n%s", s.stdout)
	}
}

// TestIntegrationGoipvsadmReconcile checks --reconcile with --owns and
// --dry-run against a table that another program shares.
func TestIntegrationGoipvsadmReconcile(t *testing.T) {
	fd := newNS(t)
	mustIpvsadm(t, fd, "-A -t 10.5.0.1:80 -s rr\n-a -t 10.5.0.1:80 -r 10.6.0.1:80 -m\n-a -t 10.5.0.1:80 -r 10.6.0.2:80 -m\n-A -t 10.5.0.2:80\n-A -t 10.7.0.1:80\n-A -f 9\n", "-R")
	rules := "-A -t 10.5.0.1:80 -s wrr\n-a -t 10.5.0.1:80 -r 10.6.0.1:80 -m -w 4\n-a -t 10.5.0.1:80 -r 10.6.0.3:80 -m\n-A -t 10.5.0.3:80 -s rr\n"
	dry := ours(t, fd, rules, "--reconcile", "-", "--owns", "10.5.0.0/16", "--dry-run")
	wantDry := "-D -t 10.5.0.2:80\n-E -t 10.5.0.1:80 -s wrr\n-d -t 10.5.0.1:80 -r 10.6.0.2:80\n-e -t 10.5.0.1:80 -r 10.6.0.1:80 -m -w 4\n-a -t 10.5.0.1:80 -r 10.6.0.3:80 -m -w 1\n-A -t 10.5.0.3:80 -s rr\n"
	if dry.status != 0 || dry.stdout != wantDry {
		t.Errorf("--dry-run: %v\nwant stdout:\n%s", dry, wantDry)
	}
	before := mustIpvsadm(t, fd, "", "-Sn")
	if r := ours(t, fd, rules, "--reconcile", "-", "--owns", "10.5.0.0/16"); r.status != 0 || r.stderr != "" {
		t.Fatalf("--reconcile: %v", r)
	}
	after := mustIpvsadm(t, fd, "", "-Sn")
	want := "-A -t 10.5.0.1:80 -s wrr\n-a -t 10.5.0.1:80 -r 10.6.0.1:80 -m -w 4\n-a -t 10.5.0.1:80 -r 10.6.0.3:80 -m -w 1\n-A -t 10.5.0.3:80 -s rr\n-A -t 10.7.0.1:80 -s wlc\n-A -f 9 -s wlc\n"
	if after != want {
		t.Errorf("after --reconcile (table before:\n%s):\n%s\nwant:\n%s", before, after, want)
	}
	if r := ours(t, fd, rules, "--reconcile", "-", "--owns", "10.5.0.0/16", "--dry-run"); r.status != 0 || r.stdout != "" {
		t.Errorf("--dry-run after --reconcile: %v", r)
	}
}

// TestGoipvsadmWithoutIPVS compares both tools where the kernel has no
// IPVS (this runs on a build host without it, and skips in the VM).
func TestGoipvsadmWithoutIPVS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, as ipvsadm does to get that far")
	}
	ipvsadmBin(t)
	if c, err := ipvs.New(); err == nil {
		c.Close()
		t.Skipf("the kernel (%s) has IPVS", kernelRelease())
	}
	for _, args := range [][]string{{}, {"-Ln"}, {"-A", "-t", "10.0.0.1:80"}, {"-h"}, {"-Q"}} {
		var out, errb bytes.Buffer
		cmd := exec.Command(ipvsadmBin(t), args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		want := result{}
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			want.status = ee.ExitCode()
		}
		want.stdout, want.stderr = out.String(), errb.String()
		out.Reset()
		errb.Reset()
		st := run(append([]string{ipvsadmBin(t)}, args...), nil, &out, &errb)
		if got := (result{out.String(), errb.String(), st}); got != want {
			t.Errorf("%q: ipvsadm and goipvsadm differ\nipvsadm: %v\ngoipvsadm: %v", args, want, got)
		}
	}
}
