//go:build linux

// Command vmrig boots Debian's own kernels under qemu (software emulation)
// and runs test binaries inside them, so the ipvs library can be tested
// against a real IPVS implementation. See README.md.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// defaultModules are preloaded in the guest before the first job.
var defaultModules = []string{
	"nf_conntrack", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc",
	"ip_vs_lblcr", "ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_fo", "ip_vs_ovf",
	"ip_vs_mh", "ip_vs_pe_sip", "ip_vs_ftp", "ipip", "ip_gre", "fou", "ip6_tunnel", "veth",
	"dummy", "bridge",
}

type options struct {
	kernels      []string
	parallel     int
	timeout      time.Duration
	jobTimeout   time.Duration
	verbose      bool
	requireTests bool
	requireRe    *regexp.Regexp
	jobs         []jobSpec
	files        []string
	env          []string
	modules      []string
	mem, smp     int
	cache        string
	append       string
	keep         bool
	channel      string
}

var verbose bool

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmrig: "+format+"\n", args...)
}

// logWriter receives the output of apt-get and similar tools.
func logWriter() io.Writer {
	if verbose {
		return os.Stderr
	}
	return io.Discard
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

func main() {
	os.Exit(realMain())
}

func realMain() int {
	var o options
	var runs, files, envs multiFlag
	kernel := flag.String("kernel", "all", "kernel to boot: 5.10 (bullseye), 6.1, 6.12 (bookworm), 7.2 (forky), all (the four) or a comma-separated list")
	flag.IntVar(&o.parallel, "parallel", 2, "boots run at the same time when several kernels are given (their job output is then printed per kernel as each boot ends)")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "overall limit per boot (qemu is killed after it)")
	flag.DurationVar(&o.jobTimeout, "job-timeout", 10*time.Minute, "default per-job limit inside the guest")
	flag.BoolVar(&o.verbose, "v", false, "show provisioning output and the guest console (kernel log) on stderr")
	flag.BoolVar(&o.requireTests, "require-tests", false, "fail a job run with -test.v whose output has no line matching -require-pattern")
	reqPat := flag.String("require-pattern", `^\s*--- PASS: TestIntegration`, "regexp used by -require-tests (multi-line mode)")
	flag.Var(&runs, "run", "job: 'NAME[@TIMEOUT]=PROGRAM [ARGS...]', repeatable. PROGRAM is a host file (copied to /payload/NAME) or guest:/abs/path. Args are split like a shell would (quotes, no expansion)")
	flag.Var(&runs, "job", "alias of -run")
	flag.Var(&files, "file", "extra 'HOSTPATH:GUESTPATH' file or directory, repeatable")
	flag.Var(&envs, "env", "extra KEY=VALUE for every job, repeatable")
	mods := flag.String("modules", strings.Join(defaultModules, ","), "comma-separated modules to preload in the guest")
	flag.IntVar(&o.mem, "mem", 2048, "guest memory in MiB")
	flag.IntVar(&o.smp, "smp", 2, "guest CPUs")
	flag.StringVar(&o.append, "append", "", "extra kernel command line")
	flag.StringVar(&o.channel, "channel", "virtio", "job output channel: virtio (/dev/hvc0, fast) or serial (/dev/ttyS1, about 240 KB/s)")
	flag.BoolVar(&o.keep, "keep", false, "keep the per-run directory (initrd, console log)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `usage: go run ./internal/vmrig [flags] -run 'NAME[@TIMEOUT]=PROGRAM [ARGS...]' ...

Boots Debian's 6.1 and/or 6.12 kernel (bookworm), or 5.10 (bullseye) or 7.2
(forky), in qemu (TCG, no network device) and runs each job in order; exit
status 0 only if every job passed on every kernel.
Cache: $IPVS_VMRIG_CACHE (default /var/cache/ipvs-vmrig).

Job arguments belong inside the quoted -run value: -run 'x=/tmp/x.test -test.v',
not -run x=/tmp/x.test -test.v (vmrig would read -test.v as its own flag).

Example:
  go test -c -o /tmp/ipvs.test . && go run ./internal/vmrig -kernel all -require-tests \
      -run 'ipvs@20m=/tmp/ipvs.test -test.v -test.run ^TestIntegration'

flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	verbose = o.verbose
	if flag.NArg() > 0 {
		logf("unexpected arguments %q (jobs are given with -run)", flag.Args())
		return 2
	}
	if *kernel == "all" {
		o.kernels = kernelLabels
	} else {
		for _, l := range strings.Split(*kernel, ",") {
			if _, known := kernelSources[l]; !known {
				logf("-kernel must be %s, all or a comma-separated list of them, not %q", strings.Join(kernelLabels, ", "), *kernel)
				return 2
			}
			o.kernels = append(o.kernels, l)
		}
	}
	if o.parallel < 1 {
		logf("-parallel must be at least 1")
		return 2
	}
	if o.channel != "virtio" && o.channel != "serial" {
		logf("-channel must be virtio or serial, not %q", o.channel)
		return 2
	}
	var err error
	if o.requireRe, err = regexp.Compile("(?m)" + *reqPat); err != nil {
		logf("-require-pattern: %v", err)
		return 2
	}
	if len(runs) == 0 {
		logf("no jobs: give at least one -run 'NAME=PROGRAM [ARGS...]'")
		flag.Usage()
		return 2
	}
	seen := map[string]bool{}
	for _, r := range runs {
		j, err := parseJob(r, o.jobTimeout)
		if err != nil {
			logf("-run %q: %v", r, err)
			return 2
		}
		if seen[j.Name] {
			logf("-run: duplicate job name %q", j.Name)
			return 2
		}
		seen[j.Name] = true
		o.jobs = append(o.jobs, j)
	}
	for _, f := range files {
		h, g, ok := strings.Cut(f, ":")
		if !ok || h == "" || !strings.HasPrefix(g, "/") {
			logf("-file %q: want HOSTPATH:/GUESTPATH", f)
			return 2
		}
		if !exists(h) {
			logf("-file %q: %s does not exist", f, h)
			return 2
		}
	}
	o.files = files
	for _, e := range envs {
		if !strings.Contains(e, "=") {
			logf("-env %q: want KEY=VALUE", e)
			return 2
		}
	}
	o.env = envs
	for _, m := range strings.Split(*mods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.modules = append(o.modules, m)
		}
	}
	o.cache = os.Getenv("IPVS_VMRIG_CACHE")
	if o.cache == "" {
		o.cache = "/var/cache/ipvs-vmrig"
	}
	if o.cache, err = filepath.Abs(o.cache); err != nil {
		logf("%v", err)
		return 2
	}
	if err := os.MkdirAll(o.cache, 0o755); err != nil {
		logf("cache dir: %v", err)
		return 1
	}

	tAll := time.Now()
	killQemuOnSignal()
	// Several rigs may share the cache: serialise provisioning and the
	// cache writes (not the boots).
	unlock, err := lockCache(o.cache)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if err := provisionHost(); err != nil {
		logf("provisioning failed: %v", err)
		unlock()
		return 1
	}
	initBin, err := buildGuestInit(o.cache)
	if err != nil {
		logf("building guest init: %v", err)
		unlock()
		return 1
	}

	type prepared struct {
		k    *Kernel
		base string
	}
	var reports []*bootReport
	preps := make([]prepared, len(o.kernels))
	for _, label := range o.kernels {
		rep := &bootReport{label: label}
		for _, j := range o.jobs {
			rep.jobs = append(rep.jobs, &jobResult{name: j.Name, state: "NOT RUN"})
		}
		reports = append(reports, rep)
		t0 := time.Now()
		k, err := fetchKernel(o.cache, label)
		if err != nil {
			rep.err = err
			logf("kernel %s: %v", label, err)
			continue
		}
		rep.kernel = k
		base, err := baseArchive(o.cache, k)
		if err != nil {
			rep.err = err
			logf("kernel %s: base initramfs: %v", label, err)
			continue
		}
		rep.prepare = time.Since(t0)
		preps[len(reports)-1] = prepared{k, base}
	}
	unlock()
	// The boots, o.parallel at a time: a guest running one test binary
	// keeps about one host core busy, so two boots use a 2-core host. With
	// more than one at a time, each boot's job output is held and printed
	// in one piece when the boot ends.
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, r := range reports {
		if r.err != nil {
			continue
		}
		r.out = stdout
		var buf *bytes.Buffer
		if o.parallel > 1 && len(reports) > 1 {
			buf = new(bytes.Buffer)
			r.out = &lockedWriter{w: buf}
		}
		wg.Add(1)
		sem <- struct{}{} // in kernel order
		go func(p prepared) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			bootOne(&o, p.k, p.base, initBin, r)
			r.wall = time.Since(t0)
			if buf != nil {
				stdout.mu.Lock()
				fmt.Fprintf(stdout.w, "vmrig: ===== kernel %s: the output of its jobs =====\n", r.label)
				_, _ = stdout.w.Write(buf.Bytes())
				stdout.mu.Unlock()
			}
		}(preps[i])
	}
	wg.Wait()

	// Summary.
	ok := true
	fmt.Println()
	for _, r := range reports {
		if !r.print(os.Stdout) {
			ok = false
		}
	}
	fmt.Printf("vmrig: total wall time %s\n", since(tAll))
	if !ok {
		fmt.Println("vmrig: FAIL")
		return 1
	}
	fmt.Println("vmrig: PASS")
	return 0
}

