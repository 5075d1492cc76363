//go:build !linux

package healthcheck

import "time"

// poller is where the Monitor waits on Linux; elsewhere there is none (no
// check starts that could use it): the Monitor waits in a select, and the
// checks wait on goroutines of their own.
type poller struct{}

func newPoller() *poller                { return nil }
func (p *poller) wait(time.Duration)    {}
func (p *poller) ready() bool           { return false }
func (p *poller) take(func(fd int))     {}
func (p *poller) poke()                 {}
func (p *poller) add(int, bool) bool    { return false }
func (p *poller) modify(int, bool) bool { return false }
func (p *poller) remove(int)            {}
func (p *poller) close()                {}
