//go:build linux

package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// The unit tests of ReconcileOptions.Owns, on the fake kernel table.

// scopeRequest is a request the fake kernel received.
type scopeRequest struct {
	cmd  uint8
	dump bool
	svc  Service // the service it names, if any
	has  bool
}

// scopeLog records the requests a scopeClient's fake kernel receives.
type scopeLog struct {
	mu   sync.Mutex
	reqs []scopeRequest
}

// named returns the requests that name a service s with !owned(s).
func (l *scopeLog) named(owned func(Service) bool) []scopeRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []scopeRequest
	for _, r := range l.reqs {
		if r.has && !owned(r.svc) {
			out = append(out, r)
		}
	}
	return out
}

// scopeClient returns a client on tb whose fake kernel records every
// request and runs hook, if not nil, before serving it.
func scopeClient(t *testing.T, tb *table, hook func(cmd uint8, dump bool, svc Service)) (*Client, *scopeLog) {
	t.Helper()
	log := &scopeLog{}
	fn := func(g genetlink.Message, n netlink.Message) ([]genetlink.Message, error) {
		r := scopeRequest{cmd: g.Header.Command, dump: n.Header.Flags&netlink.Dump != 0}
		if b, ok, _ := nested(g.Data, uapi.CmdAttrService); ok {
			s, err := parseServiceAttrs(b, true)
			if err != nil {
				return nil, syscall.EINVAL
			}
			r.svc, r.has = s.Service, true
		}
		log.mu.Lock()
		log.reqs = append(log.reqs, r)
		log.mu.Unlock()
		if hook != nil {
			hook(r.cmd, r.dump, r.svc)
		}
		return tb.serve(g, n)
	}
	c := newClientWith(familyID, func() (transport, error) { return &fakeKernel{serve: fn}, nil })
	cl := &Client{c: c}
	t.Cleanup(func() { _ = cl.Close() })
	return cl, log
}

// scopeCmp compares netip.Addr by value.
var scopeCmp = cmp.Options{cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()}

// The scope of these tests: address services in 10.1.0.0/16 or
// 2001:db8:1::/48, and marks 0x100-0x1ff of either family.
var (
	scopePrefix4 = netip.MustParsePrefix("10.1.0.0/16")
	scopePrefix6 = netip.MustParsePrefix("2001:db8:1::/48")
)

func inScope(s Service) bool {
	if s.FirewallMark != 0 {
		return s.FirewallMark>>8 == 1
	}
	return scopePrefix4.Contains(s.Address) || scopePrefix6.Contains(s.Address)
}

// foreignServices are another program's: outside the scope, though close
// to it (the same port and scheduler, a mark just past the range, an
// address just outside the prefix).
func foreignServices() map[Service][]DestinationStats {
	d := func(a string, w int, conns uint32) DestinationStats {
		return DestinationStats{Destination: Destination{Address: netip.MustParseAddr(a), Port: 8080, Weight: w, ForwardMethod: NAT}, ActiveConnections: conns}
	}
	return map[Service][]DestinationStats{
		{Protocol: TCP, Address: netip.MustParseAddr("10.2.0.1"), Port: 80, Scheduler: "rr"}:       {d("10.9.0.1", 1, 0), d("10.9.0.2", 0, 0)},
		{Protocol: UDP, Address: netip.MustParseAddr("192.168.9.1"), Port: 53, Scheduler: "wlc"}:   {d("10.9.0.3", 5, 2)},
		{Protocol: TCP, Address: netip.MustParseAddr("2001:db8:2::1"), Port: 443, Scheduler: "sh"}: {d("2001:db8:9::1", 3, 0)},
		{FirewallMark: 0x200, Family: IPv4, Scheduler: "rr"}:                                       {d("10.9.0.4", 0, 0)},
		{FirewallMark: 7, Family: IPv6, Scheduler: "rr"}:                                           nil,
	}
}

// addForeign adds the foreign services to tb and returns them.
func addForeign(tb *table) map[Service][]DestinationStats {
	f := foreignServices()
	for s, ds := range f {
		tb.svcs = append(tb.svcs, s)
		tb.dests[s.key()] = slices.Clone(ds)
	}
	return f
}

