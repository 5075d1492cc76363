//go:build linux

package ipvs

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sysctls72 is /proc/sys/net/ipv4/vs of Debian's 7.2.12 kernel in a new
// namespace, with the schedulers loaded, as the VM showed it.
var sysctls72 = map[string]string{
	"am_droprate": "10\n", "amemthresh": "1024\n", "backup_only": "0\n", "cache_bypass": "0\n",
	"conn_lfactor": "-4\n", "conn_max": "1073741824\n", "conn_reuse_mode": "1\n", "conntrack": "0\n",
	"drop_entry": "0\n", "drop_packet": "0\n", "est_cpulist": "0-1\n", "est_nice": "0\n",
	"expire_nodest_conn": "0\n", "expire_quiescent_template": "0\n", "ignore_tunneled": "0\n",
	"lblc_expiration": "86400\n", "lblcr_expiration": "86400\n", "nat_icmp_send": "0\n", "pmtu_disc": "1\n",
	"run_estimation": "1\n", "schedule_icmp": "0\n", "secure_tcp": "0\n", "sloppy_sctp": "0\n",
	"sloppy_tcp": "0\n", "snat_reroute": "1\n", "svc_lfactor": "-3\n", "sync_persist_mode": "0\n",
	"sync_ports": "1\n", "sync_qlen_max": "15212\n", "sync_refresh_period": "0\n", "sync_retries": "0\n",
	"sync_sock_size": "0\n", "sync_threshold": "3\t50\n", "sync_version": "1\n",
}

// sysctls510 is the same of Debian's 5.10.223 kernel: no conn_lfactor,
// conn_max, est_cpulist, est_nice, run_estimation and svc_lfactor.
func sysctls510() map[string]string {
	m := make(map[string]string)
	for k, v := range sysctls72 {
		switch k {
		case "conn_lfactor", "conn_max", "est_cpulist", "est_nice", "run_estimation", "svc_lfactor":
			// added in 5.15, 6.2, 7.1 and 7.2
		default:
			m[k] = v
		}
	}
	return m
}

// fakeProcFS is a temporary directory that stands in for /proc, in which,
// as in /proc/sys, what is written to a file opened for writing replaces its
// value once the file is closed, and a file opened but not written keeps it.
type fakeProcFS struct {
	root    string
	writing sync.WaitGroup // the writes of closed files not yet stored
}

func (fs *fakeProcFS) open(path string, flag int) (*os.File, error) {
	name := filepath.Join(fs.root, path)
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return os.OpenFile(name, flag, 0)
	}
	if _, err := os.Stat(name); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fs.writing.Go(func() {
		b, _ := io.ReadAll(r)
		_ = r.Close()
		if len(b) > 0 {
			_ = os.WriteFile(name, b, 0o644)
		}
	})
	return w, nil
}

