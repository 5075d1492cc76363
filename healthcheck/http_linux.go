//go:build linux

package healthcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// plainStarts: startPlain starts plain GETs.
const plainStarts = true

// startPlain starts a plain GET (see HTTP.start); ok is false where it
// cannot (never on Linux). With sp, the socket may be a spare one, and
// goes back to sp if the server closed the connection after its answer
// (the connection is then reset, see spares).
func (h HTTP) startPlain(t Target, inNS bool, sp *spares) (p started, ok bool, err error) {
	fd, connected, err := t.d.startConnect("tcp", t.Addr, inNS, sp, true)
	if err != nil {
		return started{}, true, err
	}
	g := inlines.Get().(*httpInline)
	g.h, g.t, g.fd = h, t, fd
	g.opening, g.conn = !connected, connecting{t.d, t.Addr, fd, sp}
	g.err, g.eof, g.full = nil, false, false
	g.resume.req = g.h.appendRequest(g.reqBuf[:0], t)
	g.resume.pre = g.preBuf[:0]
	if connected {
		g.write()
	}
	return started{p: g}, true, nil
}

// httpInline is a plain HTTP check on the Monitor's goroutine, until it
// goes to a goroutine of its own (wait). Its request and the first part of
// its answer are in buffers of its own, and it goes back to inlines when it
// ends there: a check that ends on the Monitor's goroutine costs no
// allocation.
type httpInline struct {
	h       HTTP
	t       Target
	fd      int
	opening bool // the connection is opening: conn
	conn    connecting
	resume  httpResume
	err     error // a write or read failed: the answer is what was read, then err
	eof     bool
	full    bool // read as much as try reads: the rest is wait's
	rd      bytes.Reader
	cut     cutReader
	reqBuf  [192]byte
	preBuf  [2048]byte
}

// inlines holds the httpInlines of the checks that ended.
var inlines = sync.Pool{New: func() any { return new(httpInline) }}

// release puts g back in inlines: g is not used after.
func (g *httpInline) release() {
	g.h, g.t, g.conn, g.err = HTTP{}, Target{}, connecting{}, nil
	g.resume = httpResume{}
	g.rd.Reset(nil)
	inlines.Put(g)
}

// write writes what it can of the request without waiting.
func (g *httpInline) write() {
	for len(g.resume.req) > 0 {
		b := g.resume.req
		n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(g.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			if g.resume.req = b[n:]; len(g.resume.req) == 0 {
				rawLateAck(g.fd) // the handshake's ACK left with the request
			}
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			g.err = &os.PathError{Op: "write", Path: "socket", Err: errno}
		}
		return
	}
}

// try reads what has come without waiting: done once the answer read
// suffices to judge it (as exchange judges an answer: the status line
// for a check of the status alone, the body by its length or its last
// chunk), the server has closed (it answers "Connection: close"), or a
// read failed; then the socket is closed, or goes back to the spares.
func (g *httpInline) try() (done bool, weight int, err error) {
	if g.opening {
		done, err := g.conn.opened()
		if !done {
			return false, KeepWeight, nil
		}
		g.opening = false
		if err != nil {
			g.fd = -1 // closed
			g.release()
			return true, KeepWeight, err
		}
	}
	if g.err == nil && len(g.resume.req) > 0 {
		g.write()
	}
	limit := maxHead + defaultMaxBody
	if g.h.MaxBody > 0 {
		limit = maxHead + int(g.h.MaxBody)
	}
	read := false // some of the answer came in this try
reading:
	for g.err == nil && !g.eof && len(g.resume.req) == 0 {
		if len(g.resume.pre) == cap(g.resume.pre) {
			if len(g.resume.pre) > limit {
				g.full = true
				break // too long for here: the goroutine reads on
			}
			g.resume.pre = append(g.resume.pre, make([]byte, max(2048, len(g.resume.pre)))...)[:len(g.resume.pre)]
		}
		b := g.resume.pre[len(g.resume.pre):cap(g.resume.pre)]
		n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(g.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			break reading
		case errno != 0:
			g.err = &os.PathError{Op: "read", Path: "socket", Err: errno}
		case n == 0:
			g.eof = true
		default:
			g.resume.pre = g.resume.pre[:len(g.resume.pre)+int(n)]
			read = true
		}
	}
	if g.err == nil && !g.eof {
		// The server has not closed yet, but the answer may be whole
		// already: judged as the goroutine's exchange judges it, it
		// needs no more than what came.
		if !read {
			return false, KeepWeight, nil
		}
		if err = g.judge(errNeedMore); errors.Is(err, errNeedMore) {
			return false, KeepWeight, nil
		}
	} else {
		err = g.judge(g.err)
	}
	if g.err == nil && g.conn.spare() {
		_ = g.conn.sp.put(g.fd, !g.t.Addr.Addr().Unmap().Is4(), g.t.d.mark)
	} else {
		_ = rawClose(g.fd)
	}
	g.fd = -1
	g.release()
	return true, KeepWeight, err
}

// errNeedMore ends what a try has read of an answer the server has not
// closed yet: the answer is not whole if judging it meets this error.
var errNeedMore = errors.New("the answer goes on")

// judge judges the answer read so far, whose end is end: io.EOF if nil
// (the server closed), else the error that ended it.
func (g *httpInline) judge(end error) error {
	if end == nil {
		end = io.EOF
	}
	g.rd.Reset(g.resume.pre)
	g.cut = cutReader{r: &g.rd, end: end}
	br := readers.Get().(*bufio.Reader)
	br.Reset(&g.cut)
	err := g.h.response(br)
	br.Reset(nil)
	readers.Put(br)
	g.cut = cutReader{}
	return err
}

// cutReader reads r, then fails with end.
type cutReader struct {
	r   *bytes.Reader
	end error
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		err = c.end
	}
	return n, err
}

// poll is the socket to wait on for try to go on, until writable while
// the connection opens, or -1 where only wait can go on (the request is not
// all written, or try has read its most).
func (g *httpInline) poll() (int, bool) {
	if g.opening {
		return g.fd, true
	}
	if g.fd < 0 || g.err != nil || g.full || len(g.resume.req) > 0 {
		return -1, false
	}
	return g.fd, false
}

// expire ends the check at its timeout: it closes the socket.
func (g *httpInline) expire() error {
	if g.opening {
		g.fd = -1
		err := g.conn.expire()
		g.release()
		return err
	}
	if g.fd >= 0 {
		_ = rawClose(g.fd)
		g.fd = -1
	}
	err := fmt.Errorf("%w (no complete answer: %d bytes read)", context.DeadlineExceeded, len(g.resume.pre))
	g.release()
	return err
}

// wait goes on from where try left off, on a goroutine, until ctx is done.
func (g *httpInline) wait(ctx context.Context) (int, error) {
	var f *os.File
	if g.opening {
		var err error
		if f, err = g.conn.finish(ctx); err != nil {
			return KeepWeight, err
		}
	} else {
		f = os.NewFile(uintptr(g.fd), "socket")
	}
	g.fd = -1
	return KeepWeight, g.h.over(ctx, g.t, newSockConn(f, "tcp", g.t.Addr), &g.resume)
}
