//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// table is a fake kernel IPVS table: enough of the kernel's semantics
// (EEXIST, ESRCH, ENOENT, dumps) to drive Apply, VirtualServices and
// Reconcile.
type table struct {
	mu    sync.Mutex
	svcs  []Service
	dests map[serviceKey][]DestinationStats
	sends int // sendmsg calls
	reqs  int // requests
	// hide makes the service dump skip these services, as a racing dump can.
	hide map[serviceKey]bool
	// race makes the next race service dumps miss their last service and
	// repeat their first instead, as a dump resumed by position does
	// across a rehash of the table; dumps counts the service dumps.
	race, dumps int
}

func newTable() *table { return &table{dests: map[serviceKey][]DestinationStats{}} }

func (tb *table) find(id serviceKey) int {
	for i, s := range tb.svcs {
		if s.key() == id {
			return i
		}
	}
	return -1
}

func (tb *table) serve(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.reqs++
	var svc Service
	var hasSvc bool
	var dst DestinationStats
	if b, ok, _ := nested(greq.Data, uapi.CmdAttrService); ok {
		s, err := parseServiceAttrs(b, true)
		if err != nil {
			return nil, syscall.EINVAL
		}
		svc, hasSvc = s.Service, true
	}
	if b, ok, _ := nested(greq.Data, uapi.CmdAttrDest); ok {
		d, err := parseDestAttrs(b, svc.family(), true)
		if err != nil {
			return nil, syscall.EINVAL
		}
		dst = d
	}
	id := svc.key()
	i := tb.find(id)
	switch greq.Header.Command {
	case uapi.CmdNewService:
		if i >= 0 {
			return nil, syscall.EEXIST
		}
		if svc.Scheduler == "nosuch" {
			return nil, syscall.ENOENT
		}
		tb.svcs = append(tb.svcs, svc)
	case uapi.CmdSetService:
		if i < 0 {
			return nil, syscall.ESRCH
		}
		tb.svcs[i] = svc
	case uapi.CmdDelService:
		if i < 0 {
			return nil, syscall.ESRCH
		}
		tb.svcs = append(tb.svcs[:i], tb.svcs[i+1:]...)
		delete(tb.dests, id)
	case uapi.CmdNewDest, uapi.CmdSetDest, uapi.CmdDelDest:
		if i < 0 {
			return nil, syscall.ESRCH
		}
		ds := tb.dests[id]
		j := -1
		for k, d := range ds {
			if d.Address == dst.Address && d.Port == dst.Port {
				j = k
			}
		}
		switch greq.Header.Command {
		case uapi.CmdNewDest:
			if j >= 0 {
				return nil, syscall.EEXIST
			}
			tb.dests[id] = append(ds, dst)
		case uapi.CmdSetDest:
			if j < 0 {
				return nil, syscall.ENOENT
			}
			conns := ds[j].ActiveConnections
			ds[j] = dst
			ds[j].ActiveConnections = conns
		case uapi.CmdDelDest:
			if j < 0 {
				return nil, syscall.ENOENT
			}
			tb.dests[id] = append(ds[:j], ds[j+1:]...)
		}
	case uapi.CmdGetService:
		if nreq.Header.Flags&netlink.Dump == 0 {
			if i < 0 || !hasSvc {
				return nil, syscall.ESRCH
			}
			return []genetlink.Message{serviceMessage(tb.svcs[i])}, nil
		}
		var out []genetlink.Message
		for _, s := range tb.svcs {
			if !tb.hide[s.key()] {
				out = append(out, serviceMessage(s))
			}
		}
		tb.dumps++
		if tb.race > 0 && len(out) > 1 {
			tb.race--
			out[len(out)-1] = out[0]
		}
		return out, nil
	case uapi.CmdGetDest:
		var out []genetlink.Message
		for _, d := range tb.dests[id] {
			out = append(out, destMessage(d))
		}
		return out, nil
	default:
		return nil, syscall.EOPNOTSUPP
	}
	return nil, nil
}

