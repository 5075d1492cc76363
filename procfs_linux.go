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

// procOpener opens path, a /proc path without the leading "/proc/" (for
// example "net/ip_vs_conn" or "sys/net/ipv4/vs/conntrack"), in a client's
// network namespace. "net/..." is opened under /proc/thread-self, "sys/..."
// under /proc (sysctls follow the namespace of the thread that opens them).
type procOpener func(path string, flag int) (*os.File, error)

// netnsProcOpener returns the procOpener for ns (nil: the namespace of
// whichever thread opens, normally the process's). A thread already in ns
// opens the file itself, so a client of the namespace it runs in needs no
// CAP_SYS_ADMIN. Otherwise a goroutine locked to its thread enters ns with
// setns(2), opens the file and returns to the thread's namespace before it
// unlocks; if it cannot return, it stays locked and the thread ends with
// it. No other goroutine ever runs in a namespace it did not ask for.
//
// The thread goes back rather than being thrown away because it may be the
// process's main thread, which the runtime never ends, and whose namespace
// is what /proc/self/net shows.
func netnsProcOpener(ns *netns) procOpener {
	return func(path string, flag int) (*os.File, error) {
		name := "/proc/thread-self/" + path
		if strings.HasPrefix(path, "sys/") {
			name = "/proc/" + path
		}
		runtime.LockOSThread()
		if ns == nil || ns.current() {
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
			runtime.LockOSThread()
			f, err := openIn(ns, name, flag)
			done <- result{f, err}
		}()
		r := <-done
		return r.f, r.err
	}
}

// openIn opens name in ns from the calling thread, which must be locked,
// and unlocks it once the thread is back in its own namespace.
func openIn(ns *netns, name string, flag int) (*os.File, error) {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer home.Close()
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, &netnsError{os.NewSyscallError("setns", err)}
	}
	f, err := os.OpenFile(name, flag|syscall.O_CLOEXEC, 0)
	if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	return f, err
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
