//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"syscall"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// entries (and skip others, which cannot be detected).
func dedup[T any](xs []T, key func(*T) serviceKey) []T {
	if len(xs) < 2 {
		return xs
	}
	// Duplicates are rare (only a dump that raced with changes has them):
	// equal hashes are looked for first, in 8 bytes per entry instead of
	// a map's 100.
	seed := maphash.MakeSeed()
	hs := make([]uint64, len(xs))
	for i := range xs {
		hs[i] = maphash.Comparable(seed, key(&xs[i]))
	}
	slices.Sort(hs)
	equal := false
	for i := 1; i < len(hs) && !equal; i++ {
		equal = hs[i] == hs[i-1]
	}
	if !equal {
		return xs
	}
	seen := make(map[serviceKey]struct{}, len(xs))
	out := xs[:0]
	for i := range xs {
		k := key(&xs[i])
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, xs[i])
	}
	return out
}

// socket (see dumpSlot and serviceSlot).
func (c *client) virtualServices(ctx context.Context, stats bool) ([]VirtualServiceStats, error) {
	const op = "list virtual services"
	// The services are decoded into chunks and then copied once into a
	// slice of the right length: about half the memory of growing one
	// slice by append, which copies it at every step.
	var (
		chunks [][]VirtualServiceStats
		chunk  []VirtualServiceStats
		total  int
	)
	err := c.dumpServices(ctx, stats, func(svc ServiceStats) {
		if len(chunk) == cap(chunk) {
			if chunk != nil {
				chunks = append(chunks, chunk)
			}
			chunk = make([]VirtualServiceStats, 0, min(max(64, total), 1024))
		}
		chunk = append(chunk, VirtualServiceStats{ServiceStats: svc})
		total++
	})
	if err != nil {
		return nil, wrap(op, uapi.CmdGetService, err)
	}
	out := make([]VirtualServiceStats, 0, total)
	for _, ch := range chunks {
		out = append(out, ch...)
	}
	out = dedup(append(out, chunk...), func(v *VirtualServiceStats) serviceKey { return v.Service.key() })
	if len(out) > 0 {
		// The destination dumps run on a socket that reads pages (see
		// dumpSlot).
		err = c.sessionOn(ctx, pageSock, func(s *sock) error { return c.dumpDestinations(s, out, stats) })
		if err != nil {
			return nil, wrap(op, uapi.CmdGetDest, err)
		}
	}
	return out, nil
}

// dumpServices runs a service dump on a big socket (see serviceSlot) and
// hands each service to fn.
func (c *client) dumpServices(ctx context.Context, stats bool, fn func(ServiceStats)) error {
	return c.sessionOn(ctx, bigSock, func(s *sock) error {
		s.enc.b = s.enc.b[:0]
		s.enc.endMessage(c.begin(s, uapi.CmdGetService, true))
		return s.dumpOne(func(_ int, m message) error {
			if m.cmd != uapi.CmdNewService {
				return nil
			}
			svc, ok, err := parseServiceOpt(m.data, stats)
			if ok {
				fn(svc)
			}
			return err
		})
	})
}

// reconcileChanges reads the table and computes the changes that turn it
// into want. It compares while it reads (see differ) instead of building
// the table in memory, and dumps the destinations only of the services it
// keeps.
func (c *client) reconcileChanges(ctx context.Context, want desiredTable, opts ReconcileOptions) ([]Change, error) {
	const op = "list virtual services"
	d := newDiffer(want, opts)
	err := c.dumpServices(ctx, false, func(svc ServiceStats) { d.service(svc.Service) })
	if err != nil {
		return nil, wrap(op, uapi.CmdGetService, err)
	}
	kept := d.kept()
	started := -1
	begin := func(i int) {
		if i != started {
			d.beginDests(kept[i])
			started = i
		}
	}
	if len(kept) > 0 {
		err = c.sessionOn(ctx, pageSock, func(s *sock) error {
			return c.dumpDests(s, len(kept), func(i int) Service { return want.svcs[kept[i]].svc },
				func(i int, m message) error {
					begin(i)
					x, ok, err := parseDestOpt(m.data, want.svcs[kept[i]].svc.family(), false)
					if ok {
						d.dest(x)
					}
					return err
				},
				func(i int) {
					begin(i)
					d.endDests()
				})
		})
		if err != nil {
			return nil, wrap(op, uapi.CmdGetDest, err)
		}
	}
	return d.finish(), nil
}

