//go:build linux

// Command guestinit is the /init of the vmrig initramfs. It is built by the
// host rig with CGO_ENABLED=0, so it is static and needs nothing else.
//
// It mounts the pseudo file systems, points the kernel's module helper at
// /sbin/modprobe, brings up lo, preloads the configured modules, runs each
// job with its own timeout and powers the machine off. Job output and the
// machine-readable markers go to the job channel, /dev/hvc0 (a virtio
// console, the default) or /dev/ttyS1 with vmrig.channel=serial on the kernel
// command line (see openChannel); the console (/dev/ttyS0) only carries
// kernel messages and init diagnostics.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ipvs-go/ipvs/internal/vmrig/spec"
)

// out is the job channel; console is the kernel console.
var (
	out     io.Writer = os.Stdout
	outFile *os.File
	console io.Writer = os.Stderr
	outMu   sync.Mutex
)

func main() {
	defer powerOff()
	defer func() {
		if r := recover(); r != nil {
			logf("vmrig init: panic: %v", r)
		}
	}()
	if err := run(); err != nil {
		logf("vmrig init: %v", err)
		marker("%s error=%q", spec.MarkerDone, err.Error())
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(console, format+"\n", args...)
}

// marker writes one protocol line on the job channel.
func marker(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(out, format+"\n", args...)
}

func run() error {
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", syscall.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", syscall.MS_NOSUID | syscall.MS_NOEXEC, "ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777"},
		{"tmpfs", "/tmp", "tmpfs", 0, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=0755"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
	}
	for _, m := range mounts {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil {
			logf("vmrig init: mount %s: %v", m.dst, err)
		}
	}
	_ = os.Symlink("/proc/self/fd", "/dev/fd")
	_ = os.Symlink("/proc/self/fd/0", "/dev/stdin")
	_ = os.Symlink("/proc/self/fd/1", "/dev/stdout")
	_ = os.Symlink("/proc/self/fd/2", "/dev/stderr")
	_ = os.MkdirAll("/run/netns", 0o755)
	_ = os.MkdirAll("/var/run", 0o755)

	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		console = f
	}
	if f, err := openChannel(); err == nil {
		makeRaw(f)
		out, outFile = f, f
	} else {
		logf("vmrig init: %v (job output goes to the console)", err)
		out = console
	}

	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	release := cstr(uts.Release[:])
	marker("%s kernel=%s", spec.MarkerInfo, release)
	logf("vmrig init: kernel %s", release)

	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte("/sbin/modprobe\n"), 0o644); err != nil {
		logf("vmrig init: set kernel.modprobe: %v", err)
	}
	_ = os.WriteFile("/proc/sys/kernel/hostname", []byte("vmrig\n"), 0o644)
	if b, err := exec.Command("/bin/ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		marker("%s lo-up-error=%q", spec.MarkerInfo, strings.TrimSpace(string(b))+" "+err.Error())
	}

	b, err := os.ReadFile(spec.JobsPath)
	if err != nil {
		return err
	}
	var cfg spec.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("parse %s: %w", spec.JobsPath, err)
	}

	t0 := time.Now()
	var failed []string
	for _, m := range cfg.Modules {
		if b, err := exec.Command("/sbin/modprobe", m).CombinedOutput(); err != nil {
			failed = append(failed, m)
			marker("%s modprobe-failed=%s err=%q", spec.MarkerInfo, m, strings.TrimSpace(string(b))+" "+err.Error())
		}
	}
	marker("%s modules-loaded=%d modules-failed=%d seconds=%.1f", spec.MarkerInfo,
		len(cfg.Modules)-len(failed), len(failed), time.Since(t0).Seconds())

	env := []string{
		"PATH=/payload:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "TMPDIR=/tmp", "USER=root", "LOGNAME=root", "TERM=dumb",
		"VMRIG_GUEST=1", "VMRIG_KERNEL=" + release,
	}
	env = append(env, cfg.Env...)
	_ = os.MkdirAll("/root", 0o700)

	for _, j := range cfg.Jobs {
		runJob(j, env)
	}
	marker("%s", spec.MarkerDone)
	return nil
}

// lineTracker remembers whether the last byte written ended a line, so that
// markers always start at the beginning of a line.
type lineTracker struct {
	atBOL bool
}

