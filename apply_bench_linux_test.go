//go:build linux

package ipvs

import (
	"context"
	"testing"
	"time"
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

// fastAck acknowledges every request of a sendmsg.
type fastAck struct{ q [][]byte }

func (f *fastAck) send(b []byte) error {
	for len(b) > 0 {
		l := int(ne.Uint32(b))
		d := header(36, nlmsgError, nlmFCapped, ne.Uint32(b[8:]))
		d = ne.AppendUint32(d, 0)
		d = append(d, b[:16]...)
		f.q = append(f.q, d)
		b = b[(l+3)&^3:]
	}
	return nil
}
func (f *fastAck) recv(b []byte, nonblock bool) (int, error) {
	d := f.q[0]
	f.q = f.q[1:]
	return copy(b, d), nil
}
func (f *fastAck) recvBatch(b []byte, slot int, lens []int, nonblock bool) (int, error) {
	n := 0
	for n < len(lens) && len(f.q) > 0 && (n+1)*slot <= len(b) {
		lens[n] = copy(b[n*slot:], f.q[0])
		f.q = f.q[1:]
		n++
	}
	return n, nil
}
func (f *fastAck) setDeadline(time.Time) error { return nil }
func (f *fastAck) bufferSizes() (int, int)     { return 212992, 212992 }
func (f *fastAck) close() error                { return nil }
