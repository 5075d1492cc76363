package ipvs

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestDesired: the conversion keeps each service and destination's
// configuration, drops the counters, and gives each service destinations of
// its own.
func TestDesired(t *testing.T) {
	web := Service{Protocol: TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80, Scheduler: RoundRobin,
		Flags: FlagPersistent, Timeout: 300 * time.Second, Netmask: PrefixMask(IPv4, 24)}
	mark := Service{FirewallMark: 7, Family: IPv6, Scheduler: MaglevHashing, Flags: FlagMHPort}
	d1 := Destination{Address: netip.MustParseAddr("10.0.2.1"), Port: 8080, ForwardMethod: NAT, Weight: 3,
		UpperThreshold: 100, LowerThreshold: 10}
	d2 := Destination{Address: netip.MustParseAddr("10.0.2.2"), Port: 8080, ForwardMethod: IPIP, Weight: 0,
		TunnelType: TunnelGUE, TunnelPort: 6080, TunnelChecksum: TunnelChecksumOn}
	d3 := Destination{Address: netip.MustParseAddr("2001:db8::3"), ForwardMethod: DR, Weight: 1}
	counters := Stats{Connections: 9, PacketsIn: 8, BytesOut: 7, ConnectionRate: 6}
	table := []VirtualServiceStats{
		{ServiceStats: ServiceStats{Service: web, Stats: counters}, Destinations: []DestinationStats{
			{Destination: d1, ActiveConnections: 5, InactiveConnections: 4, PersistentConnections: 3, Stats: counters},
			{Destination: d2, Stats: counters},
		}},
		{ServiceStats: ServiceStats{Service: Service{Protocol: UDP, Address: netip.MustParseAddr("10.0.1.1"), Port: 53, Scheduler: RoundRobin}}},
		{ServiceStats: ServiceStats{Service: mark, Stats: counters}, Destinations: []DestinationStats{{Destination: d3}}},
	}
	want := []VirtualService{
		{Service: web, Destinations: []Destination{d1, d2}},
		{Service: table[1].Service},
		{Service: mark, Destinations: []Destination{d3}},
	}
	equal := func(a, b VirtualService) bool {
		return a.Service == b.Service && slices.Equal(a.Destinations, b.Destinations)
	}

	got := Desired(table)
	if !slices.EqualFunc(got, want, equal) {
		t.Fatalf("Desired:\n got %+v\nwant %+v", got, want)
	}
	for i, v := range table {
		if one := v.VirtualService(); !equal(one, want[i]) {
			t.Errorf("entry %d: VirtualService() = %+v, want %+v", i, one, want[i])
		}
	}
	if got[1].Destinations != nil || table[1].VirtualService().Destinations != nil {
		t.Errorf("a service without destinations converts to %v and %v, want nil", got[1].Destinations, table[1].VirtualService().Destinations)
	}

	// Editing the result leaves the table, and the other services, alone.
	got[0].Destinations = append(got[0].Destinations, Destination{Address: netip.MustParseAddr("10.0.2.9"), Weight: 1})
	got[0].Destinations[0].Weight = 99
	if got[2].Destinations[0] != d3 || len(got[2].Destinations) != 1 {
		t.Errorf("appending to service 0 changed service 2: %+v", got[2].Destinations)
	}
	if table[0].Destinations[0].Weight != 3 {
		t.Errorf("editing the result changed the table read: %+v", table[0].Destinations[0])
	}
	if d := Desired(nil); len(d) != 0 {
		t.Errorf("Desired(nil) = %v, want none", d)
	}
}
