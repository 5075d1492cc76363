package ipvs

import (
	"context"
	"errors"
	"iter"
	"os"
)

// connections streams the table from ip_vs_conn_sync, or from ip_vs_conn
// when pe is set or the kernel lacks ip_vs_conn_sync.
func (c *client) connections(ctx context.Context, pe bool) iter.Seq2[Connection, error] {
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
		for cn, err := range ParseConnections(ctxReader{ctx, f}) {
			if !yield(cn, err) || err != nil {
				return
			}
		}
	}
}
