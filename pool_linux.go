//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// dumpSlot is the length of every read: one page, at most 8 KiB.
//
// The kernel allocates each dump datagram as large as the longest read the
// socket has ever made (netlink_recvmsg records it; netlink_dump allocates
// that much), capped at 32 KiB and at least NLMSG_GOODSIZE, one page less
// the skb overhead, 8 KiB at most. Reads of 32 KiB get about 100 services
// per datagram, but also a 32 KiB buffer from the page allocator for every
// datagram of every dump, the one NLMSG_DONE included: a destination dump
// (one small datagram and its end) then costs the kernel about twice the
// system time (measured in BENCHMARKS.md). With page-sized reads every
// datagram comes from the small-object allocator, and reading many of them
// per recvmmsg keeps the system calls of a long dump as few as with 32 KiB.
// No IPVS message comes near NLMSG_GOODSIZE, so none is truncated; a read
// that were would fail with errTruncated, never return a partial message.
//
// Service dumps are the exception (see serviceSlot).
func dumpSlot() int { return min(os.Getpagesize(), 8<<10) }

// serviceSlot is the read length of the sockets that dump the service
// table: 32 KiB, about 100 services per datagram. The kernel resumes a dump
// by position, so every datagram boundary is a point where concurrent
// changes make a dump skip or repeat entries, and page-sized datagrams (11
// services) would make nine times as many (BENCHMARKS.md). Service dumps are few
// and long, so their 32 KiB allocations cost little; they run on sockets of
// their own, as the read length sticks to a socket.
const serviceSlot = 32 << 10

// maxIdleSockets bounds the sockets a client keeps open between calls, as
// does the bound on open sockets (see WithMaxSockets) if lower.
const maxIdleSockets = 8

// sock is one pooled socket with its buffers and sequence numbers.
type sock struct {
	t    transport
	seq  uint32
	rbuf []byte
	big  bool // the socket dumps the service table (see readLen)
	enc  encoder
	fam  uint16 // the family id of the last request begun
	idx  []int  // the changes of a batch in flight, by message
	lens [ackSlots]int
	// lastNest is the service identity nest that ends at
	// enc.b[lastNest.end] (n bytes), for serviceIdentity.
	lastNest struct {
		svc    Service
		n, end int
	}
	// The context of the session running on the socket, and its deadline
	// (see expired).
	ctx      context.Context
	deadline time.Time
}

