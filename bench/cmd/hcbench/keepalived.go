package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs"
)

// kaVIP is keepalived's virtual address for service i, apart from the
// Monitor's (which it leaves in the kernel when it stops).
func kaVIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 98, byte(i >> 8), byte(i)}) }

// keepalivedConfig is the same services as the Monitor's: perService real
// servers per virtual_server, delay_loop the interval, a 1 s connect
// timeout, no retry.
func keepalivedConfig(cfg config, n int) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id hcbench\n}\n")
	secs := int(cfg.interval / time.Second)
	if secs < 1 {
		secs = 1
	}
	for i := 0; i < n; i++ {
		if i%perService == 0 {
			if i > 0 {
				b.WriteString("}\n")
			}
			fmt.Fprintf(&b, "virtual_server %s 80 {\n  delay_loop %d\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", kaVIP(i/perService), secs)
		}
		fmt.Fprintf(&b, "  real_server 127.0.0.1 %d {\n    weight 1\n", cfg.port+i)
		if cfg.kind == "http" {
			b.WriteString("    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n      connect_timeout 1\n      retry 0\n    }\n")
		} else {
			b.WriteString("    TCP_CHECK {\n      connect_timeout 1\n      retry 0\n    }\n")
		}
		b.WriteString("  }\n")
	}
	if n > 0 {
		b.WriteString("}\n")
	}
	return b.String()
}

// keepalivedProc is a running keepalived -C and its checker child.
type keepalivedProc struct {
	cmd     *exec.Cmd
	checker string // pid
	log     *bytes.Buffer
}

func startKeepalived(bin, dir string, cfg config, n int) (*keepalivedProc, error) {
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(keepalivedConfig(cfg, n)), 0o644); err != nil {
		return nil, err
	}
	cpid := filepath.Join(dir, "checkers.pid")
	os.Remove(cpid)
	cmd := exec.Command(bin, "--dont-fork", "--log-console", "--check", "--use-file", conf,
		"--pid", filepath.Join(dir, "keepalived.pid"), "--checkers_pid", cpid)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &keepalivedProc{cmd: cmd, log: &out}
	for range 100 {
		b, err := os.ReadFile(cpid)
		if pid := strings.TrimSpace(string(b)); err == nil && pid != "" {
			k.checker = pid
			return k, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	k.stop()
	return nil, fmt.Errorf("keepalived's checker did not start:\n%s", out.String())
}

func (k *keepalivedProc) alive() bool {
	return syscall.Kill(k.cmd.Process.Pid, 0) == nil && k.checker != "" && procCPU(k.checker) >= 0
}

func (k *keepalivedProc) stop() {
	k.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
}

// procCPU is utime+stime of /proc/PID/stat, or -1.
func procCPU(pid string) time.Duration {
	cpu, _ := procTimes(pid)
	return cpu
}

// procTimes is utime+stime and stime of /proc/PID/stat, or -1.
func procTimes(pid string) (cpu, sys time.Duration) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1, -1
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return -1, -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux x86
	return time.Duration(u+st) * time.Second / hz, time.Duration(st) * time.Second / hz
}

func runKeepalived(srv *servers, cfg config, bin string) (result, error) {
	r := result{name: "keepalived", n: cfg.n, window: cfg.dur, heap: -1, ownChecks: -1}
	dir, err := os.MkdirTemp("", "hcbench-keepalived")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)

	// The checker's resident size with one real server, the base.
	k, err := startKeepalived(bin, dir, cfg, 1)
	if err != nil {
		return r, err
	}
	time.Sleep(2 * time.Second)
	r.baseRSS = vmRSS(k.checker)
	k.stop()

	k, err = startKeepalived(bin, dir, cfg, cfg.n)
	if err != nil {
		return r, err
	}
	defer k.stop()
	time.Sleep(cfg.warm)
	if !k.alive() {
		return r, fmt.Errorf("keepalived's checker exited:\n%s", k.log.String())
	}
	if _, err := srv.call("start"); err != nil {
		return r, err
	}
	th0 := taskStats(k.checker)
	cpu0, sys0 := procTimes(k.checker)
	parent0 := procCPU(strconv.Itoa(k.cmd.Process.Pid))
	time.Sleep(cfg.dur)
	cpu1, sys1 := procTimes(k.checker)
	th1 := taskStats(k.checker)
	parent1 := procCPU(strconv.Itoa(k.cmd.Process.Pid))
	if err := srv.stat(&r); err != nil {
		return r, err
	}
	r.rss = vmRSS(k.checker)
	if cpu0 < 0 || cpu1 < 0 {
		return r, fmt.Errorf("keepalived's checker exited:\n%s", k.log.String())
	}
	r.cpu, r.sys = cpu1-cpu0, sys1-sys0
	r.extra = fmt.Sprintf(" parent_cpu=%.2fs", (parent1-parent0).Seconds()) + threadReport(th0, th1, r.checks)
	if !cfg.fake {
		r.extra += fmt.Sprintf(" weight0=%d", zeroWeights(cfg.n))
	}
	return r, nil
}

// zeroWeights counts keepalived's destinations with weight 0 (failed).
func zeroWeights(n int) int {
	c, err := ipvs.New()
	if err != nil {
		return -1
	}
	defer c.Close()
	zero := 0
	for i := 0; i*perService < n; i++ {
		ds, err := c.Destinations(context.Background(), ipvs.Service{Protocol: ipvs.TCP, Address: kaVIP(i), Port: 80})
		if err != nil {
			return -1
		}
		for _, d := range ds {
			if d.Weight == 0 {
				zero++
			}
		}
	}
	return zero
}
