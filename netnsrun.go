package ipvs

// InNetNS calls fn on an OS thread that is in the Client's network namespace
// and returns fn's error. A socket fn opens belongs to that namespace for its
// whole life, whichever goroutine uses it later: this is how a program that
// runs elsewhere dials, listens or runs a command from the load balancer's
// namespace (the healthcheck package opens its check sockets so).
//
// If the calling thread is already in the namespace (a Client made by New
// without options, used from the same namespace), fn runs on it, locked to
// the calling goroutine. Otherwise a new thread enters the namespace with
// setns(2), which needs CAP_SYS_ADMIN, runs fn and is then discarded, so that
// no other goroutine ever runs in a namespace it did not ask for. fn must
// not unlock the thread (runtime.UnlockOSThread) and should be quick:
// goroutines it starts run in whatever namespace their threads are in.
//
// A failure to enter the namespace, or a closed Client, is an *Error;
// fn's own error is returned as it is.
func (c *Client) InNetNS(fn func() error) error { return c.c.inNetNSCall(fn) }
