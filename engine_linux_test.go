//go:build linux

package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// TestParseErrorEchoLength: an NLMSG_ERROR whose echoed request length is
// 2 GiB or more (int(uint32) is negative on 32-bit platforms) decodes
// without indexing outside the message.
func TestParseErrorEchoLength(t *testing.T) {
	for _, l := range []uint32{0xfffffff0, 0x80000000, 0xffffffff, 1 << 20} {
		d := binary.NativeEndian.AppendUint32(nil, uint32(0xfffffffe))
		d = append(d, header(int(l), familyID, 0, 1)...)
		// An NLMSGERR_ATTR_MSG attribute a wrong offset would find.
		d = append(d, 8, 0, unix.NLMSGERR_ATTR_MSG, 0, 'x', 'y', 'z', 0)
		errno, text, err := parseError(message{typ: unix.NLMSG_ERROR, flags: unix.NLM_F_ACK_TLVS, data: d})
		if err != nil || errno != int32(syscall.ENOENT) || text != "" {
			t.Errorf("echo length %#x: parseError = %d, %q, %v; want ENOENT, no text", l, errno, text, err)
		}
	}
}

// hookKernel is a fakeKernel that runs onSend before each send and onRecv
// before each read.
type hookKernel struct {
	fakeKernel
	onSend func(b []byte)
	onRecv func() error
}

func (k *hookKernel) send(b []byte) error {
	if k.onSend != nil {
		k.onSend(b)
	}
	return k.fakeKernel.send(b)
}

func (k *hookKernel) recv(b []byte, mode readMode) (int, error) {
	if k.onRecv != nil {
		if err := k.onRecv(); err != nil {
			return 0, err
		}
	}
	return k.fakeKernel.recv(b, mode)
}

func (k *hookKernel) recvBatch(b []byte, slot int, lens []int, mode readMode) (int, error) {
	if k.onRecv != nil {
		if err := k.onRecv(); err != nil {
			return 0, err
		}
	}
	return k.fakeKernel.recvBatch(b, slot, lens, mode)
}

// TestSessionKeepsRealError: a call that fails on its own (here a truncated
// read) as its context ends reports both.
func TestSessionKeepsRealError(t *testing.T) {
	for _, deadline := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		want := context.Canceled
		if deadline {
			ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
			want = context.DeadlineExceeded
		}
		k := &hookKernel{fakeKernel: fakeKernel{serve: func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
			return []genetlink.Message{infoReply()}, nil
		}}}
		k.onRecv = func() error {
			if deadline {
				<-ctx.Done()
			} else {
				cancel()
			}
			return errTruncated
		}
		c := &Client{c: newClientWith(familyID, func() (transport, error) { return k, nil })}
		_, err := c.Info(ctx)
		if !errors.Is(err, want) || !errors.Is(err, errTruncated) {
			t.Errorf("deadline %v: Info = %v, want an error matching %v and %v", deadline, err, want, errTruncated)
		}
		cancel()
		_ = c.Close()
	}
}

// reqCmd is the generic netlink command of the first request in b.
func reqCmd(b []byte) uint8 { return b[unix.NLMSG_HDRLEN] }

