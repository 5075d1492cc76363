package ipvs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

// procClient is a Client whose /proc files are those of dir, a missing one
// giving ENOENT; it records the paths opened.
func procClient(t *testing.T, files map[string]string) (*Client, *[]string) {
	t.Helper()
	var opened []string
	c := newClientWith(familyID, nil)
	c.proc = func(path string, flag int) (*os.File, error) {
		opened = append(opened, path)
		if flag != os.O_RDONLY {
			t.Errorf("opening %s with flags %#x", path, flag)
		}
		name, ok := files[path]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: "/proc/thread-self/" + path, Err: syscall.ENOENT}
		}
		return os.Open(name)
	}
	return &Client{c: c}, &opened
}

func TestClientConnectionsFiles(t *testing.T) {
	both := map[string]string{
		"net/ip_vs_conn":      "testdata/connections/vm-ip_vs_conn",
		"net/ip_vs_conn_sync": "testdata/connections/vm-ip_vs_conn_sync",
	}
	old := map[string]string{"net/ip_vs_conn": "testdata/connections/vm-ip_vs_conn"}
	for _, tc := range []struct {
		name   string
		files  map[string]string
		pe     bool
		opened string
		origin ConnectionOrigin
	}{
		{"sync", both, false, "net/ip_vs_conn_sync", OriginSync},
		{"with PE", both, true, "net/ip_vs_conn", OriginUnknown},
		{"no ip_vs_conn_sync", old, false, "net/ip_vs_conn_sync net/ip_vs_conn", OriginUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, opened := procClient(t, tc.files)
			seq := c.Connections
			if tc.pe {
				seq = c.ConnectionsWithPE
			}
			n, v6, tpl := 0, 0, 0
			for cn, err := range seq(context.Background()) {
				if err != nil {
					t.Fatal(err)
				}
				n++
				if cn.Origin != tc.origin {
					t.Errorf("%+v: origin %v, want %v", cn, cn.Origin, tc.origin)
				}
				if cn.Client.Addr().Is6() {
					v6++
				}
				if cn.Template {
					tpl++
				}
			}
			if n != 12 || v6 != 3 || tpl != 1 {
				t.Errorf("%d entries, %d IPv6, %d templates; want 12, 3, 1", n, v6, tpl)
			}
			if got := strings.Join(*opened, " "); got != tc.opened {
				t.Errorf("opened %q, want %q", got, tc.opened)
			}
		})
	}
	t.Run("no IPVS", func(t *testing.T) {
		c, _ := procClient(t, nil)
		_, err := c.ConnectionCounts(context.Background())
		var e *Error
		if !errors.As(err, &e) || e.Op != connOp || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ConnectionCounts without the files: %v, want an *Error matching os.ErrNotExist", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		c, opened := procClient(t, both)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n := 0
		for _, err := range c.Connections(ctx) {
			n++
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
		}
		if n != 1 || len(*opened) != 0 {
			t.Errorf("%d results, %d files opened; want 1 error and no file", n, len(*opened))
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, _ := procClient(t, both)
		_ = c.Close()
		for _, err := range c.Connections(context.Background()) {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Connections of a closed client: %v, want ErrClosed", err)
			}
		}
	})
}