type jobSpec struct {
	Name    string
	Host    string // host file to copy, or ""
	Argv    []string
	Timeout time.Duration
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func parseJob(s string, def time.Duration) (jobSpec, error) {
	var j jobSpec
	head, cmdline, ok := strings.Cut(s, "=")
	if !ok {
		return j, errors.New("want NAME[@TIMEOUT]=PROGRAM [ARGS...]")
	}
	j.Timeout = def
	if n, t, ok := strings.Cut(head, "@"); ok {
		d, err := time.ParseDuration(t)
		if err != nil {
			return j, fmt.Errorf("timeout: %w", err)
		}
		head, j.Timeout = n, d
	}
	if !nameRe.MatchString(head) {
		return j, fmt.Errorf("bad job name %q (letters, digits, . _ -)", head)
	}
	j.Name = head
	args, err := splitArgs(cmdline)
	if err != nil {
		return j, err
	}
	if len(args) == 0 {
		return j, errors.New("no program")
	}
	if g, ok := strings.CutPrefix(args[0], "guest:"); ok {
		if !strings.HasPrefix(g, "/") {
			return j, errors.New("guest: program must be an absolute path")
		}
		args[0] = g
	} else {
		abs, err := filepath.Abs(args[0])
		if err != nil {
			return j, err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return j, err
		}
		if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return j, fmt.Errorf("%s is not an executable file", abs)
		}
		j.Host = abs
		args[0] = "/payload/" + j.Name
	}
	j.Argv = args
	return j, nil
}

