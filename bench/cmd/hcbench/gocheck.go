package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/healthcheck"
)

// perService is how many destinations each virtual service holds (keepalived
// gets the same split).
const perService = 1000

var loopback = netip.MustParseAddr("127.0.0.1")

func vip(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)}) }

// fakeClient stands for IPVS where there is none: it accepts every change.
type fakeClient struct{}

func (fakeClient) InNetNS(fn func() error) error { return fn() }
func (fakeClient) Apply(_ context.Context, ch []ipvs.Change) ([]error, error) {
	return make([]error, len(ch)), nil
}
func (fakeClient) Destinations(context.Context, ipvs.Service) ([]ipvs.DestinationStats, error) {
	return nil, nil
}

func cpuTime() time.Duration {
	cpu, _ := cpuTimes()
	return cpu
}

// cpuTimes is the process's user+sys time and sys time.
func cpuTimes() (cpu, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

func runGo(srv *servers, cfg config) (result, error) {
	r := result{name: "healthcheck", n: cfg.n, window: cfg.dur}
	if cfg.graceful && cfg.kind == "tcp" {
		r.name = "healthcheck-graceful"
	}
	if cfg.coalesce > 0 {
		r.name += "-coalesce" + cfg.coalesce.String()
	}
	runtime.GC()
	r.baseRSS = vmRSS("self")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := int64(ms.HeapInuse)

	var client healthcheck.Client = fakeClient{}
	if !cfg.fake {
		c, err := ipvs.New()
		if err != nil {
			return r, fmt.Errorf("ipvs.New (use -fake without IPVS): %w", err)
		}
		defer c.Close()
		client = c
	}
	var checks, failures atomic.Int64
	var firstErr atomic.Value
	var lat latencies
	var probe healthcheck.Probe = healthcheck.TCP{Graceful: cfg.graceful}
	if cfg.kind == "http" {
		probe = healthcheck.HTTP{Path: "/"}
	}
	// Every result through OnCheck: the probe runs as a user's would.
	// ownMissed counts, as the servers do, the gaps longer than 1.5
	// intervals between the starts of a destination's checks in the
	// window (measured by the Monitor, so that a connection a server
	// never accepted is not taken for a missed check).
	var ownMissed, windowStart atomic.Int64
	lastStart := make([]atomic.Int64, cfg.n)
	onCheck := func(r healthcheck.CheckResult) {
		checks.Add(1)
		lat.add(r.Duration)
		if i := int(r.Destination.Port) - cfg.port; i >= 0 && i < cfg.n {
			start := r.Start.UnixNano()
			prev := lastStart[i].Swap(start)
			if ws := windowStart.Load(); ws != 0 && start > ws && start-max(prev, ws) > int64(cfg.interval)*3/2 {
				ownMissed.Add(1)
			}
		}
		if r.Err != nil {
			if failures.Add(1) == 1 {
				firstErr.Store(r.Err.Error())
			}
		}
	}
	check := healthcheck.Check{Probe: probe, Interval: cfg.interval, Timeout: time.Second, Warmup: cfg.interval}
	var services []healthcheck.Service
	for i := 0; i < cfg.n; i++ {
		if i%perService == 0 {
			services = append(services, healthcheck.Service{
				Service: ipvs.Service{Protocol: ipvs.TCP, Address: vip(i / perService), Port: 80, Scheduler: ipvs.RoundRobin},
			})
		}
		s := &services[len(services)-1]
		s.Destinations = append(s.Destinations, healthcheck.Destination{
			Destination: ipvs.Destination{Address: loopback, Port: uint16(cfg.port + i), ForwardMethod: ipvs.NAT, Weight: 1},
			Checks:      []healthcheck.Check{check},
		})
	}
	var events atomic.Int64
	opts := healthcheck.Options{OnEvent: func(healthcheck.Event) { events.Add(1) }, Coalesce: cfg.coalesce}
	if cfg.onCheck {
		opts.OnCheck = onCheck
	}
	m, err := healthcheck.New(client, services, opts)
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	sleepCtx(ctx, cfg.warm)
	select {
	case err := <-done:
		cancel()
		return r, fmt.Errorf("Monitor.Run: %v", err)
	default:
	}

	if _, err := srv.call("start"); err != nil {
		cancel()
		return r, err
	}
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			cancel()
			return r, err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	lat.reset()
	windowStart.Store(time.Now().UnixNano())
	c0, f0 := checks.Load(), failures.Load()
	th0 := taskStats("self")
	cpu0, sys0 := cpuTimes()
	time.Sleep(cfg.dur)
	if cfg.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	cpu1, sys1 := cpuTimes()
	th1 := taskStats("self")
	c1, f1 := checks.Load(), failures.Load()
	err = srv.stat(&r)
	r.rss = vmRSS("self")
	runtime.ReadMemStats(&ms)
	r.heap = int64(ms.HeapInuse) - baseHeap
	r.cpu, r.sys, r.ownChecks, r.failures = cpu1-cpu0, sys1-sys0, c1-c0, f1-f0
	r.extra = fmt.Sprintf(" goroutines=%d events=%d", runtime.NumGoroutine(), events.Load()) + threadReport(th0, th1, r.checks)
	if cfg.onCheck {
		r.extra += fmt.Sprintf(" own_missed=%d check_latency{%s}", ownMissed.Load(), lat.String())
	} else {
		r.ownChecks = -1 // not counted (-oncheck counts them)
	}
	if e, ok := firstErr.Load().(string); ok {
		r.extra += fmt.Sprintf(" first_error=%q", e)
	}
	cancel()
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	return r, err
}

// latencies is a histogram of check durations, in powers of two of 100µs.
type latencies struct {
	b   [16]atomic.Int64
	max atomic.Int64
}

func (l *latencies) add(d time.Duration) {
	i := 0
	for v := d / (100 * time.Microsecond); v > 0 && i < len(l.b)-1; v >>= 1 {
		i++
	}
	l.b[i].Add(1)
	for {
		m := l.max.Load()
		if int64(d) <= m || l.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (l *latencies) reset() {
	for i := range l.b {
		l.b[i].Store(0)
	}
	l.max.Store(0)
}

// String gives the 50th and 99th percentiles (bucket upper bounds) and the
// maximum.
func (l *latencies) String() string {
	var total int64
	for i := range l.b {
		total += l.b[i].Load()
	}
	q := func(p float64) time.Duration {
		var sum int64
		for i := range l.b {
			sum += l.b[i].Load()
			if float64(sum) >= p*float64(total) {
				return 100 * time.Microsecond << i
			}
		}
		return time.Duration(l.max.Load())
	}
	return fmt.Sprintf("p50<=%v p99<=%v max=%v", q(0.5), q(0.99), time.Duration(l.max.Load()).Round(time.Millisecond))
}
