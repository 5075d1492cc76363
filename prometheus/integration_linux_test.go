//go:build linux

package prometheus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// series is a scrape's samples by metric name and then by label set
// written as `name="value",...` in label name order.
type series map[string]map[string]float64

func parseScrape(t *testing.T, body string) series {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	out := series{}
	for name, f := range fams {
		m := map[string]float64{}
		for _, s := range f.Metric {
			var ls []string
			for _, l := range s.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			m[strings.Join(ls, ",")] = value(f.GetType(), s)
		}
		out[name] = m
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// get returns a sample, failing the test if it is missing.
func (s series) get(t *testing.T, name, labels string) float64 {
	t.Helper()
	v, ok := s[name][labels]
	if !ok {
		t.Errorf("no sample %s{%s}; the family has %d samples", name, labels, len(s[name]))
	}
	return v
}

// ipvsadmStats parses `ipvsadm -Ln --stats --exact` (or `ipvsadm -Ln`):
// each service and destination line's numbers, by "service" or
// "service -> destination" as ipvsadm writes them.
func ipvsadmStats(t *testing.T, out string) map[string][]uint64 {
	t.Helper()
	rows := map[string][]uint64{}
	var svc string
	for _, line := range strings.Split(out, "\n")[3:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		key, nums := "", f[2:]
		if f[0] == "->" {
			key = svc + " -> " + f[1]
			if len(f) == 6 { // ipvsadm -Ln: Forward Weight ActiveConn InActConn
				nums = f[3:]
			}
		} else {
			svc = f[0] + " " + f[1]
			key = svc
		}
		var ns []uint64
		for _, s := range nums {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				if len(ns) == 0 {
					continue // a scheduler name or flags
				}
				break
			}
			ns = append(ns, n)
		}
		rows[key] = ns
	}
	return rows
}

// TestIntegrationExporter sends real traffic through IPVS in a namespace
// of its own, scrapes the exporter's handler over HTTP and checks every
// service's and destination's numbers against ipvsadm, the totals against
// /proc/net/ip_vs_stats, and node_exporter's series.
func TestIntegrationExporter(t *testing.T) {
	ns := newNetNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := ipvs.New(ipvs.WithNetNS(ns.fd))
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			t.Skipf("IPVS unavailable on this kernel (%s): %v", kernelRelease(), err)
		case errors.Is(err, os.ErrPermission):
			t.Skipf("IPVS unavailable to this process (CAP_NET_ADMIN missing): %v", err)
		}
		t.Fatalf("ipvs.New: %v (kernel %s)", err, kernelRelease())
	}
	defer c.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.StopSyncDaemon(ctx, ipvs.Master); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup: StopSyncDaemon: %v", err)
		}
		if err := c.Flush(ctx); err != nil {
			t.Errorf("cleanup: Flush: %v", err)
		}
	}()

	ns.addDummy(t, "dummy0", "10.16.0.1", "10.16.0.2", "10.16.1.1", "10.16.1.2")
	var ln net.Listener
	if err := ns.do(func() (err error) { ln, err = net.Listen("tcp4", "10.16.1.1:8080"); return err }); err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	go echoServer(ln)

	a := ipvs.Service{Protocol: ipvs.TCP, Address: ip("10.16.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}
	b := ipvs.Service{Protocol: ipvs.TCP, Address: ip("10.16.0.2"), Port: 80, Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: 300 * time.Second}
	m := ipvs.Service{FirewallMark: 10, Family: ipvs.IPv4, Scheduler: ipvs.RoundRobin}
	live := ipvs.Destination{Address: ip("10.16.1.1"), Port: 8080, Weight: 1}
	drained := ipvs.Destination{Address: ip("10.16.1.2"), Port: 8080, Weight: 0}
	for _, s := range []ipvs.Service{a, b, m} {
		if err := c.CreateService(ctx, s); err != nil {
			t.Fatalf("CreateService(%v): %v", s, err)
		}
	}
	for _, x := range []struct {
		s ipvs.Service
		d ipvs.Destination
	}{{a, live}, {a, drained}, {b, ipvs.Destination{Address: live.Address, Port: 8080, Weight: 3}}, {m, ipvs.Destination{Address: live.Address, Port: 8080, Weight: 2}}} {
		if err := c.CreateDestination(ctx, x.s, x.d); err != nil {
			t.Fatalf("CreateDestination(%v, %v): %v", x.s, x.d, err)
		}
	}
	if err := c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", SyncID: 7}); err != nil {
		t.Fatalf("StartSyncDaemon: %v", err)
	}

	const conns = 3
	if err := ns.do(func() error {
		for _, vip := range []string{"10.16.0.1:80", "10.16.0.2:80"} {
			for range conns {
				if err := ping(vip); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("traffic through IPVS: %v", err)
	}
	// The kernel folds per-CPU counters in about every two seconds: wait
	// until two reads 2.5 s apart agree and the traffic is in.
	var prev []ipvs.VirtualServiceStats
	for start := time.Now(); ; {
		vs, err := c.VirtualServices(ctx)
		if err != nil {
			t.Fatalf("VirtualServices: %v", err)
		}
		in := 0
		for _, v := range vs {
			in += int(v.Stats.Connections)
		}
		if in >= 2*conns && fmt.Sprint(vs) == fmt.Sprint(prev) {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("counters did not settle within 30s: %+v", vs)
		}
		prev = vs
		time.Sleep(2500 * time.Millisecond)
	}

	col := New(c, Options{NodeExporterNames: true, ConnectionStates: true})
	srv := httptest.NewServer(col.Handler()) // loopback of the VM
	defer srv.Close()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/metrics", nil)
	req.Header.Set(scrapeTimeoutHeader, "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	text := string(body)
	stats := ipvsadmStats(t, ns.ipvsadm(t, "-Ln", "--stats", "--exact"))
	list := ipvsadmStats(t, ns.ipvsadm(t, "-Ln"))
	header := ns.ipvsadm(t, "-Ln")
	daemons := ns.ipvsadm(t, "-Ln", "--daemon")
	var procStats string
	if err := ns.do(func() error {
		// /proc/net is the main thread's namespace's: this thread's is
		// under /proc/thread-self.
		b, err := os.ReadFile("/proc/thread-self/net/ip_vs_stats")
		procStats = string(b)
		return err
	}); err != nil {
		t.Fatalf("reading /proc/net/ip_vs_stats: %v", err)
	}
	t.Logf("kernel %s; the scrape has %d lines; ipvsadm -Ln --stats --exact:\n%s", kernelRelease(), strings.Count(text, "\n"), ns.ipvsadm(t, "-Ln", "--stats", "--exact"))
	s := parseScrape(t, text)

	if v := s.get(t, "ipvs_up", ""); v != 1 {
		t.Fatalf("ipvs_up = %v, want 1\n%s", v, text)
	}
	if !strings.Contains(header, fmt.Sprintf("(size=%d)", int(s.get(t, "ipvs_connection_table_size", "")))) {
		t.Errorf("ipvs_connection_table_size %v, ipvsadm says %q", s.get(t, "ipvs_connection_table_size", ""), strings.SplitN(header, "\n", 2)[0])
	}
	if !strings.Contains(header, "version 1.2.1") || s.get(t, "ipvs_version_info", `version="1.2.1"`) != 1 {
		t.Errorf("version: ipvsadm %q, scrape %v", strings.SplitN(header, "\n", 2)[0], s["ipvs_version_info"])
	}
	if s.get(t, "ipvs_services", "") != 3 {
		t.Errorf("ipvs_services = %v, want 3", s.get(t, "ipvs_services", ""))
	}

	counters := []string{"connections_total", "incoming_packets_total", "outgoing_packets_total", "incoming_bytes_total", "outgoing_bytes_total"}
	checkRow := func(what string, row []uint64, prefix, labels string) {
		t.Helper()
		if len(row) != 5 {
			t.Errorf("ipvsadm has no stats row for %s: %v", what, row)
			return
		}
		for i, k := range counters {
			if got := s.get(t, prefix+k, labels); got != float64(row[i]) {
				t.Errorf("%s: %s%s = %v, ipvsadm says %d", what, prefix, k, got, row[i])
			}
		}
	}
	type dest struct {
		svc      ipvs.Service
		ipvsadm  string // the service as ipvsadm -Ln writes it
		dst      string
		fwd      string
		nodeLbls string
	}
	dests := []dest{
		{a, "TCP 10.16.0.1:80", "10.16.1.1:8080", "NAT", `local_address="10.16.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.16.1.1",remote_port="8080"`},
		{a, "TCP 10.16.0.1:80", "10.16.1.2:8080", "NAT", `local_address="10.16.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.16.1.2",remote_port="8080"`},
		{b, "TCP 10.16.0.2:80", "10.16.1.1:8080", "NAT", `local_address="10.16.0.2",local_mark="",local_port="80",proto="TCP",remote_address="10.16.1.1",remote_port="8080"`},
		{m, "FWM 10", "10.16.1.1:8080", "NAT", `local_address="",local_mark="0000000A",local_port="0",proto="FWM",remote_address="10.16.1.1",remote_port="8080"`},
	}
	for _, svc := range []struct {
		s       ipvs.Service
		ipvsadm string
	}{{a, "TCP 10.16.0.1:80"}, {b, "TCP 10.16.0.2:80"}, {m, "FWM 10"}} {
		checkRow(svc.ipvsadm, stats[svc.ipvsadm], "ipvs_service_", fmt.Sprintf("service=%q", svc.s.String()))
	}
	for _, d := range dests {
		key := d.ipvsadm + " -> " + d.dst
		lbls := fmt.Sprintf("destination=%q,service=%q", d.dst, d.svc.String())
		checkRow(key, stats[key], "ipvs_destination_", lbls)
		l := list[key] // Weight ActiveConn InActConn
		if len(l) != 3 {
			t.Errorf("ipvsadm -Ln has no row for %s: %v", key, l)
			continue
		}
		for i, name := range []string{"weight", "connections_active", "connections_inactive"} {
			if got := s.get(t, "ipvs_destination_"+name, lbls); got != float64(l[i]) {
				t.Errorf("%s: ipvs_destination_%s = %v, ipvsadm -Ln says %d", key, name, got, l[i])
			}
			node := map[string]string{"weight": "backend_weight", "connections_active": "backend_connections_active", "connections_inactive": "backend_connections_inactive"}[name]
			if got := s.get(t, "node_ipvs_"+node, d.nodeLbls); got != float64(l[i]) {
				t.Errorf("%s: node_ipvs_%s = %v, ipvsadm -Ln says %d", key, node, got, l[i])
			}
		}
		info := fmt.Sprintf("destination=%q,forward_method=%q,service=%q,tunnel_type=\"\"", d.dst, d.fwd, d.svc.String())
		if s.get(t, "ipvs_destination_info", info) != 1 {
			t.Errorf("ipvs_destination_info: %v", s["ipvs_destination_info"])
		}
	}
	// The traffic: 3 connections through each of A's live destination and
	// B's, none through the drained one.
	if got := s.get(t, "ipvs_destination_connections_total", `destination="10.16.1.1:8080",service="TCP 10.16.0.1:80"`); got != conns {
		t.Errorf("A's live destination scheduled %v connections, want %d", got, conns)
	}
	// B is persistent: a template per client address.
	if got := s.get(t, "ipvs_destination_connections_persistent", `destination="10.16.1.1:8080",service="TCP 10.16.0.2:80"`); got != 1 {
		t.Errorf("B's destination has %v persistence templates, want 1", got)
	}

	// Totals: /proc/net/ip_vs_stats's third line, in hexadecimal.
	f := strings.Fields(strings.Split(procStats, "\n")[2])
	for i, k := range counters {
		n, err := strconv.ParseUint(f[i], 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/ip_vs_stats:\n%s", procStats)
		}
		if got := s.get(t, "ipvs_"+k, ""); got != float64(n) {
			t.Errorf("ipvs_%s = %v, /proc/net/ip_vs_stats says %d", k, got, n)
		}
		if got := s.get(t, "node_ipvs_"+k, ""); got != float64(n) {
			t.Errorf("node_ipvs_%s = %v, /proc/net/ip_vs_stats says %d", k, got, n)
		}
	}

	// The sync daemon.
	if !strings.Contains(daemons, "master sync daemon (mcast=lo, syncid=7") {
		t.Errorf("ipvsadm -Ln --daemon: %q", daemons)
	}
	if s.get(t, "ipvs_sync_daemon_running", `state="master"`) != 1 || s.get(t, "ipvs_sync_daemon_running", `state="backup"`) != 0 {
		t.Errorf("ipvs_sync_daemon_running: %v", s["ipvs_sync_daemon_running"])
	}
	found := false
	for l := range s["ipvs_sync_daemon_info"] {
		found = found || strings.Contains(l, `interface="lo"`) && strings.Contains(l, `state="master"`) && strings.Contains(l, `sync_id="7"`)
	}
	if !found {
		t.Errorf("ipvs_sync_daemon_info: %v", s["ipvs_sync_daemon_info"])
	}

	// The connection table: 6 connections in TIME_WAIT or another closing
	// state, and B's template.
	entries := 0.0
	for _, v := range s["ipvs_connection_table_entries"] {
		entries += v
	}
	if entries != 2*conns || s.get(t, "ipvs_connection_table_templates", "") != 1 {
		t.Errorf("connection table: entries %v (want %d), templates %v (want 1)", s["ipvs_connection_table_entries"], 2*conns, s["ipvs_connection_table_templates"])
	}

	// promtool, where the VM has it.
	if path, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Logf("promtool not in this VM: the unit tests run promtool check metrics on the host")
	}

	// A read that fails (a closed Client): ipvs_up 0, nothing else.
	c2, err := ipvs.New(ipvs.WithNetNS(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	var logged error
	var sb strings.Builder
	if err := New(c2, Options{ErrorLog: func(err error) { logged = err }}).WriteText(ctx, &sb); err != nil {
		t.Fatal(err)
	}
	failed := parseScrape(t, sb.String())
	if failed.get(t, "ipvs_up", "") != 0 || len(failed) != 3 || !errors.Is(logged, ipvs.ErrClosed) {
		t.Errorf("scrape of a closed Client: %v, error %v", failed, logged)
	}
}
