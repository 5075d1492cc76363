package healthcheck

import (
	"net/netip"
)

// NetNS runs functions in a network namespace: an *ipvs.Client does, in
// the load balancer's (ipvs.Client.InNetNS).
type NetNS interface {
	InNetNS(fn func() error) error
}

// A dialer opens a check's sockets in a namespace.
type dialer struct {
	ns     NetNS // nil: the calling thread's
	source netip.Addr
	mark   uint32
}

// spares are the Monitor's spare TCP sockets, for its TCP checks and plain
// HTTP GETs (used only on the Monitor's goroutine). A check that passed
// does not close its socket: it disconnects it (connect(2) to AF_UNSPEC,
// which resets the connection as SO_LINGER 0 and close(2) would), and the
// next check connects it again. A check then costs no socket(2) and no
// close(2): in the kernel, no socket, file and inode made and freed per
// check, a fifth of a local TCP check's CPU time. Sockets bound to a Source
// are not kept, nor those of checks that failed or went on on goroutines.
type spares struct {
	free   []spareSock
	reused int // checks that took a spare socket, for tests
}

type spareSock struct {
	fd   int
	v6   bool
	mark uint32
}

// maxSpares is how many spare sockets the Monitor keeps: checks that end on
// its goroutine return their socket before the next starts, so a few serve
// many; checks that waited return theirs as they end.
const maxSpares = 64

// has reports whether there is a spare socket of the family.
func (s *spares) has(v6 bool) bool {
	for _, sk := range s.free {
		if sk.v6 == v6 {
			return true
		}
	}
	return false
}