// expired returns the session context's error, or context.DeadlineExceeded
// once its deadline has passed. Reads check the deadline only when they
// wait, and the reads of a dump never do (the kernel builds each datagram
// inside the read), so the loops that read a dump or send many chunks call
// this between system calls.
func (s *sock) expired() error {
	if s.ctx == nil {
		return nil
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if !s.deadline.IsZero() && !time.Now().Before(s.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// The receive buffer holds several datagrams read by one system call: dump
// datagrams, one dumpSlot each, or ACKs, each in a slot large enough for an
// error with its extended acknowledgement text.
const (
	recvBuffer = 64 << 10
	ackSlot    = 1024
	ackSlots   = recvBuffer / ackSlot
)

// client is the Linux implementation behind Client. Requests run on pooled
// sockets: a call takes one, sets the context's deadline on it and returns it
// afterwards, unless the call failed in a way that may leave replies queued
// (a cancelled call, a transport error), in which case the socket is closed
// and a later call dials a new one. Concurrent calls use different sockets,
// so one call's deadline never cuts another short. At most max sockets are
// open at once; a call finding them all in use waits for one.
type client struct {
	family atomic.Uint32 // the IPVS family id, a uint16
	// resolve looks the family id up again (nil in tests): see
	// refreshFamily.
	resolve func(ctx context.Context) (uint16, error)
	dial    func() (transport, error)
	// nsFile is the bound network namespace, owned by the client, that
	// dial enters. It is closed by close or, if dials are under way then,
	// by the last of them, so that no dial uses a closed (or reused) fd.
	nsFile *os.File
	max    int // the bound on open sockets, at least 1
	// proc opens the namespace's /proc files (procfs_linux.go); tests set
	// their own.
	proc procOpener
	// runNS runs a function in the namespace (netnsrun_linux.go).
	runNS func(fn func() error) error

	mu      sync.Mutex
	idle    []*sock
	busy    int           // sockets taken by calls, and dials under way
	dialing int           // dials under way
	waiting int           // calls waiting for a socket
	freed   chan struct{} // closed (and replaced) to wake the waiting calls
	closed  bool
}

// newClientWith is the constructor shared with tests.
func newClientWith(family uint16, dial func() (transport, error)) *client {
	c := &client{dial: dial, max: defaultMaxSockets, freed: make(chan struct{})}
	c.family.Store(uint32(family))
	return c
}

func newSock(t transport, big bool) *sock {
	s := &sock{t: t, rbuf: make([]byte, recvBuffer), big: big}
	// Touch every page of the receive buffer, so that the kernel's copy
	// into it does not fault them in (see rawTransport.read).
	for i := 0; i < len(s.rbuf); i += os.Getpagesize() {
		s.rbuf[i] = 0
	}
	return s
}

// readLen is the length of the socket's dump reads: serviceSlot for a big
// socket, else dumpSlot.
func (s *sock) readLen() int {
	if s.big {
		return serviceSlot
	}
	return dumpSlot()
}

// close marks the client closed, closes its idle sockets and wakes the calls
// waiting for one: they, and later calls, fail with ErrClosed. A call in
// flight completes; its socket is closed afterwards, not pooled (see put).
func (c *client) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, s := range c.idle {
		_ = s.t.close()
	}
	c.idle = nil
	c.wake()
	if c.dialing == 0 {
		c.closeNetNS()
	}
	return nil
}

// closeNetNS closes the namespace file; c.mu is held, c is closed and no
// dial is under way.
func (c *client) closeNetNS() {
	if c.nsFile != nil {
		_ = c.nsFile.Close()
		c.nsFile = nil
	}
}

// wake tells the calls waiting for a socket to look again; c.mu is held.
func (c *client) wake() {
	if c.waiting > 0 {
		close(c.freed)
		c.freed = make(chan struct{})
	}
}

// sockKind is what a call needs of a socket's read length (see dumpSlot and
// serviceSlot).
type sockKind int

const (
	anySock  sockKind = iota // replies other than dumps, ACKs: any socket
	pageSock                 // dumps other than the service table
	bigSock                  // the service table dump
)

// inNetNS runs fn, which dials in the client's namespace, with the namespace
// file held open: a Close meanwhile leaves closing it to the last dial.
func (c *client) inNetNS(fn func() error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.dialing++
	c.mu.Unlock()
	err := fn()
	c.mu.Lock()
	c.dialing--
	if c.closed && c.dialing == 0 {
		c.closeNetNS()
	}
	c.mu.Unlock()
	return err
}

// get takes an idle socket that suits kind or dials one. A page socket
// becomes a big one by reading 32 KiB, never back (the kernel remembers the
// longest read). With max sockets open and none idle that suits, it closes
// an idle one to dial in its place, or waits until a call returns its
// socket, ctx is done or the client is closed. A call holds one socket at a
// time: holding one while getting another could wait forever.
func (c *client) get(ctx context.Context, kind sockKind) (*sock, error) {
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if i := c.pick(kind); i >= 0 {
			s := c.idle[i]
			c.idle = append(c.idle[:i], c.idle[i+1:]...)
			c.busy++
			c.mu.Unlock()
			if kind == bigSock {
				s.big = true
			}
			return s, nil
		}
		if c.busy+len(c.idle) < c.max {
			break
		}
		if len(c.idle) > 0 {
			// Only big sockets are idle and a page socket is wanted.
			_ = c.idle[0].t.close()
			c.idle = c.idle[1:]
			break
		}
		freed := c.freed
		c.waiting++
		c.mu.Unlock()
		var done bool
		select {
		case <-freed:
		case <-ctx.Done():
			done = true
		}
		c.mu.Lock()
		c.waiting--
		if done {
			c.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	c.busy++
	c.mu.Unlock()
	var t transport
	err := c.inNetNS(func() (err error) {
		t, err = c.dial()
		return err
	})
	c.mu.Lock()
	if err == nil && c.closed {
		_ = t.close()
		err = ErrClosed
	}
	if err != nil {
		c.busy--
		c.wake()
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Unlock()
	return newSock(t, kind == bigSock), nil
}

// pick returns the index of the idle socket get takes for kind, or -1: the
// newest that suits, else for a big socket the newest page one.
func (c *client) pick(kind sockKind) int {
	for i := len(c.idle) - 1; i >= 0; i-- {
		if kind == anySock || c.idle[i].big == (kind == bigSock) {
			return i
		}
	}
	if kind == bigSock {
		return len(c.idle) - 1
	}
	return -1
}

// put returns a socket in sync with the kernel to the pool, or closes it if
// the client is closed or has enough idle sockets.
func (c *client) put(s *sock) {
	c.mu.Lock()
	c.busy--
	c.wake()
	if !c.closed && len(c.idle) < min(maxIdleSockets, c.max) {
		c.idle = append(c.idle, s)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = s.t.close()
}

// discard closes a socket that may be out of sync with the kernel.
func (c *client) discard(s *sock) {
	_ = s.t.close()
	c.mu.Lock()
	c.busy--
	c.wake()
	c.mu.Unlock()
}

// session runs fn on a socket bounded by ctx: the context's deadline is the
// socket's, and cancelling ctx interrupts a blocked read or write. If fn
// fails with anything but a kernel error the socket may hold unread replies,
// so it is closed instead of pooled.
func (c *client) session(ctx context.Context, fn func(s *sock) error) error {
	return c.sessionOn(ctx, anySock, fn)
}

// sessionOn is session on a socket of the kind asked (see get).
func (c *client) sessionOn(ctx context.Context, kind sockKind, fn func(s *sock) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := c.get(ctx, kind)
	if err != nil {
		return err
	}
	deadline, hasDeadline := ctx.Deadline()
	if err := s.t.setDeadline(deadline); err != nil {
		c.discard(s)
		return err
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.t.interrupt()
		close(interrupted)
	})
	s.ctx, s.deadline = ctx, deadline
	err = fn(s)
	s.ctx = nil
	if !stop() {
		// Wait for the interrupt, so it cannot touch the socket once reused.
		<-interrupted
	}
	var ke *kernelError
	if err == nil || errors.As(err, &ke) {
		c.put(s)
		return err
	}
	c.discard(s)
	ctxErr := ctx.Err()
	if ctxErr == nil && hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) {
		ctxErr = context.DeadlineExceeded
	}
	switch {
	case ctxErr == nil:
		return err
	case errors.Is(err, errInterrupted) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// The context ended the call.
		return ctxErr
	}
	// The call failed on its own (a malformed reply, a truncated read,
	// lost ACKs) as the context ended: keep both.
	return fmt.Errorf("%w: %w", ctxErr, err)
}
