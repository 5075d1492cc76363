//go:build linux

// Command scrapebench times a scrape of this module's exporter against
// node_exporter's IPVS collector on the same table, on a real IPVS kernel
// (run it in a VM: see BENCHMARKS.md).
//
// It re-executes itself in a fresh network namespace (loopback up, no
// packet ever leaves it), creates SERVICES x DESTS destinations, starts
// node_exporter there (-node-exporter, with only its ipvs collector) and
// this module's Handler on loopback ports, and times ROUNDS whole HTTP GETs
// of /metrics of each, alternating, without compression. It prints the
// median and the fastest, the response size and series, and the
// allocations of one WriteText (the Handler's work) of the table. The exit
// status depends on errors only, never on timings.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs"
	ipvsprom "github.com/ipvs-go/ipvs/prometheus"
	"golang.org/x/sys/unix"
)

const childEnv = "SCRAPEBENCH_CHILD"

func main() {
	services := flag.Int("services", 2000, "virtual services")
	dests := flag.Int("dests", 4, "destinations per service")
	rounds := flag.Int("rounds", 21, "timed scrapes of each exporter")
	node := flag.String("node-exporter", "", "node_exporter binary (empty: time this module's exporter alone)")
	flag.Parse()
	if os.Getenv(childEnv) == "" {
		// The parent: run the same command in a new network namespace.
		cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "scrapebench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*services, *dests, *rounds, *node); err != nil {
		fmt.Fprintf(os.Stderr, "scrapebench: %v\n", err)
		os.Exit(1)
	}
}

func run(n, m, rounds int, nodeBin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	c, err := ipvs.New()
	if err != nil {
		return err
	}
	defer c.Close()
	var changes []ipvs.Change
	for i := range n {
		s := ipvs.Service{Protocol: ipvs.TCP, Address: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 80, Scheduler: ipvs.WeightedLeastConnection}
		changes = append(changes, ipvs.Change{Kind: ipvs.CreateService, Service: s})
		for j := range m {
			k := i*m + j
			d := ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 2 + byte(k>>16), byte(k >> 8), byte(k)}), Port: 8080, Weight: 1 + j}
			changes = append(changes, ipvs.Change{Kind: ipvs.CreateDestination, Service: s, Destination: d})
		}
	}
	errs, err := c.Apply(ctx, changes)
	if err != nil {
		return fmt.Errorf("creating the table: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("creating the table: %w", err)
	}
	vs, err := c.VirtualServices(ctx)
	if err != nil || len(vs) != n {
		return fmt.Errorf("the table has %d services, want %d (%v)", len(vs), n, err)
	}
	fmt.Printf("SETUP kernel=%s services=%d dests=%d\n", release(), n, n*m)

	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}
	type target struct {
		name, url string
	}
	var targets []target
	for _, o := range []struct {
		name string
		opts ipvsprom.Options
	}{{"ipvs", ipvsprom.Options{}}, {"ipvs+node-names", ipvsprom.Options{NodeExporterNames: true}}} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: ipvsprom.New(c, o.opts).Handler()}
		go srv.Serve(ln)
		defer srv.Close()
		targets = append(targets, target{o.name, "http://" + ln.Addr().String() + "/metrics"})
	}
	if nodeBin != "" {
		const addr = "127.0.0.1:19100"
		cmd := exec.Command(nodeBin, "--collector.disable-defaults", "--collector.ipvs", "--web.disable-exporter-metrics", "--web.listen-address="+addr)
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting node_exporter: %w", err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		url := "http://" + addr + "/metrics"
		for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
			if _, _, err := get(client, url); err == nil {
				break
			} else if time.Since(start) > 30*time.Second {
				return fmt.Errorf("node_exporter does not answer: %w", err)
			}
		}
		targets = append(targets, target{"node_exporter", url})
	}

	// One untimed scrape of each, checked; then the rounds, alternating.
	for _, t := range targets {
		size, series, err := get(client, t.url)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		fmt.Printf("SIZE %s bytes=%d series=%d\n", t.name, size, series)
	}
	times := make([][]time.Duration, len(targets))
	for range rounds {
		for i, t := range targets {
			runtime.GC()
			start := time.Now()
			if _, _, err := get(client, t.url); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	for i, t := range targets {
		slices.Sort(times[i])
		fmt.Printf("RESULT %s median=%.1fms min=%.1fms rounds=%d\n", t.name, ms(times[i][len(times[i])/2]), ms(times[i][0]), rounds)
	}

	// The Handler's allocations: WriteText of the table to io.Discard.
	for _, o := range []struct {
		name string
		opts ipvsprom.Options
	}{{"ipvs", ipvsprom.Options{}}, {"ipvs+node-names", ipvsprom.Options{NodeExporterNames: true}}} {
		col := ipvsprom.New(c, o.opts)
		var before, after runtime.MemStats
		const reps = 5
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range reps {
			if err := col.WriteText(ctx, io.Discard); err != nil {
				return err
			}
		}
		runtime.ReadMemStats(&after)
		fmt.Printf("ALLOCS %s per-scrape: mallocs=%d bytes=%.1fMiB\n", o.name, (after.Mallocs-before.Mallocs)/reps, float64(after.TotalAlloc-before.TotalAlloc)/reps/(1<<20))
	}
	return nil
}

// get fetches url and returns the body's size and its series (lines
// other than comments), failing unless the status is 200 and the body
// has an ipvs metric.
func get(c *http.Client, url string) (int, int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	size, series, ipvsSeen := 0, 0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		size += len(line) + 1
		if len(line) > 0 && line[0] != '#' {
			series++
			ipvsSeen = ipvsSeen || strings.Contains(string(line[:min(len(line), 16)]), "ipvs_")
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !ipvsSeen {
		return 0, 0, fmt.Errorf("GET %s: no ipvs metric", url)
	}
	return size, series, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// loopbackUp sets lo up in the namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
