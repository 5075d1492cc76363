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
