package ipvs

import (
	"context"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// connPipeBufs is the number of buffers of connReadSize bytes in flight
// between the goroutine that reads a /proc file and the decoder: one being
// filled, one ready, one being decoded.
const connPipeBufs = 3

// connRawReadMax is the longest a raw read(2) of the connection table may
// take before the next ones go through the scheduler.
const connRawReadMax = time.Millisecond

// connPipe reads a /proc file on a goroutine of its own into a few buffers
// of fixed size, so that the kernel formats the next pages (system time)
// while the decoder decodes the previous ones on another CPU. It is the
// io.Reader of the decoder. Reading the kernel's connection table is
// mostly the kernel's work, so the decoding can hide behind it
// (BENCHMARKS.md).
type connPipe struct {
	full chan connChunk // buffers filled, in order
	free chan []byte    // buffers to fill
	stop chan struct{}  // closed: the decoder stopped
	done chan struct{}  // closed when fill returns
	cur  []byte         // what is left of the chunk being decoded
	buf  []byte         // the buffer of cur, to give back
	err  error          // the error after cur
}

type connChunk struct {
	b   []byte
	err error
}

// startConnPipe starts reading f, checking ctx before each read, a read
// after one that took more than rawMax through the scheduler (fill). The
// caller must call close before it closes f.
func startConnPipe(ctx context.Context, f *os.File, rawMax time.Duration) *connPipe {
	p := &connPipe{
		full: make(chan connChunk, connPipeBufs),
		free: make(chan []byte, connPipeBufs),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	mem := make([]byte, connPipeBufs*connReadSize)
	for i := range connPipeBufs {
		p.free <- mem[i*connReadSize : (i+1)*connReadSize : (i+1)*connReadSize]
	}
	go p.fill(ctx, f, rawMax)
	return p
}

// close stops the reading goroutine and waits for it to return, which
// takes at most the read(2) under way.
func (p *connPipe) close() {
	close(p.stop)
	<-p.done
}

// fill reads f into the free buffers until the end, an error or stop.
// A read of a /proc file returns at most a page: it reads until a buffer
// has no room for another. The reads are raw system calls, which the Go
// scheduler does not see: a blocking read(2) costs a P handoff and keeps
// sysmon waking every 20 µs, which in a slow guest cost as much system
// time again as the reads (BENCHMARKS.md). A raw call keeps its P, and a
// stop of the world waits for it: a read that took more than
// rawMax makes the next one an ordinary system call (the kernels
// before 7.x walk their whole connection table from the start on each
// read, which grows long in a large table).
func (p *connPipe) fill(ctx context.Context, f *os.File, rawMax time.Duration) {
	defer close(p.done)
	rc, err := f.SyscallConn()
	if err != nil {
		select {
		case p.full <- connChunk{nil, err}:
		case <-p.stop:
		}
		return
	}
	page := os.Getpagesize()
	slow := false
	cerr := rc.Control(func(fd uintptr) {
		for {
			var b []byte
			select {
			case b = <-p.free:
			case <-p.stop:
				return
			}
			n := 0
			var err error
			for {
				if err = ctx.Err(); err != nil {
					break
				}
				var m uintptr
				var e unix.Errno
				t0 := time.Now()
				if slow {
					m, _, e = unix.Syscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
				} else {
					m, _, e = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
				}
				slow = time.Since(t0) > rawMax
				if e != 0 {
					if e == unix.EINTR {
						continue
					}
					err = &os.PathError{Op: "read", Path: f.Name(), Err: e}
					break
				}
				if m == 0 {
					err = io.EOF
					break
				}
				n += int(m)
				if len(b)-n < page {
					break
				}
			}
			select {
			case p.full <- connChunk{b[:n], err}:
			case <-p.stop:
				return
			}
			if err != nil {
				return
			}
		}
	})
	if cerr != nil {
		select {
		case p.full <- connChunk{nil, cerr}:
		case <-p.stop:
		}
	}
}

func (p *connPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.buf != nil {
			p.free <- p.buf[:cap(p.buf)]
			p.buf = nil
		}
		c := <-p.full
		p.cur, p.buf, p.err = c.b, c.b, c.err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

var _ io.Reader = (*connPipe)(nil)
