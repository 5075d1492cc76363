//go:build linux

package ipvs

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
	"golang.org/x/sys/unix"
)

// replayKernel answers the dumps of a fixed table from datagrams built
// once, as the kernel lays them out (page-sized, NLMSG_DONE apart), so that
// a benchmark measures the client's work on a read: system calls aside,
// everything VirtualServices or a no-op Reconcile does.
type replayKernel struct {
	svcDump [][]byte          // the service dump's datagrams, NLMSG_DONE last
	dests   map[string][]byte // request attributes -> the destination datagram
	done    []byte
	queue   [][]byte
}

// newReplayKernel builds a table of n services with m destinations each
// from the canned 6.1 replies (serviceReply, destReply), and returns the
// desired state equal to it.
func newReplayKernel(n, m int) (*replayKernel, []VirtualService) {
	svcTmpl, destTmpl := serviceReply().Data, destReply().Data
	tmplAddr := []byte{10, 0, 0, 1}
	destAddr := []byte{10, 0, 1, 2}
	k := &replayKernel{dests: map[string][]byte{}}
	k.done = append(header(20, unix.NLMSG_DONE, unix.NLM_F_MULTI, 0), 0, 0, 0, 0)
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
	k.svcDump = append(k.svcDump, dg, k.done)
	return k, desired
}

func setSeq(dg []byte, seq uint32) {
	for len(dg) >= 16 {
		ne.PutUint32(dg[8:], seq)
		dg = dg[nlmsgAlign(int(ne.Uint32(dg))):]
	}
}

func (k *replayKernel) send(b []byte) error {
	seq := ne.Uint32(b[8:])
	switch b[16] {
	case uapi.CmdGetService:
		for _, dg := range k.svcDump {
			setSeq(dg, seq)
		}
		k.queue = append(k.queue, k.svcDump...)
	case uapi.CmdGetDest:
		dg := k.dests[string(b[20:])]
		setSeq(dg, seq)
		setSeq(k.done, seq)
		k.queue = append(k.queue, dg, k.done)
	default:
		return syscall.EOPNOTSUPP
	}
	return nil
}

func (k *replayKernel) recv(b []byte, nonblock bool) (int, error) {
	if len(k.queue) == 0 {
		return 0, syscall.EAGAIN
	}
	n := copy(b, k.queue[0])
	k.queue = k.queue[1:]
	return n, nil
}

func (k *replayKernel) recvBatch(b []byte, slot int, lens []int, nonblock bool) (int, error) {
	return recvBatchLoop(k, b, slot, lens, nonblock)
}
func (k *replayKernel) setDeadline(time.Time) error { return nil }
func (k *replayKernel) interrupt()                  {}
func (k *replayKernel) bufferSizes() (int, int)     { return 212992, 212992 }
func (k *replayKernel) close() error                { return nil }

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
