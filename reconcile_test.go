package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
)

// TestDiffDestinations checks the destination part of diff with few
// destinations (compared by scanning) and many (through a map): one weight
// change, one removal, one addition, in the kernel's reverse order, and a
// destination the table lists twice, which must not be deleted.
func TestDiffDestinations(t *testing.T) {
	for _, n := range []int{4, linearMax, linearMax + 1, 40} {
		t.Run(fmt.Sprintf("%d destinations", n), func(t *testing.T) {
			svc := Service{Protocol: TCP, Address: netip.MustParseAddr("192.0.2.1"), Port: 80, Scheduler: "rr"}
			dest := func(i int) Destination {
				return Destination{Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Port: 80, Weight: 1, ForwardMethod: NAT}
			}
			var want []Destination
			var cur []DestinationStats
			for i := range n {
				want = append(want, dest(i))
			}
			for i := n - 1; i >= 0; i-- { // the kernel lists the newest first
				cur = append(cur, DestinationStats{Destination: dest(i)})
			}
			want[1].Weight = 5                                          // an update
			cur = cur[:len(cur)-1]                                      // dest(0) is missing: a creation
			cur = append(cur, DestinationStats{Destination: dest(200)}) // not desired: a deletion
			cur = append(cur, cur[0])                                   // listed twice: left alone

			table, err := prepareDesired([]VirtualService{{Service: svc, Destinations: want}})
			if err != nil {
				t.Fatal(err)
			}
			got := diff(table, []VirtualServiceStats{{ServiceStats: ServiceStats{Service: table.svcs[0].svc}, Destinations: cur}}, ReconcileOptions{})
			wantChanges := []Change{
				{Kind: DeleteDestination, Service: table.svcs[0].svc, Destination: dest(200)},
				{Kind: CreateDestination, Service: table.svcs[0].svc, Destination: dest(0)},
				{Kind: UpdateDestination, Service: table.svcs[0].svc, Destination: want[1]},
			}
			if len(got) != len(wantChanges) {
				t.Fatalf("%d destinations: changes %v, want %v", n, got, wantChanges)
			}
			for i := range got {
				if got[i] != wantChanges[i] {
					t.Errorf("%d destinations: change %d = %v, want %v", n, i, got[i], wantChanges[i])
				}
			}

			// A destination listed twice in the input is refused, at any size.
			dup := append(append([]Destination(nil), want...), want[n-1])
			_, err = prepareDesired([]VirtualService{{Service: svc, Destinations: dup}})
			if !errors.Is(err, os.ErrInvalid) {
				t.Errorf("%d destinations and a duplicate: %v, want os.ErrInvalid", n, err)
			}
		})
	}
}

// TestDiffServices: services are matched by identity; one not desired is
// deleted first, a changed one updated, a missing one created.
func TestDiffServices(t *testing.T) {
	svc := func(i int) Service {
		return Service{Protocol: TCP, Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Port: 80, Scheduler: "rr"}
	}
	changed := svc(2)
	changed.Scheduler = "wrr"
	table, err := prepareDesired([]VirtualService{{Service: svc(1)}, {Service: changed}, {Service: svc(3)}})
	if err != nil {
		t.Fatal(err)
	}
	cur := []VirtualServiceStats{
		{ServiceStats: ServiceStats{Service: table.svcs[0].svc}},
		{ServiceStats: ServiceStats{Service: svc(9)}},
		{ServiceStats: ServiceStats{Service: svc(2)}},
	}
	got := diff(table, cur, ReconcileOptions{})
	want := []ChangeKind{DeleteService, UpdateService, CreateService}
	if len(got) != len(want) {
		t.Fatalf("changes %v, want kinds %v", got, want)
	}
	for i := range got {
		if got[i].Kind != want[i] {
			t.Errorf("change %d = %v, want %v", i, got[i], want[i])
		}
	}
	if got[0].Service.key() != svc(9).key() || got[1].Service.Scheduler != "wrr" || got[2].Service.key() != svc(3).key() {
		t.Errorf("changes %v", got)
	}
	if _, err := prepareDesired([]VirtualService{{Service: svc(1)}, {Service: svc(1)}}); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("a service listed twice: %v, want os.ErrInvalid", err)
	}
}

// diff computes the changes that turn cur into want, a table read before:
// the differ fed from memory instead of from the kernel's dumps.
func diff(want desiredTable, cur []VirtualServiceStats, opts ReconcileOptions) []Change {
	d := newDiffer(want, opts)
	curOf := make([]int32, len(want.svcs))
	for i := range cur {
		if j := d.service(cur[i].Service); j >= 0 {
			curOf[j] = int32(i)
		}
	}
	for _, j := range d.kept() {
		d.dests(j, cur[curOf[j]].Destinations)
	}
	return d.finish()
}
