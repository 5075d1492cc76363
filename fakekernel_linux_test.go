//go:build linux

package ipvs

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// familyID is the IPVS family id of the fake kernel, the one the capture
// shim used.
const familyID = 0x1d

// fakeKernel is the transport of the unit tests and benchmarks: a netlink
// socket with a simulated kernel behind it. Each request of a send goes to
// serve, or to raw; the answers are queued as datagrams, which recv and
// recvBatch return in order. The fields before mu are its options; a test
// sets only those it needs.
type fakeKernel struct {
	// serve answers one request as a kernel handler does: the reply
	// messages, a syscall.Errno for an error reply, or errSilent for no
	// answer at all. ACKs, dump parts (NLM_F_MULTI) and NLMSG_DONE are
	// added as the request's flags ask, each answer in its own datagram as
	// a 6.1 kernel sends them; dump parts fill datagrams as large as the
	// kernel makes them after the longest read so far (see dumpDatagram).
	serve func(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error)
	// raw, if set, takes the place of serve: it gets each request's bytes
	// undecoded and queues the answers itself (ack, done, push). For
	// benchmarks of the client: it need cost nothing.
	raw func(k *fakeKernel, req []byte) error
	// onSend, if set, is called for each send (one sendmsg), before its
	// requests are served.
	onSend func(b []byte)
	// capacity > 0 holds at most that many datagrams in the queue and
	// drops the rest with ENOBUFS, as a full receive buffer does.
	capacity int
	// rcv is the SO_RCVBUF that bufferSizes reports; 0 is 212992, the
	// usual default.
	rcv int
	// dumpMsgs > 0 puts at most that many messages in a dump datagram.
	dumpMsgs int
	// stepDumps runs dumps as the kernel runs them on a socket: one at a
	// time (a dump request meanwhile gets EBUSY), the first datagram built
	// when the request arrives, each later one and then NLMSG_DONE inside
	// the read that returns the previous. Without it a dump is queued
	// whole at once.
	stepDumps bool
	// blocks makes a read of an empty queue wait, as a real socket does,
	// until the deadline passes or interrupt is called. Without it such a
	// read fails at once with errFakeBlock, so that a test never hangs.
	blocks bool

	mu    sync.Mutex
	queue [][]byte // the datagrams not yet read are queue[head:]
	head  int
	// arena holds the datagrams built here; once all are read it is reused,
	// so that answering allocates nothing in the steady state.
	arena       []byte
	overrun     bool
	maxRead     int // the longest read buffer, as netlink_recvmsg records it
	closed      bool
	deadline    time.Time
	interrupted bool
	dump        struct { // the running dump
		msgs    []genetlink.Message // what it has left to send
		seq     uint32
		running bool
	}
	busy int // dump requests refused with EBUSY (stepDumps)
}

var (
	// errSilent makes the fake kernel send no answer to a request, as the
	// real one does when a handler returns EINTR.
	errSilent = errors.New("no answer")
	// errFakeBlock is a read that would wait forever: nothing is queued
	// and nothing will be.
	errFakeBlock = errors.New("fake kernel: no answer queued; a real socket would block here")
)

// dumpDatagram is how many bytes of dump messages the kernel puts in one
// datagram after reads of at most maxRead bytes: netlink_dump allocates
// max(NLMSG_GOODSIZE, maxRead) capped at 32 KiB less the skb overhead
// (numbers of x86-64 with 4 KiB pages).
func dumpDatagram(maxRead int) int {
	const goodSize, skbOverhead = 3776, 320
	return max(goodSize, min(maxRead, 32<<10-skbOverhead))
}

// header is a netlink message header.
func header(length int, typ, flags uint16, seq uint32) []byte {
	return appendHeader(nil, length, typ, flags, seq)
}

func appendHeader(b []byte, length int, typ, flags uint16, seq uint32) []byte {
	b = ne.AppendUint32(b, uint32(length))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags)
	b = ne.AppendUint32(b, seq)
	return ne.AppendUint32(b, 0)
}

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

