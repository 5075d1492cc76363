//go:build linux

package ipvs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
	"golang.org/x/sys/unix"
)

// sysctlKnob is what this test expects of one knob, written down apart from
// the package's own table so that the two check each other.
type sysctlKnob struct {
	name, field  string
	major, minor int    // the release that added it (0: before 3.18)
	condition    string // "": every kernel from the release; otherwise why it may be absent
	set          any    // a valid value to write (a pointer's element), other than the default
	bad          []any  // values outside the documented range
}

var sysctlKnobs = []sysctlKnob{
	{name: "am_droprate", field: "AMDropRate", set: 7, bad: []any{-1}},
	{name: "amemthresh", field: "AMemThreshold", set: 2048, bad: []any{-1}},
	{name: "backup_only", field: "BackupOnly", set: true},
	{name: "cache_bypass", field: "CacheBypass", set: true},
	{name: "conn_lfactor", field: "ConnLoadFactor", major: 7, minor: 1, set: 8, bad: []any{-9, 9}},
	{name: "conn_max", field: "ConnMax", major: 7, minor: 2, set: 4096, bad: []any{-1, 1<<30 + 1}},
	{name: "conn_reuse_mode", field: "ConnReuseMode", major: 4, minor: 1, set: 0, bad: []any{-1, 4}},
	{name: "conntrack", field: "Conntrack", condition: "CONFIG_IP_VS_NFCT", set: true},
	{name: "debug_level", field: "DebugLevel", condition: "CONFIG_IP_VS_DEBUG", set: 2, bad: []any{-1}},
	{name: "drop_entry", field: "DropEntry", set: ipvs.DefenseAlways, bad: []any{ipvs.DefenseMode(-1), ipvs.DefenseMode(4)}},
	{name: "drop_packet", field: "DropPacket", set: ipvs.DefenseAuto, bad: []any{ipvs.DefenseMode(4)}},
	{name: "est_cpulist", field: "EstimatorCPUs", major: 6, minor: 2, set: "0", bad: []any{"x", "none"}},
	{name: "est_nice", field: "EstimatorNice", major: 6, minor: 2, set: 19, bad: []any{-21, 20}},
	{name: "expire_nodest_conn", field: "ExpireNoDestConn", set: true},
	{name: "expire_quiescent_template", field: "ExpireQuiescentTemplate", set: true},
	{name: "ignore_tunneled", field: "IgnoreTunneled", major: 4, minor: 3, set: true},
	{name: "lblc_expiration", field: "LBLCExpiration", condition: "the ip_vs_lblc module", set: time.Hour, bad: []any{-time.Second, 2147484 * time.Second}},
	{name: "lblcr_expiration", field: "LBLCRExpiration", condition: "the ip_vs_lblcr module", set: 90 * time.Second},
	{name: "nat_icmp_send", field: "NATICMPSend", set: true},
	{name: "pmtu_disc", field: "PMTUDisc", set: false},
	{name: "run_estimation", field: "RunEstimation", major: 5, minor: 15, set: false},
	{name: "schedule_icmp", field: "ScheduleICMP", major: 4, minor: 3, set: true},
	{name: "secure_tcp", field: "SecureTCP", set: ipvs.DefenseAlways, bad: []any{ipvs.DefenseMode(4)}},
	{name: "sloppy_sctp", field: "SloppySCTP", set: true},
	{name: "sloppy_tcp", field: "SloppyTCP", set: true},
	{name: "snat_reroute", field: "SNATReroute", set: false},
	{name: "svc_lfactor", field: "ServiceLoadFactor", major: 7, minor: 1, set: -8, bad: []any{-9, 9}},
	{name: "sync_persist_mode", field: "SyncPersistMode", set: 1, bad: []any{-1, 2}},
	{name: "sync_ports", field: "SyncPorts", set: 4, bad: []any{0, 3}},
	{name: "sync_qlen_max", field: "SyncQueueMax", set: uint64(1234)},
	{name: "sync_refresh_period", field: "SyncRefreshPeriod", set: 7 * time.Second, bad: []any{-time.Second, 2147484 * time.Second}},
	{name: "sync_retries", field: "SyncRetries", set: 3, bad: []any{-1, 4}},
	{name: "sync_sock_size", field: "SyncSocketSize", set: 65536, bad: []any{-1}},
	{name: "sync_threshold", field: "SyncThreshold", set: ipvs.SyncThreshold{Threshold: 4, Period: 60}, bad: []any{ipvs.SyncThreshold{Threshold: 3, Period: 3}, ipvs.SyncThreshold{Threshold: -1, Period: 5}}},
	{name: "sync_version", field: "SyncVersion", set: 0, bad: []any{-1, 2}},
}

