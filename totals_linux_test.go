//go:build linux

package ipvs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeTotals returns a client whose /proc/thread-self/net holds files.
func fakeTotals(t *testing.T, files map[string]string) *Client {
	t.Helper()
	c, fs := fakeProc(t, nil)
	dir := filepath.Join(fs.root, "net")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestTotals(t *testing.T) {
	ctx := context.Background()
	stats, perCPU := readTestdata(t, "ip_vs_stats-6.12.txt"), readTestdata(t, "ip_vs_stats_percpu-6.12.txt")
	c := fakeTotals(t, map[string]string{"ip_vs_stats": stats, "ip_vs_stats_percpu": perCPU})
	got, err := c.Totals(ctx)
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	if d := cmp.Diff(Totals{Stats: totals612, PerCPU: perCPU612}, got); d != "" {
		t.Errorf("Totals (-want +got):\n%s", d)
	}

	// Without the per-CPU file: no rows.
	c = fakeTotals(t, map[string]string{"ip_vs_stats": stats})
	if got, err := c.Totals(ctx); err != nil || got.Stats != totals612 || got.PerCPU != nil {
		t.Errorf("Totals without ip_vs_stats_percpu = %+v, %v", got, err)
	}

	// Without ip_vs_stats: IPVS is not loaded.
	c = fakeTotals(t, nil)
	_, err = c.Totals(ctx)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "IPVS is not loaded") {
		t.Errorf("Totals without ip_vs_stats = %v", err)
	}

	// A file not in the kernel's format.
	for name, files := range map[string]map[string]string{
		"ip_vs_stats":        {"ip_vs_stats": "garbage\n", "ip_vs_stats_percpu": perCPU},
		"ip_vs_stats_percpu": {"ip_vs_stats": stats, "ip_vs_stats_percpu": stats},
	} {
		_, err := fakeTotals(t, files).Totals(ctx)
		if !errors.As(err, &e) || !errors.Is(err, errTotalsFormat) || !strings.Contains(err.Error(), name) {
			t.Errorf("Totals with a bad %s = %v", name, err)
		}
	}

	// Cancelled, closed.
	c = fakeTotals(t, map[string]string{"ip_vs_stats": stats})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Totals(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Totals with a cancelled context = %v", err)
	}
	_ = c.Close()
	if _, err := c.Totals(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Totals on a closed client = %v, want ErrClosed", err)
	}
}
