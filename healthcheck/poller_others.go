//go:build !linux

package healthcheck

// poller is the Monitor's own wait for started checks; elsewhere than on
// Linux there is none (no check starts that could use it), and they wait
// on goroutines of their own.
type poller struct {
	ready chan struct{}
}

func newPoller() *poller                { return nil }
func (p *poller) add(int, bool) bool    { return false }
func (p *poller) modify(int, bool) bool { return false }
func (p *poller) remove(int)            {}
func (p *poller) take(func(fd int))     {}
func (p *poller) close()                {}

// readyC is ready, or nil (never ready) without a poller.
func (p *poller) readyC() chan struct{} {
	if p == nil {
		return nil
	}
	return p.ready
}