// sysctlText is how the kernel prints v, the element of a Sysctls field.
func sysctlText(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "1"
		}
		return "0"
	case time.Duration:
		return strconv.FormatInt(int64(v/time.Second), 10)
	case ipvs.SyncThreshold:
		return fmt.Sprintf("%d\t%d", v.Threshold, v.Period)
	case ipvs.DefenseMode:
		return strconv.Itoa(int(v))
	}
	return fmt.Sprint(v)
}

// withField returns a Sysctls with only the named field set to v.
func withField(field string, v any) ipvs.Sysctls {
	var s ipvs.Sysctls
	f := reflect.ValueOf(&s).Elem().FieldByName(field)
	p := reflect.New(f.Type().Elem())
	p.Elem().Set(reflect.ValueOf(v).Convert(f.Type().Elem()))
	f.Set(p)
	return s
}

// fieldText returns the kernel's text for a Sysctls field, and whether it
// is set.
func fieldText(s ipvs.Sysctls, field string) (string, bool) {
	f := reflect.ValueOf(s).FieldByName(field)
	if f.IsNil() {
		return "", false
	}
	return sysctlText(f.Elem().Interface()), true
}

// kernelSysctls reads /proc/sys/net/ipv4/vs from a thread in ns (nil: the
// test's own namespace, the initial one in the VM), by file name, without
// the final newline.
func kernelSysctls(t *testing.T, ns *netNS) map[string]string {
	t.Helper()
	m := make(map[string]string)
	read := func() error {
		const dir = "/proc/sys/net/ipv4/vs"
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			m[e.Name()] = strings.TrimSuffix(string(b), "\n")
		}
		return nil
	}
	var err error
	if ns == nil {
		err = read()
	} else {
		err = ns.do(read)
	}
	if err != nil {
		t.Fatalf("reading the kernel's /proc/sys/net/ipv4/vs: %v", err)
	}
	return m
}

// writeKernelSysctl writes text to a knob from a thread in ns, as sysctl -w
// does, and returns the errno.
func writeKernelSysctl(ns *netNS, name, text string) error {
	return ns.do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/vs/"+name, []byte(text+"\n"), 0)
	})
}

