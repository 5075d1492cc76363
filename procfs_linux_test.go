package ipvs

import (
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestNetNS creates a network namespace holding only lo (down), for the
// /proc tests; it skips the test where namespaces cannot be created.
func newTestNetNS(t *testing.T) *netns {
	t.Helper()
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer home.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		// Back home before answering, or the thread (perhaps the main
		// one, whose namespace /proc/self/net shows) stays locked.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Skipf("cannot create a network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.f.Close() })
	ns, err := openNetNS(options{netnsFD: int(r.f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.f.Close() })
	return ns
}

func readProc(t *testing.T, c *client, path string) string {
	t.Helper()
	f, err := c.openProc(path, os.O_RDONLY)
	if err != nil {
		t.Fatalf("openProc(%q): %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// interfaces lists the interface names of a /proc/net/dev text.
func interfaces(dev string) []string {
	var names []string
	for _, l := range strings.Split(dev, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// hostRead reads a /proc file from a thread in the process's namespace.
func hostRead(t *testing.T, name string) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenProcNetNS: a client's /proc/net and /proc/sys/net files are its
// namespace's, read and written from any goroutine; the calling thread's
// namespace and every other thread's stay as they were.
func TestOpenProcNetNS(t *testing.T) {
	ns := newTestNetNS(t)
	c := newClientWith(1, nil)
	c.proc = netnsProcOpener(ns)
	if got := interfaces(readProc(t, c, "net/dev")); len(got) == 0 || got[0] != "lo" {
		t.Errorf("/proc/net/dev of a new namespace lists %q, want lo first", got)
	}
	// A per-namespace sysctl written through the client changes the
	// client's namespace only.
	const ttl = "sys/net/ipv4/ip_default_ttl"
	hostTTL := hostRead(t, "/proc/"+ttl)
	want := "77\n"
	if hostTTL == want {
		want = "78\n"
	}
	f, err := c.openProc(ttl, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(want); err != nil {
		t.Fatalf("writing %s in the client's namespace: %v", ttl, err)
	}
	f.Close()
	if got := readProc(t, c, ttl); got != want {
		t.Errorf("%s in the client's namespace = %q, want %q", ttl, got, want)
	}
	if got := hostRead(t, "/proc/"+ttl); got != hostTTL {
		t.Errorf("%s in the process's namespace changed from %q to %q", ttl, hostTTL, got)
	}

	// Every thread is back home: the main thread's namespace is what
	// /proc/self/net shows.
	self0, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		readProc(t, c, "net/dev")
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if l, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && l != self0 {
			t.Errorf("thread %s left in namespace %s, the process's is %s (test ns %d)", task.Name(), l, self0, ns.ino)
		}
	}

	// A client of the caller's own namespace (opener without setns).
	self, err := openNetNS(options{})
	if err != nil || self == nil {
		t.Fatalf("openNetNS: %v", err)
	}
	defer self.f.Close()
	c2 := newClientWith(1, nil)
	c2.proc = netnsProcOpener(self)
	host := hostRead(t, "/proc/thread-self/net/dev")
	if got, want := interfaces(readProc(t, c2, "net/dev")), interfaces(host); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("/proc/net/dev of the caller's namespace lists %q, want %q", got, want)
	}

	// A closed client opens nothing.
	c.close()
	if _, err := c.openProc("net/dev", os.O_RDONLY); err != ErrClosed {
		t.Errorf("openProc on a closed client: %v, want ErrClosed", err)
	}
}