// wantForeign checks that tb still has exactly the foreign services f.
func wantForeign(t *testing.T, tb *table, f map[Service][]DestinationStats) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	got := map[Service][]DestinationStats{}
	for _, s := range tb.svcs {
		if !inScope(s) {
			got[s] = tb.dests[s.key()]
		}
	}
	if diff := cmp.Diff(f, got, scopeCmp); diff != "" {
		t.Errorf("foreign services and destinations (-want +got):\n%s", diff)
	}
}

// wantNoForeignRequests checks that no request named a foreign service.
func wantNoForeignRequests(t *testing.T, log *scopeLog) {
	t.Helper()
	for _, r := range log.named(inScope) {
		t.Errorf("a request (command %d, dump %v) named %v, outside the scope", r.cmd, r.dump, r.svc)
	}
}

// wantOwnedChanges checks that every change names an owned service.
func wantOwnedChanges(t *testing.T, res ReconcileResult) {
	t.Helper()
	for _, c := range res.Changes {
		if !inScope(c.Service) {
			t.Errorf("change %v is outside the scope", c)
		}
	}
}

// TestReconcileScope: with Owns, Reconcile creates, changes and deletes
// the owned services and leaves the others alone: no change, and no
// request naming them (not even a destination dump). Without Owns, the
// same call deletes them.
func TestReconcileScope(t *testing.T) {
	tb := newTable()
	ctx := context.Background()
	foreign := addForeign(tb)
	// Owned: one stale (to delete), one to correct, one mark service of
	// each family, one to create.
	stale := svcN(9)
	fixed := svcN(1)
	fixed.Scheduler = "wlc"
	mark6 := Service{FirewallMark: 0x1ff, Family: IPv6, Scheduler: "rr"}
	tb.svcs = append(tb.svcs, stale, fixed, mark6)
	tb.dests[stale.key()] = []DestinationStats{{Destination: destN(90)}}
	tb.dests[fixed.key()] = []DestinationStats{{Destination: destN(10)}, {Destination: destN(11)}}
	tb.dests[mark6.key()] = []DestinationStats{{Destination: Destination{Address: netip.MustParseAddr("2001:db8:1::10"), Weight: 1, ForwardMethod: DR}}}
	// Interleave them with the foreign services in the dump.
	slices.SortFunc(tb.svcs, func(a, b Service) int { return strings.Compare(a.String(), b.String()) })

	desired := desiredN(2, 1) // svcN(0) (to create) and svcN(1)
	desired = append(desired,
		VirtualService{Service: Service{Protocol: UDP, Address: netip.MustParseAddr("2001:db8:1::1"), Port: 53, Scheduler: "rr"},
			Destinations: []Destination{{Address: netip.MustParseAddr("2001:db8:1::2"), Port: 53, Weight: 1, ForwardMethod: NAT}}},
		VirtualService{Service: Service{FirewallMark: 0x100, Family: IPv4, Scheduler: "rr"},
			Destinations: []Destination{{Address: netip.MustParseAddr("10.1.9.9"), Weight: 2, ForwardMethod: DR}}},
	)

	c, log := scopeClient(t, tb, nil)
	var asked []Service
	owns := func(s Service) bool {
		asked = append(asked, s)
		return inScope(s)
	}
	res, err := c.Reconcile(ctx, desired, ReconcileOptions{Owns: owns})
	if err != nil {
		t.Fatalf("Reconcile: %v (changes %v)", err, res.Changes)
	}
	want := map[ChangeKind]int{CreateService: 3, CreateDestination: 4, UpdateService: 1, DeleteDestination: 2, DeleteService: 2}
	if diff := cmp.Diff(want, kinds(res.Changes)); diff != "" {
		t.Errorf("changes (-want +got):\n%s\n%v", diff, res.Changes)
	}
	wantOwnedChanges(t, res)
	wantForeign(t, tb, foreign)
	wantNoForeignRequests(t, log)

	// Owns is asked about identities only, as the kernel reports them.
	for _, s := range asked {
		if s != s.identity() || s.FirewallMark == 0 && s.Family != 0 {
			t.Errorf("Owns got %+v, not an identity", s)
		}
	}
	for s := range foreign {
		if !slices.Contains(asked, s.identity()) {
			t.Errorf("Owns was not asked about %v", s)
		}
	}

	// Converged: the owned part is desired, and a second run changes
	// nothing.
	if res, err := c.Reconcile(ctx, desired, ReconcileOptions{Owns: owns}); err != nil || len(res.Changes) != 0 {
		t.Errorf("second run: %v, %v", res.Changes, err)
	}
	if got, want := len(tb.svcs), len(desired)+len(foreign); got != want {
		t.Errorf("%d services in the table, want %d", got, want)
	}
	for _, vs := range desired {
		i := tb.find(vs.Service.key())
		if i < 0 || tb.svcs[i] != vs.Service {
			t.Errorf("%v: not as desired: %+v", vs.Service, tb.svcs)
			continue
		}
		var ds []Destination
		for _, d := range tb.dests[vs.Service.key()] {
			ds = append(ds, d.Destination)
		}
		if diff := cmp.Diff(vs.Destinations, ds, scopeCmp); diff != "" {
			t.Errorf("%v: destinations (-want +got):\n%s", vs.Service, diff)
		}
	}
	wantForeign(t, tb, foreign)
	wantNoForeignRequests(t, log)

	// The default owns the whole table: the foreign services are deleted.
	res, err = c.Reconcile(ctx, desired, ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(res.Changes); got[DeleteService] != len(foreign) || len(res.Changes) != len(foreign) {
		t.Errorf("without Owns: %v, want %d service deletions", res.Changes, len(foreign))
	}
}

// TestReconcileScopeDesiredOutside: a desired service that Owns does not
// own is refused before anything is sent.
func TestReconcileScopeDesiredOutside(t *testing.T) {
	tb := newTable()
	foreign := addForeign(tb)
	c, log := scopeClient(t, tb, nil)
	for name, s := range map[string]Service{
		"address":   {Protocol: TCP, Address: netip.MustParseAddr("10.2.0.1"), Port: 80, Scheduler: "rr"},
		"IPv6":      {Protocol: TCP, Address: netip.MustParseAddr("2001:db8:2::1"), Port: 80, Scheduler: "rr"},
		"mark":      {FirewallMark: 0x200, Family: IPv4, Scheduler: "rr"},
		"full mask": {Protocol: TCP, Address: netip.MustParseAddr("10.3.0.1"), Port: 80, Netmask: PrefixMask(IPv4, 32), Scheduler: "rr"},
	} {
		desired := append(desiredN(2, 1), VirtualService{Service: s})
		var asked []Service
		_, err := c.Reconcile(context.Background(), desired, ReconcileOptions{Owns: func(s Service) bool {
			asked = append(asked, s)
			return inScope(s)
		}})
		var e *Error
		if !errors.Is(err, os.ErrInvalid) || !errors.As(err, &e) || e.Field != "VirtualService.Service" ||
			!strings.Contains(e.Message, "ReconcileOptions.Owns") || !strings.Contains(e.Message, s.String()) {
			t.Errorf("%s: %v, want os.ErrInvalid for VirtualService.Service naming %v and ReconcileOptions.Owns", name, err, s)
		}
		if want := s.identity(); !slices.Contains(asked, want) {
			t.Errorf("%s: Owns was asked %v, not %+v", name, asked, want)
		}
	}
	if len(log.reqs) != 0 {
		t.Errorf("%d requests sent for refused input", len(log.reqs))
	}
	wantForeign(t, tb, foreign)
}

// TestReconcileScopeGraceful: GracefulRemoval drains and then deletes an
// owned destination; the foreign ones, even drained and idle, are not
// touched.
func TestReconcileScopeGraceful(t *testing.T) {
	tb := newTable()
	ctx := context.Background()
	foreign := addForeign(tb)
	c, log := scopeClient(t, tb, nil)
	desired := desiredN(2, 2)
	opts := ReconcileOptions{Owns: inScope, GracefulRemoval: true}
	if _, err := c.Reconcile(ctx, desired, opts); err != nil {
		t.Fatal(err)
	}
	id := svcN(0).key()
	tb.mu.Lock()
	tb.dests[id][1].ActiveConnections = 3
	tb.mu.Unlock()
	desired[0].Destinations = desired[0].Destinations[:1]

	res, err := c.Reconcile(ctx, desired, opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != UpdateDestination || res.Changes[0].Destination.Weight != 0 {
		t.Fatalf("first graceful run: %v, %v; want one update to weight 0", res.Changes, err)
	}
	if res, err := c.Reconcile(ctx, desired, opts); err != nil || len(res.Changes) != 0 {
		t.Fatalf("draining destination with connections was touched: %v, %v", res.Changes, err)
	}
	tb.mu.Lock()
	tb.dests[id][1].ActiveConnections = 0
	tb.mu.Unlock()
	res, err = c.Reconcile(ctx, desired, opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != DeleteDestination || res.Changes[0].Service != svcN(0) {
		t.Fatalf("drained run: %v, %v; want one deletion", res.Changes, err)
	}
	wantForeign(t, tb, foreign)
	wantNoForeignRequests(t, log)
}

// TestReconcileScopeSkippedByDump: an owned service that every dump skips
// is read alone after its creation meets EEXIST (reconcileServices) and
// corrected; foreign services, listed or skipped, are not named.
func TestReconcileScopeSkippedByDump(t *testing.T) {
	tb := newTable()
	ctx := context.Background()
	foreign := addForeign(tb)
	stale := svcN(1)
	stale.Scheduler = "wlc"
	tb.svcs = append(tb.svcs, stale)
	tb.dests[stale.key()] = []DestinationStats{{Destination: destN(1)}, {Destination: destN(99)}}
	tb.hide = map[serviceKey]bool{stale.key(): true}
	for s := range foreign {
		if s.Protocol == UDP || s.FirewallMark != 0 {
			tb.hide[s.key()] = true // skipped too
		}
	}
	c, log := scopeClient(t, tb, nil)
	desired := desiredN(2, 1)
	desired[1].Destinations[0].Weight = 3

	res, err := c.Reconcile(ctx, desired, ReconcileOptions{Owns: inScope})
	if err != nil {
		t.Fatalf("Reconcile: %v (changes %v)", err, res.Changes)
	}
	want := map[ChangeKind]int{CreateService: 2, CreateDestination: 2, UpdateService: 1, UpdateDestination: 1, DeleteDestination: 1}
	if diff := cmp.Diff(want, kinds(res.Changes)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	var gets int
	for _, r := range log.reqs {
		if r.cmd == uapi.CmdGetService && !r.dump {
			gets++
		}
	}
	if gets != 1 {
		t.Errorf("%d service GETs, want 1: the skipped service was not read alone", gets)
	}
	if i := tb.find(svcN(1).key()); i < 0 || tb.svcs[i].Scheduler != "rr" {
		t.Errorf("the skipped service was not corrected: %+v", tb.svcs)
	}
	wantOwnedChanges(t, res)
	wantForeign(t, tb, foreign)
	wantNoForeignRequests(t, log)
}

// TestReconcileScopeDeletedMeanwhile: an owned service deleted by someone
// else between the read and Reconcile's deletion makes Reconcile read the
// whole table again; that read too leaves the foreign services alone.
func TestReconcileScopeDeletedMeanwhile(t *testing.T) {
	tb := newTable()
	ctx := context.Background()
	foreign := addForeign(tb)
	gone := svcN(7)
	tb.svcs = append(tb.svcs, gone)
	tb.dests[gone.key()] = []DestinationStats{{Destination: destN(7)}}
	var once sync.Once
	c, log := scopeClient(t, tb, func(cmd uint8, _ bool, s Service) {
		if cmd == uapi.CmdDelService && s.key() == gone.key() {
			once.Do(func() { // another writer deletes it first
				tb.mu.Lock()
				defer tb.mu.Unlock()
				i := tb.find(gone.key())
				tb.svcs = slices.Delete(tb.svcs, i, i+1)
			})
		}
	})
	desired := desiredN(2, 1)
	res, err := c.Reconcile(ctx, desired, ReconcileOptions{Owns: inScope})
	if err != nil {
		t.Fatalf("Reconcile: %v (changes %v)", err, res.Changes)
	}
	var dumps int
	for _, r := range log.reqs {
		if r.cmd == uapi.CmdGetService && r.dump {
			dumps++
		}
	}
	if dumps != 2 || !slices.ContainsFunc(res.Errors, func(e error) bool { return errors.Is(e, os.ErrNotExist) }) {
		t.Errorf("%d service dumps, errors %v: want a deletion that met ESRCH and a second full read", dumps, res.Errors)
	}
	wantOwnedChanges(t, res)
	wantForeign(t, tb, foreign)
	wantNoForeignRequests(t, log)
}
