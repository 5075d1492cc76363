//go:build linux

package ipvs

import (
	"context"
	"testing"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// BenchmarkApplyUpdate measures the client side of Apply (validation,
// encoding, reading ACKs) for 8000 weight updates, against a fake kernel
// that answers at once; the fake's own allocations are included.
func BenchmarkApplyUpdate(b *testing.B) {
	changes := make([]Change, 8000)
	for i := range changes {
		changes[i] = Change{Kind: UpdateDestination, Service: svcN(i / 4), Destination: destN(i)}
	}
	k := &fakeKernel{raw: ackAll}
	c := newClientWith(familyID, func() (transport, error) { return k, nil })
	cl := &Client{c: c}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cl.Apply(context.Background(), changes); err != nil {
			b.Fatal(err)
		}
	}
}

// ackAll acknowledges every request, undecoded: a fake kernel that answers
// at once and allocates nothing, so that a benchmark measures the client.
func ackAll(k *fakeKernel, req []byte) error {
	k.ack(req, 0)
	return nil
}

// BenchmarkVirtualServices reads 2000 services x 4 destinations from the
// fake table kernel; the fake's own allocations (it builds every reply
// message) are included, so only differences between runs mean something.
func BenchmarkVirtualServices(b *testing.B) {
	tb := newTable()
	k := tb.kernel()
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
// everything else, like ackAll.
func emptyTable(k *fakeKernel, req []byte) error {
	if req[16] == uapi.CmdGetService {
		k.done(ne.Uint32(req[8:]))
		return nil
	}
	return ackAll(k, req)
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
	k := &fakeKernel{raw: emptyTable}
	c := &Client{c: newClientWith(familyID, func() (transport, error) { return k, nil })}
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Reconcile(context.Background(), desired, ReconcileOptions{})
		if err != nil || len(res.Changes) != 10000 {
			b.Fatal(len(res.Changes), err)
		}
	}
}
