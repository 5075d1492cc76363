package ipvs

import "net/netip"

// desiredService is a validated, normalized entry of Reconcile's input.
type desiredService struct {
	svc   Service
	dests []Destination
}

// desiredTable is Reconcile's validated input with its services indexed by
// identity.
type desiredTable struct {
	svcs  []desiredService
	index map[serviceKey]int
}

// prepareDesired validates Reconcile's input and normalizes it to the form
// the kernel reports, so that equal configurations compare equal.
func prepareDesired(desired []VirtualService) (desiredTable, error) {
	const op = "reconcile"
	t := desiredTable{
		svcs:  make([]desiredService, 0, len(desired)),
		index: make(map[serviceKey]int, len(desired)),
	}
	var seen destSet
	for _, vs := range desired {
		if err := vs.Service.validate(op, true); err != nil {
			return desiredTable{}, err
		}
		s := vs.Service.normalized()
		k := s.key()
		if _, dup := t.index[k]; dup {
			return desiredTable{}, invalid(op, "VirtualService.Service", "%v is listed twice", s)
		}
		t.index[k] = len(t.svcs)
		seen.reset(len(vs.Destinations))
		for _, d := range vs.Destinations {
			if err := d.validate(op, s); err != nil {
				return desiredTable{}, err
			}
			if !seen.add(netip.AddrPortFrom(d.Address, d.Port)) {
				return desiredTable{}, invalid(op, "VirtualService.Destinations", "%v is listed twice under %v", d, s)
			}
		}
		t.svcs = append(t.svcs, desiredService{svc: s, dests: vs.Destinations})
	}
	return t, nil
}

// diff computes the changes that turn cur into want: deletions of services
// first, then per desired service its creation or update, its destination
// removals, and its destination creations and updates.
func diff(want desiredTable, cur []VirtualServiceStats, opts ReconcileOptions) []Change {
	// From an empty table every desired entry is a creation: size the
	// slice once, as Changes are large. Otherwise changes are usually few.
	var changes []Change
	if len(cur) == 0 {
		n := len(want.svcs)
		for _, w := range want.svcs {
			n += len(w.dests)
		}
		changes = make([]Change, 0, n)
	}
	// curOf[i] is the index in cur of desired service i, or -1.
	curOf := make([]int32, len(want.svcs))
	for i := range curOf {
		curOf[i] = -1
	}
	for i := range cur {
		if j, ok := want.index[cur[i].Service.key()]; ok {
			curOf[j] = int32(i)
		} else {
			changes = append(changes, Change{Kind: DeleteService, Service: cur[i].Service})
		}
	}
	var curDests, wantDests destSet
	for i, w := range want.svcs {
		if curOf[i] < 0 {
			changes = append(changes, Change{Kind: CreateService, Service: w.svc})
			for _, d := range w.dests {
				changes = append(changes, Change{Kind: CreateDestination, Service: w.svc, Destination: d})
			}
			continue
		}
		c := &cur[curOf[i]]
		if c.Service != w.svc {
			changes = append(changes, Change{Kind: UpdateService, Service: w.svc})
		}
		curDests.reset(len(c.Destinations))
		for _, d := range c.Destinations {
			curDests.add(netip.AddrPortFrom(d.Address, d.Port))
		}
		wantDests.reset(len(w.dests))
		for _, d := range w.dests {
			wantDests.add(netip.AddrPortFrom(d.Address, d.Port))
		}
		for j, d := range c.Destinations {
			if wantDests.find(curDests.keys[j]) >= 0 {
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
		for j, d := range w.dests {
			k := curDests.find(wantDests.keys[j])
			switch {
			case k < 0:
				changes = append(changes, Change{Kind: CreateDestination, Service: w.svc, Destination: d})
			case c.Destinations[k].Destination != d:
				changes = append(changes, Change{Kind: UpdateDestination, Service: w.svc, Destination: d})
			}
		}
	}
	return changes
}

// destSet holds the addresses and ports of one service's destinations, in
// order, and finds them: by scanning for the few destinations a service
// usually has, with a map past linearMax. Its memory is reused from one
// service to the next.
type destSet struct {
	keys []netip.AddrPort
	m    map[netip.AddrPort]int
}

// linearMax is the size up to which a scan beats a map.
const linearMax = 16

func (s *destSet) reset(n int) {
	s.keys = s.keys[:0]
	if n > linearMax {
		if s.m == nil {
			s.m = make(map[netip.AddrPort]int, n)
		} else {
			clear(s.m)
		}
	} else if s.m != nil {
		s.m = nil
	}
}

// add appends k and reports whether it was new; the first occurrence is
// the one find returns.
func (s *destSet) add(k netip.AddrPort) bool {
	s.keys = append(s.keys, k)
	if s.m != nil {
		if _, ok := s.m[k]; ok {
			return false
		}
		s.m[k] = len(s.keys) - 1
		return true
	}
	for _, x := range s.keys[:len(s.keys)-1] {
		if x == k {
			return false
		}
	}
	return true
}

// find returns the index of the first key k, or -1.
func (s *destSet) find(k netip.AddrPort) int {
	if s.m != nil {
		if i, ok := s.m[k]; ok {
			return i
		}
		return -1
	}
	for i, x := range s.keys {
		if x == k {
			return i
		}
	}
	return -1
}