// serviceMessage is a kernel reply for s, encoded by the request encoder
// (the decoder accepts both).
func serviceMessage(s Service) genetlink.Message {
	return genetlink.Message{Header: genetlink.Header{Command: uapi.CmdNewService, Version: 1},
		Data: encodeAttrs(func(e *encoder) { encodeService(e, s, s.Flags, serviceFlagsSentMask) })}
}

func destMessage(d DestinationStats) genetlink.Message {
	return genetlink.Message{Header: genetlink.Header{Command: uapi.CmdNewDest, Version: 1},
		Data: encodeAttrs(func(e *encoder) {
			off := e.nest(uapi.CmdAttrDest)
			e.u16(uapi.DestAttrAddrFamily, uint16(familyOf(d.Address)))
			addr16(e, uapi.DestAttrAddr, d.Address)
			e.be16(uapi.DestAttrPort, d.Port)
			e.u32(uapi.DestAttrFwdMethod, uint32(d.ForwardMethod))
			e.u32(uapi.DestAttrWeight, uint32(d.Weight))
			e.u32(uapi.DestAttrUThresh, d.UpperThreshold)
			e.u32(uapi.DestAttrLThresh, d.LowerThreshold)
			e.u32(uapi.DestAttrActiveConns, d.ActiveConnections)
			e.end(off)
		})}
}

// kernel returns a socket on tb that counts its sendmsg calls.
func (tb *table) kernel() *fakeKernel {
	return &fakeKernel{serve: tb.serve, onSend: func([]byte) {
		tb.mu.Lock()
		tb.sends++
		tb.mu.Unlock()
	}}
}

// tableClient returns a client on tb whose fake kernel queues at most
// capacity answers (0: unlimited) and counts sendmsg calls.
func tableClient(t *testing.T, tb *table, capacity, rcvbuf int) *Client {
	t.Helper()
	c := newClientWith(familyID, func() (transport, error) {
		k := tb.kernel()
		k.capacity, k.rcv = capacity, rcvbuf
		return k, nil
	})
	cl := &Client{c: c}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// reconciledTable returns a client on a table that Reconcile filled with
// desired.
func reconciledTable(t *testing.T, desired []VirtualService) (*table, *Client) {
	t.Helper()
	tb := newTable()
	c := tableClient(t, tb, 0, 0)
	if _, err := c.Reconcile(context.Background(), desired, ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	return tb, c
}

func svcN(i int) Service {
	return Service{Protocol: TCP, Address: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 80, Scheduler: "rr"}
}

func destN(i int) Destination {
	return Destination{Address: netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), Port: 8080, Weight: 1, ForwardMethod: NAT}
}

func TestApply(t *testing.T) {
	tb := newTable()
	c := tableClient(t, tb, 0, 0)
	ctx := context.Background()
	changes := []Change{
		{Kind: CreateService, Service: svcN(1)},
		{Kind: CreateDestination, Service: svcN(1), Destination: destN(1)},
		{Kind: CreateService, Service: svcN(1)},                                                             // EEXIST
		{Kind: CreateService, Service: Service{Protocol: TCP, Scheduler: "rr"}},                             // invalid: not sent
		{Kind: CreateService, Service: func() Service { s := svcN(2); s.Scheduler = "nosuch"; return s }()}, // ENOENT
		{Kind: UpdateDestination, Service: svcN(1), Destination: func() Destination { d := destN(1); d.Weight = 7; return d }()},
		{Kind: DeleteDestination, Service: svcN(1), Destination: destN(9)}, // ENOENT: no such destination
		{Kind: DeleteService, Service: svcN(3)},                            // ESRCH
		{Kind: CreateService, Service: svcN(4)},
	}
	errs, err := c.Apply(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, nil, os.ErrExist, os.ErrInvalid, ErrSchedulerNotFound, nil, os.ErrNotExist, os.ErrNotExist, nil}
	for i, w := range want {
		if w == nil && errs[i] != nil || w != nil && !errors.Is(errs[i], w) {
			t.Errorf("change %d (%v): %v, want %v", i, changes[i], errs[i], w)
		}
		if w == ErrSchedulerNotFound && errors.Is(errs[i], os.ErrNotExist) {
			t.Errorf("change %d: a missing scheduler reads as a missing service", i)
		}
	}
	if tb.reqs != 8 {
		t.Errorf("%d requests reached the kernel, want 8 (the invalid one is not sent)", tb.reqs)
	}
	if tb.sends != 1 {
		t.Errorf("%d sendmsg calls, want 1", tb.sends)
	}
	if len(tb.svcs) != 2 || tb.dests[svcN(1).key()][0].Weight != 7 {
		t.Errorf("table after Apply: %v %v", tb.svcs, tb.dests)
	}
}

// TestApplyChunks checks that a large batch is split so that its
// acknowledgements fit the receive buffer, and that an overflow (ENOBUFS)
// is reported per change as unacknowledged, never as a failed batch.
func TestApplyChunks(t *testing.T) {
	ctx := context.Background()
	var changes []Change
	for i := range 1000 {
		changes = append(changes, Change{Kind: CreateService, Service: svcN(i)})
	}

	tb := newTable()
	c := tableClient(t, tb, 277, 212992)
	errs, err := c.Apply(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("change %d: %v", i, e)
		}
	}
	if len(tb.svcs) != 1000 {
		t.Errorf("%d services created, want 1000", len(tb.svcs))
	}
	if want := (1000 + 207) / 208; tb.sends != want {
		t.Errorf("%d sendmsg calls, want %d (208 per call for a 212992-byte buffer)", tb.sends, want)
	}

	// A buffer that claims more room than it has overflows.
	tb = newTable()
	c = tableClient(t, tb, 100, 212992)
	errs, err = c.Apply(ctx, changes[:300])
	if err != nil {
		t.Fatalf("Apply with lost ACKs failed as a whole: %v", err)
	}
	var ok, unacked int
	for _, e := range errs {
		switch {
		case e == nil:
			ok++
		case errors.Is(e, ErrUnacknowledged):
			unacked++
		default:
			t.Fatalf("unexpected error %v", e)
		}
	}
	if len(tb.svcs) != 300 || ok != 100+92 || unacked != 108 {
		t.Errorf("created %d, acknowledged %d, unacknowledged %d; want 300, 192, 108", len(tb.svcs), ok, unacked)
	}
}

