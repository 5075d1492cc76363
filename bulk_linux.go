//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
	"golang.org/x/sys/unix"
)

// dumpServices dumps the services: each is called for every NEW_SERVICE
// message, and returns the service's key (ok) or an error that ends the
// dump. IPVS resumes a dump by index, with no NLM_F_DUMP_INTR: a table
// that changes between two of the dump's datagrams makes it repeat some
// services and skip others. 7.x kernels rehash a namespace's service table
// into one of another size a few milliseconds after the services added or
// deleted cross a threshold, which reorders it all: with no service added
// or deleted meanwhile, such a dump repeats exactly as many services as it
// skipped, and a dump that repeats none is whole. Kernels before 7.0 share
// their tables and the dump's index between namespaces, and services
// added or deleted in any namespace shift it, so that under another
// namespace's steady churn every dump may repeat services (a dump whose
// every service fits in its first datagram repeats some and misses none).
// So a dump that repeated a service is made again, after reset and a
// pause, up to dumpAttempts times in all; the last one is kept, and
// repeated reports whether the caller must drop its repeats (see dedup).
func (c *client) dumpServices(ctx context.Context, op string, reset func(), each func(m message) (serviceKey, bool, error)) (repeated bool, err error) {
	var hs []uint64
	var timer *time.Timer
	for attempt := 1; ; attempt++ {
		// The keys' hashes, in 8 bytes per service instead of a map's
		// 100: a repeat shows as two equal ones. A new seed per dump,
		// so that two keys colliding (a needless second dump) do not
		// collide again.
		seed := maphash.MakeSeed()
		hs = hs[:0]
		err = c.do(ctx, op, uapi.CmdGetService, true, nil, func(m message) error {
			if m.cmd != uapi.CmdNewService {
				return nil
			}
			k, ok, err := each(m)
			if ok {
				hs = append(hs, maphash.Comparable(seed, k))
			}
			return err
		})
		if err != nil {
			return false, err
		}
		if repeated = repeats(hs); !repeated || attempt == dumpAttempts {
			return repeated, nil
		}
		// 4 ms (a jiffy at HZ 250: a deferred rehash runs within a
		// few), then twice as long each time.
		d := dumpPause << (attempt - 1)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false, wrap(op, uapi.CmdGetService, ctx.Err())
		}
		reset()
	}
}

