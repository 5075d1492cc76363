package ipvs

import (
	"os"
	"strings"
	"syscall"
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
// whichever thread opens, normally the process's). The file is opened by
// runInNetNS: a thread already in ns opens it itself, so a client of the
// namespace it runs in needs no CAP_SYS_ADMIN; no other goroutine ever runs
// in a namespace it did not ask for.
func netnsProcOpener(ns *netns) procOpener {
	return func(path string, flag int) (f *os.File, err error) {
		name := "/proc/thread-self/" + path
		if strings.HasPrefix(path, "sys/") {
			name = "/proc/" + path
		}
		nsErr := runInNetNS(ns, func() error {
			f, err = os.OpenFile(name, flag|syscall.O_CLOEXEC, 0)
			return nil
		})
		if nsErr != nil {
			return nil, nsErr
		}
		return f, err
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
