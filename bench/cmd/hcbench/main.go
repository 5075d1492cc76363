// Command hcbench measures the cost of health checks: it starts N loopback
// servers (one child process, 127.0.0.1 ports -port to -port+N-1), checks
// them every -interval for -d seconds with the healthcheck package's Monitor
// and, with -keepalived, with keepalived's checker process over the same
// servers, one after the other in the same run, and prints for each:
// checks done, CPU time (user+sys) per check, resident memory per
// destination, and missed intervals (seen by the servers: a port with no
// check for longer than 1.5 intervals).
//
//	hcbench -n 1000 -check tcp -d 30 -keepalived /usr/sbin/keepalived
//
// Without IPVS (-fake) the Monitor gets a Client that accepts every change
// and keepalived is not run (its checker needs IPVS).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		n          = flag.Int("n", 1000, "destinations")
		kind       = flag.String("check", "tcp", "check: tcp or http")
		dur        = flag.Duration("d", 30*time.Second, "measured window")
		warm       = flag.Duration("warmup", 5*time.Second, "time before the window")
		interval   = flag.Duration("interval", time.Second, "check interval (delay_loop)")
		port       = flag.Int("port", 20000, "first server port")
		fake       = flag.Bool("fake", false, "no IPVS: the Monitor's Client accepts every change")
		keepalived = flag.String("keepalived", "", "keepalived binary to run over the same servers after the Monitor")
		only       = flag.String("only", "", "run only one checker: go or keepalived")
		serveMode  = flag.Bool("serve", false, "internal: be the server child")
		cpuprofile = flag.String("cpuprofile", "", "write the Monitor's CPU profile of the window here")
		onCheck    = flag.Bool("oncheck", false, "count the Monitor's checks, failures and latencies through Options.OnCheck (reads the clock per check)")
		coalesce   = flag.Duration("coalesce", 0, "the Monitor's Options.Coalesce (0: its default)")
		delay      = flag.Duration("answer-delay", 0, "http: the servers answer this long after the request (so that every check waits for its answer)")
		jitter     = flag.Duration("answer-jitter", 0, "http: each answer waits a random time below this on top of -answer-delay (answers of a batch come one by one, as from remote servers)")
		procs      = flag.Int("gomaxprocs", 0, "the checker process's GOMAXPROCS, set after the servers have started (0: the default)")
		graceful   = flag.Bool("graceful", false, "tcp: close the Monitor's check connections with a FIN, as keepalived does, instead of a reset")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("hcbench: ")
	gap := *interval * 3 / 2
	answerJitter = *jitter
	if *serveMode {
		if err := serve(*kind, *port, *n, gap, *delay); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *kind != "tcp" && *kind != "http" {
		log.Fatalf("-check %q: want tcp or http", *kind)
	}
	raiseNofile()
	srv, err := startServers(*kind, *port, *n, gap, *delay)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.stop()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	fmt.Printf("hcbench: %s checks of %d destinations every %v, window %v after %v warm-up, GOMAXPROCS %d, kernel %s\n",
		*kind, *n, *interval, *dur, *warm, runtime.GOMAXPROCS(0), kernelRelease())
	cfg := config{cpuprofile: *cpuprofile, kind: *kind, n: *n, port: *port, interval: *interval, warm: *warm, dur: *dur, fake: *fake, graceful: *graceful, onCheck: *onCheck, coalesce: *coalesce}
	failed := false
	if *only != "keepalived" {
		r, err := runGo(srv, cfg)
		if err != nil {
			log.Fatal(err)
		}
		r.print()
		failed = failed || r.missed > 0 || r.stale > 0 || r.failures > 0
	}
	if *keepalived != "" && *only != "go" {
		r, err := runKeepalived(srv, cfg, *keepalived)
		if err != nil {
			log.Fatal(err)
		}
		r.print()
	}
	if failed {
		srv.stop()
		fmt.Println("hcbench: the Monitor missed intervals or saw failed checks")
		os.Exit(1)
	}
}

