package prometheus

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// fakeReader is a table in memory. A read whose error is set fails.
type fakeReader struct {
	info    ipvs.Info
	table   []ipvs.VirtualServiceStats
	daemons []ipvs.SyncDaemon
	totals  ipvs.Totals
	conns   map[ipvs.ConnectionKey]ipvs.ConnectionCount

	errInfo, errTable, errDaemons, errTotals, errConns error

	mu        sync.Mutex
	deadlines []time.Time // of the VirtualServices calls
	connReads int
}

func (f *fakeReader) Info(context.Context) (ipvs.Info, error) { return f.info, f.errInfo }
func (f *fakeReader) VirtualServices(ctx context.Context) ([]ipvs.VirtualServiceStats, error) {
	d, _ := ctx.Deadline()
	f.mu.Lock()
	f.deadlines = append(f.deadlines, d)
	f.mu.Unlock()
	return f.table, f.errTable
}
func (f *fakeReader) SyncDaemons(context.Context) ([]ipvs.SyncDaemon, error) {
	return f.daemons, f.errDaemons
}
func (f *fakeReader) Totals(context.Context) (ipvs.Totals, error) { return f.totals, f.errTotals }
func (f *fakeReader) ConnectionCounts(context.Context) (map[ipvs.ConnectionKey]ipvs.ConnectionCount, error) {
	f.mu.Lock()
	f.connReads++
	f.mu.Unlock()
	return f.conns, f.errConns
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func st(c, pi, po, bi, bo uint64) ipvs.Stats {
	return ipvs.Stats{Connections: c, PacketsIn: pi, PacketsOut: po, BytesIn: bi, BytesOut: bo, ConnectionRate: 99, ByteRateIn: 99}
}

// newFake is a small table: two address services, one of IPv6 with
// persistence, the same firewall mark in IPv4 and IPv6 with the same
// (tunnelled) destination, and a service without destinations.
func newFake() *fakeReader {
	gue := ipvs.Destination{Address: ip("10.0.3.1"), ForwardMethod: ipvs.IPIP, Weight: 2, TunnelType: ipvs.TunnelGUE, TunnelPort: 6080}
	return &fakeReader{
		info: ipvs.Info{Version: ipvs.Version{Major: 1, Minor: 2, Patch: 1}, ConnectionTableSize: 4096},
		table: []ipvs.VirtualServiceStats{
			{
				ServiceStats: ipvs.ServiceStats{Service: ipvs.Service{Protocol: ipvs.TCP, Address: ip("10.0.0.1"), Port: 80, Scheduler: ipvs.RoundRobin}, Stats: st(10, 100, 90, 6000, 12345678901)},
				Destinations: []ipvs.DestinationStats{
					{Destination: ipvs.Destination{Address: ip("10.0.2.1"), Port: 8080, Weight: 1}, ActiveConnections: 2, InactiveConnections: 1, Stats: st(6, 60, 50, 3600, 7000)},
					{Destination: ipvs.Destination{Address: ip("10.0.2.2"), Port: 8080, ForwardMethod: ipvs.DR}, InactiveConnections: 3, Stats: st(4, 40, 40, 2400, 5000)},
				},
			},
			{
				ServiceStats: ipvs.ServiceStats{Service: ipvs.Service{Protocol: ipvs.UDP, Address: ip("2001:db8::1"), Port: 53, Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagPersistent, Timeout: 300 * time.Second}, Stats: st(5, 5, 5, 500, 800)},
				Destinations: []ipvs.DestinationStats{
					{Destination: ipvs.Destination{Address: ip("2001:db8::10"), Port: 53, Weight: 3}, InactiveConnections: 1, PersistentConnections: 1, Stats: st(5, 5, 5, 500, 800)},
				},
			},
			{
				ServiceStats: ipvs.ServiceStats{Service: ipvs.Service{FirewallMark: 10, Family: ipvs.IPv4, Scheduler: ipvs.MaglevHashing, Flags: ipvs.FlagMHPort}, Stats: st(1, 2, 3, 4, 5)},
				Destinations: []ipvs.DestinationStats{{Destination: gue, ActiveConnections: 1, Stats: st(1, 2, 3, 4, 5)}},
			},
			{
				ServiceStats: ipvs.ServiceStats{Service: ipvs.Service{FirewallMark: 10, Family: ipvs.IPv6, Scheduler: ipvs.RoundRobin}},
				Destinations: []ipvs.DestinationStats{{Destination: ipvs.Destination{Address: ip("10.0.3.1"), ForwardMethod: ipvs.IPIP, Weight: 5}, ActiveConnections: 3, InactiveConnections: 4}},
			},
			{ServiceStats: ipvs.ServiceStats{Service: ipvs.Service{Protocol: ipvs.SCTP, Address: ip("10.0.0.2"), Port: 9, Scheduler: ipvs.ShortestExpectedDelay, PersistenceEngine: ipvs.PersistenceEngineSIP}}},
		},
		daemons: []ipvs.SyncDaemon{{State: ipvs.Master, Interface: "eth0", SyncID: 5, Group: ip("224.0.0.81"), Port: 8848, TTL: 1, MaxLength: 1472}},
		totals:  ipvs.Totals{Stats: st(16, 107, 98, 6504, 12345679706)},
		conns: map[ipvs.ConnectionKey]ipvs.ConnectionCount{
			{Protocol: ipvs.TCP, Virtual: netip.MustParseAddrPort("10.0.0.1:80"), Destination: netip.MustParseAddrPort("10.0.2.1:8080")}:          {Active: 2, Inactive: 1, States: map[ipvs.ConnectionState]int{ipvs.StateEstablished: 2, ipvs.StateTimeWait: 1}},
			{Protocol: ipvs.TCP, Virtual: netip.MustParseAddrPort("10.0.0.1:80"), Destination: netip.MustParseAddrPort("10.0.2.2:8080")}:          {Inactive: 3, States: map[ipvs.ConnectionState]int{ipvs.StateTimeWait: 2, ipvs.StateFinWait: 1}},
			{Protocol: ipvs.UDP, Virtual: netip.MustParseAddrPort("[2001:db8::1]:53"), Destination: netip.MustParseAddrPort("[2001:db8::10]:53")}: {Inactive: 1, Templates: 1, States: map[ipvs.ConnectionState]int{ipvs.StateUDP: 1}},
		},
	}
}

// newTestCollector is New with a fixed read duration.
func newTestCollector(r Reader, opts Options) *Collector {
	c := New(r, opts)
	c.since = func(time.Time) time.Duration { return 1500 * time.Microsecond }
	return c
}

const wantBase = `
# HELP ipvs_up 1 if the last read of the IPVS table succeeded, 0 if it failed.
# TYPE ipvs_up gauge
ipvs_up 1
# HELP ipvs_scrape_duration_seconds Time the read of the IPVS table took.
# TYPE ipvs_scrape_duration_seconds gauge
ipvs_scrape_duration_seconds 0.0015
# HELP ipvs_scrape_errors_total Failed reads of the IPVS table.
# TYPE ipvs_scrape_errors_total counter
ipvs_scrape_errors_total 0
# HELP ipvs_version_info The kernel's IPVS version.
# TYPE ipvs_version_info gauge
ipvs_version_info{version="1.2.1"} 1
# HELP ipvs_connection_table_size Buckets of the IPVS connection hash table.
# TYPE ipvs_connection_table_size gauge
ipvs_connection_table_size 4096
# HELP ipvs_services Virtual services.
# TYPE ipvs_services gauge
ipvs_services 5
# HELP ipvs_connections_total Total connections scheduled by IPVS in the network namespace.
# TYPE ipvs_connections_total counter
ipvs_connections_total 16
# HELP ipvs_incoming_packets_total Total packets from clients by IPVS in the network namespace.
# TYPE ipvs_incoming_packets_total counter
ipvs_incoming_packets_total 107
# HELP ipvs_outgoing_packets_total Total packets to clients by IPVS in the network namespace.
# TYPE ipvs_outgoing_packets_total counter
ipvs_outgoing_packets_total 98
# HELP ipvs_incoming_bytes_total Total bytes from clients by IPVS in the network namespace.
# TYPE ipvs_incoming_bytes_total counter
ipvs_incoming_bytes_total 6504
# HELP ipvs_outgoing_bytes_total Total bytes to clients by IPVS in the network namespace.
# TYPE ipvs_outgoing_bytes_total counter
ipvs_outgoing_bytes_total 12345679706
# HELP ipvs_service_info A virtual service's configuration (value 1).
# TYPE ipvs_service_info gauge
ipvs_service_info{address="10.0.0.1",family="IPv4",firewall_mark="",flags="",persistence_engine="",port="80",protocol="TCP",scheduler="rr",service="TCP 10.0.0.1:80"} 1
ipvs_service_info{address="2001:db8::1",family="IPv6",firewall_mark="",flags="persistent",persistence_engine="",port="53",protocol="UDP",scheduler="wlc",service="UDP [2001:db8::1]:53"} 1
ipvs_service_info{address="",family="IPv4",firewall_mark="10",flags="flag-2",persistence_engine="",port="0",protocol="FWM",scheduler="mh",service="FWM 10"} 1
ipvs_service_info{address="",family="IPv6",firewall_mark="10",flags="",persistence_engine="",port="0",protocol="FWM",scheduler="rr",service="FWM 10 IPv6"} 1
ipvs_service_info{address="10.0.0.2",family="IPv4",firewall_mark="",flags="",persistence_engine="sip",port="9",protocol="SCTP",scheduler="sed",service="SCTP 10.0.0.2:9"} 1
# HELP ipvs_service_connections_total Total connections scheduled by a virtual service.
# TYPE ipvs_service_connections_total counter
ipvs_service_connections_total{service="TCP 10.0.0.1:80"} 10
ipvs_service_connections_total{service="UDP [2001:db8::1]:53"} 5
ipvs_service_connections_total{service="FWM 10"} 1
ipvs_service_connections_total{service="FWM 10 IPv6"} 0
ipvs_service_connections_total{service="SCTP 10.0.0.2:9"} 0
# HELP ipvs_service_incoming_packets_total Total packets from clients by a virtual service.
# TYPE ipvs_service_incoming_packets_total counter
ipvs_service_incoming_packets_total{service="TCP 10.0.0.1:80"} 100
ipvs_service_incoming_packets_total{service="UDP [2001:db8::1]:53"} 5
ipvs_service_incoming_packets_total{service="FWM 10"} 2
ipvs_service_incoming_packets_total{service="FWM 10 IPv6"} 0
ipvs_service_incoming_packets_total{service="SCTP 10.0.0.2:9"} 0
# HELP ipvs_service_outgoing_packets_total Total packets to clients by a virtual service.
# TYPE ipvs_service_outgoing_packets_total counter
ipvs_service_outgoing_packets_total{service="TCP 10.0.0.1:80"} 90
ipvs_service_outgoing_packets_total{service="UDP [2001:db8::1]:53"} 5
ipvs_service_outgoing_packets_total{service="FWM 10"} 3
ipvs_service_outgoing_packets_total{service="FWM 10 IPv6"} 0
ipvs_service_outgoing_packets_total{service="SCTP 10.0.0.2:9"} 0
# HELP ipvs_service_incoming_bytes_total Total bytes from clients by a virtual service.
# TYPE ipvs_service_incoming_bytes_total counter
ipvs_service_incoming_bytes_total{service="TCP 10.0.0.1:80"} 6000
ipvs_service_incoming_bytes_total{service="UDP [2001:db8::1]:53"} 500
ipvs_service_incoming_bytes_total{service="FWM 10"} 4
ipvs_service_incoming_bytes_total{service="FWM 10 IPv6"} 0
ipvs_service_incoming_bytes_total{service="SCTP 10.0.0.2:9"} 0
# HELP ipvs_service_outgoing_bytes_total Total bytes to clients by a virtual service.
# TYPE ipvs_service_outgoing_bytes_total counter
ipvs_service_outgoing_bytes_total{service="TCP 10.0.0.1:80"} 12345678901
ipvs_service_outgoing_bytes_total{service="UDP [2001:db8::1]:53"} 800
ipvs_service_outgoing_bytes_total{service="FWM 10"} 5
ipvs_service_outgoing_bytes_total{service="FWM 10 IPv6"} 0
ipvs_service_outgoing_bytes_total{service="SCTP 10.0.0.2:9"} 0
# HELP ipvs_destination_info A destination's forwarding method and tunnel type (value 1).
# TYPE ipvs_destination_info gauge
ipvs_destination_info{destination="10.0.2.1:8080",forward_method="NAT",service="TCP 10.0.0.1:80",tunnel_type=""} 1
ipvs_destination_info{destination="10.0.2.2:8080",forward_method="DR",service="TCP 10.0.0.1:80",tunnel_type=""} 1
ipvs_destination_info{destination="[2001:db8::10]:53",forward_method="NAT",service="UDP [2001:db8::1]:53",tunnel_type=""} 1
ipvs_destination_info{destination="10.0.3.1:0",forward_method="IPIP",service="FWM 10",tunnel_type="gue"} 1
ipvs_destination_info{destination="10.0.3.1:0",forward_method="IPIP",service="FWM 10 IPv6",tunnel_type="ipip"} 1
# HELP ipvs_destination_weight A destination's weight.
# TYPE ipvs_destination_weight gauge
ipvs_destination_weight{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 1
ipvs_destination_weight{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 0
ipvs_destination_weight{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 3
ipvs_destination_weight{destination="10.0.3.1:0",service="FWM 10"} 2
ipvs_destination_weight{destination="10.0.3.1:0",service="FWM 10 IPv6"} 5
# HELP ipvs_destination_connections_active A destination's active connections.
# TYPE ipvs_destination_connections_active gauge
ipvs_destination_connections_active{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 2
ipvs_destination_connections_active{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 0
ipvs_destination_connections_active{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 0
ipvs_destination_connections_active{destination="10.0.3.1:0",service="FWM 10"} 1
ipvs_destination_connections_active{destination="10.0.3.1:0",service="FWM 10 IPv6"} 3
# HELP ipvs_destination_connections_inactive A destination's inactive connections.
# TYPE ipvs_destination_connections_inactive gauge
ipvs_destination_connections_inactive{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 1
ipvs_destination_connections_inactive{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 3
ipvs_destination_connections_inactive{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 1
ipvs_destination_connections_inactive{destination="10.0.3.1:0",service="FWM 10"} 0
ipvs_destination_connections_inactive{destination="10.0.3.1:0",service="FWM 10 IPv6"} 4
# HELP ipvs_destination_connections_persistent A destination's persistence templates.
# TYPE ipvs_destination_connections_persistent gauge
ipvs_destination_connections_persistent{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 0
ipvs_destination_connections_persistent{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 0
ipvs_destination_connections_persistent{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 1
ipvs_destination_connections_persistent{destination="10.0.3.1:0",service="FWM 10"} 0
ipvs_destination_connections_persistent{destination="10.0.3.1:0",service="FWM 10 IPv6"} 0
# HELP ipvs_destination_connections_total Total connections scheduled by a destination.
# TYPE ipvs_destination_connections_total counter
ipvs_destination_connections_total{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 6
ipvs_destination_connections_total{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 4
ipvs_destination_connections_total{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 5
ipvs_destination_connections_total{destination="10.0.3.1:0",service="FWM 10"} 1
ipvs_destination_connections_total{destination="10.0.3.1:0",service="FWM 10 IPv6"} 0
# HELP ipvs_destination_incoming_packets_total Total packets from clients by a destination.
# TYPE ipvs_destination_incoming_packets_total counter
ipvs_destination_incoming_packets_total{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 60
ipvs_destination_incoming_packets_total{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 40
ipvs_destination_incoming_packets_total{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 5
ipvs_destination_incoming_packets_total{destination="10.0.3.1:0",service="FWM 10"} 2
ipvs_destination_incoming_packets_total{destination="10.0.3.1:0",service="FWM 10 IPv6"} 0
# HELP ipvs_destination_outgoing_packets_total Total packets to clients by a destination.
# TYPE ipvs_destination_outgoing_packets_total counter
ipvs_destination_outgoing_packets_total{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 50
ipvs_destination_outgoing_packets_total{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 40
ipvs_destination_outgoing_packets_total{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 5
ipvs_destination_outgoing_packets_total{destination="10.0.3.1:0",service="FWM 10"} 3
ipvs_destination_outgoing_packets_total{destination="10.0.3.1:0",service="FWM 10 IPv6"} 0
# HELP ipvs_destination_incoming_bytes_total Total bytes from clients by a destination.
# TYPE ipvs_destination_incoming_bytes_total counter
ipvs_destination_incoming_bytes_total{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 3600
ipvs_destination_incoming_bytes_total{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 2400
ipvs_destination_incoming_bytes_total{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 500
ipvs_destination_incoming_bytes_total{destination="10.0.3.1:0",service="FWM 10"} 4
ipvs_destination_incoming_bytes_total{destination="10.0.3.1:0",service="FWM 10 IPv6"} 0
# HELP ipvs_destination_outgoing_bytes_total Total bytes to clients by a destination.
# TYPE ipvs_destination_outgoing_bytes_total counter
ipvs_destination_outgoing_bytes_total{destination="10.0.2.1:8080",service="TCP 10.0.0.1:80"} 7000
ipvs_destination_outgoing_bytes_total{destination="10.0.2.2:8080",service="TCP 10.0.0.1:80"} 5000
ipvs_destination_outgoing_bytes_total{destination="[2001:db8::10]:53",service="UDP [2001:db8::1]:53"} 800
ipvs_destination_outgoing_bytes_total{destination="10.0.3.1:0",service="FWM 10"} 5
ipvs_destination_outgoing_bytes_total{destination="10.0.3.1:0",service="FWM 10 IPv6"} 0
# HELP ipvs_sync_daemon_running 1 if the sync daemon in this state runs.
# TYPE ipvs_sync_daemon_running gauge
ipvs_sync_daemon_running{state="master"} 1
ipvs_sync_daemon_running{state="backup"} 0
# HELP ipvs_sync_daemon_info A running sync daemon's configuration (value 1).
# TYPE ipvs_sync_daemon_info gauge
ipvs_sync_daemon_info{group="224.0.0.81",interface="eth0",port="8848",state="master",sync_id="5"} 1
`

const wantConnStates = `
# HELP ipvs_connection_table_entries Connection entries per protocol and state (not templates).
# TYPE ipvs_connection_table_entries gauge
ipvs_connection_table_entries{protocol="TCP",state="ESTABLISHED"} 2
ipvs_connection_table_entries{protocol="TCP",state="FIN_WAIT"} 1
ipvs_connection_table_entries{protocol="TCP",state="TIME_WAIT"} 3
ipvs_connection_table_entries{protocol="UDP",state="UDP"} 1
# HELP ipvs_connection_table_templates Persistence templates in the connection table.
# TYPE ipvs_connection_table_templates gauge
ipvs_connection_table_templates 1
`

// The node_exporter names: the FWM 10 rows of IPv4 and IPv6 share a label
// set and are summed; SCTP is "SCTP"; the mark is "%08X".
const wantNode = `
# HELP node_ipvs_connections_total The total number of connections made.
# TYPE node_ipvs_connections_total counter
node_ipvs_connections_total 16
# HELP node_ipvs_incoming_packets_total The total number of incoming packets.
# TYPE node_ipvs_incoming_packets_total counter
node_ipvs_incoming_packets_total 107
# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.
# TYPE node_ipvs_outgoing_packets_total counter
node_ipvs_outgoing_packets_total 98
# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.
# TYPE node_ipvs_incoming_bytes_total counter
node_ipvs_incoming_bytes_total 6504
# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.
# TYPE node_ipvs_outgoing_bytes_total counter
node_ipvs_outgoing_bytes_total 12345679706
# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.
# TYPE node_ipvs_backend_connections_active gauge
node_ipvs_backend_connections_active{local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.1",remote_port="8080"} 2
node_ipvs_backend_connections_active{local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.2",remote_port="8080"} 0
node_ipvs_backend_connections_active{local_address="2001:db8::1",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::10",remote_port="53"} 0
node_ipvs_backend_connections_active{local_address="",local_mark="0000000A",local_port="0",proto="FWM",remote_address="10.0.3.1",remote_port="0"} 4
# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.
# TYPE node_ipvs_backend_connections_inactive gauge
node_ipvs_backend_connections_inactive{local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.1",remote_port="8080"} 1
node_ipvs_backend_connections_inactive{local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.2",remote_port="8080"} 3
node_ipvs_backend_connections_inactive{local_address="2001:db8::1",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::10",remote_port="53"} 1
node_ipvs_backend_connections_inactive{local_address="",local_mark="0000000A",local_port="0",proto="FWM",remote_address="10.0.3.1",remote_port="0"} 4
# HELP node_ipvs_backend_weight The current backend weight by local and remote address.
# TYPE node_ipvs_backend_weight gauge
node_ipvs_backend_weight{local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.1",remote_port="8080"} 1
node_ipvs_backend_weight{local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.2.2",remote_port="8080"} 0
node_ipvs_backend_weight{local_address="2001:db8::1",local_mark="",local_port="53",proto="UDP",remote_address="2001:db8::10",remote_port="53"} 3
node_ipvs_backend_weight{local_address="",local_mark="0000000A",local_port="0",proto="FWM",remote_address="10.0.3.1",remote_port="0"} 7
`

const wantFailed = `
# HELP ipvs_up 1 if the last read of the IPVS table succeeded, 0 if it failed.
# TYPE ipvs_up gauge
ipvs_up 0
# HELP ipvs_scrape_duration_seconds Time the read of the IPVS table took.
# TYPE ipvs_scrape_duration_seconds gauge
ipvs_scrape_duration_seconds 0.0015
# HELP ipvs_scrape_errors_total Failed reads of the IPVS table.
# TYPE ipvs_scrape_errors_total counter
ipvs_scrape_errors_total 1
`

// scrape gets h's response to a GET of /metrics with the given headers.
func scrape(t *testing.T, h http.Handler, hdr ...string) string {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Body.String()
}

// TestCollector compares both ways of exporting, the Collector in a
// registry and the Handler's text, with the expected exposition of the
// fake table, for each set of options.
func TestCollector(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"default", Options{}, wantBase},
		{"ConnectionStates", Options{ConnectionStates: true}, wantBase + wantConnStates},
		{"NodeExporterNames", Options{NodeExporterNames: true}, wantBase + wantNode},
		{"all", Options{ConnectionStates: true, NodeExporterNames: true}, wantBase + wantConnStates + wantNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			c := newTestCollector(f, tc.opts)
			if err := testutil.CollectAndCompare(c, strings.NewReader(tc.want)); err != nil {
				t.Errorf("Collector: %v", err)
			}
			reg := prom.NewPedanticRegistry()
			reg.MustRegister(c)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tc.want)); err != nil {
				t.Errorf("Collector in a pedantic registry: %v", err)
			}
			text := scrape(t, c.Handler())
			if err := testutil.CollectAndCompare(c, strings.NewReader(text)); err != nil {
				t.Errorf("Handler's text differs from the Collector's metrics: %v\n%s", err, text)
			}
			if n := len(testutilLint(t, text)); n > 0 {
				t.Errorf("%d lint problems", n)
			}
			wantReads := 0
			if tc.opts.ConnectionStates {
				wantReads = 4
			}
			if f.connReads != wantReads {
				t.Errorf("connection table read %d times in 4 scrapes, want %d", f.connReads, wantReads)
			}
		})
	}
}

