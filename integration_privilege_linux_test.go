//go:build linux

package ipvs_test

// Capabilities: a Client of the process's own namespace needs CAP_NET_ADMIN
// alone, one bound to another namespace CAP_SYS_ADMIN too. Capabilities are
// dropped in a child process, the test binary run again (TestPrivilegeChild)
// from a thread that has joined a namespace of the test and lost the other
// capabilities from its bounding set: exec as root computes the permitted set
// from it.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

// privilegeChildEnv selects TestPrivilegeChild's mode in a child process.
const privilegeChildEnv = "IPVS_TEST_PRIVILEGE_CHILD"

// runPrivilegeChild runs TestPrivilegeChild in mode, in ns, with only the
// capabilities keep in its bounding set and extra as its fds 3 and on, and
// fails unless the child's test passed.
func runPrivilegeChild(t *testing.T, ns *netNS, mode string, keep []int, extra ...*os.File) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(exe, "-test.run=^TestPrivilegeChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), privilegeChildEnv+"="+mode)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = extra
	err = ns.do(func() error {
		// The thread is never unlocked (see do): it keeps the smaller
		// bounding set to its end, and the child, forked from it, too.
		for c := 0; c <= last; c++ {
			if slices.Contains(keep, c) {
				continue
			}
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return os.NewSyscallError("prctl(PR_CAPBSET_DROP)", err)
			}
		}
		// Exec as root grants the inheritable set besides the bounding
		// set: clear it.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return os.NewSyscallError("capget", err)
		}
		data[0].Inheritable, data[1].Inheritable = 0, 0
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return os.NewSyscallError("capset", err)
		}
		return cmd.Run()
	})
	t.Logf("child %s:\n%s", mode, out.String())
	if err != nil {
		t.Fatalf("child %s: %v", mode, err)
	}
	if !strings.Contains(out.String(), "--- PASS: TestPrivilegeChild") {
		t.Fatalf("child %s did not pass", mode)
	}
}

// capEff returns the calling process's effective capabilities.
func capEff(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return 0
}

// wantCaps fails the test unless the process has CAP_NET_ADMIN exactly if
// netAdmin, and CAP_SYS_ADMIN not.
func wantCaps(t *testing.T, netAdmin bool) {
	t.Helper()
	eff := capEff(t)
	if has := eff&(1<<unix.CAP_NET_ADMIN) != 0; has != netAdmin {
		t.Fatalf("CapEff %#x: CAP_NET_ADMIN %v, want %v", eff, has, netAdmin)
	}
	if eff&(1<<unix.CAP_SYS_ADMIN) != 0 {
		t.Fatalf("CapEff %#x: CAP_SYS_ADMIN present", eff)
	}
}

// TestPrivilegeChild is the child process of the TestIntegrationPrivilege
// tests; run directly, it skips.
func TestPrivilegeChild(t *testing.T) {
	mode := os.Getenv(privilegeChildEnv)
	if mode == "" {
		t.Skip("the child process of the TestIntegrationPrivilege tests")
	}
	ctx := testCtx(t)
	switch mode {
	case "netadmin":
		wantCaps(t, true)
		c, err := ipvs.New()
		if err != nil {
			t.Fatalf("New with CAP_NET_ADMIN only: %v", err)
		}
		defer c.Close()
		s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.31.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
		d := ipvs.Destination{Address: addr("10.31.1.1"), Port: 8080, Weight: 1}
		if err := c.CreateService(ctx, s); err != nil {
			t.Fatalf("CreateService: %v", err)
		}
		if err := c.CreateDestination(ctx, s, d); err != nil {
			t.Fatalf("CreateDestination: %v", err)
		}
		// Every read, from many goroutines at once, so that sockets are
		// dialled on threads other than New's.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := c.Info(ctx); err != nil {
					t.Errorf("Info: %v", err)
				}
				if _, err := c.Timeouts(ctx); err != nil {
					t.Errorf("Timeouts: %v", err)
				}
				if svcs, err := c.Services(ctx); err != nil || len(svcs) != 1 {
					t.Errorf("Services = %d services, %v; want 1", len(svcs), err)
				}
				if ds, err := c.Destinations(ctx, s); err != nil || len(ds) != 1 {
					t.Errorf("Destinations = %d, %v; want 1", len(ds), err)
				}
				if vs, err := c.VirtualServices(ctx); err != nil || len(vs) != 1 || len(vs[0].Destinations) != 1 {
					t.Errorf("VirtualServices = %+v, %v; want the service and its destination", vs, err)
				}
				if _, err := c.SyncDaemons(ctx); err != nil {
					t.Errorf("SyncDaemons: %v", err)
				}
				if _, err := c.Service(ctx, s); err != nil {
					t.Errorf("Service: %v", err)
				}
			})
		}
		wg.Wait()
		if err := c.DeleteService(ctx, s); err != nil {
			t.Errorf("DeleteService: %v", err)
		}
	case "none":
		wantCaps(t, false)
		c, err := ipvs.New()
		if err == nil {
			defer c.Close()
			_, err = c.Info(ctx)
		}
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
			t.Errorf("New and Info without CAP_NET_ADMIN: %v, want os.ErrPermission naming CAP_NET_ADMIN", err)
		}
	case "netns":
		// fd 3 is another namespace than the process's.
		wantCaps(t, true)
		for _, opt := range []struct {
			name string
			o    ipvs.Option
		}{{"WithNetNSPath", ipvs.WithNetNSPath("/proc/self/fd/3")}, {"WithNetNS", ipvs.WithNetNS(3)}} {
			c, err := ipvs.New(opt.o)
			if err == nil {
				c.Close()
				t.Errorf("New(%s) of another namespace without CAP_SYS_ADMIN succeeded", opt.name)
				continue
			}
			msg := err.Error()
			var e *ipvs.Error
			if !errors.As(err, &e) || !errors.Is(err, os.ErrPermission) || !strings.Contains(msg, "CAP_SYS_ADMIN") || strings.Contains(msg, "CAP_NET_ADMIN") {
				t.Errorf("New(%s) of another namespace without CAP_SYS_ADMIN: %v; want an *Error matching os.ErrPermission that names CAP_SYS_ADMIN and not CAP_NET_ADMIN", opt.name, err)
			}
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// TestIntegrationPrivilegeNetAdminOnly: New without options and every call
// work with CAP_NET_ADMIN alone, sockets dialled from any thread.
func TestIntegrationPrivilegeNetAdminOnly(t *testing.T) {
	ns := newNetNS(t)
	ns.client(t) // skips without IPVS
	runPrivilegeChild(t, ns, "netadmin", []int{unix.CAP_NET_ADMIN})
}

// TestIntegrationPrivilegeNoNetAdmin: without CAP_NET_ADMIN the error says
// that it is missing.
func TestIntegrationPrivilegeNoNetAdmin(t *testing.T) {
	ns := newNetNS(t)
	ns.client(t)
	runPrivilegeChild(t, ns, "none", nil)
}

// TestIntegrationPrivilegeOtherNetNS: binding to another namespace without
// CAP_SYS_ADMIN fails with an error that names it.
func TestIntegrationPrivilegeOtherNetNS(t *testing.T) {
	ns, other := newNetNS(t), newNetNS(t)
	ns.client(t)
	runPrivilegeChild(t, ns, "netns", []int{unix.CAP_NET_ADMIN}, other.f)
}

// openFDs counts the process's open file descriptors (the one reading the
// directory included).
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Error(err)
	}
	return len(es)
}

