package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
)

// ReconcileOptions tune Reconcile.
//
// By default (Owns nil) Reconcile owns the WHOLE table of the namespace: it
// DELETES every service it is not given, including those of other programs
// sharing the namespace, such as keepalived, Docker, kube-proxy or an
// operator's ipvsadm. IPVS cannot tag a service with its owner, so a program
// that shares the table must say which services are its own: set Owns.
type ReconcileOptions struct {
	// Owns, if not nil, is the scope of Reconcile: the services it reports
	// true for are Reconcile's to create, change and delete, and the
	// others are left alone: never deleted or changed, and never named in
	// a request, so their destinations are not even read. (The kernel
	// cannot filter a dump: they are still listed in the one service
	// dump.) An owned service is owned whole: a destination another
	// program adds to it is removed.
	//
	// Owns gets the identity of a service only: Protocol, Address and Port
	// for an address service, FirewallMark and Family for a mark service,
	// every other field zero; so it answers alike for a desired service and
	// for the one in the table. A desired service that Owns does not own
	// makes Reconcile fail, before it sends anything, with an error
	// compatible with errors.Is(err, os.ErrInvalid). Owns is called while
	// the table is read, from the calling goroutine: it should be quick.
	//
	// A controller usually knows its scope already: its virtual addresses
	// or service prefixes, a range of firewall marks, or the set of
	// services it created. For example:
	//
	//	Owns: func(s ipvs.Service) bool {
	//		if s.FirewallMark != 0 {
	//			return s.FirewallMark>>16 == 0x4b56 // marks 0x4b560000-0x4b56ffff
	//		}
	//		return servicePrefix.Contains(s.Address) || vips[s.Address]
	//	}
	Owns func(Service) bool

	// GracefulRemoval drains a destination that is no longer desired
	// instead of deleting it: Reconcile first sets its weight to 0, so it
	// gets no new connections, and deletes it in a later run once it has
	// no active or inactive connections left, as kube-proxy does. UDP has
	// no FIN: a UDP connection entry ends only at its timeout
	// (Timeouts.UDP, 300 seconds by default) after its last packet, so a
	// UDP destination drains no sooner, and never while a client keeps
	// sending. Services that are no longer desired are deleted at once.
	GracefulRemoval bool
}

// ReconcileResult reports what Reconcile did: the changes it applied, in
// order, and each one's error (nil for success).
type ReconcileResult struct {
	Changes []Change
	Errors  []error
}

// Reconcile makes the network namespace's IPVS table equal to desired: it
// reads the table, computes the fewest changes (a weight change is one
// destination update; kernel-internal flags and counters are ignored), and
// applies them with Apply. Run again with the same input it changes nothing.
// It compares while it reads, without building the table in memory, and
// does not read the destinations of the services it deletes: with nothing
// to change it costs no more than VirtualServices.
//
// By default Reconcile DELETES EVERY SERVICE NOT IN desired, whoever created
// it: another program's services in the same namespace (keepalived, Docker,
// kube-proxy, ipvsadm, ...) are lost. To share the table, limit Reconcile to
// its own services with ReconcileOptions.Owns.
//
// Its read of the table is made again as by Services if it repeated a
// service. The kernel's dumps can still miss entries while services are
// added or deleted, so an entry Reconcile did not see may exist: a create that meets an existing entry is
// not a failure but a reason to read that service alone (a GET and a dump of
// its destinations, which changes to other services cannot disturb) and
// compare, which Reconcile does before returning. An unacknowledged change,
// or a deletion of an entry already gone, makes it read the whole table
// again. The returned error joins the errors
// of the changes that failed; after a partial failure a new run converges.
func (c *Client) Reconcile(ctx context.Context, desired []VirtualService, opts ReconcileOptions) (ReconcileResult, error) {
	want, err := prepareDesired(desired)
	if err == nil {
		err = checkOwned(want, opts.Owns)
	}
	if err != nil {
		return ReconcileResult{}, err
	}
	var res ReconcileResult
	full := true      // read the whole table; else only the services in targets
	var targets []int // desired services whose creation met an existing entry
	for pass := 0; pass < 3; pass++ {
		var changes []Change
		if full {
			// The table is compared while it is read, not kept;
			// statistics are not decoded.
			changes, err = c.c.reconcileChanges(ctx, want, opts)
		} else {
			changes, err = reconcileServices(ctx, c.c, want, targets, opts)
		}
		if err != nil {
			return res, err
		}
		if len(changes) == 0 {
			return res, nil
		}
		// The changes come from validated input: no need to check them
		// again.
		errs := make([]error, len(changes))
		err = c.c.apply(ctx, changes, errs)
		if res.Changes == nil {
			res.Changes, res.Errors = changes, errs
		} else {
			res.Changes = append(res.Changes, changes...)
			res.Errors = append(res.Errors, errs...)
		}
		if err != nil {
			return res, err
		}
		// A targeted pass read exactly what it changed: its errors are
		// final, as are those of the last pass.
		final := !full || pass == 2
		retryFull := false
		targets = targets[:0]
		var failed []error
		for i, e := range errs {
			kind := changes[i].Kind
			switch {
			case e == nil:
			case final:
				failed = append(failed, e)
			case errors.Is(e, os.ErrExist) && (kind == CreateService || kind == CreateDestination):
				// An entry the dump skipped: read that service alone
				// (a GET, not a dump, cannot skip it) and compare.
				j := want.index[changes[i].Service.key()]
				if !slices.Contains(targets, j) {
					targets = append(targets, j)
				}
			case errors.Is(e, ErrUnacknowledged):
				retryFull = true // an unknown outcome
			case errors.Is(e, os.ErrNotExist) && (kind == DeleteService || kind == DeleteDestination):
				retryFull = true // already gone: confirm
			default:
				failed = append(failed, e)
			}
		}
		if len(failed) > 0 || !retryFull && len(targets) == 0 {
			return res, errors.Join(failed...)
		}
		full = retryFull // a full read covers the targets too
	}
	return res, nil
}

