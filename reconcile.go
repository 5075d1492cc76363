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
	seen := make(map[Service]struct{}, len(desired))
	for _, vs := range desired {
		if err := vs.Service.validate(op, true); err != nil {
			return nil, err
		}
		s := vs.Service.normalized()
		if _, dup := seen[s.identity()]; dup {
			return nil, invalid(op, "VirtualService.Service", "%v is listed twice", s)
		}
		seen[s.identity()] = struct{}{}
		dseen := make(map[netip.AddrPort]struct{}, len(vs.Destinations))
		for _, d := range vs.Destinations {
			if err := d.validate(op, s); err != nil {
				return nil, err
			}
			k := netip.AddrPortFrom(d.Address, d.Port)
			if _, dup := dseen[k]; dup {
				return nil, invalid(op, "VirtualService.Destinations", "%v is listed twice under %v", k, s)
			}
			dseen[k] = struct{}{}
		}
		out = append(out, desiredService{svc: s, dests: vs.Destinations})
	}
	return out, nil
}

// diff computes the changes that turn cur into want: deletions of services
// first, then per desired service its creation or update, its destination
// removals, and its destination creations and updates.
func diff(want []desiredService, cur []VirtualServiceStats, opts ReconcileOptions) []Change {
	var changes []Change
	curBy := make(map[Service]*VirtualServiceStats, len(cur))
	for i := range cur {
		curBy[cur[i].Service.identity()] = &cur[i]
	}
	wanted := make(map[Service]struct{}, len(want))
	for _, w := range want {
		wanted[w.svc.identity()] = struct{}{}
	}
	for _, c := range cur {
		if _, ok := wanted[c.Service.identity()]; !ok {
			changes = append(changes, Change{Kind: DeleteService, Service: c.Service})
		}
	}
	for _, w := range want {
		c, exists := curBy[w.svc.identity()]
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
		curDests := make(map[netip.AddrPort]DestinationStats, len(c.Destinations))
		for _, d := range c.Destinations {
			curDests[netip.AddrPortFrom(d.Address, d.Port)] = d
		}
		wantDests := make(map[netip.AddrPort]struct{}, len(w.dests))
		for _, d := range w.dests {
			wantDests[netip.AddrPortFrom(d.Address, d.Port)] = struct{}{}
		}
		for _, d := range c.Destinations {
			if _, ok := wantDests[netip.AddrPortFrom(d.Address, d.Port)]; ok {
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
			cd, ok := curDests[netip.AddrPortFrom(d.Address, d.Port)]
			switch {
			case !ok:
				changes = append(changes, Change{Kind: CreateDestination, Service: w.svc, Destination: d})
			case cd.Destination != d:
				changes = append(changes, Change{Kind: UpdateDestination, Service: w.svc, Destination: d})
			}
		}
	}
	return changes
}