// dedup drops the repeats of a dump that kept repeating services (see
// dumpServices), keeping the first of each.
func dedup[T any](xs []T, key func(*T) serviceKey) []T {
	if len(xs) < 2 {
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

// dumpAttempts and dumpPause bound dumpServices's attempts: five dumps in
// about 60 ms.
const (
	dumpAttempts = 5
	dumpPause    = 4 * time.Millisecond
)

// repeats reports whether two of hs are equal; it sorts hs.
func repeats(hs []uint64) bool {
	slices.Sort(hs)
	for i := 1; i < len(hs); i++ {
		if hs[i] == hs[i-1] {
			return true
		}
	}
	return false
}

// virtualServices reads every service and its destinations: one service
// dump, then the destination dumps, pipelined.
func (c *client) virtualServices(ctx context.Context) ([]VirtualServiceStats, error) {
	const op = "list virtual services"
	// The services are decoded into chunks and then copied once into a
	// slice of the right length: about half the memory of growing one
	// slice by append, which copies it at every step.
	var (
		chunks [][]VirtualServiceStats
		chunk  []VirtualServiceStats
		total  int
	)
	repeated, err := c.dumpServices(ctx, op, func() { chunks, chunk, total = chunks[:0], nil, 0 }, func(m message) (serviceKey, bool, error) {
		svc, ok, err := parseService(m.data)
		if !ok {
			return serviceKey{}, false, err
		}
		if len(chunk) == cap(chunk) {
			if chunk != nil {
				chunks = append(chunks, chunk)
			}
			chunk = make([]VirtualServiceStats, 0, min(max(64, total), 1024))
		}
		chunk = append(chunk, VirtualServiceStats{ServiceStats: svc})
		total++
		return svc.key(), true, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]VirtualServiceStats, 0, total)
	for _, ch := range chunks {
		out = append(out, ch...)
	}
	out = append(out, chunk...)
	if repeated {
		out = dedup(out, func(v *VirtualServiceStats) serviceKey { return v.Service.key() })
	}
	if len(out) > 0 {
		err = c.sessionOn(ctx, pageSock, func(s *sock) error { return c.fillDestinations(s, out) })
		if err != nil {
			return nil, wrap(op, uapi.CmdGetDest, err)
		}
	}
	return out, nil
}

// reconcileChanges reads the table and computes the changes that turn it
// into want. It compares while it reads (see differ) instead of building
// the table in memory, and dumps the destinations only of the services it
// keeps: never of those it deletes or that opts.Owns does not own.
func (c *client) reconcileChanges(ctx context.Context, want desiredTable, opts ReconcileOptions) ([]Change, error) {
	const op = "list virtual services"
	d := newDiffer(want, opts)
	// The differ ignores a service seen before.
	_, err := c.dumpServices(ctx, op, func() { d = newDiffer(want, opts) }, func(m message) (serviceKey, bool, error) {
		svc, ok, err := parseServiceConfig(m.data)
		if ok {
			d.service(svc)
		}
		return svc.key(), ok, err
	})
	if err != nil {
		return nil, err
	}
	kept := d.kept()
	if len(kept) == 0 {
		return d.finish(), nil
	}
	started := -1
	begin := func(i int) {
		if i != started {
			d.beginDests(kept[i])
			started = i
		}
	}
	err = c.sessionOn(ctx, pageSock, func(s *sock) error {
		return c.pipelineDestDumps(s, len(kept), func(i int) Service { return want.svcs[kept[i]].svc },
			func(i int, m message) error {
				begin(i)
				x, ok, err := parseDestConfig(m.data, want.svcs[kept[i]].svc.family())
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
	return d.finish(), nil
}

// fillDestinations fills in the destinations of every service of out,
// decoded into one growing slab, each service's run sliced off when its dump
// ends: the dumps deliver them one service after another.
func (c *client) fillDestinations(s *sock, out []VirtualServiceStats) error {
	slab := make([]DestinationStats, 0, 4*len(out))
	start := 0
	return c.pipelineDestDumps(s, len(out), func(i int) Service { return out[i].Service },
		func(i int, m message) error {
			d, ok, err := parseDest(m.data, out[i].family())
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

// pipelineDestDumps runs one GET_DEST dump for each of n services, pipelined,
// and hands each NEW_DEST message of service i to onDest and the end of its
// dump to onEnd, service after service in order.
//
// It is the one request path besides exchange: exchange sends its requests
// together and then reads, but a socket runs one dump at a time, so the
// dumps must be requested one by one while the answers are read.
//
// A netlink socket runs one dump at a time (another request meanwhile gets
// EBUSY), but the kernel ends a short dump, queueing its NLMSG_DONE, inside
// the read that returns its data. So once the data of dump i is read, dump
// i+1 is requested at once, and the next read returns both the end of i and
// the data of i+1: two system calls per service instead of three. A dump
// that spans several datagrams makes the early request fail with EBUSY; it
// is sent again after that dump's end.
func (c *client) pipelineDestDumps(s *sock, n int, svc func(i int) Service, onDest func(i int, m message) error, onEnd func(i int)) error {
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
		encodeServiceID(&s.enc, svc(i))
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
		case m.typ == unix.NLMSG_ERROR:
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
			if i != ended {
				// Dump ended is still running: its remaining
				// datagrams would be left queued, so this is no
				// kernelError (which leaves the socket in sync and
				// pooled) and the socket is closed.
				return fmt.Errorf("destination dump %d refused while dump %d ran: %w", i, ended, syscall.Errno(errno))
			}
			return &kernelError{errno: syscall.Errno(errno), text: text}
		case m.typ == unix.NLMSG_DONE:
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
	for reads := 0; cur < n; reads++ {
		if reads > 0 {
			// The reads never wait: check the context between them.
			if err := s.expired(); err != nil {
				return err
			}
		}
		got, err := s.t.recvBatch(s.rbuf, slot, s.lens[:slots], readDump)
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