// testClient returns a Client whose requests are served by serve.
func testClient(t *testing.T, serve func(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error)) *Client {
	t.Helper()
	c := newClientWith(familyID, func() (transport, error) { return &fakeKernel{serve: serve}, nil })
	cl := &Client{c: c}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// newBlockingTransport is a socket whose requests never get an answer: a
// read waits until the deadline passes or an interrupt, and then fails as a
// real socket does.
func newBlockingTransport() *fakeKernel {
	return &fakeKernel{
		serve:  func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) { return nil, errSilent },
		blocks: true,
	}
}

func (k *fakeKernel) send(b []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.onSend != nil {
		k.onSend(b)
	}
	for len(b) > 0 {
		n := int(ne.Uint32(b))
		if n < 16 || n > len(b) {
			return errors.New("fake kernel: bad message length")
		}
		req := b[:n]
		b = b[min(nlmsgAlign(n), len(b)):]
		var err error
		if k.raw != nil {
			err = k.raw(k, req)
		} else {
			err = k.answer(req)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// answer serves one request with serve.
func (k *fakeKernel) answer(req []byte) error {
	var nm netlink.Message
	if err := nm.UnmarshalBinary(req); err != nil {
		return err
	}
	var gm genetlink.Message
	if err := gm.UnmarshalBinary(nm.Data); err != nil {
		return err
	}
	dump := nm.Header.Flags&netlink.Dump == netlink.Dump
	// An error of serve comes first: the kernel checks a request (its
	// family, the caller's capability) before it starts a dump, which it
	// refuses with EBUSY while another runs.
	msgs, err := k.serve(gm, nm)
	if errors.Is(err, errSilent) {
		return nil // like a handler returning EINTR: no answer at all
	}
	if err != nil {
		errno, ok := err.(syscall.Errno)
		if !ok {
			return err
		}
		k.ack(req, errno)
		return nil
	}
	if dump && k.dump.running {
		k.busy++
		k.ack(req, syscall.EBUSY)
		return nil
	}
	seq := nm.Header.Sequence
	switch {
	case dump:
		k.dump.msgs, k.dump.seq, k.dump.running = msgs, seq, true
		k.dumpNext()
		for !k.stepDumps && k.dump.running {
			k.dumpNext()
		}
	case nm.Header.Flags&netlink.Acknowledge != 0:
		if len(msgs) > 0 {
			k.datagram(msgs, seq, 0, 0)
		}
		k.ack(req, 0)
	case len(msgs) > 0:
		k.datagram(msgs, seq, 0, 0)
	}
	return nil
}

// dumpNext queues the running dump's next datagram, or its NLMSG_DONE.
func (k *fakeKernel) dumpNext() {
	if !k.dump.running {
		return
	}
	if len(k.dump.msgs) == 0 {
		k.done(k.dump.seq)
		k.dump.running = false
		return
	}
	n := k.datagram(k.dump.msgs, k.dump.seq, unix.NLM_F_MULTI, dumpDatagram(k.maxRead))
	k.dump.msgs = k.dump.msgs[n:]
}

// datagram queues a datagram of msgs, as many as fit limit bytes (0: all,
// at least one) and dumpMsgs if it is a dump's, and returns how many.
func (k *fakeKernel) datagram(msgs []genetlink.Message, seq uint32, flags uint16, limit int) int {
	start := len(k.arena)
	n := 0
	for _, m := range msgs {
		size := len(k.arena) - start
		if n > 0 && limit > 0 && (size+20+len(m.Data) > limit || k.dumpMsgs > 0 && n == k.dumpMsgs) {
			break
		}
		k.arena = appendHeader(k.arena, 20+len(m.Data), familyID, flags, seq)
		k.arena = append(k.arena, m.Header.Command, m.Header.Version, 0, 0)
		k.arena = append(k.arena, m.Data...)
		n++
	}
	k.push(k.arena[start:len(k.arena):len(k.arena)])
	return n
}

// ack queues the acknowledgement of req: an NLMSG_ERROR with errno, 0 for
// success, and the request's header, as with NETLINK_CAP_ACK.
func (k *fakeKernel) ack(req []byte, errno syscall.Errno) {
	start := len(k.arena)
	k.arena = appendHeader(k.arena, 36, unix.NLMSG_ERROR, unix.NLM_F_CAPPED, ne.Uint32(req[8:]))
	k.arena = ne.AppendUint32(k.arena, uint32(-int32(errno)))
	k.arena = append(k.arena, req[:16]...)
	k.push(k.arena[start:len(k.arena):len(k.arena)])
}

// done queues the NLMSG_DONE that ends the dump with sequence number seq.
func (k *fakeKernel) done(seq uint32) {
	start := len(k.arena)
	k.arena = appendHeader(k.arena, 20, unix.NLMSG_DONE, unix.NLM_F_MULTI, seq)
	k.arena = append(k.arena, 0, 0, 0, 0)
	k.push(k.arena[start:len(k.arena):len(k.arena)])
}

// push queues datagram d (not copied), or drops it if the queue is full.
func (k *fakeKernel) push(d []byte) {
	if k.capacity > 0 && len(k.queue)-k.head >= k.capacity {
		k.overrun = true
		return
	}
	k.queue = append(k.queue, d)
}

func (k *fakeKernel) recv(b []byte, mode readMode) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.read(b, mode&readNow != 0)
}

// recvBatch reads as recvmmsg does: it waits for the first datagram only,
// and an error after the first is left for the next call.
func (k *fakeKernel) recvBatch(b []byte, slot int, lens []int, mode readMode) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for n < len(lens) && (n+1)*slot <= len(b) && (n == 0 || !k.overrun && k.head < len(k.queue)) {
		got, err := k.read(b[n*slot:(n+1)*slot], mode&readNow != 0)
		if err != nil {
			return 0, err
		}
		lens[n] = got
		n++
	}
	return n, nil
}

// read is recv with k.mu held.
func (k *fakeKernel) read(b []byte, nonblock bool) (int, error) {
	for {
		switch {
		case k.overrun:
			k.overrun = false
			return 0, syscall.ENOBUFS
		case k.head < len(k.queue):
			return k.pop(b)
		case nonblock:
			return 0, syscall.EAGAIN
		case !k.blocks:
			return 0, errFakeBlock
		case k.interrupted:
			return 0, errInterrupted
		case !k.deadline.IsZero() && !time.Now().Before(k.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		k.mu.Unlock()
		time.Sleep(time.Millisecond)
		k.mu.Lock()
	}
}

// pop reads the first datagram into b; the kernel continues a stepped dump
// inside the read.
func (k *fakeKernel) pop(b []byte) (int, error) {
	k.maxRead = max(k.maxRead, len(b))
	d := k.queue[k.head]
	k.head++
	n := copy(b, d)
	if k.head == len(k.queue) {
		k.queue, k.head, k.arena = k.queue[:0], 0, k.arena[:0]
	}
	k.dumpNext()
	if len(d) > len(b) {
		return 0, errTruncated
	}
	return n, nil
}

// unread is the number of datagrams queued and not read.
func (k *fakeKernel) unread() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.queue) - k.head
}

func (k *fakeKernel) setDeadline(t time.Time) error {
	k.mu.Lock()
	k.deadline, k.interrupted = t, false
	k.mu.Unlock()
	return nil
}

func (k *fakeKernel) interrupt() {
	k.mu.Lock()
	k.interrupted = true
	k.mu.Unlock()
}

func (k *fakeKernel) bufferSizes() (int, int) {
	if k.rcv != 0 {
		return k.rcv, 212992
	}
	return 212992, 212992
}

func (k *fakeKernel) close() error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	return nil
}
