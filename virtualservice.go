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

// VirtualService returns v's configuration, without the counters: the
// service and its destinations as Reconcile takes them.
func (v VirtualServiceStats) VirtualService() VirtualService {
	out := VirtualService{Service: v.Service}
	if len(v.Destinations) > 0 {
		out.Destinations = make([]Destination, len(v.Destinations))
		for i, d := range v.Destinations {
			out.Destinations[i] = d.Destination
		}
	}
	return out
}

// Desired turns a table read by VirtualServices into the desired state
// Reconcile takes, each entry as VirtualService returns it. Given back to
// Reconcile unchanged it changes nothing; a controller edits it first.
// Each service's destinations may grow by append without touching another's.
func Desired(table []VirtualServiceStats) []VirtualService {
	n := 0
	for _, v := range table {
		n += len(v.Destinations)
	}
	dests := make([]Destination, 0, n) // one allocation for all
	out := make([]VirtualService, len(table))
	for i, v := range table {
		out[i].Service = v.Service
		if len(v.Destinations) == 0 {
			continue
		}
		start := len(dests)
		for _, d := range v.Destinations {
			dests = append(dests, d.Destination)
		}
		out[i].Destinations = dests[start:len(dests):len(dests)]
	}
	return out
}

// VirtualServices reads every service with its destinations in one call: a
// service dump, then a destination dump per service, pipelined (two system
// calls per service). A service dump that repeated a service (it raced
// with changes, or with a rehash of the table) is made again, as by
// Services; a destination dump is not (a service's destinations are a list
// the kernel never rehashes), so a destination added or deleted during the
// read may be missed.
func (c *Client) VirtualServices(ctx context.Context) ([]VirtualServiceStats, error) {
	return c.c.virtualServices(ctx)
}
