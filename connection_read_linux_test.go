package ipvs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// connReadVariants are the ways connectionsWith can read: with a
// goroutine of its own (the default), there with every read but the first
// through the scheduler (as after a slow one), or inline.
var connReadVariants = []struct {
	pipe   bool
	rawMax time.Duration
}{{true, connRawReadMax}, {true, -1}, {false, 0}}

// genConnFile writes n generated entries to a file and returns a Client
// whose net/ip_vs_conn_sync it is.
func genConnFile(t *testing.T, n int) *Client {
	t.Helper()
	var buf bytes.Buffer
	genConnections(&buf, true, n)
	name := filepath.Join(t.TempDir(), "ip_vs_conn_sync")
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := procClient(t, map[string]string{"net/ip_vs_conn_sync": name})
	return c
}

func TestConnectionsReadVariants(t *testing.T) {
	const n = 20000
	c := genConnFile(t, n)
	var want []Connection
	for cn, err := range c.Connections(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, cn)
	}
	if len(want) != n {
		t.Fatalf("Connections: %d entries, want %d", len(want), n)
	}
	for _, o := range connReadVariants {
		t.Run(fmt.Sprintf("pipe=%v,rawMax=%v", o.pipe, o.rawMax), func(t *testing.T) {
			var got []Connection
			for cn, err := range c.c.connectionsWith(context.Background(), false, o.pipe, o.rawMax) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, cn)
			}
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("entry %d: %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// Stopping early leaves no goroutine behind, and a cancelled context ends
// the read.
func TestConnectionsReadStop(t *testing.T) {
	c := genConnFile(t, 20000)
	for _, o := range connReadVariants {
		t.Run(fmt.Sprintf("pipe=%v,rawMax=%v", o.pipe, o.rawMax), func(t *testing.T) {
			before := runtime.NumGoroutine()
			for range 3 {
				m := 0
				for _, err := range c.c.connectionsWith(context.Background(), false, o.pipe, o.rawMax) {
					if err != nil {
						t.Fatal(err)
					}
					if m++; m == 10 {
						break
					}
				}
			}
			// A goroutine that has closed its done channel may not have
			// ended yet.
			for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if g := runtime.NumGoroutine(); g > before {
				t.Errorf("%d goroutines after stopping early, %d before", g, before)
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m, after := 0, 0
			var last error
			for _, err := range c.c.connectionsWith(ctx, false, o.pipe, o.rawMax) {
				if m++; m == 10 {
					cancel()
				}
				if m > 10 {
					after++
				}
				last = err
			}
			var e *Error
			if !errors.Is(last, context.Canceled) || !errors.As(last, &e) || e.Op != connOp {
				t.Errorf("last result %v, want an *Error matching context.Canceled", last)
			}
			// What was read before the cancel: the buffers in flight (lines
			// of at least 60 bytes).
			if max := (1 + connPipeBufs) * connReadSize / 60; after > max {
				t.Errorf("%d entries after the cancel, want at most %d", after, max)
			}
		})
	}
}

// Reading allocates the same whatever the number of entries.
func TestConnectionsReadAllocs(t *testing.T) {
	small, large := genConnFile(t, 100), genConnFile(t, 20000)
	for _, o := range connReadVariants {
		allocs := func(c *Client, n int) float64 {
			return testing.AllocsPerRun(5, func() {
				m := 0
				for _, err := range c.c.connectionsWith(context.Background(), false, o.pipe, o.rawMax) {
					if err != nil {
						t.Fatal(err)
					}
					m++
				}
				if m != n {
					t.Fatalf("%d entries, want %d", m, n)
				}
			})
		}
		a, b := allocs(small, 100), allocs(large, 20000)
		t.Logf("pipe=%v: %v allocations for 100 entries, %v for 20000", o, a, b)
		if b > a {
			t.Errorf("pipe=%v: %v allocations for 20000 entries, %v for 100: allocation per read or entry", o, b, a)
		}
	}
}
