//go:build linux

package ipvs

import (
	"bytes"
	"context"
	"syscall"
	"testing"

	"github.com/ipvs-go/ipvs/internal/uapi"
	"golang.org/x/sys/unix"
)

// replayKernel answers the dumps of a fixed table from datagrams built
// once, as the kernel lays them out (page-sized, NLMSG_DONE apart), so that
// a benchmark measures the client's work on a read: system calls aside,
// everything VirtualServices or a no-op Reconcile does.
type replayKernel struct {
	fakeKernel
	svcDump [][]byte          // the service dump's datagrams
	dests   map[string][]byte // request attributes -> the destination datagram
}

// newReplayKernel builds a table of n services with m destinations each
// from the canned 6.1 replies (serviceReply, destReply), and returns the
// desired state equal to it.
func newReplayKernel(n, m int) (*replayKernel, []VirtualService) {
	svcTmpl, destTmpl := serviceReply().Data, destReply().Data
	tmplAddr := []byte{10, 0, 0, 1}
	destAddr := []byte{10, 0, 1, 2}
	k := &replayKernel{dests: map[string][]byte{}}
	k.raw = k.replay
	var desired []VirtualService
	var dg []byte
	for i := range n {
		addr := [4]byte{10, 0, byte(i >> 8), byte(i)}
		svc := bytes.Clone(svcTmpl)
		copy(svc[bytes.Index(svc, tmplAddr):], addr[:])
		msg := append(header(16+4+len(svc), familyID, unix.NLM_F_MULTI, 0), uapi.CmdNewService, 1, 0, 0)
		msg = append(msg, svc...)
		if len(dg)+len(msg) > 3776 {
			k.svcDump = append(k.svcDump, dg)
			dg = nil
		}
		dg = append(dg, msg...)
		s, _, err := parseService(svc)
		if err != nil {
			panic(err)
		}
		vs := VirtualService{Service: s.Service}
		var ddg []byte
		for j := range m {
			daddr := [4]byte{byte(10 + j), 1, byte(i >> 8), byte(i)}
			d := bytes.Clone(destTmpl)
			copy(d[bytes.Index(d, destAddr):], daddr[:])
			msg := append(header(16+4+len(d), familyID, unix.NLM_F_MULTI, 0), uapi.CmdNewDest, 1, 0, 0)
			ddg = append(ddg, append(msg, d...)...)
			dst, _, err := parseDest(d, IPv4)
			if err != nil {
				panic(err)
			}
			vs.Destinations = append(vs.Destinations, dst.Destination)
		}
		desired = append(desired, vs)
		// The destination dump request carries the service identity as
		// this client encodes it.
		id := encodeAttrs(func(e *encoder) { encodeServiceID(e, s.Service) })
		k.dests[string(id)] = ddg
	}
	k.svcDump = append(k.svcDump, dg)
	return k, desired
}

func setSeq(dg []byte, seq uint32) {
	for len(dg) >= 16 {
		ne.PutUint32(dg[8:], seq)
		dg = dg[nlmsgAlign(int(ne.Uint32(dg))):]
	}
}

// replay queues the prepared datagrams that answer req.
func (k *replayKernel) replay(_ *fakeKernel, req []byte) error {
	seq := ne.Uint32(req[8:])
	switch req[16] {
	case uapi.CmdGetService:
		for _, dg := range k.svcDump {
			setSeq(dg, seq)
			k.push(dg)
		}
	case uapi.CmdGetDest:
		dg := k.dests[string(req[20:])]
		setSeq(dg, seq)
		k.push(dg)
	default:
		return syscall.EOPNOTSUPP
	}
	k.done(seq)
	return nil
}

// BenchmarkClientRead compares, on 2000 services x 4 destinations, the
// client's work for VirtualServices and for a Reconcile with nothing to
// change; the fake kernel only copies prepared datagrams.
func BenchmarkClientRead(b *testing.B) {
	k, desired := newReplayKernel(2000, 4)
	c := &Client{c: newClientWith(familyID, func() (transport, error) { return k, nil })}
	defer c.Close()
	ctx := context.Background()
	b.Run("VirtualServices", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			vs, err := c.VirtualServices(ctx)
			if err != nil || len(vs) != 2000 || len(vs[1999].Destinations) != 4 {
				b.Fatal(len(vs), err)
			}
		}
	})
	b.Run("ReconcileNoop", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := c.Reconcile(ctx, desired, ReconcileOptions{})
			if err != nil || len(res.Changes) != 0 {
				b.Fatal(res.Changes, err)
			}
		}
	})
}