// TestIntegrationSysctls reads the knobs of a new namespace and checks them
// against the kernel's own view and against the releases that added them,
// writes every writable one and reads it back, checks that nothing leaked to
// the initial namespace, and checks the ranges against the kernel's.
func TestIntegrationSysctls(t *testing.T) {
	c, ns := newClient(t)
	ctx := testCtx(t)
	initBefore := kernelSysctls(t, nil)

	got, err := c.Sysctls(ctx)
	if err != nil {
		t.Fatalf("Sysctls: %v", err)
	}
	kernel := kernelSysctls(t, ns)
	known := make(map[string]bool)
	var absent []string
	for _, k := range sysctlKnobs {
		known[k.name] = true
		text, inKernel := kernel[k.name]
		gotText, inGot := fieldText(got, k.field)
		if inKernel != inGot {
			t.Errorf("%s: in the kernel's view %v, in Sysctls.%s %v", k.name, inKernel, k.field, inGot)
		} else if inKernel && gotText != text {
			t.Errorf("%s: Sysctls.%s = %q, the kernel shows %q", k.name, k.field, gotText, text)
		}
		if !inKernel {
			absent = append(absent, k.name)
		}
		want := kernelAtLeast(k.major, k.minor)
		switch {
		case k.condition != "" && inKernel != want:
			t.Logf("%s: absent on %s (needs %s)", k.name, kernelRelease(), k.condition)
		case k.condition == "" && inKernel != want:
			t.Errorf("%s: present %v on %s, want %v (added in %d.%d)", k.name, inKernel, kernelRelease(), want, k.major, k.minor)
		}
	}
	var unknown []string
	for name, text := range kernel {
		if known[name] {
			continue
		}
		unknown = append(unknown, name)
		if got.Other[name] != text {
			t.Errorf("%s, unknown to the package: Sysctls.Other has %q, the kernel shows %q", name, got.Other[name], text)
		}
	}
	if len(got.Other) != len(unknown) {
		t.Errorf("Sysctls.Other = %v, the kernel's unknown knobs are %v", got.Other, unknown)
	}
	slices.Sort(unknown)
	t.Logf("%s: %d IPVS sysctls; absent: %s; unknown to the package: %v", kernelRelease(), len(kernel), strings.Join(absent, " "), unknown)

	t.Run("write and read back", func(t *testing.T) {
		written := 0
		for _, k := range sysctlKnobs {
			if _, ok := kernel[k.name]; !ok {
				continue
			}
			if k.name == "debug_level" {
				// Global, read-only outside the initial namespace.
				err := c.SetSysctls(ctx, withField(k.field, k.set))
				if !errors.Is(err, os.ErrPermission) {
					t.Errorf("SetSysctls(%s) outside the initial namespace = %v, want os.ErrPermission", k.name, err)
				}
				continue
			}
			if err := c.SetSysctls(ctx, withField(k.field, k.set)); err != nil {
				t.Errorf("SetSysctls(%s = %v): %v", k.name, k.set, err)
				continue
			}
			written++
			want := sysctlText(k.set)
			if got := kernelSysctls(t, ns)[k.name]; got != want {
				t.Errorf("%s: the kernel shows %q after SetSysctls(%v), want %q", k.name, got, k.set, want)
			}
			s, err := c.Sysctls(ctx)
			if err != nil {
				t.Fatalf("Sysctls: %v", err)
			}
			if got, _ := fieldText(s, k.field); got != want {
				t.Errorf("%s: Sysctls.%s = %q after SetSysctls(%v), want %q", k.name, k.field, got, k.set, want)
			}
		}
		// Several at once, and a knob the package does not know, through
		// Other (written raw): here a known one's file, with a name that
		// the package refuses.
		all := ipvs.Sysctls{ExpireNoDestConn: new(false), SyncPorts: new(2), SyncThreshold: &ipvs.SyncThreshold{Threshold: 0, Period: 0}}
		if err := c.SetSysctls(ctx, all); err != nil {
			t.Errorf("SetSysctls of three: %v", err)
		} else {
			k := kernelSysctls(t, ns)
			if k["expire_nodest_conn"] != "0" || k["sync_ports"] != "2" || k["sync_threshold"] != "0\t0" {
				t.Errorf("after SetSysctls of three the kernel shows %q %q %q", k["expire_nodest_conn"], k["sync_ports"], k["sync_threshold"])
			}
		}
		t.Logf("%s: wrote and read back %d knobs", kernelRelease(), written)
		if written < 25 {
			t.Errorf("only %d knobs written", written)
		}
		// Nothing leaked to the initial namespace.
		if after := kernelSysctls(t, nil); !reflect.DeepEqual(initBefore, after) {
			for name := range after {
				if initBefore[name] != after[name] {
					t.Errorf("initial namespace: %s was %q, is %q", name, initBefore[name], after[name])
				}
			}
		}
	})

	t.Run("ranges", func(t *testing.T) {
		// Each value outside the documented range is refused before
		// writing, naming the field; the kernel itself refuses most.
		var kernelTakes []string
		for _, k := range sysctlKnobs {
			if _, ok := kernel[k.name]; !ok || k.name == "debug_level" {
				continue
			}
			for _, bad := range k.bad {
				before := kernelSysctls(t, ns)[k.name]
				err := c.SetSysctls(ctx, withField(k.field, bad))
				wantInvalid(t, fmt.Sprintf("SetSysctls(%s = %v)", k.name, bad), err, "Sysctls."+k.field)
				if after := kernelSysctls(t, ns)[k.name]; after != before {
					t.Errorf("%s changed from %q to %q by a refused SetSysctls", k.name, before, after)
				}
				// The kernel's own answer to the same text.
				kerr := writeKernelSysctl(ns, k.name, sysctlText(bad))
				if kerr == nil {
					kernelTakes = append(kernelTakes, fmt.Sprintf("%s=%q", k.name, sysctlText(bad)))
					_ = writeKernelSysctl(ns, k.name, before)
				} else if !errors.Is(kerr, syscall.EINVAL) && !errors.Is(kerr, syscall.ERANGE) {
					t.Errorf("the kernel refused %s=%q with %v, want EINVAL or ERANGE", k.name, sysctlText(bad), kerr)
				}
			}
		}
		t.Logf("%s: out of the documented range, the kernel itself takes %s", kernelRelease(), strings.Join(kernelTakes, " "))
		// The kernel refuses a CPU it does not have, which the package
		// cannot check.
		if _, ok := kernel["est_cpulist"]; ok {
			err := c.SetSysctls(ctx, ipvs.Sysctls{EstimatorCPUs: new("4095")})
			var e *ipvs.Error
			if !errors.As(err, &e) || e.Field != "Sysctls.EstimatorCPUs" {
				t.Errorf("SetSysctls(est_cpulist 4095) = %v, want the kernel's error for Sysctls.EstimatorCPUs", err)
			}
			t.Logf("est_cpulist 4095: %v", err)
		}
	})

	t.Run("missing knobs", func(t *testing.T) {
		n := 0
		for _, k := range sysctlKnobs {
			if _, ok := kernel[k.name]; ok {
				continue
			}
			n++
			err := c.SetSysctls(ctx, withField(k.field, k.set))
			var e *ipvs.Error
			if !errors.As(err, &e) || e.Field != "Sysctls."+k.field || !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "net.ipv4.vs."+k.name) {
				t.Errorf("SetSysctls(%s) on %s = %v, want an *Error for Sysctls.%s matching errors.ErrUnsupported", k.name, kernelRelease(), err, k.field)
			}
			if k.major != 0 && !strings.Contains(err.Error(), fmt.Sprintf("Linux %d.%d added it", k.major, k.minor)) {
				t.Errorf("error %q does not say which release added %s", err, k.name)
			}
			t.Logf("%v", err)
		}
		err := c.SetSysctls(ctx, ipvs.Sysctls{Other: map[string]string{"no_such_knob": "1"}})
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SetSysctls of a knob no kernel has = %v, want errors.ErrUnsupported", err)
		}
		t.Logf("%s: %d known knobs absent", kernelRelease(), n)
	})
}

