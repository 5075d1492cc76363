//go:build !linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
)

// errUnsupported is returned by every Client method on platforms without
// IPVS.
var errUnsupported = fmt.Errorf("ipvs: IPVS is a Linux kernel facility, not available on %s/%s: %w",
	runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)

// client is the stub behind Client outside Linux.
type client struct{}

func newClient(options) (*client, error) { return nil, errUnsupported }

func (*client) close() error                                     { return errUnsupported }
func (*client) info(context.Context) (Info, error)               { return Info{}, errUnsupported }
func (*client) timeouts(context.Context) (Timeouts, error)       { return Timeouts{}, errUnsupported }
func (*client) setTimeouts(context.Context, Timeouts) error      { return errUnsupported }
func (*client) zero(context.Context, *Service) error             { return errUnsupported }
func (*client) flush(context.Context) error                      { return errUnsupported }
func (*client) services(context.Context) ([]ServiceStats, error) { return nil, errUnsupported }
func (*client) daemons(context.Context) ([]SyncDaemon, error)    { return nil, errUnsupported }
func (*client) startDaemon(context.Context, SyncDaemon) error    { return errUnsupported }
func (*client) stopDaemon(context.Context, DaemonState) error    { return errUnsupported }

func (*client) setService(context.Context, string, uint8, Service, ServiceFlags, ServiceFlags) error {
	return errUnsupported
}

func (*client) deleteService(context.Context, Service) error { return errUnsupported }

func (*client) getService(context.Context, string, Service) (ServiceStats, error) {
	return ServiceStats{}, errUnsupported
}

func (*client) setDestination(context.Context, string, uint8, Service, Destination) error {
	return errUnsupported
}

func (*client) deleteDestination(context.Context, Service, Destination) error { return errUnsupported }

func (*client) destinations(context.Context, Service) ([]DestinationStats, error) {
	return nil, errUnsupported
}

func (*client) apply(context.Context, []Change, []error) error { return errUnsupported }

func (*client) virtualServices(context.Context) ([]VirtualServiceStats, error) {
	return nil, errUnsupported
}

func (*client) reconcileChanges(context.Context, desiredTable, ReconcileOptions) ([]Change, error) {
	return nil, errUnsupported
}

func (*client) connections(context.Context, bool) iter.Seq2[Connection, error] {
	return func(yield func(Connection, error) bool) { yield(Connection{}, errUnsupported) }
}
