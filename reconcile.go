package ipvs

import "net/netip"

// desiredService is a validated, normalized entry of Reconcile's input.
type desiredService struct {
	svc   Service
	dests []Destination
}

// prepareDesired validates Reconcile's input and normalizes it to the form
// the kernel reports, so that equal configurations compare equal.
func prepareDesired(desired []VirtualService) ([]desiredService, error) {
	const op = "reconcile"
	out := make([]desiredService, 0, len(desired))
	seen := make(map[serviceKey]struct{}, len(desired))
	for _, vs := range desired {
		if err := vs.Service.validate(op, true); err != nil {
			return nil, err
		}
		s := vs.Service.normalized()
		if _, dup := seen[s.key()]; dup {
			return nil, invalid(op, "VirtualService.Service", "%v is listed twice", s)
		}
		seen[s.key()] = struct{}{}
		idx := indexDests(vs.Destinations, func(d Destination) netip.AddrPort { return netip.AddrPortFrom(d.Address, d.Port) })
		for i, d := range vs.Destinations {
			if err := d.validate(op, s); err != nil {
				return nil, err
			}
			if j := idx.find(netip.AddrPortFrom(d.Address, d.Port)); j != i {
				return nil, invalid(op, "VirtualService.Destinations", "%v is listed twice under %v", d, s)
			}
		}
		out = append(out, desiredService{svc: s, dests: vs.Destinations})
	}
	return out, nil
}

// diff computes the changes that turn cur into want: deletions of services
// first, then per desired service its creation or update, its destination
// removals, and its destination creations and updates.
func diff(want []desiredService, cur []VirtualServiceStats, opts ReconcileOptions) []Change {
	// From an empty table every desired entry is a creation: size the
	// slice once, as Changes are large. Otherwise changes are usually few.
	var changes []Change
	if len(cur) == 0 {
		n := len(want)
		for _, w := range want {
			n += len(w.dests)
		}
		changes = make([]Change, 0, n)
	}
	curBy := make(map[serviceKey]*VirtualServiceStats, len(cur))
	for i := range cur {
		curBy[cur[i].Service.key()] = &cur[i]
	}
	wanted := make(map[serviceKey]struct{}, len(want))
	for _, w := range want {
		wanted[w.svc.key()] = struct{}{}
	}
	for _, c := range cur {
		if _, ok := wanted[c.Service.key()]; !ok {
			changes = append(changes, Change{Kind: DeleteService, Service: c.Service})
		}
	}
	for _, w := range want {
		c, exists := curBy[w.svc.key()]
		if !exists {
			changes = append(changes, Change{Kind: CreateService, Service: w.svc})
			for _, d := range w.dests {
				changes = append(changes, Change{Kind: CreateDestination, Service: w.svc, Destination: d})
			}
			continue
		}
		if c.Service != w.svc {
			changes = append(changes, Change{Kind: UpdateService, Service: w.svc})
		}
		curDests := indexDests(c.Destinations, func(d DestinationStats) netip.AddrPort { return netip.AddrPortFrom(d.Address, d.Port) })
		wantDests := indexDests(w.dests, func(d Destination) netip.AddrPort { return netip.AddrPortFrom(d.Address, d.Port) })
		for _, d := range c.Destinations {
			if wantDests.find(netip.AddrPortFrom(d.Address, d.Port)) >= 0 {
				continue
			}
			switch {
			case !opts.GracefulRemoval:
				changes = append(changes, Change{Kind: DeleteDestination, Service: w.svc, Destination: d.Destination})
			case d.Weight != 0:
				drained := d.Destination
				drained.Weight = 0
				changes = append(changes, Change{Kind: UpdateDestination, Service: w.svc, Destination: drained})
			case d.ActiveConnections == 0 && d.InactiveConnections == 0:
				changes = append(changes, Change{Kind: DeleteDestination, Service: w.svc, Destination: d.Destination})
			}
		}
		for _, d := range w.dests {
			j := curDests.find(netip.AddrPortFrom(d.Address, d.Port))
			switch {
			case j < 0:
				changes = append(changes, Change{Kind: CreateDestination, Service: w.svc, Destination: d})
			case c.Destinations[j].Destination != d:
				changes = append(changes, Change{Kind: UpdateDestination, Service: w.svc, Destination: d})
			}
		}
	}
	return changes
}

// destIndex finds destinations by address and port: by scanning the slice
// for the few destinations a service usually has (no allocation), by a map
// for many.
type destIndex struct {
	n   int
	key func(i int) netip.AddrPort
	m   map[netip.AddrPort]int
}

// linearMax is the size up to which a scan beats building a map.
const linearMax = 16

func indexDests[D any](ds []D, key func(D) netip.AddrPort) destIndex {
	ix := destIndex{n: len(ds), key: func(i int) netip.AddrPort { return key(ds[i]) }}
	if len(ds) > linearMax {
		ix.m = make(map[netip.AddrPort]int, len(ds))
		for i := len(ds) - 1; i >= 0; i-- {
			ix.m[key(ds[i])] = i // the first occurrence wins
		}
	}
	return ix
}

// find returns the index of the first destination with key k, or -1.
func (ix destIndex) find(k netip.AddrPort) int {
	if ix.m != nil {
		if i, ok := ix.m[k]; ok {
			return i
		}
		return -1
	}
	for i := range ix.n {
		if ix.key(i) == k {
			return i
		}
	}
	return -1
}
