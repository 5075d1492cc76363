package prometheus

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	"github.com/ipvs-go/ipvs"
	prom "github.com/prometheus/client_golang/prometheus"
)

// A family is one metric: its description and how to take its samples
// from a snapshot. The Collector and the text writer both walk the same
// families, so they export the same metrics.
type family struct {
	name, help string
	typ        prom.ValueType
	labels     []string
	opt        option
	always     bool // exported even when the read failed
	desc       *prom.Desc
	samples    func(*snapshot, *emitter)
	// order lists the indexes of labels in name order, the order in which
	// client_golang writes them, so the text writer writes them so too.
	order []int
}

type option uint8

const (
	optNone option = iota
	optConnStates
	optNode
)

var (
	svcLabels  = []string{"service"}
	dstLabels  = []string{"service", "destination"}
	nodeLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}
)

// counters are the five traffic counters of ipvs.Stats, for families
// made in a loop.
var counters = []struct {
	name, what string
	get        func(*ipvs.Stats) uint64
}{
	{"connections_total", "connections scheduled", func(s *ipvs.Stats) uint64 { return s.Connections }},
	{"incoming_packets_total", "packets from clients", func(s *ipvs.Stats) uint64 { return s.PacketsIn }},
	{"outgoing_packets_total", "packets to clients", func(s *ipvs.Stats) uint64 { return s.PacketsOut }},
	{"incoming_bytes_total", "bytes from clients", func(s *ipvs.Stats) uint64 { return s.BytesIn }},
	{"outgoing_bytes_total", "bytes to clients", func(s *ipvs.Stats) uint64 { return s.BytesOut }},
}

