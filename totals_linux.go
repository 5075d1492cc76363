//go:build linux

package ipvs

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"
)

func (c *client) totals(ctx context.Context) (Totals, error) {
	const op = "read totals"
	if err := ctx.Err(); err != nil {
		return Totals{}, &Error{Op: op, Err: err}
	}
	var t Totals
	err := c.readTotalsFile("net/ip_vs_stats", func(r io.Reader) (err error) {
		t.Stats, err = parseTotals(r)
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return Totals{}, &Error{Op: op, Message: "IPVS is not loaded: the namespace has no /proc/net/ip_vs_stats (the ip_vs module was unloaded); load it again (modprobe ip_vs)", Err: syscall.ENOENT}
	}
	if err != nil {
		return Totals{}, procOpError(op, "", "/proc/net/ip_vs_stats", err)
	}
	if err := ctx.Err(); err != nil {
		return Totals{}, &Error{Op: op, Err: err}
	}
	err = c.readTotalsFile("net/ip_vs_stats_percpu", func(r io.Reader) (err error) {
		t.PerCPU, _, err = parseTotalsPerCPU(r)
		return err
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Totals{}, procOpError(op, "", "/proc/net/ip_vs_stats_percpu", err)
	}
	return t, nil
}

// readTotalsFile opens a /proc file in the client's namespace and parses it.
func (c *client) readTotalsFile(path string, parse func(io.Reader) error) error {
	f, err := c.openProc(path, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	return parse(f)
}
