//go:build linux

package ipvs

import (
	"context"
	"errors"
	"syscall"
)

// apply sends the valid changes (those whose errs entry is nil) as batches
// of requests, many per sendmsg, and records each one's outcome in errs.
func (c *client) apply(ctx context.Context, changes []Change, errs []error) error {
	// known marks the changes whose outcome is settled: refused before
	// sending, or answered by the kernel.
	known := make([]bool, len(changes))
	for i, e := range errs {
		known[i] = e != nil
	}
	err := c.session(ctx, func(s *sock) error {
		rcv, snd := s.t.bufferSizes()
		// Every ACK costs about 770 bytes of the receive buffer whatever
		// its size (a default 212992-byte buffer holds 277): past that
		// the kernel drops them with ENOBUFS. A sendmsg may carry at
		// most the send buffer less 32 bytes.
		maxMsgs := max(1, rcv/1024)
		maxBytes := max(4096, snd-32)
		sent, resent := false, false
		for i := 0; i < len(changes); {
			if sent {
				// The kernel executes a chunk inside the sendmsg:
				// check the context between chunks.
				if err := s.expired(); err != nil {
					return err
				}
			}
			first := i
			s.enc.b = s.enc.b[:0]
			s.idx = s.idx[:0]
			s.lastNest.n = 0
			for ; i < len(changes) && len(s.idx) < maxMsgs; i++ {
				if known[i] {
					continue
				}
				start, seq := len(s.enc.b), s.seq
				c.encodeChange(s, changes[i])
				if len(s.enc.b) > maxBytes && len(s.idx) > 0 {
					s.enc.b, s.seq = s.enc.b[:start], seq
					break
				}
				s.idx = append(s.idx, i)
			}
			if len(s.idx) == 0 {
				continue
			}
			sent = true
			enoent := false
			err := s.exchange(len(s.idx), false, nil, func(k int, errno int32, text string) {
				i := s.idx[k]
				known[i] = true
				if errno != 0 {
					errs[i] = &Error{Op: changes[i].Kind.op(), Message: text, Err: syscall.Errno(errno), cmd: changes[i].Kind.cmd()}
					enoent = enoent || syscall.Errno(errno) == syscall.ENOENT
				}
			})
			if err == nil || errors.Is(err, errAcksLost) {
				// A change without an answer (lost to an overrun, or
				// ended by EINTR, which the kernel does not answer)
				// has an unknown outcome.
				for _, i := range s.idx {
					if !known[i] {
						known[i] = true
						errs[i] = &Error{Op: changes[i].Kind.op(), Err: ErrUnacknowledged, cmd: changes[i].Kind.cmd()}
					}
				}
				err = nil
			}
			if err != nil {
				return err
			}
			if enoent {
				// A sendmsg's requests all reach the same instance of
				// the family, or none does (the generic netlink core
				// holds a lock across a sendmsg that unregistering a
				// family takes): if the family has a new id, the whole
				// chunk went to a gone ip_vs and is sent again, once
				// (see refreshFamily).
				switch changed, missing := c.refreshFamily(ctx, s.fam); {
				case missing:
					for _, i := range s.idx {
						if errors.Is(errs[i], syscall.ENOENT) {
							errs[i] = notLoaded(changes[i].Kind.op())
						}
					}
					return errIPVSMissing
				case changed && !resent:
					resent = true
					for _, i := range s.idx {
						known[i], errs[i] = false, nil
					}
					i = first
					continue
				}
			}
		}
		return nil
	})
	if errors.Is(err, errIPVSMissing) {
		for i := range changes {
			if !known[i] {
				errs[i] = notLoaded(changes[i].Kind.op())
			}
		}
		return notLoaded("apply")
	}
	if err != nil {
		// The changes not answered have an unknown outcome.
		for i := range changes {
			if !known[i] {
				errs[i] = &Error{Op: changes[i].Kind.op(), Err: err, cmd: changes[i].Kind.cmd()}
			}
		}
		return wrap("apply", 0, err)
	}
	return nil
}

// errIPVSMissing ends an apply that found the IPVS family gone.
var errIPVSMissing = errors.New("IPVS family missing")

func (c *client) encodeChange(s *sock, ch Change) {
	cmd := ch.Kind.cmd()
	off := c.begin(s, cmd, false)
	switch ch.Kind {
	case CreateService, UpdateService:
		encodeService(&s.enc, ch.Service, ch.Service.Flags, serviceFlagsSentMask)
	case DeleteService:
		encodeServiceID(&s.enc, ch.Service)
	case CreateDestination, UpdateDestination:
		s.serviceIdentity(ch.Service)
		encodeDest(&s.enc, ch.Destination)
	case DeleteDestination:
		s.serviceIdentity(ch.Service)
		encodeDestID(&s.enc, ch.Destination)
	}
	s.enc.endMessage(off)
}

// serviceIdentity writes the identity nest of svc, copying it from the
// previous message when that named the same service, as the destination
// changes of one service usually follow each other.
func (s *sock) serviceIdentity(svc Service) {
	if s.lastNest.n > 0 && s.lastNest.end <= len(s.enc.b) && sameIdentity(s.lastNest.svc, svc) {
		start := s.lastNest.end - s.lastNest.n
		s.enc.b = append(s.enc.b, s.enc.b[start:s.lastNest.end]...)
	} else {
		start := len(s.enc.b)
		encodeServiceID(&s.enc, svc)
		s.lastNest.svc, s.lastNest.n = svc, len(s.enc.b)-start
	}
	s.lastNest.end = len(s.enc.b)
}

// Encoding. Attribute order follows ipvsadm's, so requests can be compared