// TestIntegrationPrivilegeSocketBound: bursts of concurrent calls, some
// cancelled or cut short by deadlines, keep the open fds within the socket
// bound, and after Close and the calls' return every fd is closed.
func TestIntegrationPrivilegeSocketBound(t *testing.T) {
	ns := newNetNS(t)
	ctx := testCtx(t)
	// A first client lets the runtime open what it keeps open.
	c0 := ns.client(t)
	s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("10.32.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	mustCreate(t, ctx, c0, s)
	mustCreateDest(t, ctx, c0, s, ipvs.Destination{Address: addr("10.32.1.1"), Port: 80, Weight: 1})
	if _, err := c0.VirtualServices(ctx); err != nil {
		t.Fatal(err)
	}

	before := openFDs(t)
	const bound = 4
	c, err := ipvs.New(ipvs.WithNetNS(ns.fd), ipvs.WithMaxSockets(bound))
	if err != nil {
		t.Fatal(err)
	}
	// Each socket is two fds (the socket, its eventfd); a dial under way
	// holds two more for a moment (mdlayher/netlink's socket before its
	// duplicate, and the dialling thread's namespace), and the client the
	// namespace file.
	limit := before + 1 + bound*4

	var (
		sampling sync.WaitGroup
		stopped  = make(chan struct{})
		maxOpen  int
	)
	sampling.Go(func() {
		for {
			maxOpen = max(maxOpen, openFDs(t))
			select {
			case <-stopped:
				return
			default:
			}
		}
	})
	run := func(stop chan struct{}, n int) {
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				for i := 0; i < n; i++ {
					select {
					case <-stop:
						return
					default:
					}
					cctx, cancel := context.WithCancel(ctx)
					switch (w + i) % 5 {
					case 3:
						cancel()
					case 4:
						cancel()
						cctx, cancel = context.WithTimeout(ctx, time.Duration(50+w*10)*time.Microsecond)
					}
					var err error
					switch i % 3 {
					case 0:
						_, err = c.Info(cctx)
					case 1:
						_, err = c.VirtualServices(cctx)
					case 2:
						_, err = c.Destinations(cctx, s)
					}
					cancel()
					switch {
					case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
					case errors.Is(err, ipvs.ErrClosed) && errors.Is(err, net.ErrClosed) && stop != nil:
						return
					default:
						t.Errorf("call %d of worker %d: %v", i, w, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run(nil, 30)
	// Close in the middle of a burst.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { run(stop, 1<<30); close(done) }()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		close(stop)
		t.Fatal("calls did not end after Close")
	}
	close(stopped)
	sampling.Wait()
	if maxOpen > limit {
		t.Errorf("%d fds open during the bursts, %d before: more than %d sockets", maxOpen, before, bound)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d fds open after Close, %d before", after, before)
	}
	t.Logf("fds: %d before, at most %d during, limit %d", before, maxOpen, limit)
	if _, err := c.Info(ctx); !errors.Is(err, ipvs.ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Info after Close: %v, want ErrClosed", err)
	}
}
