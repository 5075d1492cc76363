package ipvs

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// runInNetNS runs fn on a thread in ns (nil: the calling thread's), as
// Client.InNetNS describes, and returns fn's error or the failure to enter
// ns.
func runInNetNS(ns *netns, fn func() error) error {
	runtime.LockOSThread()
	if ns == nil || ns.current() {
		defer runtime.UnlockOSThread()
		return fn()
	}
	runtime.UnlockOSThread()
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in ns, exits with the goroutine
		// instead of going back to the scheduler.
		runtime.LockOSThread()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			done <- &netnsError{os.NewSyscallError("setns", err)}
			return
		}
		done <- fn()
	}()
	return <-done
}

func (c *client) inNetNSCall(fn func() error) error {
	run := c.runNS
	if run == nil { // a test's client: the calling thread's namespace
		run = func(fn func() error) error { return runInNetNS(nil, fn) }
	}
	var fnErr error
	err := c.inNetNS(func() error {
		return run(func() error {
			fnErr = fn()
			return nil
		})
	})
	if err != nil {
		return &Error{Op: "enter network namespace", Err: err}
	}
	return fnErr
}
