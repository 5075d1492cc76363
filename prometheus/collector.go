// Package prometheus exports the IPVS table of a network namespace as
// Prometheus metrics: per service and per destination counters and gauges,
// the namespace's totals, the sync daemons, and the kernel's IPVS version
// and connection table size, from one bulk read per scrape.
//
// It is a module of its own, github.com/ipvs-go/ipvs/prometheus, so that
// the ipvs module does not depend on client_golang. A Collector is a
// prometheus.Collector for a registry of your own; its Handler serves the
// same metrics faster, writing the text format directly and bounding the
// read by the scrape's timeout. cmd/ipvs_exporter is a ready exporter.
//
// # Metrics
//
// Series of a service carry the label service, as ipvs.Service.String
// writes it ("TCP 10.0.0.1:80", "FWM 100", "FWM 100 IPv6"); series of a
// destination carry service and destination ("10.0.2.1:8080",
// "[2001:db8::1]:80"). The rest of their configuration is in the info
// metrics ipvs_service_info and ipvs_destination_info (value 1), to be
// joined on those labels:
//
//	ipvs_up                                  gauge    1 if the last read succeeded, else 0
//	ipvs_scrape_duration_seconds             gauge    time the read took
//	ipvs_scrape_errors_total                 counter  failed reads since the Collector was made
//	ipvs_version_info{version}               gauge    1
//	ipvs_connection_table_size               gauge    buckets of the connection hash table
//	ipvs_services                            gauge    number of virtual services
//	ipvs_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total
//	                                         counter  the namespace's totals (/proc/net/ip_vs_stats)
//	ipvs_service_info{service,protocol,address,port,firewall_mark,family,scheduler,flags,persistence_engine}
//	ipvs_service_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total{service}
//	ipvs_destination_info{service,destination,forward_method,tunnel_type}
//	ipvs_destination_weight{service,destination}
//	ipvs_destination_connections_{active,inactive,persistent}{service,destination}
//	ipvs_destination_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total{service,destination}
//	ipvs_sync_daemon_running{state}          gauge    1 if the master (backup) daemon runs
//	ipvs_sync_daemon_info{state,interface,sync_id,group,port}
//
// With Options.ConnectionStates (it costs a read of the connection table
// from /proc):
//
//	ipvs_connection_table_entries{protocol,state}  gauge  connection entries per state
//	ipvs_connection_table_templates                gauge  persistence templates
//
// With Options.NodeExporterNames, the eight metrics of node_exporter's ipvs
// collector too, with its names, labels and label values (see
// Options.NodeExporterNames), so that its dashboards and alerts keep working.
//
// If any read fails, the scrape has ipvs_up 0, the duration and the error
// count, and nothing else: never a partial table. Options.ErrorLog gets
// the error.
package prometheus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipvs-go/ipvs"
	prom "github.com/prometheus/client_golang/prometheus"
)

// Reader is what a Collector reads: *ipvs.Client implements it, and tests
// can use a fake table.
type Reader interface {
	Info(context.Context) (ipvs.Info, error)
	VirtualServices(context.Context) ([]ipvs.VirtualServiceStats, error)
	SyncDaemons(context.Context) ([]ipvs.SyncDaemon, error)
	Totals(context.Context) (ipvs.Totals, error)
	// ConnectionCounts is read only with Options.ConnectionStates.
	ConnectionCounts(context.Context) (map[ipvs.ConnectionKey]ipvs.ConnectionCount, error)
}

var _ Reader = (*ipvs.Client)(nil)

