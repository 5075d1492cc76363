//go:build linux

// Command ipvsbench times the ipvs library against moby/ipvs,
// cloudflare/ipvs, ipvsadm and a raw netlink floor on a real IPVS kernel.
//
// It must run as root on a kernel with IPVS (the repository's VM rig boots
// one). Every implementation run is a child process (this program with
// -child) in a new network namespace of its own, so it only ever touches an
// IPVS table of its own, starts with an empty kernel "destination trash"
// (deleted destinations linger there for minutes and slow later creations
// down), and never sends traffic. See BENCHMARKS.md at the repository root
// for the method and the results.
//
// For every round, each implementation runs once, in an order rotated by the
// round: starting from an empty table it creates N services x M
// destinations, lists them, sets every weight, and deletes every service.
// Only the library calls are timed; inputs are built before the clock starts
// and the table is checked with this library after each step, outside the
// timed region. The output is one "RESULT <impl> <op> <median seconds>"
// line per measurement, then the ratios against the targets.
//
// The exit status reports errors only (an implementation failing, or a table
// of the wrong size), never timing.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

var allImpls = []string{"floor", "ipvs-call", "ipvs-batch", "ipvs-reconcile", "ipvs-rules", "moby", "cloudflare", "ipvsadm", "goipvsadm"}

// defaultImpls are the implementations run without -impls: all but
// goipvsadm, which needs its binary (-goipvsadm).
var defaultImpls = allImpls[:len(allImpls)-1]

func main() {
	os.Exit(realMain())
}

func realMain() int {
	var cfg config
	var impls string
	flag.IntVar(&cfg.services, "services", 2000, "number of virtual services")
	flag.IntVar(&cfg.dests, "dests", 4, "destinations per service")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds; each runs every implementation once, in rotated order")
	flag.StringVar(&impls, "impls", strings.Join(defaultImpls, ","), "comma-separated implementations to run (also: goipvsadm)")
	flag.StringVar(&cfg.goipvsadm, "goipvsadm", "goipvsadm", "the goipvsadm binary of the goipvsadm implementation (cmd/goipvsadm), a path or a name in PATH")
	flag.IntVar(&cfg.floorBatch, "floor-batch", 200, "requests per sendmsg for the floor (1 = one request per sendmsg; at most 250 so every ACK fits the default receive buffer)")
	flag.BoolVar(&cfg.big, "big", false, "instead of the rounds, Reconcile -big-services x -dests from empty, then a no-op, then to empty, and report time and memory")
	flag.IntVar(&cfg.bigServices, "big-services", 20000, "services for -big")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the first run of -profile-impl (checks included) to this file (inside the guest), or print it base64-encoded on a PPROF line if \"-\"")
	flag.StringVar(&cfg.profileImpl, "profile-impl", "ipvs-batch", "implementation profiled by -cpuprofile")
	flag.BoolVar(&cfg.keepNetNS, "no-netns", false, "run in the current network namespace instead of a new one per run (its IPVS table is flushed)")
	flag.DurationVar(&cfg.settle, "settle", time.Second, "pause between runs, for the kernel's deferred cleanup of the previous namespace")
	flag.StringVar(&cfg.child, "child", "", "internal: run one implementation (or \"big\") in this process and print SAMPLE lines")
	flag.Parse()

	for _, s := range strings.Split(impls, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allImpls, s) {
			fmt.Fprintf(os.Stderr, "ipvsbench: unknown implementation %q (have %s)\n", s, strings.Join(allImpls, ", "))
			return 2
		}
		cfg.impls = append(cfg.impls, s)
	}
	switch {
	case cfg.services < 1 || cfg.services > 1<<20, cfg.dests < 0 || cfg.dests > 255,
		cfg.bigServices < 1 || cfg.bigServices > 1<<20:
		fmt.Fprintln(os.Stderr, "ipvsbench: -services/-big-services must be 1..1048576 and -dests 0..255")
		return 2
	case cfg.rounds < 1:
		fmt.Fprintln(os.Stderr, "ipvsbench: -rounds must be at least 1")
		return 2
	case cfg.floorBatch < 1 || cfg.floorBatch > 250:
		fmt.Fprintln(os.Stderr, "ipvsbench: -floor-batch must be 1..250")
		return 2
	}

	var err error
	switch {
	case cfg.child == "big":
		err = runBig(cfg)
	case cfg.child != "":
		err = runChild(cfg)
	case cfg.big:
		fmt.Printf("ipvsbench -big: kernel %s\n", kernelRelease())
		_, err = spawn(cfg, "big", func(l string) { fmt.Println(l) })
	default:
		err = runRounds(cfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ipvsbench: FAIL: %v\n", err)
		return 1
	}
	return 0
}