// TestIntegrationSysctlsNetNSPath: a Client bound to another namespace by
// path writes there only; a Client of the test's own namespace (New without
// options) reads the initial namespace's knobs.
func TestIntegrationSysctlsNetNSPath(t *testing.T) {
	c1, ns1 := newClient(t)
	ns2 := newNetNS(t)
	ctx := testCtx(t)
	initBefore := kernelSysctls(t, nil)
	before1 := kernelSysctls(t, ns1)

	path := filepath.Join(t.TempDir(), "ns2")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", ns2.fd), path, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount the namespace: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(path, unix.MNT_DETACH) })
	c2, err := ipvs.New(ipvs.WithNetNSPath(path))
	if err != nil {
		t.Fatalf("New(WithNetNSPath): %v", err)
	}
	defer c2.Close()

	set := ipvs.Sysctls{ConnReuseMode: new(0), ExpireNoDestConn: new(true), ExpireQuiescentTemplate: new(true), SyncThreshold: &ipvs.SyncThreshold{Threshold: 1, Period: 9}}
	if err := c2.SetSysctls(ctx, set); err != nil {
		t.Fatalf("SetSysctls through the path: %v", err)
	}
	k2 := kernelSysctls(t, ns2)
	if k2["conn_reuse_mode"] != "0" || k2["expire_nodest_conn"] != "1" || k2["expire_quiescent_template"] != "1" || k2["sync_threshold"] != "1\t9" {
		t.Errorf("the bound namespace shows %q %q %q %q", k2["conn_reuse_mode"], k2["expire_nodest_conn"], k2["expire_quiescent_template"], k2["sync_threshold"])
	}
	s2, err := c2.Sysctls(ctx)
	if err != nil || *s2.ConnReuseMode != 0 || !*s2.ExpireNoDestConn || *s2.SyncThreshold != (ipvs.SyncThreshold{Threshold: 1, Period: 9}) {
		t.Errorf("Sysctls through the path = %+v, %v", s2, err)
	}
	if after := kernelSysctls(t, ns1); !reflect.DeepEqual(before1, after) {
		t.Errorf("another test namespace changed: %v -> %v", before1, after)
	}
	if s1, err := c1.Sysctls(ctx); err != nil || *s1.ConnReuseMode != 1 || *s1.ExpireNoDestConn {
		t.Errorf("the other namespace's Client reads %+v, %v", s1, err)
	}
	if after := kernelSysctls(t, nil); !reflect.DeepEqual(initBefore, after) {
		t.Errorf("the initial namespace changed: %v -> %v", initBefore, after)
	}

	// New() in the test's own namespace (the VM's initial one) reads it,
	// on the calling thread, without entering a namespace.
	c0, err := ipvs.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c0.Close()
	s0, err := c0.Sysctls(ctx)
	if err != nil {
		t.Fatalf("Sysctls of the initial namespace: %v", err)
	}
	for _, k := range sysctlKnobs {
		text, ok := fieldText(s0, k.field)
		if want, in := initBefore[k.name]; ok != in || ok && text != want {
			t.Errorf("initial namespace: Sysctls.%s = %q (%v), the kernel shows %q (%v)", k.field, text, ok, want, in)
		}
	}
	if d, ok := initBefore["debug_level"]; ok {
		t.Logf("debug_level in the initial namespace: %s", d)
	}
}