// TestContextBetweenReads: the reads of a dump and the chunks of an Apply
// never wait, so the context is checked between them: a cancelled or
// expired call stops early instead of running to the end, and the Client
// works afterwards.
func TestContextBetweenReads(t *testing.T) {
	const n = 5000
	tb := newTable()
	for i := range n {
		tb.svcs = append(tb.svcs, svcN(i))
		tb.dests[svcN(i).key()] = []DestinationStats{{Destination: destN(i)}}
	}
	var (
		mu              sync.Mutex
		recvs, getDests int
		sends           int
		cancelAt        func(b []byte, recvs int) bool
		cancel          context.CancelFunc
		sleep           time.Duration
	)
	k := func() (transport, error) {
		k := &hookKernel{fakeKernel: fakeKernel{serve: tb.serve, rcv: 10 * 1024}}
		k.onSend = func(b []byte) {
			mu.Lock()
			defer mu.Unlock()
			sends++
			if reqCmd(b) == uapi.CmdGetDest {
				getDests++
			}
			if cancelAt != nil && cancelAt(b, recvs) {
				cancel()
			}
		}
		k.onRecv = func() error {
			mu.Lock()
			defer mu.Unlock()
			recvs++
			if cancelAt != nil && cancelAt(nil, recvs) {
				cancel()
			}
			time.Sleep(sleep)
			return nil
		}
		return k, nil
	}
	c := &Client{c: newClientWith(familyID, k)}
	defer c.Close()
	reset := func(at func(b []byte, recvs int) bool) context.Context {
		mu.Lock()
		defer mu.Unlock()
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		recvs, getDests, sends, cancelAt, sleep = 0, 0, 0, at, 0
		return ctx
	}
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return recvs, getDests, sends
	}
	afterRecv := func(r int) func([]byte, int) bool {
		return func(b []byte, recvs int) bool { return b == nil && recvs == r }
	}

	reset(nil)
	if svcs, err := c.Services(context.Background()); err != nil || len(svcs) != n {
		t.Fatalf("Services: %d, %v", len(svcs), err)
	}
	whole, _, _ := counts()
	if whole < 10 {
		t.Fatalf("the service dump takes %d reads, too few for this test", whole)
	}

	ctx := reset(afterRecv(2))
	if _, err := c.Services(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Services cancelled during the dump: %v, want context.Canceled", err)
	}
	if r, _, _ := counts(); r > 4 {
		t.Errorf("Services cancelled at the second read went on for %d reads", r)
	}

	ctx = reset(afterRecv(2))
	if _, err := c.Reconcile(ctx, nil, ReconcileOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Reconcile cancelled during the dump: %v, want context.Canceled", err)
	}
	if r, _, s := counts(); r > 4 || s > 1 {
		t.Errorf("Reconcile cancelled at the second read went on for %d reads and %d sends", r, s)
	}

	// Cancelled at the first destination dump: the pipeline stops.
	ctx = reset(func(b []byte, _ int) bool { return b != nil && reqCmd(b) == uapi.CmdGetDest })
	if _, err := c.VirtualServices(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("VirtualServices cancelled during the destination dumps: %v, want context.Canceled", err)
	}
	if _, d, _ := counts(); d > 3 {
		t.Errorf("VirtualServices cancelled at the first destination dump sent %d", d)
	}

	// A deadline: every read takes 1ms.
	reset(nil)
	mu.Lock()
	sleep = time.Millisecond
	mu.Unlock()
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
	_, err := c.Services(dctx)
	dcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Services with a 3ms deadline: %v, want context.DeadlineExceeded", err)
	}
	if r, _, _ := counts(); r >= whole {
		t.Errorf("Services with a 3ms deadline read the whole dump (%d reads)", r)
	}

	// Apply: 10 changes per chunk (rcv 10 KiB); cancelled at the first
	// sendmsg, no other chunk is sent, and the changes not sent carry the
	// context's error.
	changes := make([]Change, 100)
	for i := range changes {
		changes[i] = Change{Kind: UpdateDestination, Service: svcN(i), Destination: destN(i)}
	}
	ctx = reset(func(b []byte, _ int) bool { return b != nil })
	errs, err := c.Apply(ctx, changes)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply cancelled at the first chunk: %v, want context.Canceled", err)
	}
	if _, _, s := counts(); s != 1 {
		t.Errorf("Apply cancelled at the first chunk made %d sends, want 1", s)
	}
	for i := 10; i < len(errs); i++ {
		if !errors.Is(errs[i], context.Canceled) {
			t.Fatalf("change %d not sent: %v, want context.Canceled", i, errs[i])
		}
	}

	// The Client works afterwards.
	reset(nil)
	vs, err := c.VirtualServices(context.Background())
	if err != nil || len(vs) != n {
		t.Fatalf("VirtualServices afterwards: %d services, %v", len(vs), err)
	}
}

// TestPipelineErrorWhileDumpRuns: a destination dump requested early that
// fails with an errno other than EBUSY while the dump before it still runs
// leaves that dump's datagrams queued: the socket must not be pooled, or
// the next call on it would get EBUSY.
func TestPipelineErrorWhileDumpRuns(t *testing.T) {
	tb := newTable()
	for i := range 3 {
		tb.svcs = append(tb.svcs, svcN(i))
	}
	// Service 0 has enough destinations for more datagrams than one read
	// takes (16 pages).
	for j := range 2000 {
		tb.dests[svcN(0).key()] = append(tb.dests[svcN(0).key()], DestinationStats{Destination: destN(j)})
	}
	fn := func(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
		if greq.Header.Command == uapi.CmdGetDest {
			if b, ok, _ := nested(greq.Data, uapi.CmdAttrService); ok {
				if s, err := parseServiceAttrs(b, true); err == nil && s.Service.key() == svcN(1).key() {
					return nil, syscall.ENOENT
				}
			}
		}
		return tb.serve(greq, nreq)
	}
	var socks []*fakeKernel
	c := &Client{c: newClientWith(familyID, func() (transport, error) {
		k := &fakeKernel{serve: fn, stepDumps: true}
		socks = append(socks, k)
		return k, nil
	})}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.VirtualServices(ctx); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("VirtualServices = %v, want ENOENT", err)
	}
	for i, k := range socks {
		k.mu.Lock()
		busy, closed := k.dump.running, k.closed
		k.mu.Unlock()
		if busy && !closed {
			t.Errorf("socket %d has a dump running and was not closed", i)
		}
	}
	// The next dump does not run into the unfinished one.
	svcs, err := c.Services(ctx)
	if err != nil || len(svcs) != 3 {
		t.Errorf("Services after the failed pipeline: %d services, %v", len(svcs), err)
	}
	if _, err := c.Destinations(ctx, svcN(2)); err != nil {
		t.Errorf("Destinations after the failed pipeline: %v", err)
	}
}

