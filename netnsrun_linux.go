package ipvs

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// runInNetNS runs fn on a thread in ns (nil: the calling thread's), as
// Client.InNetNS describes, and returns fn's error or the failure to enter
// ns. A thread already in ns runs fn itself. Otherwise a goroutine locked
// to its thread enters ns with setns(2), runs fn and returns to the
// thread's own namespace before it unlocks; if it cannot return, it stays
// locked and the thread ends with it. It goes back rather than being
// thrown away because it may be the process's main thread, which the
// runtime never ends and whose namespace is what /proc/self/net shows.
func runInNetNS(ns *netns, fn func() error) error {
	runtime.LockOSThread()
	if ns == nil || ns.current() {
		defer runtime.UnlockOSThread()
		return fn()
	}
	runtime.UnlockOSThread()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- &netnsError{err}
			return
		}
		defer home.Close()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- &netnsError{os.NewSyscallError("setns", err)}
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
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