// spawn runs this program again with -child name, in a new network
// namespace unless -no-netns, and hands each line of its output to line.
func spawn(cfg config, name string, line func(string)) (time.Duration, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	args := append(slices.Clone(os.Args[1:]), "-child", name)
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	if !cfg.keepNetNS {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("cannot start %s: %w", name, err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line(sc.Text())
	}
	err = cmd.Wait()
	return time.Since(t0), err
}

// config is set from the flags.
type config struct {
	services, dests int
	rounds          int
	impls           []string
	floorBatch      int
	big             bool
	bigServices     int
	cpuProfile      string
	profileImpl     string
	keepNetNS       bool
	settle          time.Duration
	child           string
	goipvsadm       string
}

// runRounds runs every implementation once per round, each run in a child
// process in a network namespace of its own, and reports the medians.
func runRounds(cfg config) error {
	if _, err := exec.LookPath("ipvsadm"); err != nil && slices.Contains(cfg.impls, "ipvsadm") {
		return fmt.Errorf("ipvsadm: %w", err)
	}
	if _, err := exec.LookPath(cfg.goipvsadm); err != nil && slices.Contains(cfg.impls, "goipvsadm") {
		return fmt.Errorf("goipvsadm: %w", err)
	}
	ns := "a new network namespace per run"
	if cfg.keepNetNS {
		ns = "the current network namespace, flushed"
	}
	fmt.Printf("ipvsbench: %d services x %d destinations (%d objects), %d rounds, implementations %s, floor %d requests per sendmsg, %s, kernel %s, GOMAXPROCS %d\n",
		cfg.services, cfg.dests, cfg.services*(1+cfg.dests), cfg.rounds, strings.Join(cfg.impls, ","), cfg.floorBatch, ns, kernelRelease(), runtime.GOMAXPROCS(0))
	res := results{}
	var failures []error
	profiled := false
	for round := 0; round < cfg.rounds; round++ {
		order := make([]string, len(cfg.impls))
		for i := range cfg.impls {
			order[i] = cfg.impls[(i+round)%len(cfg.impls)]
		}
		fmt.Printf("round %d: %s\n", round+1, strings.Join(order, " "))
		for _, name := range order {
			time.Sleep(cfg.settle)
			c := cfg
			if name != cfg.profileImpl || profiled {
				c.cpuProfile = ""
			}
			profiled = profiled || c.cpuProfile != ""
			var perr error
			_, err := spawn(c, name, func(l string) {
				f := strings.Fields(l)
				if len(f) == 8 && f[0] == "SAMPLE" {
					var s sample
					for i, d := range []*time.Duration{&s.wall, &s.user, &s.sys} {
						v, err := time.ParseDuration(f[3+i])
						if err != nil {
							perr = fmt.Errorf("bad line %q", l)
						}
						*d = v
					}
					for i, n := range []*int64{&s.faults, &s.waits} {
						v, err := strconv.ParseInt(f[6+i], 10, 64)
						if err != nil {
							perr = fmt.Errorf("bad line %q", l)
						}
						*n = v
					}
					res.add(f[1], op(f[2]), s)
					return
				}
				fmt.Println(l)
			})
			if err == nil {
				err = perr
			}
			if err != nil {
				fmt.Printf("  %-15s ERROR %v\n", name, err)
				failures = append(failures, fmt.Errorf("round %d, %s: %w", round+1, name, err))
			}
		}
	}
	report(cfg, res)
	return errors.Join(failures...)
}

// runChild runs one implementation (-child) from an empty table.
func runChild(cfg config) error {
	ctx := context.Background()
	if !cfg.keepNetNS {
		// Without any address the namespace has no local routing table,
		// and the kernel refuses IPv4 destinations with EINVAL
		// (inet_addr_type answers RTN_BROADCAST).
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bringing lo up: %w", err)
		}
	}
	check, err := ipvs.New()
	if err != nil {
		return fmt.Errorf("cannot open the IPVS checker client: %w", err)
	}
	defer check.Close()
	if err := check.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if cfg.cpuProfile != "" {
		// "-" prints the profile as one "PPROF <base64>" line, to carry
		// it out of a VM that only streams its output.
		var buf bytes.Buffer
		var w io.Writer = &buf
		if cfg.cpuProfile != "-" {
			f, err := os.Create(cfg.cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if err := pprof.StartCPUProfile(w); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if cfg.cpuProfile == "-" {
				fmt.Printf("PPROF %s\n", base64.StdEncoding.EncodeToString(buf.Bytes()))
			}
		}()
	}
	err = runOne(ctx, check, cfg.child, cfg, newWorkload(cfg.services, cfg.dests))
	if err != nil {
		// Leave an empty table.
		_ = check.Flush(ctx)
	}
	return err
}

// loopbackUp sets the namespace's loopback interface up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// An op is one timed operation of an implementation run.
type op string

const (
	opCreate op = "create"
	opList   op = "list"
	opUpdate op = "update"
	opNoop   op = "noop"
	opDelete op = "delete"
)

var allOps = []op{opCreate, opList, opUpdate, opNoop, opDelete}

// sample is one timed run: wall time, the process's CPU time split, its
// minor page faults (first touches of new memory, which cost system time)
// and voluntary context switches (waits for the kernel's answers).
type sample struct {
	wall, user, sys time.Duration
	faults, waits   int64
}

type results map[string]map[op][]sample

func (r results) add(impl string, o op, s sample) {
	if r[impl] == nil {
		r[impl] = map[op][]sample{}
	}
	r[impl][o] = append(r[impl][o], s)
}

// median returns the median of the samples' field f, and whether there were any.
func median[T int64 | time.Duration](ss []sample, f func(sample) T) (T, bool) {
	if len(ss) == 0 {
		return 0, false
	}
	v := make([]T, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2], true
	}
	return (v[n/2-1] + v[n/2]) / 2, true
}