// familyKernel answers requests of family id *id and refuses others with
// ENOENT, as the generic netlink core does for an unregistered id.
func familyClient(t *testing.T, tb *table, id *uint16, resolve func(context.Context) (uint16, error)) (*Client, *int) {
	t.Helper()
	var mu sync.Mutex
	reqs := 0
	c := newClientWith(familyID, func() (transport, error) {
		return &fakeKernel{rcv: 10 * 1024, serve: func(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
			mu.Lock()
			reqs++
			mu.Unlock()
			if uint16(nreq.Header.Type) != *id {
				return nil, syscall.ENOENT
			}
			if greq.Header.Command == uapi.CmdGetInfo {
				return []genetlink.Message{infoReply()}, nil
			}
			return tb.serve(greq, nreq)
		}}, nil
	})
	c.resolve = resolve
	cl := &Client{c: c}
	t.Cleanup(func() { _ = cl.Close() })
	return cl, &reqs
}

// TestFamilyReload: after ip_vs is reloaded under a new family id, a request
// to the old id gets ENOENT from the generic netlink core; the family is
// looked up again and the request sent again, once. While IPVS is absent
// the error says so, and IPVS's own ENOENT keeps its meaning.
func TestFamilyReload(t *testing.T) {
	ctx := context.Background()
	notFound := func(context.Context) (uint16, error) {
		return 0, &netlink.OpError{Op: "receive", Err: os.ErrNotExist}
	}

	// Reloaded: the same Client works.
	id := uint16(familyID + 1)
	resolves := 0
	c, reqs := familyClient(t, newTable(), &id, func(context.Context) (uint16, error) { resolves++; return id, nil })
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("Info after a reload: %v", err)
	}
	if *reqs != 2 || resolves != 1 {
		t.Errorf("Info after a reload: %d requests, %d lookups; want 2 and 1", *reqs, resolves)
	}
	if err := c.CreateService(ctx, svcN(1)); err != nil {
		t.Fatalf("CreateService after a reload: %v", err)
	}
	if *reqs != 3 || resolves != 1 {
		t.Errorf("after the reload the new id is used: %d requests, %d lookups; want 3 and 1", *reqs, resolves)
	}

	// IPVS's own ENOENT (the id has not changed): no retry, same meaning.
	svc := svcN(2)
	svc.Scheduler = "nosuch"
	err := c.CreateService(ctx, svc)
	if !errors.Is(err, ErrSchedulerNotFound) || errors.Is(err, os.ErrNotExist) {
		t.Errorf("CreateService with an unknown scheduler: %v, want ErrSchedulerNotFound", err)
	}
	if *reqs != 4 || resolves != 2 {
		t.Errorf("IPVS's ENOENT: %d requests, %d lookups; want 4 and 2", *reqs, resolves)
	}

	// A new id at every lookup and ENOENT every time: one retry only.
	never := uint16(0)
	next := uint16(100)
	c2, reqs2 := familyClient(t, newTable(), &never, func(context.Context) (uint16, error) { next++; return next, nil })
	if err := c2.Flush(ctx); !errors.Is(err, syscall.ENOENT) || *reqs2 != 2 {
		t.Errorf("Flush with the family never found: %v after %d requests, want ENOENT after 2", err, *reqs2)
	}

	// Unloaded: every kind of request says so.
	c3, _ := familyClient(t, newTable(), &never, notFound)
	wantNotLoaded := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrSchedulerNotFound) || !strings.Contains(fmtErr(err), "IPVS is not loaded") {
			t.Errorf("%s while IPVS is unloaded: %v, want os.ErrNotExist saying IPVS is not loaded", what, err)
		}
	}
	wantNotLoaded("CreateService", c3.CreateService(ctx, svcN(1)))
	_, err = c3.Services(ctx)
	wantNotLoaded("Services", err)
	_, err = c3.VirtualServices(ctx)
	wantNotLoaded("VirtualServices", err)
	changes := make([]Change, 30)
	for i := range changes {
		changes[i] = Change{Kind: CreateService, Service: svcN(i)}
	}
	errs, err := c3.Apply(ctx, changes)
	wantNotLoaded("Apply", err)
	for i, e := range errs {
		wantNotLoaded("Apply change "+svcN(i).String(), e)
	}

	// Apply across a reload: every chunk (10 changes, rcv 10 KiB) goes to
	// the new id.
	id = familyID + 7
	tb := newTable()
	c4, _ := familyClient(t, tb, &id, func(context.Context) (uint16, error) { return id, nil })
	errs, err = c4.Apply(ctx, changes)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("Apply after a reload: change %d: %v", i, e)
		}
	}
	if len(tb.svcs) != len(changes) {
		t.Errorf("Apply after a reload created %d services, want %d", len(tb.svcs), len(changes))
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
