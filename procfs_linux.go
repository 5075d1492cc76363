package ipvs

import (
	"os"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// What the kernel has outside generic netlink (the connection table, the
// global statistics, the sysctls) is in /proc, and a /proc/net or
// /proc/sys/net file shows the namespace of the thread that opened it, for
// as long as it stays open. openProc opens such a file in the client's
// namespace.

// procOpener opens path, relative to /proc/thread-self (for example
// "net/ip_vs_conn") or, for a path under "sys/", to /proc (for example
// "sys/net/ipv4/vs/conntrack": /proc/sys shows the namespace of the thread
// that looks a file up, and /proc/thread-self has no sys), in a client's
// network namespace.
type procOpener func(path string, flag int) (*os.File, error)

// netnsProcOpener returns the procOpener for ns (nil: the namespace of
// whichever thread opens, normally the process's). A thread already in ns
// opens the file itself, so a client of the namespace it runs in needs no
// CAP_SYS_ADMIN; otherwise a new thread enters ns with setns(2), opens the
// file and is thrown away with its goroutine, so that no other goroutine
// ever runs in a namespace it did not ask for.
func netnsProcOpener(ns *netns) procOpener {
	return func(path string, flag int) (*os.File, error) {
		name := "/proc/thread-self/" + path
		if strings.HasPrefix(path, "sys/") {
			name = "/proc/" + path
		}
		if ns == nil {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			return os.OpenFile(name, flag|syscall.O_CLOEXEC, 0)
		}
		runtime.LockOSThread()
		if ns.current() {
			defer runtime.UnlockOSThread()
			return os.OpenFile(name, flag|syscall.O_CLOEXEC, 0)
		}
		runtime.UnlockOSThread()
		type result struct {
			f   *os.File
			err error
		}
		done := make(chan result, 1)
		go func() {
			// Never unlocked: the thread, now in ns, exits with the
			// goroutine instead of going back to the scheduler.
			runtime.LockOSThread()
			if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
				done <- result{err: &netnsError{os.NewSyscallError("setns", err)}}
				return
			}
			f, err := os.OpenFile(name, flag|syscall.O_CLOEXEC, 0)
			done <- result{f, err}
		}()
		r := <-done
		return r.f, r.err
	}
}

// openProc opens a /proc file in the client's namespace.
func (c *client) openProc(path string, flag int) (*os.File, error) {
	if c.proc == nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOSYS}
	}
	var f *os.File
	err := c.inNetNS(func() (err error) {
		f, err = c.proc(path, flag)
		return err
	})
	return f, err
}