func (r results) med(impl string, o op) (time.Duration, bool) {
	return median(r[impl][o], func(s sample) time.Duration { return s.wall })
}

// An impl is one implementation under test. setup builds its client and its
// inputs (untimed); the operations are timed; close releases the client.
type impl interface {
	setup(w *workload) error
	create(ctx context.Context) error
	list(ctx context.Context) (svcs, dests int, err error)
	update(ctx context.Context) error
	delete(ctx context.Context) error
	close()
}

// noopper is implemented by the implementations that have a no-op
// measurement (Reconcile with nothing to change).
type noopper interface {
	noop(ctx context.Context) error
}

// childTimer is implemented by implementations that run child processes,
// whose CPU time is reported instead of this process's.
type childTimer interface {
	childCPU() (user, sys time.Duration)
}

func newImpl(name string, cfg config) impl {
	switch name {
	case "floor":
		return &floorImpl{batch: cfg.floorBatch}
	case "ipvs-call":
		return &callImpl{}
	case "ipvs-batch":
		return &batchImpl{}
	case "ipvs-reconcile":
		return &reconcileImpl{}
	case "ipvs-rules":
		return &rulesImpl{}
	case "moby":
		return &mobyImpl{}
	case "cloudflare":
		return &cloudflareImpl{}
	case "ipvsadm":
		return &ipvsadmImpl{}
	case "goipvsadm":
		return &ipvsadmImpl{bin: cfg.goipvsadm}
	}
	panic("unknown implementation " + name)
}