// TestDumpRaces: a service dump that repeated a service (and so missed
// another) is made again until one repeats none, five at most.
func TestDumpRaces(t *testing.T) {
	tb := newTable()
	c := tableClient(t, tb, 0, 0)
	ctx := context.Background()
	var changes []Change
	for i := range 3 {
		changes = append(changes, Change{Kind: CreateService, Service: svcN(i)},
			Change{Kind: CreateDestination, Service: svcN(i), Destination: destN(i)})
	}
	if _, err := c.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	dumps := func() int {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		n := tb.dumps
		tb.dumps = 0
		return n
	}
	race := func(n int) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		tb.race = n
	}
	race(2)
	vs, err := c.VirtualServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("%d services, want 3", len(vs))
	}
	for i, v := range vs {
		if v.Service != svcN(i) || len(v.Destinations) != 1 || v.Destinations[0].Destination != destN(i) {
			t.Errorf("entry %d = %+v", i, v)
		}
	}
	if n := dumps(); n != 3 {
		t.Errorf("VirtualServices: %d service dumps for two that raced, want 3", n)
	}
	race(1)
	svcs, err := c.Services(ctx)
	if err != nil || len(svcs) != 3 || svcs[2].Service != svcN(2) {
		t.Errorf("Services = %+v, %v; want the 3 services", svcs, err)
	}
	if n := dumps(); n != 2 {
		t.Errorf("Services: %d service dumps for one that raced, want 2", n)
	}
	// A dump that keeps repeating (another namespace's steady churn, on
	// kernels before 7.0): the fifth is kept, without its repeats.
	race(1000)
	svcs, err = c.Services(ctx)
	if err != nil || len(svcs) != 2 || svcs[0].Service != svcN(0) || svcs[1].Service != svcN(1) {
		t.Errorf("Services under steady races = %+v, %v; want the first 2 services", svcs, err)
	}
	if n := dumps(); n != dumpAttempts {
		t.Errorf("Services: %d service dumps, want %d", n, dumpAttempts)
	}
	if vs, err := c.VirtualServices(ctx); err != nil || len(vs) != 2 {
		t.Errorf("VirtualServices under steady races = %d services, %v; want 2", len(vs), err)
	}
	if n := dumps(); n != dumpAttempts {
		t.Errorf("VirtualServices: %d service dumps, want %d", n, dumpAttempts)
	}
	// A context that ends during the pauses ends the read.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
	defer cancel()
	if _, err := c.Services(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Services with a context that ends: %v, want DeadlineExceeded", err)
	}
	if n := dumps(); n >= dumpAttempts {
		t.Errorf("%d service dumps with a context that ended, want fewer than %d", n, dumpAttempts)
	}
	tb.mu.Lock()
	tb.svcs = tb.svcs[:1]
	tb.race = 1000
	tb.mu.Unlock()
	// One service: nothing to repeat.
	if svcs, err := c.Services(ctx); err != nil || len(svcs) != 1 {
		t.Errorf("one service: %+v, %v", svcs, err)
	}
}