// fakeProc returns a client whose /proc is a fakeProcFS holding files (by
// name, under sys/net/ipv4/vs unless nil).
func fakeProc(t *testing.T, files map[string]string) (*Client, *fakeProcFS) {
	t.Helper()
	fs := &fakeProcFS{root: t.TempDir()}
	t.Cleanup(fs.writing.Wait) // before the directory is removed
	if files != nil {
		dir := filepath.Join(fs.root, sysctlDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := newClientWith(familyID, func() (transport, error) { return nil, errors.New("no netlink in this test") })
	c.proc = fs.open
	return &Client{c: c}, fs
}

func readSysctlFile(t *testing.T, fs *fakeProcFS, name string) string {
	t.Helper()
	fs.writing.Wait()
	b, err := os.ReadFile(filepath.Join(fs.root, sysctlDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSysctlsRead(t *testing.T) {
	files := maps.Clone(sysctls72)
	files["future_knob"] = "1 2\n"
	c, _ := fakeProc(t, files)
	got, err := c.Sysctls(context.Background())
	if err != nil {
		t.Fatalf("Sysctls: %v", err)
	}
	want := Sysctls{
		AMDropRate: new(10), AMemThreshold: new(1024), BackupOnly: new(false), CacheBypass: new(false),
		ConnLoadFactor: new(-4), ConnReuseMode: new(1), Conntrack: new(false),
		DropEntry: new(DefenseOff), DropPacket: new(DefenseOff), EstimatorCPUs: new("0-1"), EstimatorNice: new(0),
		ExpireNoDestConn: new(false), ExpireQuiescentTemplate: new(false), IgnoreTunneled: new(false),
		LBLCExpiration: new(24 * time.Hour), LBLCRExpiration: new(24 * time.Hour), NATICMPSend: new(false),
		PMTUDisc: new(true), RunEstimation: new(true), ScheduleICMP: new(false), SecureTCP: new(DefenseOff),
		SloppySCTP: new(false), SloppyTCP: new(false), SNATReroute: new(true), ServiceLoadFactor: new(-3),
		SyncPersistMode: new(0), SyncPorts: new(1), SyncQueueMax: new(uint64(15212)), SyncRefreshPeriod: new(time.Duration(0)),
		SyncRetries: new(0), SyncSocketSize: new(0), SyncThreshold: &SyncThreshold{Threshold: 3, Period: 50},
		SyncVersion: new(1),
		ConnMax:     new(1 << 30),
		Other:       map[string]string{"future_knob": "1 2"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Sysctls (-want +got):\n%s", d)
	}

	// 5.10: the newer knobs are nil, and nothing lands in Other.
	c, _ = fakeProc(t, sysctls510())
	got, err = c.Sysctls(context.Background())
	if err != nil {
		t.Fatalf("Sysctls on 5.10: %v", err)
	}
	if got.ConnLoadFactor != nil || got.ConnMax != nil || got.EstimatorCPUs != nil || got.EstimatorNice != nil || got.RunEstimation != nil || got.ServiceLoadFactor != nil || got.Other != nil {
		t.Errorf("Sysctls on 5.10 has knobs 5.10 lacks: %+v", got)
	}
	if got.ConnReuseMode == nil || *got.ConnReuseMode != 1 {
		t.Errorf("Sysctls on 5.10: ConnReuseMode = %v, want 1", got.ConnReuseMode)
	}
}

func TestSysctlsReadErrors(t *testing.T) {
	ctx := context.Background()
	// No directory: IPVS is not loaded.
	c, _ := fakeProc(t, nil)
	_, err := c.Sysctls(ctx)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "IPVS is not loaded") {
		t.Errorf("Sysctls without the directory = %v, want an *Error matching os.ErrNotExist that says IPVS is not loaded", err)
	}
	// A value that is not the kernel's format names the field.
	for name, text := range map[string]string{
		"conn_reuse_mode": "one\n", "sync_threshold": "3\n", "sync_qlen_max": "-1\n",
		"lblc_expiration": "1.5\n", "est_nice": "99999999999\n", "drop_entry": "\n",
	} {
		files := sysctls510()
		files[name] = text
		c, _ := fakeProc(t, files)
		_, err := c.Sysctls(ctx)
		if !errors.As(err, &e) || e.Field != sysctlField(name) || !strings.Contains(err.Error(), name) {
			t.Errorf("Sysctls with %s = %q: %v, want an *Error for %s", name, text, err, sysctlField(name))
		}
	}
	// A cancelled context and a closed client.
	c, _ = fakeProc(t, sysctls72)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Sysctls(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sysctls with a cancelled context = %v", err)
	}
	if err := c.SetSysctls(cctx, Sysctls{ConnReuseMode: new(0)}); !errors.Is(err, context.Canceled) {
		t.Errorf("SetSysctls with a cancelled context = %v", err)
	}
	_ = c.Close()
	if _, err := c.Sysctls(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Sysctls on a closed client = %v, want ErrClosed", err)
	}
	if err := c.SetSysctls(ctx, Sysctls{ConnReuseMode: new(0)}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetSysctls on a closed client = %v, want ErrClosed", err)
	}
}

func TestSetSysctls(t *testing.T) {
	files := maps.Clone(sysctls72)
	files["future_knob"] = "1 2\n"
	c, root := fakeProc(t, files)
	s := Sysctls{
		ConnReuseMode: new(0), ExpireNoDestConn: new(true), ExpireQuiescentTemplate: new(true),
		SecureTCP: new(DefenseAlways), EstimatorCPUs: new("0,1-N:1/2"), EstimatorNice: new(-20),
		ConnLoadFactor: new(8), ServiceLoadFactor: new(-8), SyncRefreshPeriod: new(10 * time.Second),
		LBLCExpiration: new(time.Hour), SyncThreshold: &SyncThreshold{Threshold: 5, Period: 0},
		SyncQueueMax: new(uint64(1<<64 - 1)), SyncPorts: new(1 << 30), PMTUDisc: new(false),
		AMemThreshold: new(0), ConnMax: new(4096), Other: map[string]string{"future_knob": "3"},
	}
	if err := c.SetSysctls(context.Background(), s); err != nil {
		t.Fatalf("SetSysctls: %v", err)
	}
	want := map[string]string{
		"conn_reuse_mode": "0\n", "expire_nodest_conn": "1\n", "expire_quiescent_template": "1\n",
		"secure_tcp": "3\n", "est_cpulist": "0,1-N:1/2\n", "est_nice": "-20\n", "conn_lfactor": "8\n",
		"svc_lfactor": "-8\n", "sync_refresh_period": "10\n", "lblc_expiration": "3600\n",
		"sync_threshold": "5 0\n", "sync_qlen_max": "18446744073709551615\n", "sync_ports": "1073741824\n",
		"pmtu_disc": "0\n", "amemthresh": "0\n", "conn_max": "4096\n", "future_knob": "3\n",
	}
	for name, text := range files {
		w, ok := want[name]
		if !ok {
			w = text // untouched
		}
		if got := readSysctlFile(t, root, name); got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}
	// What SetSysctls wrote reads back as written.
	got, err := c.Sysctls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if *got.ConnReuseMode != 0 || !*got.ExpireNoDestConn || *got.SecureTCP != DefenseAlways || *got.EstimatorCPUs != "0,1-N:1/2" ||
		*got.SyncRefreshPeriod != 10*time.Second || *got.SyncThreshold != (SyncThreshold{5, 0}) || *got.SyncQueueMax != 1<<64-1 || *got.ConnMax != 4096 || got.Other["future_knob"] != "3" {
		t.Errorf("read back %+v", got)
	}
	// An empty cpulist is written as a newline (a write of nothing is
	// ignored by the kernel).
	if err := c.SetSysctls(context.Background(), Sysctls{EstimatorCPUs: new("")}); err != nil {
		t.Fatal(err)
	}
	if got := readSysctlFile(t, root, "est_cpulist"); got != "\n" {
		t.Errorf("est_cpulist = %q after writing the empty list, want a newline", got)
	}
}

func TestSetSysctlsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     Sysctls
		field string
	}{
		{"conn_reuse_mode 4", Sysctls{ConnReuseMode: new(4)}, "Sysctls.ConnReuseMode"},
		{"conn_reuse_mode -1", Sysctls{ConnReuseMode: new(-1)}, "Sysctls.ConnReuseMode"},
		{"drop_entry 4", Sysctls{DropEntry: new(DefenseMode(4))}, "Sysctls.DropEntry"},
		{"drop_packet -1", Sysctls{DropPacket: new(DefenseMode(-1))}, "Sysctls.DropPacket"},
		{"secure_tcp 9", Sysctls{SecureTCP: new(DefenseMode(9))}, "Sysctls.SecureTCP"},
		{"est_nice 20", Sysctls{EstimatorNice: new(20)}, "Sysctls.EstimatorNice"},
		{"est_nice -21", Sysctls{EstimatorNice: new(-21)}, "Sysctls.EstimatorNice"},
		{"est_cpulist x", Sysctls{EstimatorCPUs: new("x")}, "Sysctls.EstimatorCPUs"},
		{"est_cpulist 1-", Sysctls{EstimatorCPUs: new("1-")}, "Sysctls.EstimatorCPUs"},
		{"est_cpulist 0-3:2", Sysctls{EstimatorCPUs: new("0-3:2")}, "Sysctls.EstimatorCPUs"},
		{"conn_lfactor 9", Sysctls{ConnLoadFactor: new(9)}, "Sysctls.ConnLoadFactor"},
		{"conn_max 2^30+1", Sysctls{ConnMax: new(1<<30 + 1)}, "Sysctls.ConnMax"},
		{"conn_max -1", Sysctls{ConnMax: new(-1)}, "Sysctls.ConnMax"},
		{"est_cpulist none", Sysctls{EstimatorCPUs: new("none")}, "Sysctls.EstimatorCPUs"},
		{"svc_lfactor -9", Sysctls{ServiceLoadFactor: new(-9)}, "Sysctls.ServiceLoadFactor"},
		{"sync_threshold 3 3", Sysctls{SyncThreshold: &SyncThreshold{3, 3}}, "Sysctls.SyncThreshold"},
		{"sync_threshold 4 3", Sysctls{SyncThreshold: &SyncThreshold{4, 3}}, "Sysctls.SyncThreshold"},
		{"sync_threshold -1 5", Sysctls{SyncThreshold: &SyncThreshold{-1, 5}}, "Sysctls.SyncThreshold"},
		{"sync_ports 0", Sysctls{SyncPorts: new(0)}, "Sysctls.SyncPorts"},
		{"sync_ports 3", Sysctls{SyncPorts: new(3)}, "Sysctls.SyncPorts"},
		{"sync_retries 4", Sysctls{SyncRetries: new(4)}, "Sysctls.SyncRetries"},
		{"sync_version 2", Sysctls{SyncVersion: new(2)}, "Sysctls.SyncVersion"},
		{"sync_persist_mode 2", Sysctls{SyncPersistMode: new(2)}, "Sysctls.SyncPersistMode"},
		{"sync_refresh_period -1s", Sysctls{SyncRefreshPeriod: new(-time.Second)}, "Sysctls.SyncRefreshPeriod"},
		{"sync_refresh_period 1.5s", Sysctls{SyncRefreshPeriod: new(1500 * time.Millisecond)}, "Sysctls.SyncRefreshPeriod"},
		{"sync_refresh_period too long", Sysctls{SyncRefreshPeriod: new(2147484 * time.Second)}, "Sysctls.SyncRefreshPeriod"},
		{"lblcr_expiration -1s", Sysctls{LBLCRExpiration: new(-time.Second)}, "Sysctls.LBLCRExpiration"},
		{"sync_sock_size -1", Sysctls{SyncSocketSize: new(-1)}, "Sysctls.SyncSocketSize"},
		{"amemthresh -1", Sysctls{AMemThreshold: new(-1)}, "Sysctls.AMemThreshold"},
		{"am_droprate -1", Sysctls{AMDropRate: new(-1)}, "Sysctls.AMDropRate"},
		{"debug_level -1", Sysctls{DebugLevel: new(-1)}, "Sysctls.DebugLevel"},
		{"Other with a slash", Sysctls{Other: map[string]string{"../x": "1"}}, `Sysctls.Other["../x"]`},
		{"Other dot-dot", Sysctls{Other: map[string]string{"..": "1"}}, `Sysctls.Other[".."]`},
		{"Other known", Sysctls{Other: map[string]string{"conn_reuse_mode": "0"}}, `Sysctls.Other["conn_reuse_mode"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, root := fakeProc(t, sysctls72)
			// A valid field beside the invalid one: nothing may be written.
			tc.s.ExpireNoDestConn = new(true)
			err := c.SetSysctls(context.Background(), tc.s)
			var e *Error
			if !errors.As(err, &e) || e.Field != tc.field || !errors.Is(err, os.ErrInvalid) {
				t.Fatalf("SetSysctls = %v, want an *Error for %s matching os.ErrInvalid", err, tc.field)
			}
			if got := readSysctlFile(t, root, "expire_nodest_conn"); got != "0\n" {
				t.Errorf("expire_nodest_conn = %q after a refused SetSysctls, want it unchanged", got)
			}
			t.Log(err)
		})
	}
	// The bounds themselves are valid.
	c, _ := fakeProc(t, sysctls72)
	for _, s := range []Sysctls{
		{ConnReuseMode: new(3)}, {EstimatorNice: new(19)}, {ConnLoadFactor: new(-8)}, {SyncRetries: new(3)},
		{SyncThreshold: &SyncThreshold{0, 0}}, {SyncThreshold: &SyncThreshold{2, 3}}, {SyncRefreshPeriod: new(2147483 * time.Second)},
		{EstimatorCPUs: new("all")}, {EstimatorCPUs: new("N")}, {EstimatorCPUs: new("0-N")}, {ConnMax: new(0)}, {ConnMax: new(1 << 30)}, {EstimatorCPUs: new("1,3")},
	} {
		if err := c.SetSysctls(context.Background(), s); err != nil {
			t.Errorf("SetSysctls(%+v) = %v", s, err)
		}
	}
}

func TestSetSysctlsMissing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      Sysctls
		field  string
		phrase string
	}{
		{"est_nice", Sysctls{EstimatorNice: new(0)}, "Sysctls.EstimatorNice", "Linux 6.2 added it"},
		{"est_cpulist", Sysctls{EstimatorCPUs: new("0")}, "Sysctls.EstimatorCPUs", "Linux 6.2 added it"},
		{"run_estimation", Sysctls{RunEstimation: new(false)}, "Sysctls.RunEstimation", "Linux 5.15 added it"},
		{"conn_lfactor", Sysctls{ConnLoadFactor: new(0)}, "Sysctls.ConnLoadFactor", "Linux 7.1 added it"},
		{"svc_lfactor", Sysctls{ServiceLoadFactor: new(0)}, "Sysctls.ServiceLoadFactor", "Linux 7.1 added it"},
		{"debug_level", Sysctls{DebugLevel: new(1)}, "Sysctls.DebugLevel", "CONFIG_IP_VS_DEBUG"},
		{"conn_max", Sysctls{ConnMax: new(1)}, "Sysctls.ConnMax", "Linux 7.2 added it"},
		{"future_knob", Sysctls{Other: map[string]string{"future_knob": "1"}}, `Sysctls.Other["future_knob"]`, "has no net.ipv4.vs.future_knob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, root := fakeProc(t, sysctls510())
			tc.s.ConnReuseMode = new(0) // before it in the order of writes
			err := c.SetSysctls(context.Background(), tc.s)
			var e *Error
			if !errors.As(err, &e) || e.Field != tc.field || !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("SetSysctls = %v, want an *Error for %s matching errors.ErrUnsupported", err, tc.field)
			}
			if !strings.Contains(err.Error(), "net.ipv4.vs."+tc.name) || !strings.Contains(err.Error(), tc.phrase) || !strings.Contains(err.Error(), "this kernel (Linux ") {
				t.Errorf("error %q does not name the knob, the kernel and %q", err, tc.phrase)
			}
			if errors.Is(err, os.ErrInvalid) || errors.Is(err, os.ErrNotExist) {
				t.Errorf("error %v matches os.ErrInvalid or os.ErrNotExist", err)
			}
			if got := readSysctlFile(t, root, "conn_reuse_mode"); got != "1\n" {
				t.Errorf("conn_reuse_mode = %q after a failed SetSysctls, want it unchanged", got)
			}
			t.Log(err)
		})
	}
	// No directory: IPVS is not loaded.
	c, _ := fakeProc(t, nil)
	err := c.SetSysctls(context.Background(), Sysctls{ConnReuseMode: new(0)})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "IPVS is not loaded") {
		t.Errorf("SetSysctls without the directory = %v", err)
	}
	// An empty directory: hidden in this namespace.
	c, _ = fakeProc(t, map[string]string{})
	err = c.SetSysctls(context.Background(), Sysctls{ConnReuseMode: new(0)})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "shows no IPVS sysctls") {
		t.Errorf("SetSysctls with an empty directory = %v", err)
	}
	// A knob that cannot be opened for writing: permission, before any
	// write.
	c, root := fakeProc(t, sysctls72)
	// (debug_level, absent from sysctls72, is added here as a read-only
	// knob, as the kernel has it outside the initial namespace.)
	if err := os.WriteFile(filepath.Join(root.root, sysctlDir, "debug_level"), []byte("0\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	c.c.proc = func(path string, flag int) (*os.File, error) {
		if strings.HasSuffix(path, "/debug_level") && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
		}
		return root.open(path, flag)
	}
	err = c.SetSysctls(context.Background(), Sysctls{ConnReuseMode: new(0), DebugLevel: new(3)})
	var e *Error
	if !errors.As(err, &e) || e.Field != "Sysctls.DebugLevel" || !errors.Is(err, os.ErrPermission) || !errors.Is(err, syscall.EACCES) {
		t.Errorf("SetSysctls of a read-only knob = %v, want an *Error for Sysctls.DebugLevel matching os.ErrPermission", err)
	}
	if got := readSysctlFile(t, root, "conn_reuse_mode"); got != "1\n" {
		t.Errorf("conn_reuse_mode = %q after a failed SetSysctls, want it unchanged", got)
	}
}

func TestDefenseModeString(t *testing.T) {
	for m, want := range map[DefenseMode]string{DefenseOff: "off", DefenseAuto: "auto", DefenseAutoActive: "auto-active", DefenseAlways: "always", 7: "DefenseMode(7)"} {
		if got := m.String(); got != want {
			t.Errorf("DefenseMode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

// TestProcOpenerSys: a path under sys/ is opened under /proc (there is no
// /proc/thread-self/sys), in the namespace of the opening thread.
func TestProcOpenerSys(t *testing.T) {
	f, err := netnsProcOpener(nil)("sys/net/ipv4/ip_forward", os.O_RDONLY)
	if err != nil {
		t.Fatalf("opening sys/net/ipv4/ip_forward: %v", err)
	}
	defer f.Close()
	if !strings.HasPrefix(f.Name(), "/proc/sys/") {
		t.Errorf("opened %s, want a file under /proc/sys", f.Name())
	}
	f, err = netnsProcOpener(nil)("net/dev", os.O_RDONLY)
	if err != nil {
		t.Fatalf("opening net/dev: %v", err)
	}
	defer f.Close()
	if !strings.HasPrefix(f.Name(), "/proc/thread-self/net/") {
		t.Errorf("opened %s, want a file under /proc/thread-self/net", f.Name())
	}
}