// splitArgs splits a command line on blanks, honouring '...' and "..."
// quoting and backslash escapes (outside single quotes). No expansion.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			esc, inArg = true, true
		case quote == '"':
			if r == '"' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 || esc {
		return nil, errors.New("unterminated quote or escape")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// jobResult is what the host learned about one job.
type jobResult struct {
	name     string
	state    string // PASS, FAIL, TIMEOUT, HUNG, NOT RUN, NO TESTS
	exit     int
	seconds  float64
	output   strings.Builder
	testMode bool
	started  time.Time
}

type bootReport struct {
	label   string
	kernel  *Kernel
	err     error
	prepare time.Duration // fetch + base archive
	boot    time.Duration // qemu start to init running
	modules time.Duration // guest module preload
	total   time.Duration // qemu start to exit
	wall    time.Duration // the whole boot, initramfs included
	jobs    []*jobResult

	notes        []string  // boots that crashed in the emulator and were run again
	out          io.Writer // where the jobs' output goes
	mu           sync.Mutex
	passed, fail int // "--- PASS:" and "--- FAIL:" lines of go test -v, subtests included
}

// reset forgets the jobs' results of a boot that is run again.
func (r *bootReport) reset() {
	for _, j := range r.jobs {
		*j = jobResult{name: j.name, state: "NOT RUN", testMode: j.testMode}
	}
	r.mu.Lock()
	r.passed, r.fail = 0, 0
	r.mu.Unlock()
}

var testLineRe = regexp.MustCompile(`^\s*--- (PASS|FAIL): `)

// countTest counts a go test -v result line.
func (r *bootReport) countTest(l string) {
	m := testLineRe.FindStringSubmatch(l)
	if m == nil {
		return
	}
	r.mu.Lock()
	if m[1] == "PASS" {
		r.passed++
	} else {
		r.fail++
	}
	r.mu.Unlock()
}

func (r *bootReport) print(w io.Writer) bool {
	ok := r.err == nil
	if r.kernel != nil {
		fmt.Fprintf(w, "vmrig: kernel %s: Debian %s %s %s (%s): prepare %s, boot %s, modules %s, qemu total %s\n",
			r.label, r.kernel.Suite, r.kernel.Package, r.kernel.Version, r.kernel.Release,
			r.prepare.Round(100*time.Millisecond), r.boot.Round(100*time.Millisecond),
			r.modules.Round(100*time.Millisecond), r.total.Round(100*time.Millisecond))
	} else {
		fmt.Fprintf(w, "vmrig: kernel %s:\n", r.label)
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "vmrig: kernel %s: NOTE: %s\n", r.label, n)
	}
	if r.err != nil {
		first, rest, _ := strings.Cut(r.err.Error(), "\n")
		if rest != "" {
			first = strings.TrimSuffix(first, " Last console lines:") + " (the console's last lines are in the log above)"
		}
		fmt.Fprintf(w, "vmrig: kernel %s: ERROR: %s\n", r.label, first)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  JOB\tRESULT\tEXIT\tSECONDS\n")
	for _, j := range r.jobs {
		if j.state != "PASS" {
			ok = false
		}
		exit := fmt.Sprint(j.exit)
		if j.state == "NOT RUN" || j.state == "HUNG" || j.state == "CRASHED" {
			exit = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.1f\n", j.name, j.state, exit, j.seconds)
	}
	tw.Flush()
	jobsOK := 0
	for _, j := range r.jobs {
		if j.state == "PASS" {
			jobsOK++
		}
	}
	fmt.Fprintf(w, "vmrig: kernel %s summary: jobs %d of %d passed; go tests (subtests included) %d passed, %d failed; wall %s\n",
		r.label, jobsOK, len(r.jobs), r.passed, r.fail, r.wall.Round(time.Second))
	return ok
}

// lockCache takes an exclusive flock on the cache directory.
func lockCache(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		logf("waiting for another vmrig to finish provisioning %s", dir)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("cache lock: %w", err)
		}
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}
