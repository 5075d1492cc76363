//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs"
)

// runBig reconciles a large table (-big-services x -dests) from empty, runs a
// no-op Reconcile and a Reconcile to empty, and reports the time and memory
// of each. It runs alone in its process, so VmHWM is its own.
func runBig(cfg config) error {
	ctx := context.Background()
	if !cfg.keepNetNS {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bringing lo up: %w", err)
		}
	}
	n, m := cfg.bigServices, cfg.dests
	fmt.Printf("ipvsbench -big: Reconcile of %d services x %d destinations (%d objects), kernel %s\n", n, m, n*(1+m), kernelRelease())
	c, err := ipvs.New()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Flush(ctx); err != nil {
		return err
	}
	w := newWorkload(n, m)
	desired := w.desired(1)
	w.dests = nil // only desired is kept alive from here on
	runtime.GC()
	fmt.Printf("BIG input: heap-inuse=%.1fMiB VmHWM=%s\n", heapInuse(), status("VmHWM"))

	step := func(name string, d []ipvs.VirtualService, want int) error {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		res, err := c.Reconcile(ctx, d, ipvs.ReconcileOptions{})
		el := time.Since(t0)
		runtime.ReadMemStats(&m1)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(res.Changes) != want {
			return fmt.Errorf("%s: %d changes, want %d", name, len(res.Changes), want)
		}
		fmt.Printf("BIG %s seconds=%.3f changes=%d alloc=%.1fMiB mallocs=%d gc-cycles=%d heap-sys=%.1fMiB VmHWM=%s\n",
			name, el.Seconds(), len(res.Changes), float64(m1.TotalAlloc-m0.TotalAlloc)/(1<<20), m1.Mallocs-m0.Mallocs,
			m1.NumGC-m0.NumGC, float64(m1.HeapSys)/(1<<20), status("VmHWM"))
		return nil
	}
	if err := step("reconcile-create", desired, n*(1+m)); err != nil {
		return err
	}
	w.dests = make([][]ipvs.Destination, n)
	for i := range desired {
		w.dests[i] = desired[i].Destinations
	}
	if err := w.verify(ctx, c, 1); err != nil {
		return fmt.Errorf("after reconcile-create: %w", err)
	}
	w.dests = nil
	t0 := time.Now()
	if _, _, err := listVirtualServices(ctx, c); err != nil {
		return err
	}
	fmt.Printf("BIG list seconds=%.3f\n", time.Since(t0).Seconds())
	if err := step("reconcile-noop", desired, 0); err != nil {
		return err
	}
	if err := step("reconcile-delete", nil, n); err != nil {
		return err
	}
	vs, err := c.VirtualServices(ctx)
	if err != nil {
		return err
	}
	if len(vs) != 0 {
		return fmt.Errorf("after reconcile-delete: %d services left", len(vs))
	}
	fmt.Printf("BIG peak VmHWM=%s VmRSS=%s\n", status("VmHWM"), status("VmRSS"))
	return nil
}

func heapInuse() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

// status returns a field of /proc/self/status, such as "VmHWM" ("123456 kB").
func status(field string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return "?"
}
