package ipvs

import (
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"time"
)

// connections streams the table from ip_vs_conn_sync, or from ip_vs_conn
// when pe is set or the kernel lacks ip_vs_conn_sync.
func (c *client) connections(ctx context.Context, pe bool) iter.Seq2[Connection, error] {
	return c.connectionsWith(ctx, pe, true, connRawReadMax)
}

// connectionsWith is connections, decoding what a goroutine of its own
// reads (pipe, connPipe, with raw reads while they take at most rawMax)
// or reading and decoding in turn.
func (c *client) connectionsWith(ctx context.Context, pe, pipe bool, rawMax time.Duration) iter.Seq2[Connection, error] {
	return func(yield func(Connection, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(Connection{}, &Error{Op: connOp, Err: err})
			return
		}
		name := "net/ip_vs_conn_sync"
		if pe {
			name = "net/ip_vs_conn"
		}
		f, err := c.openProc(name, os.O_RDONLY)
		if !pe && errors.Is(err, os.ErrNotExist) {
			name = "net/ip_vs_conn"
			f, err = c.openProc(name, os.O_RDONLY)
		}
		if err != nil {
			yield(Connection{}, &Error{Op: connOp, Err: err})
			return
		}
		defer f.Close()
		var r io.Reader = ctxReader{ctx, f}
		if pipe {
			p := startConnPipe(ctx, f, rawMax)
			defer p.close()
			r = p
		}
		for cn, err := range ParseConnections(r) {
			if !yield(cn, err) || err != nil {
				return
			}
		}
	}
}