// TestReadLengths: the kernel sizes every dump datagram after the longest
// read a socket ever made, and a 32 KiB one costs it a page-allocator
// allocation per datagram (see dumpSlot): sockets that dump destinations
// never read more than a page, and the service table is dumped on sockets
// of their own with 32 KiB reads (see serviceSlot). Dumps of many
// datagrams come back whole.
func TestReadLengths(t *testing.T) {
	tb := newTable()
	var kernels []*kindKernel
	c := &Client{c: newClientWith(familyID, func() (transport, error) {
		k := &kindKernel{fakeKernel: tb.kernel()}
		k.serve = func(g genetlink.Message, n netlink.Message) ([]genetlink.Message, error) {
			if n.Header.Flags&netlink.Dump == netlink.Dump {
				switch g.Header.Command {
				case uapi.CmdGetDest:
					k.destDumps++
				case uapi.CmdGetService:
					k.svcDumps++
				}
			}
			return tb.serve(g, n)
		}
		kernels = append(kernels, k)
		return k, nil
	})}
	defer c.Close()
	ctx := context.Background()
	const services, dests = 150, 40 // 40 destinations span several datagrams
	var changes []Change
	for i := range services {
		changes = append(changes, Change{Kind: CreateService, Service: svcN(i)})
		for j := range dests {
			changes = append(changes, Change{Kind: CreateDestination, Service: svcN(i), Destination: destN(i*dests + j)})
		}
	}
	if _, err := c.Apply(ctx, changes); err != nil {
		t.Fatal(err)
	}
	var destChanges []Change
	for _, ch := range changes {
		if ch.Kind == CreateDestination {
			destChanges = append(destChanges, ch)
		}
	}
	for range 2 {
		vs, err := c.VirtualServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != services {
			t.Fatalf("%d services, want %d", len(vs), services)
		}
		for i, v := range vs {
			if len(v.Destinations) != dests {
				t.Fatalf("service %d: %d destinations, want %d", i, len(v.Destinations), dests)
			}
		}
		svcs, err := c.Services(ctx)
		if err != nil || len(svcs) != services {
			t.Fatalf("Services = %d entries, %v", len(svcs), err)
		}
		ds, err := c.Destinations(ctx, svcN(7))
		if err != nil || len(ds) != dests || ds[dests-1].Destination != destN(7*dests+dests-1) {
			t.Fatalf("Destinations = %d entries, %v", len(ds), err)
		}
		if res, err := c.Reconcile(ctx, desiredN(services, 0), ReconcileOptions{}); err != nil || len(res.Changes) != services*dests {
			t.Fatalf("Reconcile: %d changes, %v", len(res.Changes), err)
		}
		errs, err := c.Apply(ctx, destChanges) // the destinations again
		if err != nil || errors.Join(errs...) != nil {
			t.Fatal(err, errors.Join(errs...))
		}
	}
	// NLMSG_GOODSIZE is one page less the skb overhead, at most 8 KiB less
	// it: datagrams come from the small-object allocator up to there.
	limit := min(os.Getpagesize(), 8<<10)
	var destSockets, svcSockets int
	for i, k := range kernels {
		switch {
		case k.destDumps > 0 && k.svcDumps > 0:
			t.Errorf("socket %d dumped both services and destinations", i)
		case k.destDumps > 0:
			destSockets++
			if k.maxRead > limit {
				t.Errorf("socket %d dumped destinations after a read of %d bytes, want at most %d", i, k.maxRead, limit)
			}
		case k.svcDumps > 0:
			svcSockets++
			if k.maxRead != serviceSlot {
				t.Errorf("socket %d dumped services with reads of %d bytes, want %d", i, k.maxRead, serviceSlot)
			}
		}
	}
	if destSockets != 1 || svcSockets != 1 {
		t.Errorf("%d sockets dumped destinations and %d services, want one each (pooled)", destSockets, svcSockets)
	}
}

