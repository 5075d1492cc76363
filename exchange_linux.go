//go:build linux

package ipvs

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/ipvs-go/ipvs/internal/uapi"
	"golang.org/x/sys/unix"
)

// kernelError is an error message from the kernel: the exchange completed
// and the socket is in sync.
type kernelError struct {
	errno syscall.Errno
	text  string
}

func (e *kernelError) Error() string { return e.errno.Error() }

// requestFlags gives each command the netlink flags its kernel handler needs.
// It is the only place flags are chosen: a doit that returns data must not
// carry NLM_F_ACK, or the ACK that follows the reply is left queued and every
// later read on the socket gets the previous request's answer; a mutation
// must carry it, or success produces no message at all.
func requestFlags(cmd uint8, dump bool) uint16 {
	switch {
	case cmd == uapi.CmdGetDest || cmd == uapi.CmdGetDaemon || (cmd == uapi.CmdGetService && dump):
		return unix.NLM_F_REQUEST | unix.NLM_F_DUMP
	case cmd == uapi.CmdGetService || cmd == uapi.CmdGetInfo || cmd == uapi.CmdGetConfig:
		return unix.NLM_F_REQUEST
	}
	return unix.NLM_F_REQUEST | unix.NLM_F_ACK
}

// begin starts a request message in s's buffer and returns its offset.
func (c *client) begin(s *sock, cmd uint8, dump bool) int {
	s.seq++
	s.fam = uint16(c.family.Load())
	return s.enc.beginMessage(s.fam, requestFlags(cmd, dump), s.seq, 0, cmd)
}

// errAcksLost reports that the kernel dropped acknowledgements because the
// receive buffer overflowed (ENOBUFS); their requests were still executed.
var errAcksLost = errors.New("acknowledgements lost to a receive buffer overrun")

// exchange sends the n messages in s's buffer, whose sequence numbers end at
// s.seq, and reads until the last one has its final answer: an ACK or error,
// the end of a dump, or the reply of a GET. dump says that the one message
// is a dump request. onData receives each data message with its request's
// index; onResult each final answer (errno 0 for success). Messages of other
// sequence numbers, left by an earlier exchange, are skipped.
//
// The kernel answers the requests of one send in order, so once the last
// is answered no other answer will come. A request can get none: the kernel
// drops answers when the receive buffer overflows (ENOBUFS: exchange then
// reads what is left and returns errAcksLost) and sends none for a request
// its handler ended with EINTR. Such requests get no onResult.
//
// Between the reads of a dump, which never wait, exchange returns the
// session context's error once it is done (see expired); the dump is then
// unfinished and the socket must be closed.
func (s *sock) exchange(n int, dump bool, onData func(i int, m message) error, onResult func(i int, errno int32, text string)) error {
	if err := s.t.send(s.enc.b); err != nil {
		return err
	}
	first := s.seq - uint32(n) + 1
	overrun := false
	lastDone := false
	result := func(i int, errno int32, text string) {
		if i == n-1 {
			lastDone = true
		}
		onResult(i, errno, text)
	}
	handle := func(m message) error {
		i := int(m.seq - first)
		if m.seq-first >= uint32(n) {
			return nil // stale
		}
		switch m.typ {
		case unix.NLMSG_ERROR:
			errno, text, err := parseError(m)
			if err != nil {
				return err
			}
			result(i, errno, text)
		case unix.NLMSG_DONE:
			var errno int32
			if len(m.data) >= 4 {
				errno = -int32(ne.Uint32(m.data))
			}
			result(i, errno, "")
		case unix.NLMSG_OVERRUN:
			return errors.New("netlink overrun")
		default:
			if m.typ < unix.NLMSG_MIN_TYPE {
				return nil // NLMSG_NOOP and reserved types
			}
			if onData != nil {
				if err := onData(i, m); err != nil {
					return err
				}
			}
			if m.flags&unix.NLM_F_MULTI == 0 {
				result(i, 0, "") // a doit's single reply; dump parts are multipart
			}
		}
		return nil
	}
	for reads := 0; !lastDone; reads++ {
		if dump && reads > 0 {
			if err := s.expired(); err != nil {
				return err
			}
		}
		var (
			got int
			err error
		)
		slot := s.readLen()
		mode := readWait
		if overrun {
			mode = readNow
		}
		switch {
		case n > 1:
			// Many answers expected, all small (ACKs): read them in
			// bulk.
			slot = ackSlot
			got, err = s.t.recvBatch(s.rbuf, slot, s.lens[:], mode)
		case dump:
			// A dump: as many datagrams per read as are queued; the
			// kernel builds the next one inside each.
			got, err = s.t.recvBatch(s.rbuf, slot, s.lens[:], mode|readDump)
		default:
			// One reply.
			s.lens[0], err = s.t.recv(s.rbuf[:slot], mode)
			got = 1
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			overrun = true
			continue
		case overrun && errors.Is(err, unix.EAGAIN):
			return errAcksLost
		case err != nil:
			return err
		}
		for j := range got {
			if err := messages(s.rbuf[j*slot:j*slot+s.lens[j]], handle); err != nil {
				return err
			}
		}
	}
	if overrun {
		return errAcksLost
	}
	return nil
}