// testutilLint runs client_golang's linter (promlint) over text.
func testutilLint(t *testing.T, text string) []string {
	t.Helper()
	probs, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	var out []string
	for _, p := range probs {
		out = append(out, p.Metric+": "+p.Text)
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	return out
}

// TestCollectorReadFails fails each read in turn: the scrape is ipvs_up 0
// with the duration and the error count, and nothing else.
func TestCollectorReadFails(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		set  func(*fakeReader)
	}{
		{"Info", func(f *fakeReader) { f.errInfo = boom }},
		{"VirtualServices", func(f *fakeReader) { f.errTable = boom }},
		{"SyncDaemons", func(f *fakeReader) { f.errDaemons = boom }},
		{"Totals", func(f *fakeReader) { f.errTotals = boom }},
		{"ConnectionCounts", func(f *fakeReader) { f.errConns = boom }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			tc.set(f)
			var logged []error
			c := newTestCollector(f, Options{ConnectionStates: true, NodeExporterNames: true, ErrorLog: func(err error) { logged = append(logged, err) }})
			if err := testutil.CollectAndCompare(c, strings.NewReader(wantFailed)); err != nil {
				t.Errorf("Collector: %v", err)
			}
			if len(logged) != 1 || !errors.Is(logged[0], boom) {
				t.Errorf("ErrorLog got %v, want [boom]", logged)
			}
			text := scrape(t, c.Handler())
			want := strings.Replace(wantFailed, "ipvs_scrape_errors_total 1", "ipvs_scrape_errors_total 2", 1)
			if got := strings.TrimSpace(text); got != strings.TrimSpace(want) {
				t.Errorf("Handler's text after a failed read:\n%s\nwant:\n%s", got, want)
			}
			// A later read that succeeds exports everything again, with
			// the count of failures.
			*f = *newFake()
			want = strings.Replace(wantBase+wantConnStates+wantNode, "ipvs_scrape_errors_total 0", "ipvs_scrape_errors_total 2", 1)
			if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
				t.Errorf("after recovery: %v", err)
			}
		})
	}
}