type config struct {
	kind       string
	n, port    int
	interval   time.Duration
	warm, dur  time.Duration
	fake       bool
	graceful   bool
	onCheck    bool
	cpuprofile string
	coalesce   time.Duration
}

type result struct {
	name          string
	n             int
	checks        int64 // connections the servers saw in the window
	ownChecks     int64 // checks the checker counted itself (-1: unknown)
	failures      int64
	cpu           time.Duration // user+sys of the checker in the window
	sys           time.Duration // of which sys
	rss, baseRSS  int64         // bytes
	heap          int64         // Go heap in use, bytes (-1: n/a)
	missed, stale int64
	maxGapMS      float64
	window        time.Duration
	serverCPU     time.Duration
	extra         string
}

func (r result) print() {
	perCheck := time.Duration(0)
	if r.checks > 0 {
		perCheck = r.cpu / time.Duration(r.checks)
	}
	fmt.Printf("RESULT %-10s n=%d checks=%d (%.0f/s) cpu=%.2fs (%.1f%% of a core) cpu/check=%.1fµs rss=%.1fMiB base=%.1fMiB rss/dest=%.2fKiB",
		r.name, r.n, r.checks, float64(r.checks)/r.window.Seconds(), r.cpu.Seconds(), 100*r.cpu.Seconds()/r.window.Seconds(),
		float64(perCheck.Nanoseconds())/1e3, float64(r.rss)/(1<<20), float64(r.baseRSS)/(1<<20), float64(r.rss-r.baseRSS)/float64(r.n)/1024)
	if r.heap >= 0 {
		fmt.Printf(" heap/dest=%.2fKiB", float64(r.heap)/float64(r.n)/1024)
	}
	if r.ownChecks >= 0 {
		fmt.Printf(" own_checks=%d failed=%d", r.ownChecks, r.failures)
	}
	fmt.Printf(" sys=%.2fs", r.sys.Seconds())
	fmt.Printf(" missed=%d stale=%d maxgap=%.0fms server_cpu=%.2fs%s\n", r.missed, r.stale, r.maxGapMS, r.serverCPU.Seconds(), r.extra)
}

// servers is the server child and its command pipe.
type servers struct {
	cmd *exec.Cmd
	in  *os.File
	out *bufio.Reader
}

func startServers(kind string, port, n int, gap, delay time.Duration) (*servers, error) {
	cmd := exec.Command("/proc/self/exe", "-serve", "-check", kind, "-port", fmt.Sprint(port), "-n", fmt.Sprint(n), "-interval", (gap * 2 / 3).String(), "-answer-delay", delay.String(), "-answer-jitter", answerJitter.String())
	cmd.Stderr = os.Stderr
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &servers{cmd: cmd, in: w.(*os.File), out: bufio.NewReader(r)}
	if line, err := s.out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return nil, fmt.Errorf("server child: %q %v", line, err)
	}
	return s, nil
}

func (s *servers) call(c string) (string, error) {
	if _, err := fmt.Fprintln(s.in, c); err != nil {
		return "", err
	}
	line, err := s.out.ReadString('\n')
	return strings.TrimSpace(line), err
}

// stat reads the servers' counters since start.
func (s *servers) stat(r *result) error {
	line, err := s.call("stat")
	if err != nil {
		return err
	}
	var cpu int64
	_, err = fmt.Sscan(line, &r.checks, &r.missed, &r.maxGapMS, &r.stale, &cpu)
	r.serverCPU = time.Duration(cpu)
	return err
}

func (s *servers) stop() {
	s.in.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

func raiseNofile() {
	lim := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		cur.Cur = cur.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur)
	}
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// vmRSS is VmRSS of /proc/PID/status in bytes.
func vmRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(v, &kb)
			return kb * 1024
		}
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
