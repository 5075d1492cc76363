//go:build !linux

package healthcheck

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// dial opens a connection with the standard library: outside Linux there
// is no IPVS namespace to dial in, and no SO_MARK.
func (d *dialer) dial(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	if d.mark != 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.ErrUnsupported}
	}
	nd := &net.Dialer{}
	if d.source.IsValid() {
		switch network {
		case "udp", "udp4", "udp6":
			nd.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(d.source, 0))
		default:
			nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(d.source, 0))
		}
	}
	return nd.DialContext(ctx, network, addr.String())
}

func (d *dialer) dialConn(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	return d.dial(ctx, network, addr)
}

func (d *dialer) connectOnly(ctx context.Context, addr netip.AddrPort, graceful bool) error {
	c, err := d.dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok && !graceful {
		_ = tc.SetLinger(0)
	}
	return c.Close()
}

// tcpPending is the whole TCP check, on a goroutine.
type tcpPending struct {
	d        *dialer
	addr     netip.AddrPort
	graceful bool
}

func (d *dialer) startTCP(addr netip.AddrPort, graceful, _ bool, _ *spares) (*tcpPending, error) {
	return &tcpPending{d, addr, graceful}, nil
}

func (p *tcpPending) started() started {
	return started{wait: func(ctx context.Context) (int, error) {
		return KeepWeight, p.d.connectOnly(ctx, p.addr, p.graceful)
	}}
}

func (d *dialer) startStream(addr netip.AddrPort, _ bool) (func(context.Context) (net.Conn, error), error) {
	return func(ctx context.Context) (net.Conn, error) { return d.dial(ctx, "tcp", addr) }, nil
}

// close: outside Linux the Monitor keeps no spare sockets.
func (s *spares) close() {}