// TestHandlerDeadline checks the read's deadline: the scrape timeout less
// a quarter second, at most Options.Timeout.
func TestHandlerDeadline(t *testing.T) {
	for _, tc := range []struct {
		header  string
		timeout time.Duration
		want    time.Duration
	}{
		{"", 0, 10 * time.Second},
		{"", 3 * time.Second, 3 * time.Second},
		{"5", 0, 4750 * time.Millisecond},
		{"0.2", 0, 100 * time.Millisecond},
		{"30", 0, 10 * time.Second},
		{"nonsense", 2 * time.Second, 2 * time.Second},
	} {
		f := newFake()
		c := New(f, Options{Timeout: tc.timeout})
		var hdr []string
		if tc.header != "" {
			hdr = []string{scrapeTimeoutHeader, tc.header}
		}
		start := time.Now()
		scrape(t, c.Handler(), hdr...)
		got := f.deadlines[0].Sub(start)
		if got < tc.want-time.Second/2 || got > tc.want+time.Second/10 {
			t.Errorf("header %q, Timeout %v: deadline in %v, want %v", tc.header, tc.timeout, got, tc.want)
		}
	}
}

// TestTextEscaping checks the text writer's escaping and number format
// against client_golang's encoder: label values with quotes, backslashes
// and newlines, and counters too large for a float64's 53 bits.
func TestTextEscaping(t *testing.T) {
	f := newFake()
	f.daemons[0].Interface = "a\"b\\c\nd"
	f.table[0].Service.Scheduler = `x"y`
	f.table[0].Stats.BytesOut = 1<<64 - 1
	f.table[1].Stats.BytesOut = 1<<53 + 1
	f.totals.Stats.Connections = 1e6
	c := newTestCollector(f, Options{})
	text := scrape(t, c.Handler())
	if err := testutil.CollectAndCompare(c, strings.NewReader(text)); err != nil {
		t.Errorf("Handler's text differs from the Collector's metrics: %v\n%s", err, text)
	}
	for _, want := range []string{`interface="a\"b\\c\nd"`, `scheduler="x\"y"`, "ipvs_connections_total 1e+06\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %s", want)
		}
	}
}

