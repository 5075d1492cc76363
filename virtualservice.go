package ipvs

import "context"

// A VirtualService is a service with its destinations: the desired state
// given to Reconcile.
type VirtualService struct {
	Service      Service
	Destinations []Destination
}

// VirtualServiceStats is a service with its destinations as read from the
// kernel, with their counters.
type VirtualServiceStats struct {
	ServiceStats
	Destinations []DestinationStats
}

// VirtualServices reads every service with its destinations in one call: a
// service dump, then a destination dump per service, pipelined (two system
// calls per service). Services repeated by a dump that raced with changes
// are reported once; a service such a dump skipped cannot be detected.
func (c *Client) VirtualServices(ctx context.Context) ([]VirtualServiceStats, error) {
	return c.c.virtualServices(ctx)
}
