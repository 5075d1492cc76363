//go:build linux

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs/internal/vmrig/spec"
)

// buildGuestInit compiles the static guest init and returns its path.
func buildGuestInit(cache string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the guest init needs the go command on PATH: %w", err)
	}
	final := filepath.Join(cache, "guestinit")
	out := fmt.Sprintf("%s.%d.tmp", final, os.Getpid())
	defer os.Remove(out)
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "github.com/ipvs-go/ipvs/internal/vmrig/guestinit")
	// Build from the source next to this file when it is there, so the rig
	// also works when started from outside the module directory.
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "guestinit"); exists(dir) {
			cmd.Dir = dir
			cmd.Args = []string{goBin, "build", "-trimpath", "-o", out, "."}
		}
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, b)
	}
	return final, os.Rename(out, final)
}

// payloadArchive writes the per-run part of the initramfs: /init, the job
// list, the payload binaries (with their libraries) and the extra files.
func payloadArchive(o *options, initBin string, w io.Writer) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	cw := newCpioWriter(zw)
	cw.File("init", initBin, 0o755)
	cfg := spec.Config{Modules: o.modules, Env: o.env}
	for _, j := range o.jobs {
		if j.Host != "" {
			if err := addBinary(cw, j.Argv[0], j.Host); err != nil {
				return err
			}
		}
		cfg.Jobs = append(cfg.Jobs, spec.Job{Name: j.Name, Argv: j.Argv, Timeout: j.Timeout})
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	cw.Bytes(spec.JobsPath, 0o644, b)
	for _, f := range o.files {
		host, guest, _ := strings.Cut(f, ":")
		err := filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(host, p)
			g := filepath.Join(guest, rel)
			switch {
			case d.IsDir():
				cw.Dir(g, 0o755)
			case d.Type()&fs.ModeSymlink != 0:
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				cw.Symlink(g, t)
			case d.Type().IsRegular():
				cw.File(g, p, 0)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("-file %s: %w", f, err)
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// writeInitrd concatenates the cached base archive and the payload archive;
// the kernel unpacks concatenated compressed cpio archives in order.
func writeInitrd(o *options, base, initBin, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, in)
	in.Close()
	if err != nil {
		return err
	}
	if err := payloadArchive(o, initBin, f); err != nil {
		return err
	}
	return f.Close()
}

// lockedWriter serialises writes to the host stdout.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var stdout = &lockedWriter{w: os.Stdout}

func bootOne(o *options, k *Kernel, base, initBin string, rep *bootReport) {
	for i, j := range o.jobs {
		for _, a := range j.Argv[1:] {
			if a == "-test.v" || strings.HasPrefix(a, "-test.v=") || a == "--test.v" {
				rep.jobs[i].testMode = true
			}
		}
	}
	for attempt := 1; ; attempt++ {
		err := boot(o, k, base, initBin, rep)
		var early *earlyBootError
		if errors.As(err, &early) && attempt < maxBoots {
			// No job ran: the kernel itself failed to come up (a
			// TCG guest's boot can oops, rarely, patching its own
			// code). Boot again; the failure stays in the log.
			logf("kernel %s: boot %d of %d failed, no job ran; booting again: %v", k.Label, attempt, maxBoots, err)
			continue
		}
		var patch *patchOopsError
		if errors.As(err, &patch) && attempt < maxBoots {
			// The emulator, not a test: every job runs again on a
			// new boot, and the summary says so.
			note := fmt.Sprintf("boot %d of %d crashed in TCG's code patching race (%s) while job %q ran; every job ran again on boot %d",
				attempt, maxBoots, patch.oops, patch.job, attempt+1)
			logf("kernel %s: %s: %v", k.Label, note, err)
			fmt.Fprintf(rep.out, "vmrig: kernel %s: %s\n", k.Label, note)
			rep.reset()
			rep.notes = append(rep.notes, note)
			continue
		}
		if err != nil {
			rep.err = err
			logf("kernel %s: %v", k.Label, err)
		}
		return
	}
}

// maxBoots is how many times a kernel is booted when it fails before its
// init starts.
const maxBoots = 3

// A patchOopsError is a guest that died of an int3 trap in kernel code.
// The kernel changes its own code at run time (static keys: netfilter
// hooks in a new namespace, the first IPv6 connect's hash secret) with
// an int3 written over the first byte while the rest is rewritten, and
// every CPU synchronised before and after. Under qemu's multi-threaded
// TCG another vCPU can still run the int3 after the kernel stopped
// expecting it (seen once in a job on 6.12: "Oops: int3" in
// inet6_ehashfn, in a 5-byte NOP). The kernel's text holds no int3 of
// its own, and the tests use no kprobes, so that oops is the emulator's.
type patchOopsError struct {
	err  error
	oops string // the oops line and the RIP line after it
	job  string
}

func (e *patchOopsError) Error() string { return e.err.Error() }
func (e *patchOopsError) Unwrap() error { return e.err }

// int3OopsRe matches the kernel's report of an int3 trap in kernel mode:
// "int3: 0000 [#1] SMP NOPTI" before 6.9, "Oops: int3: 0000 [#1] ..."
// since; an int3 in user space is a SIGTRAP and prints nothing.
var int3OopsRe = regexp.MustCompile(`(?m)^\[ *[0-9.]+\] (Oops: )?int3: [0-9a-f]{4} \[#[0-9]+\].*$`)

// ripRe matches the first RIP line of a kernel oops.
var ripRe = regexp.MustCompile(`(?m)^\[ *[0-9.]+\] RIP: 0010:(\S+)`)

// int3Oops returns, for a console log that holds a kernel-mode int3
// oops, where it struck ("inet6_ehashfn+0x39/0x210"); else "".
func int3Oops(consoleLog string) string {
	b, err := os.ReadFile(consoleLog)
	if err != nil {
		return ""
	}
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	b = ansiRe.ReplaceAll(b, nil)
	loc := int3OopsRe.FindIndex(b)
	if loc == nil {
		return ""
	}
	where := "int3"
	if m := ripRe.FindSubmatch(b[loc[1]:]); m != nil {
		where = "int3 at " + string(m[1])
	}
	return where
}

// An earlyBootError is a boot that failed before the guest's init
// started: no job ran.
type earlyBootError struct{ err error }

func (e *earlyBootError) Error() string { return e.err.Error() }
func (e *earlyBootError) Unwrap() error { return e.err }

func boot(o *options, k *Kernel, base, initBin string, rep *bootReport) (err error) {
	stdout := rep.out
	dir, err := os.MkdirTemp("", "vmrig-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			logf("kernel %s: run files kept in %s", k.Label, dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	initrd := filepath.Join(dir, "initrd.gz")
	t0 := time.Now()
	if err := writeInitrd(o, base, initBin, initrd); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if st, err := os.Stat(initrd); err == nil {
		logf("kernel %s: initramfs %.1f MB (payload part built in %s)", k.Label, float64(st.Size())/1e6, since(t0))
	}

	sock := filepath.Join(dir, "jobs.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer ln.Close()

	cmdline := "console=ttyS0 quiet panic=-1 mitigations=off vmrig.channel=" + o.channel
	if o.append != "" {
		cmdline += " " + o.append
	}
	args := []string{
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-m", strconv.Itoa(o.mem), "-smp", strconv.Itoa(o.smp),
		"-nographic", "-no-reboot", "-no-user-config",
		// Never give the guest a network device: lab traffic must stay inside.
		"-nodefaults", "-nic", "none",
		"-kernel", k.Vmlinuz, "-initrd", initrd, "-append", cmdline,
		"-serial", "stdio", // ttyS0: console
		"-chardev", "socket,id=jobs,path=" + sock,
	}
	if o.channel == "serial" {
		args = append(args, "-serial", "chardev:jobs") // ttyS1
	} else {
		args = append(args, "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=jobs") // hvc0
	}
	consoleLog := filepath.Join(dir, "console.log")
	clog, err := os.Create(consoleLog)
	if err != nil {
		return err
	}
	defer clog.Close()
	var consoleW io.Writer = clog
	if o.verbose {
		consoleW = io.MultiWriter(clog, &prefixWriter{w: os.Stderr, prefix: "[console] ", bol: true})
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = consoleW, consoleW
	// qemu must not outlive the rig (CI cancellation, ^C).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf("kernel %s: booting %s (Debian %s)", k.Label, k.Release, k.Suite)
	qStart := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start qemu: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addQemu(cmd.Process)
	defer removeQemu(cmd.Process)
	defer func() {
		rep.total = time.Since(qStart)
	}()

	type acc struct {
		c   net.Conn
		err error
	}
	accepted := make(chan acc, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- acc{c, err}
	}()
	var conn net.Conn
	select {
	case a := <-accepted:
		if a.err != nil {
			_ = cmd.Process.Kill()
			<-exited
			return a.err
		}
		conn = a.c
	case err := <-exited:
		return fmt.Errorf("qemu exited before connecting the job channel: %v\n%s", err, tail(consoleLog, 30))
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("qemu did not connect the job channel within 60s\n%s", tail(consoleLog, 30))
	}
	defer conn.Close()

	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(conn, 64<<10)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if err != nil {
				return
			}
		}
	}()

	jobs := map[string]*jobResult{}
	timeouts := map[string]time.Duration{}
	for i, j := range rep.jobs {
		jobs[j.name] = j
		timeouts[j.name] = o.jobs[i].Timeout
	}
	var cur *jobResult
	done, sawInit := false, false
	var doneAt time.Time
	overall := time.NewTimer(o.timeout)
	defer overall.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()

	kill := func(reason string) {
		_ = cmd.Process.Kill()
		<-exited
		exited = nil
		what := "before the guest init started (kernel did not come up)"
		if sawInit {
			what = "before the first job started"
		}
		if cur != nil {
			cur.state = "HUNG"
			cur.seconds = time.Since(cur.started).Seconds()
			what = fmt.Sprintf("while job %q was running (for %s)", cur.name, since(cur.started))
		} else if done {
			what = "after all jobs finished (power off did not complete)"
		}
		err = fmt.Errorf("%s %s; qemu killed. Last console lines:\n%s", reason, what, tail(consoleLog, 30))
	}

	for err == nil && exited != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			l = strings.TrimRight(l, "\r\n")
			if strings.HasPrefix(l, spec.MarkerPrefix) {
				fmt.Fprintln(stdout, l)
				f := strings.Fields(l)
				kv := fieldsKV(f)
				switch f[0] {
				case spec.MarkerInfo:
					if _, ok := kv["kernel"]; ok {
						sawInit = true
						rep.boot = time.Since(qStart)
						logf("kernel %s: guest init up after %s (uname -r %s)", k.Label, since(qStart), kv["kernel"])
					}
					if s, ok := kv["modules-loaded"]; ok {
						sec, _ := strconv.ParseFloat(kv["seconds"], 64)
						rep.modules = time.Duration(sec * float64(time.Second))
						logf("kernel %s: preloaded %s modules (%s failed) in %ss", k.Label, s, kv["modules-failed"], kv["seconds"])
					}
				case spec.MarkerStart:
					if len(f) > 1 {
						cur = jobs[f[1]]
						if cur != nil {
							cur.started = time.Now()
						}
					}
				case spec.MarkerResult:
					if len(f) > 1 && jobs[f[1]] != nil {
						j := jobs[f[1]]
						j.exit, _ = strconv.Atoi(kv["exit"])
						j.seconds, _ = strconv.ParseFloat(kv["seconds"], 64)
						switch {
						case kv["timeout"] != "":
							j.state = "TIMEOUT"
							fmt.Fprintf(stdout, "vmrig: TIMEOUT: job %q on kernel %s did not finish within its timeout %s and was killed (SIGQUIT, then SIGKILL after 5s)\n", j.name, k.Label, kv["timeout"])
						case j.exit != 0:
							j.state = "FAIL"
						case o.requireTests && j.testMode && !o.requireRe.MatchString(j.output.String()):
							j.state = "NO TESTS"
							fmt.Fprintf(stdout, "vmrig: job %q on kernel %s exited 0 but no output line matches %q (-require-tests)\n",
								j.name, k.Label, o.requireRe.String())
						default:
							j.state = "PASS"
						}
						logf("kernel %s: job %s %s after %.1fs", k.Label, j.name, j.state, j.seconds)
						j.output.Reset()
						cur = nil
					}
				case spec.MarkerDone:
					done = true
					if _, e, ok := strings.Cut(l, " error="); ok {
						if u, uerr := strconv.Unquote(e); uerr == nil {
							e = u
						}
						err = fmt.Errorf("guest init failed: %s", e)
					}
				}
				continue
			}
			fmt.Fprintln(stdout, l)
			rep.countTest(l)
			if cur != nil && cur.testMode && o.requireTests {
				cur.output.WriteString(l)
				cur.output.WriteByte('\n')
			}
		case <-tick.C:
			if done && doneAt.IsZero() {
				doneAt = time.Now()
			}
			if done && time.Since(doneAt) > 30*time.Second {
				// All results are in; the power off just did not happen.
				logf("kernel %s: guest did not power off 30s after the last job; killing qemu", k.Label)
				_ = cmd.Process.Kill()
				<-exited
				exited = nil
				continue
			}
			// Host-side watchdog in case the guest itself stops responding.
			if cur != nil && time.Since(cur.started) > timeouts[cur.name]+2*time.Minute {
				kill(fmt.Sprintf("job %q exceeded its timeout %s by 2m without the guest reporting;", cur.name, timeouts[cur.name]))
			}
		case <-overall.C:
			kill(fmt.Sprintf("boot timeout %s reached", o.timeout))
		case e := <-exited:
			exited = nil
			// Drain what the guest wrote before it stopped.
			if lines != nil {
				for l := range lines {
					fmt.Fprint(stdout, strings.TrimRight(l, "\r\n")+"\n")
					rep.countTest(l)
					if strings.HasPrefix(l, spec.MarkerDone) {
						done = true
					}
				}
				lines = nil
			}
			if !done {
				what := "before the guest init started"
				if cur != nil {
					cur.state = "CRASHED"
					what = fmt.Sprintf("while job %q was running", cur.name)
				} else if sawInit {
					what = "between jobs"
				}
				err = fmt.Errorf("guest stopped (qemu: %v) %s; kernel panic? Last console lines:\n%s", e, what, tail(consoleLog, 40))
				if !sawInit && cur == nil {
					err = &earlyBootError{err}
				} else if oops := int3Oops(consoleLog); oops != "" {
					job := "(between jobs)"
					if cur != nil {
						job = cur.name
					}
					err = &patchOopsError{err: err, oops: oops, job: job}
				}
			}
		}
	}
	if exited != nil {
		// The guest reported an error; don't leave qemu behind.
		_ = cmd.Process.Kill()
		<-exited
	}
	return err
}

func fieldsKV(f []string) map[string]string {
	kv := map[string]string{}
	for _, x := range f[1:] {
		if k, v, ok := strings.Cut(x, "="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			kv[k] = v
		}
	}
	return kv
}

var ansiRe = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|c)`)

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	b = ansiRe.ReplaceAll(b, nil)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return "  | " + strings.Join(ls, "\n  | ")
}

// prefixWriter prefixes every line.
type prefixWriter struct {
	w      io.Writer
	prefix string
	bol    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if c == '\r' {
			continue
		}
		if p.bol {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.bol = c == '\n'
	}
	_, err := p.w.Write(out)
	return len(b), err
}

var (
	qemuMu  sync.Mutex
	running = map[*os.Process]bool{} // the qemus of the boots under way
)

func addQemu(p *os.Process) {
	qemuMu.Lock()
	running[p] = true
	qemuMu.Unlock()
}

func removeQemu(p *os.Process) {
	qemuMu.Lock()
	delete(running, p)
	qemuMu.Unlock()
}

// killQemuOnSignal makes SIGINT/SIGTERM kill the running qemus before the
// rig exits.
func killQemuOnSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-c
		qemuMu.Lock()
		for p := range running {
			_ = p.Kill()
		}
		qemuMu.Unlock()
		logf("%v: qemu killed, exiting", sig)
		os.Exit(1)
	}()
}