// TestPromtool runs promtool check metrics over the Handler's text, where
// promtool is installed (Debian: apt-get install prometheus).
func TestPromtool(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (Debian's prometheus package has it): skipping promtool check metrics")
	}
	c := newTestCollector(newFake(), Options{ConnectionStates: true, NodeExporterNames: true})
	text := scrape(t, c.Handler())
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestWriteTextWriteError checks that WriteText returns the writer's
// error.
func TestWriteTextWriteError(t *testing.T) {
	c := New(newFake(), Options{})
	err := c.WriteText(context.Background(), errWriter{})
	if !errors.Is(err, os.ErrClosed) {
		t.Errorf("WriteText to a failing writer = %v, want os.ErrClosed", err)
	}
	if err := c.WriteText(context.Background(), io.Discard); err != nil {
		t.Errorf("WriteText to io.Discard = %v", err)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

// TestHandlerGzip checks that a scraper that accepts gzip gets the same
// metrics gzipped, and one that refuses it plain text.
func TestHandlerGzip(t *testing.T) {
	c := newTestCollector(newFake(), Options{})
	plain := scrape(t, c.Handler())
	for _, tc := range []struct {
		header string
		gz     bool
	}{{"gzip", true}, {"br, gzip;q=0.5", true}, {"gzip;q=0", false}, {"identity", false}, {"", false}} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", tc.header)
		rec := httptest.NewRecorder()
		c.Handler().ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tc.gz {
			t.Errorf("Accept-Encoding %q: gzipped %v, want %v", tc.header, got, tc.gz)
		}
		if tc.gz {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tc.header, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tc.header, err)
			}
		}
		if string(body) != plain {
			t.Errorf("Accept-Encoding %q: body differs from the plain scrape", tc.header)
		}
	}
}