// kindKernel counts the dumps of each kind a socket served.
type kindKernel struct {
	*fakeKernel
	destDumps, svcDumps int
}

func desiredN(n, dests int) []VirtualService {
	var out []VirtualService
	for i := range n {
		vs := VirtualService{Service: svcN(i)}
		for j := range dests {
			vs.Destinations = append(vs.Destinations, destN(i*dests+j))
		}
		out = append(out, vs)
	}
	return out
}

func kinds(changes []Change) map[ChangeKind]int {
	m := map[ChangeKind]int{}
	for _, c := range changes {
		m[c.Kind]++
	}
	return m
}

func TestReconcile(t *testing.T) {
	tb := newTable()
	c := tableClient(t, tb, 0, 0)
	ctx := context.Background()

	desired := desiredN(50, 4)
	res, err := c.Reconcile(ctx, desired, ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[ChangeKind]int{CreateService: 50, CreateDestination: 200}, kinds(res.Changes)); diff != "" {
		t.Errorf("from empty (-want +got):\n%s", diff)
	}

	// Idempotent: nothing to do, and only reads reach the kernel.
	before := tb.reqs
	res, err = c.Reconcile(ctx, desired, ReconcileOptions{})
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("second run: %v changes, %v", res.Changes, err)
	}
	if got := tb.reqs - before; got != 51 {
		t.Errorf("a no-op reconcile sent %d requests, want 51 (one service dump, 50 destination dumps)", got)
	}

	// A weight change is one destination update; a service config change
	// one service update; a removed destination one deletion; a removed
	// service one deletion. A /32 netmask is the default.
	desired[0].Destinations[1].Weight = 5
	desired[1].Service.Scheduler = "wlc"
	desired[2].Destinations = desired[2].Destinations[:3]
	desired[3].Service.Netmask = PrefixMask(IPv4, 32)
	desired = desired[:49]
	res, err = c.Reconcile(ctx, desired, ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[ChangeKind]int{UpdateDestination: 1, UpdateService: 1, DeleteDestination: 1, DeleteService: 1}, kinds(res.Changes)); diff != "" {
		t.Errorf("edits (-want +got):\n%s", diff)
	}
	if res, _ := c.Reconcile(ctx, desired, ReconcileOptions{}); len(res.Changes) != 0 {
		t.Errorf("not converged: %v", res.Changes)
	}
}