// desiredService is a validated entry of Reconcile's input.
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

// prepareDesired validates Reconcile's input. A valid Service is already in
// the form the kernel reports, so equal configurations compare equal.
func prepareDesired(desired []VirtualService) (desiredTable, error) {
	const op = "reconcile"
	t := desiredTable{
		svcs:  make([]desiredService, 0, len(desired)),
		index: make(map[serviceKey]int, len(desired)),
	}
	var seen destSet
	for _, vs := range desired {
		if err := vs.Service.validate(op); err != nil {
			return desiredTable{}, err
		}
		s := vs.Service
		k := s.key()
		if _, dup := t.index[k]; dup {
			return desiredTable{}, invalid(op, "VirtualService.Service", "%v is listed twice", s)
		}
		t.index[k] = len(t.svcs)
		seen.reset(len(vs.Destinations))
		for i := range vs.Destinations {
			d := &vs.Destinations[i]
			if err := d.validateConfig(op, &s); err != nil { // s is valid
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

// checkOwned checks that owns, if not nil, owns every desired service.
func checkOwned(want desiredTable, owns func(Service) bool) error {
	if owns == nil {
		return nil
	}
	for _, w := range want.svcs {
		if !owns(w.svc.identity()) {
			return invalid("reconcile", "VirtualService.Service", "%v is desired but outside the scope: ReconcileOptions.Owns reports false", w.svc)
		}
	}
	return nil
}

// differ computes the changes that turn the current table into the desired
// one while the table is read, without keeping it: the current services
// one by one (service), then the destinations of each desired service that
// exists, in the order kept returns (beginDests, dest, endDests). The
// changes come in this order: deletions of services first, then per
// desired service its creation or update, its destination removals, and
// its destination creations and updates.
type differ struct {
	want    desiredTable
	opts    ReconcileOptions
	changes []Change

	exists  []bool // desired service i is in the table
	changed []bool // ... with another configuration
	deleted map[serviceKey]struct{}
	next    int // the first desired service whose changes are not out yet

	// The desired service whose destinations are being compared.
	j        int
	set      destSet
	seen     []bool // desired destination k is in the table
	updated  []bool // ... with another configuration
	removals []Change
}

func newDiffer(want desiredTable, opts ReconcileOptions) *differ {
	return &differ{
		want:    want,
		opts:    opts,
		exists:  make([]bool, len(want.svcs)),
		changed: make([]bool, len(want.svcs)),
	}
}

// service takes a current service and returns its index among the desired
// ones, or -1 if it is not desired (it is deleted, if owned) or was seen
// before (a dump can repeat entries).
func (d *differ) service(cur Service) int {
	k := cur.key()
	if j, ok := d.want.index[k]; ok {
		if d.exists[j] {
			return -1
		}
		d.exists[j], d.changed[j] = true, cur != d.want.svcs[j].svc
		return j
	}
	if d.opts.Owns != nil && !d.opts.Owns(cur.identity()) {
		return -1 // another program's
	}
	if d.deleted == nil {
		d.deleted = make(map[serviceKey]struct{})
	}
	if _, dup := d.deleted[k]; !dup {
		d.deleted[k] = struct{}{}
		d.add(Change{Kind: DeleteService, Service: cur})
	}
	return -1
}

// identity returns the fields of s that its key holds, the others zero.
func (s Service) identity() Service {
	if s.FirewallMark != 0 {
		return Service{FirewallMark: s.FirewallMark, Family: s.Family}
	}
	return Service{Protocol: s.Protocol, Address: s.Address, Port: s.Port}
}

// kept returns, in order, the desired services the table has: their
// destinations are compared next.
func (d *differ) kept() []int {
	var kept []int
	for j, ok := range d.exists {
		if ok {
			kept = append(kept, j)
		}
	}
	if len(kept) == 0 && len(d.changes) == 0 {
		// From an empty table every desired entry is a creation: size
		// the slice once, as Changes are large. Otherwise changes are
		// usually few.
		n := len(d.want.svcs)
		for _, w := range d.want.svcs {
			n += len(w.dests)
		}
		d.changes = make([]Change, 0, n)
	}
	return kept
}

// emitUntil writes the changes of the desired services before j that the
// table lacks: their creations.
func (d *differ) emitUntil(j int) {
	for ; d.next < j; d.next++ {
		if d.exists[d.next] {
			continue
		}
		w := d.want.svcs[d.next]
		d.add(Change{Kind: CreateService, Service: w.svc})
		for _, x := range w.dests {
			d.add(Change{Kind: CreateDestination, Service: w.svc, Destination: x})
		}
	}
}

func (d *differ) beginDests(j int) {
	d.j = j
	w := d.want.svcs[j].dests
	d.set.reset(len(w))
	for _, x := range w {
		d.set.add(netip.AddrPortFrom(x.Address, x.Port))
	}
	d.seen = resetBools(d.seen, len(w))
	d.updated = resetBools(d.updated, len(w))
	d.removals = d.removals[:0]
}

// dests compares the destinations ds of desired service j, read at once.
func (d *differ) dests(j int, ds []DestinationStats) {
	d.beginDests(j)
	for _, x := range ds {
		d.dest(x)
	}
	d.endDests()
}

// dest takes a current destination of the service of beginDests.
func (d *differ) dest(cur DestinationStats) {
	w := &d.want.svcs[d.j]
	k := d.set.find(netip.AddrPortFrom(cur.Address, cur.Port))
	switch {
	case k >= 0 && d.seen[k]:
		// Listed twice: the first one was compared.
	case k >= 0:
		d.seen[k], d.updated[k] = true, cur.Destination != w.dests[k]
	case !d.opts.GracefulRemoval:
		d.removals = append(d.removals, Change{Kind: DeleteDestination, Service: w.svc, Destination: cur.Destination})
	case cur.Weight != 0:
		drained := cur.Destination
		drained.Weight = 0
		d.removals = append(d.removals, Change{Kind: UpdateDestination, Service: w.svc, Destination: drained})
	case cur.ActiveConnections == 0 && cur.InactiveConnections == 0:
		d.removals = append(d.removals, Change{Kind: DeleteDestination, Service: w.svc, Destination: cur.Destination})
	}
}

func (d *differ) endDests() {
	d.emitUntil(d.j)
	w := &d.want.svcs[d.j]
	if d.changed[d.j] {
		d.add(Change{Kind: UpdateService, Service: w.svc})
	}
	for _, c := range d.removals {
		d.add(c)
	}
	for k, x := range w.dests {
		switch {
		case !d.seen[k]:
			d.add(Change{Kind: CreateDestination, Service: w.svc, Destination: x})
		case d.updated[k]:
			d.add(Change{Kind: UpdateDestination, Service: w.svc, Destination: x})
		}
	}
	d.next = d.j + 1
}

// finish returns the changes, with the creations of the desired services
// after the last one the table has.
func (d *differ) finish() []Change {
	d.emitUntil(len(d.want.svcs))
	return d.changes
}

// add appends c to the changes, doubling their capacity when full: append
// grows large slices by a quarter, which for thousands of changes (large
// values) allocated five times their size.
func (d *differ) add(c Change) {
	if len(d.changes) == cap(d.changes) {
		grown := make([]Change, len(d.changes), max(16, 2*cap(d.changes)))
		copy(grown, d.changes)
		d.changes = grown
	}
	d.changes = append(d.changes, c)
}

func resetBools(b []bool, n int) []bool {
	if cap(b) < n {
		return make([]bool, n)
	}
	b = b[:n]
	clear(b)
	return b
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

// reconcileServices computes the changes for the desired services js only,
// reading each of them alone: the service with a GET, its destinations
// with a dump of their own.
func reconcileServices(ctx context.Context, c *client, want desiredTable, js []int, opts ReconcileOptions) ([]Change, error) {
	sub := desiredTable{svcs: make([]desiredService, len(js)), index: make(map[serviceKey]int, len(js))}
	for k, j := range js {
		sub.svcs[k] = want.svcs[j]
		sub.index[want.svcs[j].svc.key()] = k
	}
	d := newDiffer(sub, opts)
	for _, w := range sub.svcs {
		cur, err := c.getService(ctx, "reconcile", w.svc)
		if errors.Is(err, os.ErrNotExist) {
			continue // gone meanwhile: to create
		}
		if err != nil {
			return nil, err
		}
		d.service(cur.Service)
	}
	for _, k := range d.kept() {
		ds, err := c.destinations(ctx, sub.svcs[k].svc)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		d.dests(k, ds)
	}
	return d.finish(), nil
}
