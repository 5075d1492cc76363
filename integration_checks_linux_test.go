//go:build linux

package ipvs_test

// Checks shared by the integration tests: errors, tables, services, daemons.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

// Error checks.

var sentinels = []struct {
	name string
	err  error
}{
	{"os.ErrNotExist", os.ErrNotExist},
	{"os.ErrExist", os.ErrExist},
	{"os.ErrPermission", os.ErrPermission},
	{"os.ErrInvalid", os.ErrInvalid},
	{"ipvs.ErrSchedulerNotFound", ipvs.ErrSchedulerNotFound},
}

// checkSentinels checks that errors.Is(err, s) holds exactly for the
// sentinels in is.
func checkSentinels(t *testing.T, what string, err error, is []error) {
	t.Helper()
	for _, s := range sentinels {
		want := slices.Contains(is, s.err)
		if got := errors.Is(err, s.err); got != want {
			t.Errorf("%s: errors.Is(err, %s) = %v, want %v (err: %v)", what, s.name, got, want, err)
		}
	}
}

func errnoName(e syscall.Errno) string {
	if e == unix.EOPNOTSUPP {
		return "EOPNOTSUPP"
	}
	return unix.ErrnoName(e)
}

// wantKernelErr checks that err is a kernel *ipvs.Error carrying errno, and
// that errors.Is matches exactly the sentinels in is.
func wantKernelErr(t *testing.T, what string, err error, errno syscall.Errno, is ...error) {
	t.Helper()
	e := asError(t, what, err, errnoName(errno))
	if e == nil {
		return
	}
	var got syscall.Errno
	if !errors.As(err, &got) || got != errno {
		t.Errorf("%s: %v: errno %s, want %s", what, err, errnoName(got), errnoName(errno))
	}
	if !errors.Is(err, errno) {
		t.Errorf("%s: errors.Is(err, %s) is false", what, errnoName(errno))
	}
	if e.Field != "" {
		t.Errorf("%s: kernel error with Field %q", what, e.Field)
	}
	checkSentinels(t, what, err, is)
	if logKernelErrs {
		t.Logf("%s: %s: %v", what, errnoName(errno), err)
	}
}

// asError returns err as an *ipvs.Error, or reports that the call
// succeeded (want says what it should have failed with) or failed otherwise.
func asError(t *testing.T, what string, err error, want string) *ipvs.Error {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %s", what, want)
		return nil
	}
	var e *ipvs.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: %v is a %T, want *ipvs.Error", what, err, err)
		return nil
	}
	return e
}

// logKernelErrs makes wantKernelErr log every error it checks, for the
// errno table of TestIntegrationErrors.
var logKernelErrs bool

// wantInvalid checks that err is a validation *ipvs.Error naming field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	e := asError(t, what, err, "an invalid "+field)
	if e == nil {
		return
	}
	if e.Field != field || e.Err != os.ErrInvalid {
		t.Errorf("%s: %v: Field %q, Err %v; want Field %q, Err os.ErrInvalid", what, err, e.Field, e.Err, field)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		t.Errorf("%s: validation error carries errno %s: it reached the kernel", what, errnoName(errno))
	}
	checkSentinels(t, what, err, []error{os.ErrInvalid})
}

// Table reading.

type table map[ipvs.Service][]ipvs.Destination