// runOne runs one implementation from an empty table and records its samples.
func runOne(ctx context.Context, check *ipvs.Client, name string, cfg config, w *workload) error {
	im := newImpl(name, cfg)
	if err := im.setup(w); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer im.close()
	var line []string
	timed := func(o op, fn func() error) error {
		runtime.GC()
		var u0, u1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u0)
		t0 := time.Now()
		err := fn()
		d := time.Since(t0)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u1)
		if err != nil {
			return fmt.Errorf("%s: %w", o, err)
		}
		s := sample{wall: d, user: tv(u1.Utime) - tv(u0.Utime), sys: tv(u1.Stime) - tv(u0.Stime),
			faults: u1.Minflt - u0.Minflt, waits: u1.Nvcsw - u0.Nvcsw}
		if ct, ok := im.(childTimer); ok {
			s.user, s.sys = ct.childCPU()
			s.faults, s.waits = 0, 0 // not counted for child processes
		}
		fmt.Printf("SAMPLE %s %s %s %s %s %d %d\n", name, o, s.wall, s.user, s.sys, s.faults, s.waits)
		line = append(line, fmt.Sprintf("%s %.3fs", o, d.Seconds()))
		return nil
	}
	defer func() { fmt.Printf("  %-15s %s\n", name, strings.Join(line, ", ")) }()

	if err := timed(opCreate, func() error { return im.create(ctx) }); err != nil {
		return err
	}
	if err := w.verify(ctx, check, 1); err != nil {
		return fmt.Errorf("after create: %w", err)
	}
	if err := timed(opList, func() error {
		s, d, err := im.list(ctx)
		if err == nil && (s != w.n || d != w.n*w.m) {
			err = fmt.Errorf("listed %d services and %d destinations, want %d and %d", s, d, w.n, w.n*w.m)
		}
		return err
	}); err != nil {
		return err
	}
	if err := timed(opUpdate, func() error { return im.update(ctx) }); err != nil {
		return err
	}
	if err := w.verify(ctx, check, 2); err != nil {
		return fmt.Errorf("after update: %w", err)
	}
	if n, ok := im.(noopper); ok {
		if err := timed(opNoop, func() error { return n.noop(ctx) }); err != nil {
			return err
		}
		if err := w.verify(ctx, check, 2); err != nil {
			return fmt.Errorf("after noop: %w", err)
		}
	}
	if err := timed(opDelete, func() error { return im.delete(ctx) }); err != nil {
		return err
	}
	vs, err := check.VirtualServices(ctx)
	if err != nil {
		return fmt.Errorf("after delete: %w", err)
	}
	if len(vs) != 0 {
		return fmt.Errorf("after delete: %d services left", len(vs))
	}
	return nil
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// report prints the RESULT lines, the CPU split and the targets.
func report(cfg config, res results) {
	fmt.Println()
	for _, name := range allImpls {
		for _, o := range allOps {
			if d, ok := res.med(name, o); ok {
				fmt.Printf("RESULT %s %s %.4f\n", name, o, d.Seconds())
			}
		}
	}
	fmt.Println()
	fmt.Println("# per-request medians (create: services+destinations; list: per object; update: per destination; delete: per service) and CPU time of the process (ipvsadm: of its child processes)")
	for _, name := range allImpls {
		for _, o := range allOps {
			ss := res[name][o]
			if len(ss) == 0 {
				continue
			}
			wall, _ := median(ss, func(s sample) time.Duration { return s.wall })
			user, _ := median(ss, func(s sample) time.Duration { return s.user })
			sys, _ := median(ss, func(s sample) time.Duration { return s.sys })
			faults, _ := median(ss, func(s sample) int64 { return s.faults })
			waits, _ := median(ss, func(s sample) int64 { return s.waits })
			var per string
			if n := requests(cfg, o); n > 0 {
				per = fmt.Sprintf("%.1fus/object", wall.Seconds()*1e6/float64(n))
			}
			fmt.Printf("CPU %s %s wall=%.3fs user=%.3fs sys=%.3fs faults=%d waits=%d %s\n", name, o, wall.Seconds(), user.Seconds(), sys.Seconds(), faults, waits, per)
		}
	}
	fmt.Println()
	target := func(desc string, a, b string, ao, bo op, limit float64, strict bool) {
		x, ok1 := res.med(a, ao)
		y, ok2 := res.med(b, bo)
		if !ok1 || !ok2 || y == 0 {
			fmt.Printf("TARGET %-58s SKIP (not measured)\n", desc)
			return
		}
		r := x.Seconds() / y.Seconds()
		pass := r <= limit
		if strict {
			pass = r < limit
		}
		verdict := "FAIL"
		if pass {
			verdict = "PASS"
		}
		cmp := "<="
		if strict {
			cmp = "<"
		}
		fmt.Printf("TARGET %-58s %s/%s = %.3f (%s %.2f) %s\n", desc, a+" "+string(ao), b+" "+string(bo), r, cmp, limit, verdict)
	}
	target("batch create <= 1.3x floor", "ipvs-batch", "floor", opCreate, opCreate, 1.3, false)
	target("batch weight update <= 1.3x floor", "ipvs-batch", "floor", opUpdate, opUpdate, 1.3, false)
	target("reconcile from empty <= 1.3x floor", "ipvs-reconcile", "floor", opCreate, opCreate, 1.3, false)
	target("per-call create no slower than moby", "ipvs-call", "moby", opCreate, opCreate, 1.0, false)
	target("rules text Parse+Apply create <= 1.2x Apply", "ipvs-rules", "ipvs-batch", opCreate, opCreate, 1.2, false)
	target("rules text Parse+Apply update <= 1.2x Apply", "ipvs-rules", "ipvs-batch", opUpdate, opUpdate, 1.2, false)
	target("list (VirtualServices) >= 1.5x faster than moby", "ipvs-batch", "moby", opList, opList, 1/1.5, false)
	target("list (VirtualServices) faster than ipvsadm -Ln", "ipvs-batch", "ipvsadm", opList, opList, 1.0, true)
	// The targets for cmd/goipvsadm: whole processes, the same
	// rules text and command lines as ipvsadm's.
	target("goipvsadm -R >= 5x faster than ipvsadm -R", "goipvsadm", "ipvsadm", opCreate, opCreate, 0.2, false)
	target("goipvsadm -Ln >= 2x faster than ipvsadm -Ln", "goipvsadm", "ipvsadm", opList, opList, 0.5, false)
	target("goipvsadm -C no slower than ipvsadm -C", "goipvsadm", "ipvsadm", opDelete, opDelete, 1.0, false)
	// Against the list of the same process: the two processes hold
	// different live heaps (the reconcile one keeps two desired tables),
	// so the same list costs them different garbage collection work (see
	// the A/A line).
	target("reconcile noop <= one list (same process)", "ipvs-reconcile", "ipvs-reconcile", opNoop, opList, 1.0, false)
	fmt.Println("# informational")
	target("reconcile noop vs the list of ipvs-batch", "ipvs-reconcile", "ipvs-batch", opNoop, opList, 1.0, false)
	// The same VirtualServices call, timed in two processes: the spread
	// between equal work in this run.
	target("A/A: one list timed in two processes", "ipvs-reconcile", "ipvs-batch", opList, opList, 1.1, false)
	target("batch delete vs floor", "ipvs-batch", "floor", opDelete, opDelete, 1.3, false)
	target("per-call update no slower than moby", "ipvs-call", "moby", opUpdate, opUpdate, 1.0, false)
	target("per-call list (Services+Destinations) vs moby", "ipvs-call", "moby", opList, opList, 1.0, false)
	target("VirtualServices list vs floor list", "ipvs-batch", "floor", opList, opList, 1.3, false)
	target("rules text Parse+Apply delete vs Apply", "ipvs-rules", "ipvs-batch", opDelete, opDelete, 1.2, false)
	target("VirtualServices+Format (ipvsadm -S) vs VirtualServices", "ipvs-rules", "ipvs-batch", opList, opList, 1.2, false)
	target("rules text Parse+Apply create vs ipvsadm -R", "ipvs-rules", "ipvsadm", opCreate, opCreate, 1.0, false)
	// Reconcile reads the table and then applies: compare it with the two
	// steps done by hand.
	if x, ok1 := res.med("ipvs-reconcile", opUpdate); ok1 {
		l, ok2 := res.med("ipvs-batch", opList)
		u, ok3 := res.med("ipvs-batch", opUpdate)
		if ok2 && ok3 {
			r := x.Seconds() / (l + u).Seconds()
			verdict := "FAIL"
			if r <= 1.3 {
				verdict = "PASS"
			}
			fmt.Printf("TARGET %-58s %s = %.3f (<= 1.30) %s\n", "reconcile update vs list + batch update",
				"ipvs-reconcile update/(ipvs-batch list + ipvs-batch update)", r, verdict)
		}
	}
}

// requests is the number of objects an operation touches, for per-object costs.
func requests(cfg config, o op) int {
	switch o {
	case opCreate, opList:
		return cfg.services * (1 + cfg.dests)
	case opUpdate:
		return cfg.services * cfg.dests
	case opDelete:
		return cfg.services
	}
	return 0
}