// dumpDestinations fills in the destinations of every service of out,
// decoded into one growing slab, each service's run sliced off when its dump
// ends: the dumps deliver them one service after another.
func (c *client) dumpDestinations(s *sock, out []VirtualServiceStats, stats bool) error {
	slab := make([]DestinationStats, 0, 4*len(out))
	start := 0
	return c.dumpDests(s, len(out), func(i int) Service { return out[i].Service },
		func(i int, m message) error {
			d, ok, err := parseDestOpt(m.data, out[i].family(), stats)
			if ok {
				slab = append(slab, d)
			}
			return err
		},
		func(i int) {
			out[i].Destinations = slab[start:len(slab):len(slab)]
			start = len(slab)
		})
}

// dumpDests runs one GET_DEST dump for each of n services, pipelined, and
// hands each NEW_DEST message of service i to onDest and the end of its dump
// to onEnd, service after service in order.
//
// A netlink socket runs one dump at a time (another request meanwhile gets
// EBUSY), but the kernel ends a short dump, queueing its NLMSG_DONE, inside
// the read that returns its data. So once the data of dump i is read, dump
// i+1 is requested at once, and the next read returns both the end of i and
// the data of i+1: two system calls per service instead of three. A dump
// that spans several datagrams makes the early request fail with EBUSY; it
// is sent again after that dump's end.
func (c *client) dumpDests(s *sock, n int, svc func(i int) Service, onDest func(i int, m message) error, onEnd func(i int)) error {
	if n == 0 {
		return nil
	}
	slot := s.readLen()
	slots := len(s.rbuf) / slot
	type state struct{ sent, tried, gotData, done bool }
	var (
		cur   int                // the first dump not yet ended
		seq0  = s.seq + 1        // the sequence number of the first request
		bySeq []int32            // the service of request seq0+k
		st    = make([]state, n) // sent: a request is outstanding or answered; tried: an early request was made
		ended = 0                // dumps ended, in order
	)
	send := func(i int) error {
		s.enc.b = s.enc.b[:0]
		off := c.begin(s, uapi.CmdGetDest, true)
		encodeService(&s.enc, svc(i), false, 0, 0)
		s.enc.endMessage(off)
		bySeq = append(bySeq, int32(i)) // begin numbered it seq0+len(bySeq)
		st[i].sent = true
		return s.t.send(s.enc.b)
	}
	handle := func(m message) error {
		k := m.seq - seq0
		if k >= uint32(len(bySeq)) {
			return nil // stale
		}
		i := int(bySeq[k])
		switch {
		case m.typ == nlmsgError:
			errno, text, err := parseError(m)
			if err != nil || errno == 0 {
				return err
			}
			if syscall.Errno(errno) == syscall.EBUSY && i != cur {
				// Requested while an earlier dump still ran: again
				// once it has ended. (Its refusal is queued at once,
				// so it is read before that dump's end.)
				st[i].sent = false
				return nil
			}
			return &kernelError{errno: syscall.Errno(errno), text: text}
		case m.typ == nlmsgDone:
			if i != ended {
				return fmt.Errorf("destination dump %d ended before dump %d", i, ended)
			}
			st[i].done = true
			ended++
			onEnd(i)
		case m.typ >= 0x10 && m.cmd == uapi.CmdNewDest:
			st[i].gotData = true
			return onDest(i, m)
		}
		return nil
	}
	if err := send(0); err != nil {
		return err
	}
	for cur < n {
		got, err := s.t.recvBatch(s.rbuf, slot, s.lens[:slots], false)
		if err != nil {
			return err
		}
		for j := range got {
			if err := messages(s.rbuf[j*slot:j*slot+s.lens[j]], handle); err != nil {
				return err
			}
		}
		for cur < n && st[cur].done {
			cur++
			if cur < n && !st[cur].sent {
				if err := send(cur); err != nil {
					return err
				}
			}
		}
		if next := cur + 1; cur < n && st[cur].gotData && next < n && !st[next].sent && !st[next].tried {
			st[next].tried = true
			if err := send(next); err != nil {
				return err
			}
		}
	}
	return nil
}