func sortDests(ds []ipvs.Destination) {
	slices.SortFunc(ds, func(a, b ipvs.Destination) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
}

// readTable reads every service and its destinations, without statistics.
func readTable(t *testing.T, ctx context.Context, c *ipvs.Client) table {
	t.Helper()
	svcs, err := c.Services(ctx)
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	tab := table{}
	for _, s := range svcs {
		if _, dup := tab[s.Service]; dup {
			t.Errorf("Services lists %v twice", s.Service)
		}
		ds, err := c.Destinations(ctx, s.Service)
		if err != nil {
			t.Fatalf("Destinations(%v): %v", s.Service, err)
		}
		tab[s.Service] = destinationsOf(ds)
	}
	return tab
}

// destinationsOf returns the destinations of ds without their counters,
// sorted.
func destinationsOf(ds []ipvs.DestinationStats) []ipvs.Destination {
	list := make([]ipvs.Destination, 0, len(ds))
	for _, d := range ds {
		list = append(list, d.Destination)
	}
	sortDests(list)
	return list
}

func wantTable(t *testing.T, ctx context.Context, c *ipvs.Client, want table) {
	t.Helper()
	for _, ds := range want {
		sortDests(ds)
	}
	if diff := cmp.Diff(want, readTable(t, ctx, c), cmpOpts); diff != "" {
		t.Errorf("IPVS table (-want +got):\n%s", diff)
	}
}

// wantUnchanged checks that the table still reads as before: what (the
// calls made since) changed nothing.
func wantUnchanged(t *testing.T, ctx context.Context, c *ipvs.Client, before table, what string) {
	t.Helper()
	if diff := cmp.Diff(before, readTable(t, ctx, c), cmpOpts); diff != "" {
		t.Errorf("%s changed the table (-before +after):\n%s", what, diff)
	}
}

func mustCreate(t *testing.T, ctx context.Context, c *ipvs.Client, svcs ...ipvs.Service) {
	t.Helper()
	for _, s := range svcs {
		if err := c.CreateService(ctx, s); err != nil {
			t.Fatalf("CreateService(%v %+v): %v", s, s, err)
		}
	}
}

func mustCreateDest(t *testing.T, ctx context.Context, c *ipvs.Client, s ipvs.Service, ds ...ipvs.Destination) {
	t.Helper()
	for _, d := range ds {
		if err := c.CreateDestination(ctx, s, d); err != nil {
			t.Fatalf("CreateDestination(%v, %v %+v): %v", s, d, d, err)
		}
	}
}

// identity returns the fields that name s.
func identity(s ipvs.Service) ipvs.Service {
	return ipvs.Service{Protocol: s.Protocol, Address: s.Address, Port: s.Port, FirewallMark: s.FirewallMark, Family: s.Family}
}

// wantService reads the service named by want and compares it with want.
func wantService(t *testing.T, ctx context.Context, c *ipvs.Client, want ipvs.Service) {
	t.Helper()
	got, err := c.Service(ctx, identity(want))
	if err != nil {
		t.Errorf("Service(%v): %v", want, err)
		return
	}
	if diff := cmp.Diff(want, got.Service, cmpOpts); diff != "" {
		t.Errorf("Service(%v) read back (-want +got):\n%s", want, diff)
	}
}

// schedulerAvailable reports whether the kernel has the scheduler name,
// trying it on a scratch service.
func schedulerAvailable(t *testing.T, ctx context.Context, c *ipvs.Client, name string) bool {
	t.Helper()
	s := ipvs.Service{Protocol: ipvs.TCP, Address: addr("198.51.100.254"), Port: 1, Scheduler: name}
	err := c.CreateService(ctx, s)
	switch {
	case err == nil:
		if err := c.DeleteService(ctx, s); err != nil {
			t.Fatalf("DeleteService: %v", err)
		}
		return true
	case errors.Is(err, ipvs.ErrSchedulerNotFound):
		return false
	}
	t.Fatalf("probing scheduler %q: %v", name, err)
	return false
}

// allSchedulers are the schedulers of Debian's 6.1 and 6.12 kernels
// (WeightedRandomTwoChoices, 6.7 and later, is probed separately).
var allSchedulers = []string{
	ipvs.RoundRobin, ipvs.WeightedRoundRobin, ipvs.LeastConnection, ipvs.WeightedLeastConnection,
	ipvs.LocalityBasedLeastConnection, ipvs.LocalityBasedLeastConnectionRepl, ipvs.DestinationHashing,
	ipvs.SourceHashing, ipvs.ShortestExpectedDelay, ipvs.NeverQueue, ipvs.WeightedFailover,
	ipvs.WeightedOverflow, ipvs.MaglevHashing, ipvs.NoScheduler,
}

// schedulers returns allSchedulers plus "twos" if this kernel has it,
// reporting the difference.
func schedulers(t *testing.T, ctx context.Context, c *ipvs.Client) []string {
	t.Helper()
	if schedulerAvailable(t, ctx, c, ipvs.WeightedRandomTwoChoices) {
		t.Logf("KERNEL DIFFERENCE: scheduler %q exists on %s", ipvs.WeightedRandomTwoChoices, kernelRelease())
		return append(slices.Clone(allSchedulers), ipvs.WeightedRandomTwoChoices)
	}
	if kernelAtLeast(6, 7) {
		t.Logf("KERNEL DIFFERENCE: scheduler %q is missing on %s although the kernel is 6.7 or later (module not built or not packed?)", ipvs.WeightedRandomTwoChoices, kernelRelease())
	} else {
		t.Logf("KERNEL DIFFERENCE: scheduler %q does not exist on %s (ErrSchedulerNotFound)", ipvs.WeightedRandomTwoChoices, kernelRelease())
	}
	return allSchedulers
}

func wantDaemons(t *testing.T, ctx context.Context, c *ipvs.Client, want ...ipvs.SyncDaemon) {
	t.Helper()
	got, err := c.SyncDaemons(ctx)
	if err != nil {
		t.Fatalf("SyncDaemons: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("SyncDaemons (-want +got):\n%s", diff)
	}
}

func mustStartDaemon(t *testing.T, ctx context.Context, c *ipvs.Client, d ipvs.SyncDaemon) {
	t.Helper()
	if err := c.StartSyncDaemon(ctx, d); err != nil {
		t.Fatalf("StartSyncDaemon(%+v): %v", d, err)
	}
}

// mustStopDaemon stops a sync daemon with stopDaemon.
func mustStopDaemon(t *testing.T, c *ipvs.Client, st ipvs.DaemonState) {
	t.Helper()
	if err := stopDaemon(t, c, st); err != nil {
		t.Fatalf("StopSyncDaemon(%v): %v", st, err)
	}
}

// stopDaemon stops a sync daemon, waiting at most stopWait for the
// kernel's answer. The kernel (seen on 6.1 and 6.12) can stop a daemon
// started a moment before without answering the request at all; the call
// then runs into its deadline although the daemon is gone. stopDaemon reports that
// with t.Logf, with the kernel stacks, and treats the stop as done if the
// daemon is gone; TestIntegrationStopDaemonRightAfterStart fails on it.
func stopDaemon(t *testing.T, c *ipvs.Client, st ipvs.DaemonState) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopWait)
	defer cancel()
	t0 := time.Now()
	err := c.StopSyncDaemon(ctx, st)
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	ds, lerr := c.SyncDaemons(context.Background())
	if lerr != nil {
		return lerr
	}
	for _, d := range ds {
		if d.State == st {
			t.Logf("StopSyncDaemon(%v) got no answer in %v and the daemon still runs; kernel stacks:\n%s", st, time.Since(t0).Round(time.Millisecond), kernelStacks())
			return err
		}
	}
	t.Logf("KERNEL QUIRK on %s: StopSyncDaemon(%v) got no answer within %v, yet the daemon is gone", kernelRelease(), st, stopWait)
	return nil
}

