//go:build linux

package ipvs

import (
	"context"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
	"golang.org/x/sys/unix"
)

// BenchmarkApplyUpdate measures the client side of Apply (validation,
// encoding, reading ACKs) for 8000 weight updates, against a fake kernel
// that answers at once; the fake's own allocations are included.
func BenchmarkApplyUpdate(b *testing.B) {
	changes := make([]Change, 8000)
	for i := range changes {
		changes[i] = Change{Kind: UpdateDestination, Service: svcN(i / 4), Destination: destN(i)}
	}
	k := &fastAck{}
	c := newClientWith(familyID, func() (transport, error) { return k, nil })
	cl := &Client{c: c}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cl.Apply(context.Background(), changes); err != nil {
			b.Fatal(err)
		}
	}
}

// fastAck acknowledges every request of a sendmsg, reusing its buffers so
// that the benchmark measures the client.
type fastAck struct {
	buf  []byte
	offs []int
	next int
}

func (f *fastAck) send(b []byte) error {
	f.buf, f.offs, f.next = f.buf[:0], f.offs[:0], 0
	for len(b) > 0 {
		l := int(ne.Uint32(b))
		f.offs = append(f.offs, len(f.buf))
		f.buf = ne.AppendUint32(f.buf, 36)
		f.buf = ne.AppendUint16(f.buf, unix.NLMSG_ERROR)
		f.buf = ne.AppendUint16(f.buf, unix.NLM_F_CAPPED)
		f.buf = ne.AppendUint32(f.buf, ne.Uint32(b[8:]))
		f.buf = ne.AppendUint32(f.buf, 0)
		f.buf = ne.AppendUint32(f.buf, 0)
		f.buf = append(f.buf, b[:16]...)
		b = b[(l+3)&^3:]
	}
	return nil
}

func (f *fastAck) recv(b []byte, nonblock bool) (int, error) {
	n, _ := f.recvBatch(b, len(b), []int{0}, nonblock)
	_ = n
	return 36, nil
}

func (f *fastAck) recvBatch(b []byte, slot int, lens []int, nonblock bool) (int, error) {
	n := 0
	for n < len(lens) && f.next < len(f.offs) && (n+1)*slot <= len(b) {
		o := f.offs[f.next]
		lens[n] = copy(b[n*slot:], f.buf[o:o+36])
		f.next++
		n++
	}
	return n, nil
}

func (f *fastAck) setDeadline(time.Time) error { return nil }
func (f *fastAck) interrupt()                  {}
func (f *fastAck) bufferSizes() (int, int)     { return 212992, 212992 }
func (f *fastAck) close() error                { return nil }

// BenchmarkVirtualServices reads 2000 services x 4 destinations from the
// fake table kernel; the fake's own allocations (it builds every reply
// message) are included, so only differences between runs mean something.
func BenchmarkVirtualServices(b *testing.B) {
	tb := newTable()
	k := &countingKernel{fakeKernel: fakeKernel{fn: tb.serve}, tb: tb}
	c := &Client{c: newClientWith(familyID, func() (transport, error) { return k, nil })}
	defer c.Close()
	var changes []Change
	for i := range 2000 {
		changes = append(changes, Change{Kind: CreateService, Service: svcN(i)})
		for j := range 4 {
			changes = append(changes, Change{Kind: CreateDestination, Service: svcN(i), Destination: destN(i*4 + j)})
		}
	}
	if _, err := c.Apply(context.Background(), changes); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		vs, err := c.VirtualServices(context.Background())
		if err != nil || len(vs) != 2000 {
			b.Fatal(len(vs), err)
		}
	}
}

// emptyTable answers a service dump with an empty table and acknowledges
// everything else at once, like fastAck.
type emptyTable struct{ fastAck }

func (f *emptyTable) send(b []byte) error {
	if len(b) > 16 && b[16] == uapi.CmdGetService {
		f.buf, f.offs, f.next = f.buf[:0], f.offs[:0], 0
		f.offs = append(f.offs, 0)
		// 36 bytes, as recvBatch copies: NLMSG_DONE, its errno, padding.
		f.buf = append(header(36, unix.NLMSG_DONE, unix.NLM_F_MULTI, ne.Uint32(b[8:])), make([]byte, 20)...)
		return nil
	}
	return f.fastAck.send(b)
}

// BenchmarkReconcileFromEmpty measures the client side of a Reconcile that
// creates 2000 services x 4 destinations: validation, the comparison with
// an empty table, the 10 000 changes and their encoding and ACKs.
func BenchmarkReconcileFromEmpty(b *testing.B) {
	desired := make([]VirtualService, 2000)
	for i := range desired {
		desired[i].Service = svcN(i)
		for j := range 4 {
			desired[i].Destinations = append(desired[i].Destinations, destN(i*4+j))
		}
	}
	k := &emptyTable{}
	c := &Client{c: newClientWith(familyID, func() (transport, error) { return k, nil })}
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Reconcile(context.Background(), desired, ReconcileOptions{})
		if err != nil || len(res.Changes) != 10000 {
			b.Fatal(len(res.Changes), err)
		}
	}
}
