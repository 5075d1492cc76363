//go:build linux

package ipvs

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDesiredRoundTrip: a table read with VirtualServices and converted
// with Desired is what Reconcile finds already there; an edit of it is
// applied as exactly that change.
func TestDesiredRoundTrip(t *testing.T) {
	desired := desiredN(20, 3)
	desired[3].Destinations[1].Weight = 0
	desired[4].Service.Flags, desired[4].Service.Timeout = FlagPersistent, 600*time.Second
	desired = append(desired, VirtualService{Service: Service{FirewallMark: 9, Family: IPv4, Scheduler: SourceHashing}})
	tb, c := reconciledTable(t, desired)
	ctx := context.Background()

	vs, err := c.VirtualServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	current := Desired(vs)
	if len(current) != len(desired) {
		t.Fatalf("%d services read, want %d", len(current), len(desired))
	}
	before := tb.reqs
	res, err := c.Reconcile(ctx, current, ReconcileOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("Reconcile of the table read: %v, %v; want no change", res.Changes, err)
	}
	if got := tb.reqs - before; got != 1+len(desired) {
		t.Errorf("%d requests, want %d reads", got, 1+len(desired))
	}

	// A controller's edit: one more destination for one service, one fewer
	// for another.
	extra := Destination{Address: netip.MustParseAddr("10.9.0.1"), Port: 8080, ForwardMethod: NAT, Weight: 2}
	current[0].Destinations = append(current[0].Destinations, extra)
	gone := current[1].Destinations[2]
	current[1].Destinations = current[1].Destinations[:2]
	res, err = c.Reconcile(ctx, current, ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Kind: DeleteDestination, Service: current[1].Service, Destination: gone},
		{Kind: CreateDestination, Service: current[0].Service, Destination: extra},
	}
	if diff := cmp.Diff(map[ChangeKind]int{CreateDestination: 1, DeleteDestination: 1}, kinds(res.Changes)); diff != "" {
		t.Fatalf("changes (-want +got):\n%s", diff)
	}
	for _, w := range want {
		found := false
		for _, g := range res.Changes {
			found = found || g == w
		}
		if !found {
			t.Errorf("missing change %v in %v", w, res.Changes)
		}
	}
}
