package ipvs

import (
	"context"
	"io"
	"os"
)

// connPipeBufs is the number of buffers of connReadSize bytes in flight
// between the goroutine that reads a /proc file and the decoder: one being
// filled, one ready, one being decoded.
const connPipeBufs = 3

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

// startConnPipe starts reading f, checking ctx before each read. The
// caller must call close before it closes f.
func startConnPipe(ctx context.Context, f *os.File) *connPipe {
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
	go p.fill(ctx, f)
	return p
}

// close stops the reading goroutine and waits for it to return, which
// takes at most the read(2) under way.
func (p *connPipe) close() {
	close(p.stop)
	<-p.done
}

func (p *connPipe) fill(ctx context.Context, f *os.File) {
	defer close(p.done)
	page := os.Getpagesize()
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.stop:
			return
		}
		// A read of a /proc file returns at most a page: read until the
		// buffer has no room for another.
		n := 0
		var err error
		for {
			if err = ctx.Err(); err != nil {
				break
			}
			var m int
			m, err = f.Read(b[n:])
			n += m
			if err != nil || len(b)-n < page {
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