func TestReconcileGraceful(t *testing.T) {
	desired := desiredN(1, 2)
	tb, c := reconciledTable(t, desired)
	ctx := context.Background()
	id := svcN(0).key()
	tb.dests[id][1].ActiveConnections = 3 // the leaving destination has clients
	desired[0].Destinations = desired[0].Destinations[:1]
	opts := ReconcileOptions{GracefulRemoval: true}

	res, err := c.Reconcile(ctx, desired, opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != UpdateDestination || res.Changes[0].Destination.Weight != 0 {
		t.Fatalf("first graceful run: %v, %v; want one update to weight 0", res.Changes, err)
	}
	if res, _ := c.Reconcile(ctx, desired, opts); len(res.Changes) != 0 {
		t.Fatalf("draining destination with connections was touched: %v", res.Changes)
	}
	tb.dests[id][1].ActiveConnections = 0
	res, err = c.Reconcile(ctx, desired, opts)
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Kind != DeleteDestination {
		t.Fatalf("drained run: %v, %v; want one deletion", res.Changes, err)
	}
}

// hideStale puts in tb svcN(1) with another scheduler (wlc) and makes
// service dumps skip it, as a dump racing with changes can.
func hideStale(tb *table) Service {
	stale := svcN(1)
	stale.Scheduler = "wlc"
	tb.svcs = append(tb.svcs, stale)
	tb.hide = map[serviceKey]bool{stale.key(): true}
	return stale
}

// TestReconcileSkippedByDump: a service the dump did not show exists with
// another scheduler. The create meets EEXIST; Reconcile reads again (now
// seeing it) and updates it, and reports no failure.
func TestReconcileSkippedByDump(t *testing.T) {
	tb := newTable()
	c := tableClient(t, tb, 0, 0)
	ctx := context.Background()
	hideStale(tb)
	desired := desiredN(2, 1)

	// The first read misses it; the second sees it.
	tb.mu.Lock()
	calls := 0
	orig := tb.hide
	tb.mu.Unlock()
	wrapped := tb.serve
	c.c.dial = func() (transport, error) {
		return &fakeKernel{serve: func(g genetlink.Message, n netlink.Message) ([]genetlink.Message, error) {
			if g.Header.Command == uapi.CmdGetService && n.Header.Flags&netlink.Dump != 0 {
				calls++
				if calls > 1 {
					tb.hide = nil
				} else {
					tb.hide = orig
				}
			}
			return wrapped(g, n)
		}}, nil
	}
	c.c.idle = nil
	res, err := c.Reconcile(ctx, desired, ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	var sawExist bool
	for i, e := range res.Errors {
		if errors.Is(e, os.ErrExist) && res.Changes[i].Kind == CreateService {
			sawExist = true
		}
	}
	if !sawExist {
		t.Fatalf("expected the first pass to meet EEXIST: %v", res.Errors)
	}
	i := tb.find(svcN(1).key())
	if i < 0 || tb.svcs[i].Scheduler != "rr" {
		t.Errorf("the skipped service was not corrected: %+v", tb.svcs)
	}
	if res, _ := c.Reconcile(ctx, desired, ReconcileOptions{}); len(res.Changes) != 0 {
		t.Errorf("not converged: %v", res.Changes)
	}
}

func TestReconcileInvalid(t *testing.T) {
	c := tableClient(t, newTable(), 0, 0)
	for name, desired := range map[string][]VirtualService{
		"duplicate service":     {{Service: svcN(1)}, {Service: svcN(1)}},
		"duplicate destination": {{Service: svcN(1), Destinations: []Destination{destN(1), destN(1)}}},
		"invalid service":       {{Service: Service{Protocol: TCP, Scheduler: "rr"}}},
		"invalid destination":   {{Service: svcN(1), Destinations: []Destination{{}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Reconcile(context.Background(), desired, ReconcileOptions{}); !errors.Is(err, os.ErrInvalid) {
				t.Errorf("%v, want os.ErrInvalid", err)
			}
		})
	}
}

func TestChangeString(t *testing.T) {
	got := fmt.Sprint(Change{Kind: CreateDestination, Service: svcN(1), Destination: destN(2)})
	if want := "create destination 10.2.0.2:8080 of TCP 10.1.0.1:80"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// TestApplyDeadline: when the exchange itself fails, every change without
// an answer carries the failure, and invalid ones keep their own error.
func TestApplyDeadline(t *testing.T) {
	c := newClientWith(familyID, func() (transport, error) { return newBlockingTransport(), nil })
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	changes := []Change{
		{Kind: CreateService, Service: svcN(1)},
		{Kind: DeleteService, Service: Service{}},
		{Kind: CreateService, Service: svcN(2)},
	}
	errs, err := (&Client{c: c}).Apply(ctx, changes)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply: %v, want context.DeadlineExceeded", err)
	}
	if !errors.Is(errs[0], context.DeadlineExceeded) || !errors.Is(errs[2], context.DeadlineExceeded) {
		t.Errorf("unanswered changes: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], os.ErrInvalid) {
		t.Errorf("invalid change: %v", errs[1])
	}
}

// TestDumpDestinationsPipelined: services with no, few and many destinations
// in a row all come back complete, the early requests that met a running
// dump were sent again, and the sockets' exchanges stayed in order.
func TestDumpDestinationsPipelined(t *testing.T) {
	// 40 destinations take 20 datagrams here: more than one read returns.
	counts := []int{0, 1, 0, 0, 5, 2, 9, 0, 40, 1, 3}
	dests := map[uint32][]DestinationStats{} // by service firewall mark
	var out []VirtualServiceStats
	for i, n := range counts {
		mark := uint32(i + 1)
		svc := Service{FirewallMark: mark, Family: IPv4, Scheduler: "rr"}
		for j := range n {
			dests[mark] = append(dests[mark], DestinationStats{Destination: destN(i*100 + j)})
		}
		out = append(out, VirtualServiceStats{ServiceStats: ServiceStats{Service: svc}})
	}
	// The kernel runs one dump at a time on a socket and builds each
	// datagram (two destinations here) inside the read of the previous.
	k := &fakeKernel{stepDumps: true, dumpMsgs: 2, serve: func(g genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
		svc, _, err := parseService(g.Data)
		if err != nil {
			return nil, err
		}
		var msgs []genetlink.Message
		for _, d := range dests[svc.FirewallMark] {
			msgs = append(msgs, destMessage(d))
		}
		return msgs, nil
	}}
	c := newClientWith(familyID, func() (transport, error) { return k, nil })
	defer c.close()
	s, err := c.get(context.Background(), pageSock)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.fillDestinations(s, out); err != nil {
		t.Fatal(err)
	}
	for i, n := range counts {
		if got := len(out[i].Destinations); got != n {
			t.Errorf("service %d: %d destinations, want %d", i, got, n)
		}
		for j, d := range out[i].Destinations {
			if d.Destination != destN(i*100+j) {
				t.Errorf("service %d destination %d = %v", i, j, d.Destination)
			}
		}
	}
	if k.busy == 0 {
		t.Error("no early request met a running dump; the EBUSY path went untested")
	}
	if k.unread() != 0 || k.dump.running {
		t.Errorf("left %d datagrams unread", k.unread())
	}
}

// TestReconcileRandom: from random tables to random desired states,
// Reconcile makes exactly the changes a set comparison counts, leaves the
// table equal to the desired state, and a second run changes nothing.
func TestReconcileRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	scheds := []string{RoundRobin, WeightedRoundRobin}
	type conf struct {
		sched string
		dests map[int]int // destination index -> weight
	}
	randomTable := func() map[int]conf {
		m := map[int]conf{}
		for i := range 8 {
			if rng.IntN(3) == 0 {
				continue
			}
			c := conf{sched: scheds[rng.IntN(2)], dests: map[int]int{}}
			for j := range rng.IntN(20) { // past linearMax sometimes
				if rng.IntN(2) == 0 {
					c.dests[i*100+j] = rng.IntN(3)
				}
			}
			m[i] = c
		}
		return m
	}
	service := func(i int, c conf) Service {
		s := svcN(i)
		s.Scheduler = c.sched
		return s
	}
	dest := func(j, w int) Destination {
		d := destN(j)
		d.Weight = w
		return d
	}
	desiredOf := func(m map[int]conf) []VirtualService {
		var out []VirtualService
		for i := range 8 {
			c, ok := m[i]
			if !ok {
				continue
			}
			vs := VirtualService{Service: service(i, c)}
			for j := i * 100; j < i*100+20; j++ {
				if w, ok := c.dests[j]; ok {
					vs.Destinations = append(vs.Destinations, dest(j, w))
				}
			}
			out = append(out, vs)
		}
		// Any order: Reconcile must not depend on it.
		rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
		return out
	}
	for iter := range 200 {
		tb := newTable()
		c := tableClient(t, tb, 0, 0)
		ctx := context.Background()
		cur, want := randomTable(), randomTable()
		if _, err := c.Reconcile(ctx, desiredOf(cur), ReconcileOptions{}); err != nil {
			t.Fatalf("iteration %d: setting up: %v", iter, err)
		}
		expected := 0
		for i := range cur {
			if _, ok := want[i]; !ok {
				expected++
			}
		}
		for i, wc := range want {
			cc, ok := cur[i]
			if !ok {
				expected += 1 + len(wc.dests)
				continue
			}
			if cc.sched != wc.sched {
				expected++
			}
			for j, w := range wc.dests {
				if cw, ok := cc.dests[j]; !ok || cw != w {
					expected++
				}
			}
			for j := range cc.dests {
				if _, ok := wc.dests[j]; !ok {
					expected++
				}
			}
		}
		desired := desiredOf(want)
		res, err := c.Reconcile(ctx, desired, ReconcileOptions{})
		if err != nil || len(res.Changes) != expected {
			t.Fatalf("iteration %d: %d changes (%v), want %d: %v", iter, len(res.Changes), err, expected, res.Changes)
		}
		vs, err := c.VirtualServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]conf{}
		for _, v := range vs {
			i := int(v.Address.As4()[3])
			cf := conf{sched: v.Scheduler, dests: map[int]int{}}
			for _, d := range v.Destinations {
				a := d.Address.As4()
				cf.dests[int(a[2])<<8|int(a[3])] = d.Weight
			}
			got[i] = cf
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(conf{})); diff != "" {
			t.Fatalf("iteration %d: table after Reconcile (-want +got):\n%s", iter, diff)
		}
		if res, err := c.Reconcile(ctx, desired, ReconcileOptions{}); err != nil || len(res.Changes) != 0 {
			t.Fatalf("iteration %d: second run: %v, %v", iter, res.Changes, err)
		}
	}
}

// TestReconcileDumpRepeats: a dump that lists a service twice (as dumps
// racing with changes do) yields one deletion, or one comparison.
func TestReconcileDumpRepeats(t *testing.T) {
	desired := desiredN(3, 2)
	tb, c := reconciledTable(t, desired)
	ctx := context.Background()
	tb.race = 1 // the first dump repeats a service and misses another
	desired[0].Destinations[1].Weight = 7
	res, err := c.Reconcile(ctx, desired[:2], ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[ChangeKind]int{DeleteService: 1, UpdateDestination: 1}
	if diff := cmp.Diff(want, kinds(res.Changes)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

// TestReconcileSkippedEveryTime: under a steady writer every dump may skip
// the same entry; the creation that meets it makes Reconcile read that
// service alone (a GET and its own destination dump) and correct it.
func TestReconcileSkippedEveryTime(t *testing.T) {
	tb := newTable()
	c := tableClient(t, tb, 0, 0)
	ctx := context.Background()
	stale := hideStale(tb) // never in a dump
	tb.dests[stale.key()] = []DestinationStats{{Destination: destN(1)}, {Destination: destN(99)}}
	desired := desiredN(2, 1)
	desired[1].Destinations[0].Weight = 3

	res, err := c.Reconcile(ctx, desired, ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile: %v (changes %v)", err, res.Changes)
	}
	want := map[ChangeKind]int{CreateService: 2, CreateDestination: 2, UpdateService: 1, UpdateDestination: 1, DeleteDestination: 1}
	if diff := cmp.Diff(want, kinds(res.Changes)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	i := tb.find(svcN(1).key())
	if i < 0 || tb.svcs[i].Scheduler != "rr" {
		t.Fatalf("the skipped service was not corrected: %+v", tb.svcs)
	}
	ds := tb.dests[svcN(1).key()]
	if len(ds) != 1 || ds[0].Destination != desired[1].Destinations[0] {
		t.Errorf("its destinations: %+v, want %+v", ds, desired[1].Destinations)
	}
}
