package ipvs

import (
	"context"
	"iter"
)

// ConnectionsInline is Connections reading and decoding in turn on the
// caller's goroutine, as before the read had a goroutine of its own: for
// BenchmarkConnectionTable.
func ConnectionsInline(c *Client, ctx context.Context) iter.Seq2[Connection, error] {
	return c.c.connectionsWith(ctx, false, false, 0)
}