func (t *lineTracker) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	outMu.Lock()
	defer outMu.Unlock()
	n, err := out.Write(p)
	t.atBOL = p[len(p)-1] == '\n'
	return n, err
}

func runJob(j spec.Job, env []string) {
	dir := filepath.Join("/jobs", j.Name)
	_ = os.MkdirAll(dir, 0o777)
	marker("%s %s", spec.MarkerStart, j.Name)
	start := time.Now()

	ctx := context.Background()
	cancel := context.CancelFunc(func() {})
	if j.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, j.Timeout)
	}
	defer cancel()

	tr := &lineTracker{atBOL: true}
	r, w, err := os.Pipe()
	if err != nil {
		marker("%s %s exit=127 seconds=0 error=%q", spec.MarkerResult, j.Name, err.Error())
		return
	}
	cmd := exec.Command(j.Argv[0], j.Argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(env, "VMRIG_JOB="+j.Name)
	cmd.Stdout, cmd.Stderr = w, w
	// Own process group, so a timeout kills the job's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(tr, r)
		close(copied)
	}()

	code, timedOut := 0, false
	if err := cmd.Start(); err != nil {
		w.Close()
		<-copied
		r.Close()
		fmt.Fprintf(tr, "vmrig: cannot start %s: %v\n", j.Argv[0], err)
		code = 127
	} else {
		w.Close()
		waitErr := make(chan error, 1)
		go func() { waitErr <- cmd.Wait() }()
		select {
		case err = <-waitErr:
		case <-ctx.Done():
			timedOut = true
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT) // Go programs dump goroutines
			select {
			case err = <-waitErr:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				err = <-waitErr
			}
		}
		// Children that kept the pipe open must not block us forever.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
		}
		r.Close()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		default:
			code = 127
		}
	}
	secs := time.Since(start).Seconds()
	if !tr.atBOL {
		_, _ = tr.Write([]byte("\n"))
	}
	if timedOut {
		marker("%s %s exit=%d seconds=%.1f timeout=%s", spec.MarkerResult, j.Name, code, secs, j.Timeout)
		return
	}
	marker("%s %s exit=%d seconds=%.1f", spec.MarkerResult, j.Name, code, secs)
}

// openChannel opens the job channel named by vmrig.channel= on the kernel
// command line: "virtio" (/dev/hvc0 of a virtio console, the default) or
// "serial" (/dev/ttyS1, slow: about 240 KB/s under TCG).
func openChannel() (*os.File, error) {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	dev := "/dev/hvc0"
	if strings.Contains(string(cmdline), "vmrig.channel=serial") {
		dev = "/dev/ttyS1"
	} else {
		for _, m := range []string{"virtio_pci", "virtio_console"} {
			if b, err := exec.Command("/sbin/modprobe", m).CombinedOutput(); err != nil {
				logf("vmrig init: modprobe %s: %v %s", m, err, b)
			}
		}
	}
	var err error
	for i := 0; i < 100; i++ {
		var f *os.File
		if f, err = os.OpenFile(dev, os.O_RDWR|syscall.O_NOCTTY, 0); err == nil {
			return f, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("open job channel: %w", err)
}

// cstr is the NUL-terminated string in b: syscall.Utsname's fields are int8
// on amd64, arm64 and 386 but uint8 on arm (GOARCH=arm go build ./... in CI).
func cstr[T int8 | uint8](b []T) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// makeRaw switches the job channel's terminal (hvc0 or ttyS1) to raw mode
// (no \n -> \r\n, no echo).
func makeRaw(f *os.File) {
	var t syscall.Termios
	fd := f.Fd()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return
	}
	t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	t.Oflag &^= syscall.OPOST
	t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	t.Cflag &^= syscall.CSIZE | syscall.PARENB | cbaud
	t.Cflag |= syscall.CS8 | syscall.B115200
	_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&t)))
}

func powerOff() {
	if outFile != nil {
		// tcdrain: wait until the job channel has sent everything.
		_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, outFile.Fd(), tcsbrk, 1)
	}
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("vmrig init: power off: %v", err)
	}
	// If power off failed, returning from pid 1 panics the kernel, and
	// panic=-1 with -no-reboot makes qemu exit.
}

// Constants missing from package syscall (asm-generic/termbits.h, ioctls.h).
const (
	cbaud  = 0x100f
	tcsbrk = 0x5409
)