const stopWait = 2 * time.Second

// kernelStacks returns the kernel stacks of this process's threads that are
// not idle, and of kernel threads whose name starts with "ipvs".
func kernelStacks() string {
	var b strings.Builder
	dump := func(dir string) {
		comm, _ := os.ReadFile(dir + "/comm")
		wchan, _ := os.ReadFile(dir + "/wchan")
		stack, _ := os.ReadFile(dir + "/stack")
		fmt.Fprintf(&b, "%s %s wchan=%s\n%s", dir, strings.TrimSpace(string(comm)), wchan, stack)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*")
	for _, d := range tasks {
		w, _ := os.ReadFile(d + "/wchan")
		switch string(w) {
		case "futex_wait_queue", "futex_wait_queue_me", "do_epoll_wait", "ep_poll", "0", "":
			continue
		}
		dump(d)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range procs {
		if comm, _ := os.ReadFile(d + "/comm"); strings.HasPrefix(string(comm), "ipvs") {
			dump(d)
		}
	}
	return b.String()
}

// wantVirtualServices checks that VirtualServices, and the per-call listing,
// both read exactly want.
func wantVirtualServices(t *testing.T, c *ipvs.Client, want []ipvs.VirtualService) {
	t.Helper()
	ctx := testCtx(t)
	got, err := c.VirtualServices(ctx)
	if err != nil {
		t.Fatalf("VirtualServices: %v", err)
	}
	bulk := table{}
	for _, v := range got {
		bulk[v.Service] = destinationsOf(v.Destinations)
	}
	wantTab := table{}
	for _, v := range want {
		wantTab[v.Service] = slices.Clone(v.Destinations)
		sortDests(wantTab[v.Service])
	}
	if len(got) != len(want) {
		t.Errorf("VirtualServices returned %d services, want %d", len(got), len(want))
	}
	if diff := cmp.Diff(wantTab, bulk, cmpOpts); diff != "" {
		t.Errorf("VirtualServices (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(readTable(t, ctx, c), bulk, cmpOpts); diff != "" {
		t.Errorf("VirtualServices differs from Services+Destinations (-calls +bulk):\n%s", diff)
	}
}