// allFamilies are every metric, in the order they are exported.
var allFamilies = func() []*family {
	var fs []*family
	add := func(f *family) { fs = append(fs, f) }
	add(&family{name: "ipvs_up", help: "1 if the last read of the IPVS table succeeded, 0 if it failed.", typ: prom.GaugeValue, always: true,
		samples: func(s *snapshot, e *emitter) { e.sample(b2f(s.err == nil)) }})
	add(&family{name: "ipvs_scrape_duration_seconds", help: "Time the read of the IPVS table took.", typ: prom.GaugeValue, always: true,
		samples: func(s *snapshot, e *emitter) { e.sample(s.duration.Seconds()) }})
	add(&family{name: "ipvs_scrape_errors_total", help: "Failed reads of the IPVS table.", typ: prom.CounterValue, always: true,
		samples: func(s *snapshot, e *emitter) { e.sample(float64(s.errors)) }})
	add(&family{name: "ipvs_version_info", help: "The kernel's IPVS version.", typ: prom.GaugeValue, labels: []string{"version"},
		samples: func(s *snapshot, e *emitter) { e.sample(1, s.info.Version.String()) }})
	add(&family{name: "ipvs_connection_table_size", help: "Buckets of the IPVS connection hash table.", typ: prom.GaugeValue,
		samples: func(s *snapshot, e *emitter) { e.sample(float64(s.info.ConnectionTableSize)) }})
	add(&family{name: "ipvs_services", help: "Virtual services.", typ: prom.GaugeValue,
		samples: func(s *snapshot, e *emitter) { e.sample(float64(len(s.table))) }})
	for _, k := range counters {
		add(&family{name: "ipvs_" + k.name, help: "Total " + k.what + " by IPVS in the network namespace.", typ: prom.CounterValue,
			samples: func(s *snapshot, e *emitter) { e.sample(float64(k.get(&s.totals.Stats))) }})
	}

	add(&family{name: "ipvs_service_info", help: "A virtual service's configuration (value 1).", typ: prom.GaugeValue,
		labels: []string{"service", "protocol", "address", "port", "firewall_mark", "family", "scheduler", "flags", "persistence_engine"},
		samples: func(s *snapshot, e *emitter) {
			for i := range s.table {
				v := &s.table[i].Service
				proto, addr, port, mark := "FWM", "", "0", strconv.FormatUint(uint64(v.FirewallMark), 10)
				fam := v.Family
				if v.FirewallMark == 0 {
					proto, addr, port, mark = v.Protocol.String(), v.Address.String(), strconv.Itoa(int(v.Port)), ""
					fam = ipvs.IPv4
					if v.Address.Is6() {
						fam = ipvs.IPv6
					}
				}
				flags := ""
				if v.Flags != 0 {
					flags = v.Flags.String()
				}
				e.sample(1, s.svc[i], proto, addr, port, mark, fam.String(), v.Scheduler, flags, v.PersistenceEngine)
			}
		}})
	for _, k := range counters {
		add(&family{name: "ipvs_service_" + k.name, help: "Total " + k.what + " by a virtual service.", typ: prom.CounterValue, labels: svcLabels,
			samples: func(s *snapshot, e *emitter) {
				for i := range s.table {
					e.sample(float64(k.get(&s.table[i].Stats)), s.svc[i])
				}
			}})
	}

	add(&family{name: "ipvs_destination_info", help: "A destination's forwarding method and tunnel type (value 1).", typ: prom.GaugeValue,
		labels: []string{"service", "destination", "forward_method", "tunnel_type"},
		samples: func(s *snapshot, e *emitter) {
			s.eachDest(func(svc, dst string, d *ipvs.DestinationStats) {
				tun := ""
				if d.ForwardMethod == ipvs.IPIP {
					tun = d.TunnelType.String()
				}
				e.sample(1, svc, dst, d.ForwardMethod.String(), tun)
			})
		}})
	gauges := []struct {
		name, help string
		get        func(*ipvs.DestinationStats) float64
	}{
		{"weight", "A destination's weight.", func(d *ipvs.DestinationStats) float64 { return float64(d.Weight) }},
		{"connections_active", "A destination's active connections.", func(d *ipvs.DestinationStats) float64 { return float64(d.ActiveConnections) }},
		{"connections_inactive", "A destination's inactive connections.", func(d *ipvs.DestinationStats) float64 { return float64(d.InactiveConnections) }},
		{"connections_persistent", "A destination's persistence templates.", func(d *ipvs.DestinationStats) float64 { return float64(d.PersistentConnections) }},
	}
	for _, g := range gauges {
		add(&family{name: "ipvs_destination_" + g.name, help: g.help, typ: prom.GaugeValue, labels: dstLabels,
			samples: func(s *snapshot, e *emitter) {
				s.eachDest(func(svc, dst string, d *ipvs.DestinationStats) { e.sample(g.get(d), svc, dst) })
			}})
	}
	for _, k := range counters {
		add(&family{name: "ipvs_destination_" + k.name, help: "Total " + k.what + " by a destination.", typ: prom.CounterValue, labels: dstLabels,
			samples: func(s *snapshot, e *emitter) {
				s.eachDest(func(svc, dst string, d *ipvs.DestinationStats) { e.sample(float64(k.get(&d.Stats)), svc, dst) })
			}})
	}

	add(&family{name: "ipvs_sync_daemon_running", help: "1 if the sync daemon in this state runs.", typ: prom.GaugeValue, labels: []string{"state"},
		samples: func(s *snapshot, e *emitter) {
			for _, st := range []ipvs.DaemonState{ipvs.Master, ipvs.Backup} {
				run := false
				for _, d := range s.daemons {
					run = run || d.State == st
				}
				e.sample(b2f(run), st.String())
			}
		}})
	add(&family{name: "ipvs_sync_daemon_info", help: "A running sync daemon's configuration (value 1).", typ: prom.GaugeValue,
		labels: []string{"state", "interface", "sync_id", "group", "port"},
		samples: func(s *snapshot, e *emitter) {
			for _, d := range s.daemons {
				group := ""
				if d.Group.IsValid() {
					group = d.Group.String()
				}
				e.sample(1, d.State.String(), d.Interface, strconv.FormatUint(uint64(d.SyncID), 10), group, strconv.Itoa(int(d.Port)))
			}
		}})

	add(&family{name: "ipvs_connection_table_entries", help: "Connection entries per protocol and state (not templates).", typ: prom.GaugeValue,
		labels: []string{"protocol", "state"}, opt: optConnStates,
		samples: func(s *snapshot, e *emitter) {
			type key struct {
				p  ipvs.Protocol
				st ipvs.ConnectionState
			}
			sum := map[key]int{}
			for k, n := range s.conns {
				for st, m := range n.States {
					sum[key{k.Protocol, st}] += m
				}
			}
			keys := make([]key, 0, len(sum))
			for k := range sum {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.p, b.p), cmp.Compare(a.st, b.st)) })
			for _, k := range keys {
				e.sample(float64(sum[k]), k.p.String(), k.st.String())
			}
		}})
	add(&family{name: "ipvs_connection_table_templates", help: "Persistence templates in the connection table.", typ: prom.GaugeValue, opt: optConnStates,
		samples: func(s *snapshot, e *emitter) {
			n := 0
			for _, c := range s.conns {
				n += c.Templates
			}
			e.sample(float64(n))
		}})

	for _, k := range counters {
		add(&family{name: "node_ipvs_" + k.name, help: nodeHelp[k.name], typ: prom.CounterValue, opt: optNode,
			samples: func(s *snapshot, e *emitter) { e.sample(float64(k.get(&s.totals.Stats))) }})
	}
	backend := []struct {
		name, help string
		get        func(*ipvs.DestinationStats) float64
	}{
		{"backend_connections_active", "The current active connections by local and remote address.", func(d *ipvs.DestinationStats) float64 { return float64(d.ActiveConnections) }},
		{"backend_connections_inactive", "The current inactive connections by local and remote address.", func(d *ipvs.DestinationStats) float64 { return float64(d.InactiveConnections) }},
		{"backend_weight", "The current backend weight by local and remote address.", func(d *ipvs.DestinationStats) float64 { return float64(d.Weight) }},
	}
	for _, b := range backend {
		add(&family{name: "node_ipvs_" + b.name, help: b.help, typ: prom.GaugeValue, labels: nodeLabels, opt: optNode,
			samples: func(s *snapshot, e *emitter) { s.eachBackend(b.get, e) }})
	}

	for _, f := range fs {
		f.desc = prom.NewDesc(f.name, f.help, f.labels, nil)
		for i := range f.labels {
			f.order = append(f.order, i)
		}
		slices.SortFunc(f.order, func(a, b int) int { return cmp.Compare(f.labels[a], f.labels[b]) })
	}
	return fs
}()

