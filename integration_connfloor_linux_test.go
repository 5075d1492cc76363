//go:build linux

package ipvs_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs"
)

// The floor of reading the connection table: what the kernel costs to give
// the table through /proc, without any decoding, measured in the same boot
// as Connections and ipvsadm (BenchmarkConnectionTable).

// threadCPU returns the calling thread's user and system CPU time.
func threadCPU() (time.Duration, time.Duration) {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// goReadAll reads f with os.File.Read into a buffer of size bytes.
func goReadAll(b *testing.B, f *os.File, size int) (n, calls int) {
	buf := make([]byte, size)
	for {
		m, err := f.Read(buf)
		calls++
		n += m
		if err == io.EOF {
			return n, calls
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// openIn opens file in ns.
func openIn(b *testing.B, ns *netNS, file string) *os.File {
	var f *os.File
	if err := ns.do(func() (err error) {
		f, err = os.Open(file)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return f
}

func goFloor(size int) func(b *testing.B, ns *netNS, file string) (int, int) {
	return func(b *testing.B, ns *netNS, file string) (int, int) {
		f := openIn(b, ns, file)
		defer f.Close()
		return goReadAll(b, f, size)
	}
}

// lockedFloor reads on a goroutine locked to its thread (in ns), with
// os.File.Read, or with raw read(2) calls that the Go scheduler does not
// see.
func lockedFloor(size int, raw bool) func(b *testing.B, ns *netNS, file string) (int, int) {
	return func(b *testing.B, ns *netNS, file string) (n, calls int) {
		var tu, ts time.Duration
		err := ns.do(func() error {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			u0, s0 := threadCPU()
			defer func() {
				u1, s1 := threadCPU()
				tu, ts = u1-u0, s1-s0
			}()
			if !raw {
				n, calls = goReadAll(b, f, size)
				return nil
			}
			buf := make([]byte, size)
			fd := f.Fd()
			for {
				m, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				calls++
				if e != 0 {
					return e
				}
				if m == 0 {
					return nil
				}
				n += int(m)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("    (reading thread alone: user %v sys %v)", tu.Round(time.Millisecond), ts.Round(time.Millisecond))
		return n, calls
	}
}

// programFloor runs a program (cat, dd) on file in ns, its output to
// /dev/null; it reports the child's CPU times.
func programFloor(b *testing.B, ns *netNS, args ...string) (wall, user, sys time.Duration) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	err = ns.do(func() error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout = null
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %w", args, err)
		}
		wall = time.Since(start)
		user, sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return
}

// connTiming is one measure: wall, user and system time.
type connTiming struct{ wall, user, sys time.Duration }

// connRounds measures, in IPVS_CONN_BENCH_ROUNDS (default 1) interleaved
// rounds, Connections (and as it read before), the floors (reading the
// /proc file without decoding: in this process with os.File.Read or raw
// read(2) calls, and with cat and dd) and ipvsadm -Lcn, then logs the
// median of each.
func connRounds(b *testing.B, bc *ipvs.Client, ns *netNS, n int) {
	rounds := 1
	if r := benchSizes("IPVS_CONN_BENCH_ROUNDS", "1"); len(r) == 1 {
		rounds = r[0]
	}
	const sync, conn = "/proc/thread-self/net/ip_vs_conn_sync", "/proc/thread-self/net/ip_vs_conn"
	type step struct {
		name string
		run  func() connTiming
	}
	inProcess := func(fn func()) connTiming {
		runtime.GC()
		th0 := taskStats()
		u0, s0 := cpu()
		t0 := time.Now()
		fn()
		wall := time.Since(t0)
		u1, s1 := cpu()
		logTaskStats(b, th0, taskStats())
		return connTiming{wall, u1 - u0, s1 - s0}
	}
	var steps []step
	for _, fl := range []struct {
		name, file string
		fn         func(b *testing.B, ns *netNS, file string) (int, int)
	}{
		{"floor os.File.Read 64KiB", sync, goFloor(64 << 10)},
		{"floor os.File.Read 64KiB", conn, goFloor(64 << 10)},
		{"floor raw read(2) 64KiB, locked thread", sync, lockedFloor(64<<10, true)},
		{"floor raw read(2) 64KiB, locked thread", conn, lockedFloor(64<<10, true)},
	} {
		steps = append(steps, step{fl.name + " of " + fl.file[len("/proc/thread-self/net/"):], func() connTiming {
			return inProcess(func() { fl.fn(b, ns, fl.file) })
		}})
	}
	for _, args := range [][]string{
		{"cat", "/proc/net/ip_vs_conn"},
		{"dd", "if=/proc/net/ip_vs_conn_sync", "bs=64k"},
	} {
		path, err := exec.LookPath(args[0])
		if err != nil {
			b.Logf("%s: %v", args[0], err)
			continue
		}
		args[0] = path
		steps = append(steps, step{fmt.Sprint("floor program ", args), func() connTiming {
			w, u, s := programFloor(b, ns, args...)
			return connTiming{w, u, s}
		}})
		if args[0] == path && strings.HasSuffix(path, "cat") {
			// The same while another CPU runs a loop that makes no
			// system call and touches no shared memory: what a
			// decoder on another CPU costs the kernel's formatting
			// in this guest, whatever the decoder does.
			steps = append(steps, step{fmt.Sprint("floor program ", args, " with a busy loop on another CPU"), func() connTiming {
				var stop atomic.Bool
				done := make(chan struct{})
				go func() {
					defer close(done)
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					x := uint64(1)
					for !stop.Load() {
						for range 1000 {
							x = x*6364136223846793005 + 1442695040888963407
						}
					}
					_ = x
				}()
				w, u, s := programFloor(b, ns, args...)
				stop.Store(true)
				<-done
				return connTiming{w, u, s}
			}})
		}
	}
	for _, v := range []struct {
		name string
		seq  func(*ipvs.Client, context.Context) iter.Seq2[ipvs.Connection, error]
	}{
		{"Connections (ip_vs_conn_sync)", (*ipvs.Client).Connections},
		// ConnectionsWithPE reads ip_vs_conn, the file ipvsadm -Lcn
		// reads, and yields what ipvsadm prints: the like-for-like
		// measure against it.
		{"ConnectionsWithPE (ip_vs_conn)", (*ipvs.Client).ConnectionsWithPE},
		{"Connections, read and decoded in turn (before)", ipvs.ConnectionsInline},
	} {
		steps = append(steps, step{v.name, func() connTiming {
			return inProcess(func() {
				m := 0
				for _, err := range v.seq(bc, context.Background()) {
					if err != nil {
						b.Fatal(err)
					}
					m++
				}
				if m < n {
					b.Fatalf("read %d entries, want at least %d", m, n)
				}
			})
		}})
	}
	steps = append(steps, step{"ipvsadm -Lcn", func() connTiming {
		w, u, s := runIpvsadm(b, ns, "")
		return connTiming{w, u, s}
	}})
	// IPVS_CONN_BENCH_STEPS, when set, keeps only the steps whose names
	// contain one of its parts separated by "|" (and ipvsadm's).
	if only := os.Getenv("IPVS_CONN_BENCH_STEPS"); only != "" {
		steps = slices.DeleteFunc(steps, func(st step) bool {
			if st.name == "ipvsadm -Lcn" {
				return false
			}
			for part := range strings.SplitSeq(only, "|") {
				if strings.Contains(st.name, part) {
					return false
				}
			}
			return true
		})
	}
	got := make([][]connTiming, len(steps))
	for r := range rounds {
		for i, st := range steps {
			t := st.run()
			got[i] = append(got[i], t)
			b.Logf("ROUND %d n=%d %s: %v (user %v sys %v)", r, n, st.name, t.wall.Round(time.Millisecond), t.user.Round(time.Millisecond), t.sys.Round(time.Millisecond))
		}
	}
	for i, st := range steps {
		ts := got[i]
		slices.SortFunc(ts, func(a, b connTiming) int { return cmp.Compare(a.wall, b.wall) })
		m := ts[len(ts)/2]
		b.Logf("MEDIAN n=%d %s: %v (user %v sys %v), min %v max %v", n, st.name, m.wall.Round(time.Millisecond), m.user.Round(time.Millisecond), m.sys.Round(time.Millisecond),
			ts[0].wall.Round(time.Millisecond), ts[len(ts)-1].wall.Round(time.Millisecond))
	}
}

// taskStat is a thread's CPU time and context switches so far.
type taskStat struct {
	user, sys   time.Duration
	vol, nonvol int
}

// taskStats reads every thread's taskStat from /proc/self/task.
func taskStats() map[int]taskStat {
	m := map[int]taskStat{}
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		var tid int
		if _, err := fmt.Sscan(e.Name(), &tid); err != nil {
			continue
		}
		var ts taskStat
		if b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
				f := strings.Fields(string(b[i+1:]))
				// utime and stime are fields 14 and 15, in clock ticks
				// (100 a second); f[0] is field 3.
				if len(f) > 12 {
					var u, s int64
					fmt.Sscan(f[11], &u)
					fmt.Sscan(f[12], &s)
					ts.user, ts.sys = time.Duration(u)*10*time.Millisecond, time.Duration(s)*10*time.Millisecond
				}
			}
		}
		if b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status"); err == nil {
			for line := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					fmt.Sscan(strings.TrimSpace(v), &ts.vol)
				}
				if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
					fmt.Sscan(strings.TrimSpace(v), &ts.nonvol)
				}
			}
		}
		m[tid] = ts
	}
	return m
}

// logTaskStats logs what each thread that did something spent between two
// taskStats: which of the process's threads the system time goes to.
func logTaskStats(b *testing.B, before, after map[int]taskStat) {
	tids := slices.Sorted(func(yield func(int) bool) {
		for tid := range after {
			if !yield(tid) {
				return
			}
		}
	})
	var parts []string
	for _, tid := range tids {
		a, p := after[tid], before[tid]
		d := taskStat{a.user - p.user, a.sys - p.sys, a.vol - p.vol, a.nonvol - p.nonvol}
		if d.user+d.sys < 20*time.Millisecond && d.vol+d.nonvol < 200 {
			continue
		}
		parts = append(parts, fmt.Sprintf("tid %d: user %v sys %v cs %d/%d", tid, d.user, d.sys, d.vol, d.nonvol))
	}
	b.Logf("    threads: %s", strings.Join(parts, "; "))
}