// asCredentials runs fn on a thread of its own that has joined ns and then
// taken uid (and gid) and exactly the capabilities caps, all of which
// Linux keeps per thread; the thread is thrown away afterwards. A Client
// bound to ns opens its /proc files on the calling thread when that thread
// is in ns, so fn's calls run with these credentials.
func asCredentials(ns *netNS, uid int, caps []int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see netNS.do
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- os.NewSyscallError("setns", err)
			return
		}
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			errc <- os.NewSyscallError("prctl(PR_SET_KEEPCAPS)", err)
			return
		}
		// Raw system calls: syscall.Setresuid would change every thread.
		id := uintptr(uid)
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, id, id, id); e != 0 {
			errc <- os.NewSyscallError("setresgid", e)
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, id, id, id); e != 0 {
			errc <- os.NewSyscallError("setresuid", e)
			return
		}
		var set uint32
		for _, c := range caps {
			set |= 1 << c
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{{Effective: set, Permitted: set}}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- os.NewSyscallError("capset", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// TestIntegrationSysctlsPermission: reading needs nothing; writing needs
// CAP_NET_ADMIN in the user namespace that owns the network namespace, or
// its root user (the kernel's net_ctl_permissions); no CAP_SYS_ADMIN.
func TestIntegrationSysctlsPermission(t *testing.T) {
	c, ns := newClient(t)
	ctx := testCtx(t)
	const nobody = 65534
	for _, tc := range []struct {
		name      string
		uid       int
		caps      []int
		mayWrite  bool
		wantValue string
	}{
		{"uid 65534 with CAP_NET_ADMIN only", nobody, []int{unix.CAP_NET_ADMIN}, true, "0"},
		{"uid 65534 without capabilities", nobody, nil, false, ""},
		{"uid 0 without capabilities", 0, nil, true, "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := kernelSysctls(t, ns)["conn_reuse_mode"]
			var readErr, writeErr error
			var s ipvs.Sysctls
			value := 0
			if tc.wantValue == "2" {
				value = 2
			}
			if err := asCredentials(ns, tc.uid, tc.caps, func() error {
				s, readErr = c.Sysctls(ctx)
				writeErr = c.SetSysctls(ctx, ipvs.Sysctls{ConnReuseMode: new(value)})
				return nil
			}); err != nil {
				t.Fatalf("taking the credentials: %v", err)
			}
			if readErr != nil || s.ConnReuseMode == nil || strconv.Itoa(*s.ConnReuseMode) != before {
				t.Errorf("Sysctls = ConnReuseMode %v, %v; want %s", s.ConnReuseMode, readErr, before)
			}
			after := kernelSysctls(t, ns)["conn_reuse_mode"]
			if tc.mayWrite {
				if writeErr != nil || after != tc.wantValue {
					t.Errorf("SetSysctls: %v; the kernel shows %q, want %q", writeErr, after, tc.wantValue)
				}
				return
			}
			var e *ipvs.Error
			if !errors.As(writeErr, &e) || e.Field != "Sysctls.ConnReuseMode" || !errors.Is(writeErr, os.ErrPermission) || after != before {
				t.Errorf("SetSysctls = %v (the kernel shows %q, was %q); want an *Error for Sysctls.ConnReuseMode matching os.ErrPermission", writeErr, after, before)
			}
			t.Log(writeErr)
		})
	}
}