// nodeHelp are node_exporter's help texts of its totals.
var nodeHelp = map[string]string{
	"connections_total":      "The total number of connections made.",
	"incoming_packets_total": "The total number of incoming packets.",
	"outgoing_packets_total": "The total number of outgoing packets.",
	"incoming_bytes_total":   "The total amount of incoming data.",
	"outgoing_bytes_total":   "The total amount of outgoing data.",
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// eachDest calls f for every destination with its labels.
func (s *snapshot) eachDest(f func(svc, dst string, d *ipvs.DestinationStats)) {
	j := 0
	for i := range s.table {
		ds := s.table[i].Destinations
		for k := range ds {
			f(s.svc[i], s.dst[j], &ds[k])
			j++
		}
	}
}

// A nodeRow is a row of node_exporter's backend series: its labels and
// the destinations it sums.
type nodeRow struct {
	labels [6]string
	d      *ipvs.DestinationStats
	more   []*ipvs.DestinationStats // rarely any
}

// nodeRows returns node_exporter's backend rows, made on first use: one
// per destination, labelled as node_exporter labels the rows of
// /proc/net/ip_vs. Only firewall-mark services can repeat a label set (the
// same mark in IPv4 and IPv6 with the same destination); node_exporter sums
// such rows.
func (s *snapshot) nodeRows() []nodeRow {
	if s.node != nil {
		return s.node
	}
	type key struct {
		mark uint32
		dst  netip.AddrPort
	}
	var marks map[key]int // index in rows of a firewall-mark row
	rows := make([]nodeRow, 0, len(s.dst))
	for i := range s.table {
		v := &s.table[i]
		addr, port, proto, mark := nodeAddr(v.Service.Address), strconv.Itoa(int(v.Service.Port)), v.Service.Protocol.String(), ""
		if v.Service.FirewallMark != 0 {
			addr, port, proto, mark = "", "0", "FWM", nodeMark(v.Service.FirewallMark)
			if marks == nil {
				marks = map[key]int{}
			}
		}
		for k := range v.Destinations {
			d := &v.Destinations[k]
			if v.Service.FirewallMark != 0 {
				kk := key{v.Service.FirewallMark, netip.AddrPortFrom(d.Address, d.Port)}
				if j, ok := marks[kk]; ok {
					rows[j].more = append(rows[j].more, d)
					continue
				}
				marks[kk] = len(rows)
			}
			rows = append(rows, nodeRow{
				labels: [6]string{addr, port, nodeAddr(d.Address), strconv.Itoa(int(d.Port)), proto, mark},
				d:      d,
			})
		}
	}
	s.node = rows
	return rows
}

// eachBackend emits a node_exporter backend family.
func (s *snapshot) eachBackend(get func(*ipvs.DestinationStats) float64, e *emitter) {
	for i := range s.nodeRows() {
		r := &s.node[i]
		v := get(r.d)
		for _, d := range r.more {
			v += get(d)
		}
		e.sample(v, r.labels[:]...)
	}
}

// nodeAddr writes an address as node_exporter does (net.IP.String): an
// IPv4-mapped IPv6 address in dotted form.
func nodeAddr(a netip.Addr) string { return a.Unmap().String() }

// nodeMark writes a firewall mark as /proc/net/ip_vs does ("%08X").
func nodeMark(m uint32) string {
	const hex = "0123456789ABCDEF"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = hex[m&0xf]
		m >>= 4
	}
	return string(b[:])
}