// resultOf returns an onResult for exchange that stores the kernel's error
// for request i in *err.
func resultOf(i int, err *error) func(int, int32, string) {
	return func(k int, errno int32, text string) {
		if k == i && errno != 0 {
			*err = &kernelError{errno: syscall.Errno(errno), text: text}
		}
	}
}

// sockKindFor is the kind of socket a request needs (see dumpSlot and
// serviceSlot).
func sockKindFor(cmd uint8, dump bool) sockKind {
	switch {
	case cmd == uapi.CmdGetService && dump:
		return bigSock
	case dump:
		return pageSock
	}
	return anySock
}

// do sends one request and reads its answer: the request path of every
// method but Apply, which sends many requests at once (apply), and the
// destination dumps of VirtualServices and Reconcile, which are pipelined
// (pipelineDestDumps). encode writes the attributes; onData, if not nil,
// receives the reply messages.
//
// A request the kernel refused with ENOENT is sent again, once, if the IPVS
// family id has changed meanwhile (see refreshFamily).
func (c *client) do(ctx context.Context, op string, cmd uint8, dump bool, encode func(e *encoder), onData func(m message) error) error {
	var (
		fam     uint16
		gotData bool
	)
	run := func(s *sock) error {
		s.enc.b = s.enc.b[:0]
		off := c.begin(s, cmd, dump)
		fam = s.fam
		if encode != nil {
			encode(&s.enc)
		}
		s.enc.endMessage(off)
		var data func(int, message) error
		if onData != nil {
			data = func(_ int, m message) error {
				gotData = true
				return onData(m)
			}
		}
		var kerr error
		if err := s.exchange(1, dump, data, resultOf(0, &kerr)); err != nil {
			return err
		}
		return kerr
	}
	kind := sockKindFor(cmd, dump)
	err := c.sessionOn(ctx, kind, run)
	if isENOENT(err) && !gotData {
		switch changed, missing := c.refreshFamily(ctx, fam); {
		case missing:
			return notLoaded(op)
		case changed:
			err = c.sessionOn(ctx, kind, run)
		}
	}
	return wrap(op, cmd, err)
}

// isENOENT reports whether err is the kernel's ENOENT.
func isENOENT(err error) bool {
	var ke *kernelError
	return errors.As(err, &ke) && ke.errno == syscall.ENOENT
}

// refreshFamily is called after a request sent to family id fam got ENOENT.
// The generic netlink core answers ENOENT, without running anything, to a
// request for a family id that is not registered, which happens when the
// ip_vs module was unloaded (and then perhaps loaded again, under a new
// id); IPVS itself also answers ENOENT, with no text either, to some
// requests. So the family is looked up again: if its id has changed,
// refreshFamily stores it and reports changed, and the request can be sent
// again, as whichever the ENOENT was, the ip_vs instance it addressed is
// gone with its state; if the family is missing it reports missing; if the
// id is the same the ENOENT was IPVS's own. A failed lookup reports
// neither.
func (c *client) refreshFamily(ctx context.Context, fam uint16) (changed, missing bool) {
	if c.resolve == nil {
		return false, false
	}
	id, err := c.resolve(ctx)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, true
	case err != nil || id == fam:
		return false, false
	}
	c.family.Store(uint32(id))
	return true, false
}

// notLoaded is the error of an operation that found no IPVS family: it
// matches os.ErrNotExist and syscall.ENOENT.
func notLoaded(op string) *Error {
	return &Error{Op: op, Message: ipvsNotLoaded, Err: syscall.ENOENT}
}

// wrap turns an internal error into the package's *Error.
func wrap(op string, cmd uint8, err error) error {
	if err == nil {
		return nil
	}
	var ke *kernelError
	if errors.As(err, &ke) {
		return &Error{Op: op, Message: ke.text, Err: ke.errno, cmd: cmd}
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Err: err, cmd: cmd}
}