// Options configure a Collector. The zero value is ready to use.
type Options struct {
	// Timeout bounds the reads of a Collect, which has no context of its
	// own; 10 seconds if zero. Handler uses the scrape's timeout instead,
	// if the scraper sends one, capped at Timeout.
	Timeout time.Duration
	// ConnectionStates adds the connection table's entries per protocol
	// and state. The kernel walks its whole connection table to show it,
	// which is slow for a large table.
	ConnectionStates bool
	// NodeExporterNames adds node_exporter's eight IPVS metrics:
	//
	//	node_ipvs_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total
	//	node_ipvs_backend_connections_{active,inactive}{local_address,local_port,remote_address,remote_port,proto,local_mark}
	//	node_ipvs_backend_weight{local_address,local_port,remote_address,remote_port,proto,local_mark}
	//
	// with node_exporter's label values: addresses as Go's net.IP prints
	// them, ports in decimal, proto "TCP", "UDP", "SCTP" or "FWM"; for a
	// firewall-mark service local_address is "", local_port "0" and
	// local_mark the mark as the kernel prints it in /proc/net/ip_vs,
	// eight upper-case hexadecimal digits ("0000000A" for mark 10),
	// otherwise local_mark is "". Rows with equal labels (the same mark
	// in IPv4 and IPv6 with the same destination) are summed, as
	// node_exporter does. Do not also enable node_exporter's ipvs
	// collector on the same host, or the series are exported twice.
	NodeExporterNames bool
	// ErrorLog, if not nil, is called with the error of every failed
	// read.
	ErrorLog func(error)
}

// A Collector exports the IPVS table read from a Reader, usually an
// *ipvs.Client. It is safe for concurrent use.
type Collector struct {
	r      Reader
	opts   Options
	fams   []*family
	errors atomic.Uint64
	since  func(time.Time) time.Duration // time.Since; tests fix it
}

// New returns a Collector reading from r.
func New(r Reader, opts Options) *Collector {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	c := &Collector{r: r, opts: opts, since: time.Since}
	for _, f := range allFamilies {
		if (f.opt == optConnStates && !opts.ConnectionStates) || (f.opt == optNode && !opts.NodeExporterNames) {
			continue
		}
		c.fams = append(c.fams, f)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prom.Desc) {
	for _, f := range c.fams {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector: it reads the table within
// Options.Timeout and sends its metrics.
func (c *Collector) Collect(ch chan<- prom.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	s := c.read(ctx)
	e := emitter{ch: ch}
	c.emit(&e, s)
}

// snapshot is what one scrape read.
type snapshot struct {
	err      error
	duration time.Duration
	errors   uint64

	info    ipvs.Info
	table   []ipvs.VirtualServiceStats
	daemons []ipvs.SyncDaemon
	totals  ipvs.Totals
	conns   map[ipvs.ConnectionKey]ipvs.ConnectionCount

	// svc[i] labels table[i], dst[j] its destinations in order.
	svc []string
	dst []string
	// node are node_exporter's backend rows (nodeRows), made on first use.
	node []nodeRow
}

// read reads everything a scrape exports, the reads in parallel. The first
// error fails the whole snapshot.
func (c *Collector) read(ctx context.Context) *snapshot {
	start := time.Now()
	s := &snapshot{}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	run := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				fail(err)
			}
		})
	}
	run(func() (err error) { s.table, err = c.r.VirtualServices(ctx); return err })
	run(func() (err error) { s.info, err = c.r.Info(ctx); return err })
	run(func() (err error) { s.daemons, err = c.r.SyncDaemons(ctx); return err })
	run(func() (err error) { s.totals, err = c.r.Totals(ctx); return err })
	if c.opts.ConnectionStates {
		run(func() (err error) { s.conns, err = c.r.ConnectionCounts(ctx); return err })
	}
	wg.Wait()
	s.duration = c.since(start)
	if len(errs) > 0 {
		s.err = errs[0]
		s.errors = c.errors.Add(1)
		if c.opts.ErrorLog != nil {
			c.opts.ErrorLog(s.err)
		}
		return s
	}
	s.errors = c.errors.Load()
	n := 0
	for _, v := range s.table {
		n += len(v.Destinations)
	}
	s.svc = make([]string, len(s.table))
	s.dst = make([]string, 0, n)
	for i, v := range s.table {
		s.svc[i] = v.Service.String()
		for _, d := range v.Destinations {
			s.dst = append(s.dst, d.Destination.String())
		}
	}
	return s
}

// emit sends the snapshot's metrics, family by family.
func (c *Collector) emit(e *emitter, s *snapshot) {
	for _, f := range c.fams {
		if s.err != nil && !f.always {
			continue
		}
		e.start(f)
		f.samples(s, e)
	}
}
