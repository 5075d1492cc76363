// Package lab builds the article's IPVS labs out of network namespaces: it
// creates namespaces, veth pairs, a bridge, addresses, routes and sysctls,
// sends gratuitous ARP, and runs HTTP and echo backends and clients inside
// the namespaces, all from Go (no ip, sysctl, arping or curl). As it goes it
// prints the shell commands of the article that each step stands for.
//
// Everything a Lab makes lives in namespaces it created; nothing is ever
// added to the caller's own network namespace, and no namespace is connected
// to it. Close deletes the namespaces and with them every link, address,
// route and IPVS rule inside.
package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces are bind-mounted, as "ip netns add"
// does, so that "ip netns exec NAME ..." can look inside while a lab runs.
const NetnsDir = "/run/netns"

// A Lab is a set of network namespaces and everything in them.
type Lab struct {
	// Name is the lab's name, such as "nat".
	Name string
	// ID is the random suffix that makes the namespace names unique.
	ID string
	// Out receives the narration and the commands.
	Out io.Writer
	// Outcome, if set, is printed after "OK" on the result line, such as
	// "pitfall reproduced".
	Outcome string

	mu       sync.Mutex
	nss      []*NS
	cleanups []func()
}

// New starts a lab. Its namespaces are called ipvslab-NAME-ID-ROLE.
func New(name string, out io.Writer) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces")
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &Lab{Name: name, ID: hex.EncodeToString(b[:]), Out: out}, nil
}

// Printf narrates.
func (l *Lab) Printf(format string, args ...any) {
	fmt.Fprintf(l.Out, format, args...)
}

// Section prints a heading.
func (l *Lab) Section(format string, args ...any) {
	fmt.Fprintf(l.Out, "\n== "+format+"\n", args...)
}

// Cmd prints the shell command that the next step performs, in namespace ns
// (nil for a command run outside any namespace, such as "ip netns add").
func (l *Lab) Cmd(ns *NS, format string, args ...any) {
	c := fmt.Sprintf(format, args...)
	if ns != nil {
		c = "ip netns exec " + ns.Role + " " + c
	}
	fmt.Fprintf(l.Out, "$ %s\n", c)
}

// Defer registers fn to run at Close, before the namespaces are deleted, in
// reverse order of registration.
func (l *Lab) Defer(fn func()) {
	l.mu.Lock()
	l.cleanups = append(l.cleanups, fn)
	l.mu.Unlock()
}

// Close runs the deferred functions and deletes every namespace of the lab.
// It is safe to call more than once.
func (l *Lab) Close() {
	l.mu.Lock()
	cleanups, nss := l.cleanups, l.nss
	l.cleanups, l.nss = nil, nil
	l.mu.Unlock()
	if len(cleanups) == 0 && len(nss) == 0 {
		return
	}
	l.Section("cleanup")
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		n := nss[i]
		l.Cmd(nil, "ip netns del %s", n.Role)
		if err := n.delete(); err != nil {
			l.Printf("warning: deleting namespace %s: %v\n", n.Name, err)
		}
	}
}

// An NS is one network namespace of a lab, such as the load balancer's.
type NS struct {
	// Role is the short name the printed commands use, such as "lb".
	Role string
	// Name is the namespace's unique name under NetnsDir.
	Name string
	// Path is the namespace's bind mount, for ipvs.WithNetNSPath.
	Path string

	lab *Lab
	fd  netns.NsHandle
	nl  *netlink.Handle
}

// AddNS creates a namespace for role, brings its loopback up, and registers
// it for deletion at Close.
func (l *Lab) AddNS(role string) (*NS, error) {
	name := fmt.Sprintf("ipvslab-%s-%s-%s", l.Name, l.ID, role)
	path := filepath.Join(NetnsDir, name)
	l.Cmd(nil, "ip netns add %s", role)
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, err
	}
	f.Close()
	// unshare and bind-mount on a thread of its own, which then dies with
	// its goroutine rather than go back to the pool in the new namespace.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mounting the namespace on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return nil, err
	}
	n := &NS{Role: role, Name: name, Path: path, lab: l}
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.mu.Unlock()
	if n.fd, err = netns.GetFromPath(path); err != nil {
		return nil, err
	}
	if n.nl, err = netlink.NewHandleAt(n.fd); err != nil {
		return nil, err
	}
	lo, err := n.nl.LinkByName("lo")
	if err != nil {
		return nil, err
	}
	if err := n.nl.LinkSetUp(lo); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *NS) delete() error {
	if n.nl != nil {
		n.nl.Close()
	}
	if n.fd.IsOpen() {
		n.fd.Close()
	}
	if err := unix.Unmount(n.Path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	if err := os.Remove(n.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Do runs fn on an OS thread that has entered the namespace. Sockets fn
// opens belong to the namespace for their whole life, whichever goroutine
// uses them later. The thread is discarded afterwards.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine,
		// so no other goroutine ever runs in the namespace by accident.
		runtime.LockOSThread()
		if err := netns.Set(n.fd); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", n.Role, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Sysctl sets a net.* sysctl inside the namespace, such as
// Sysctl("net.ipv4.ip_forward", "1"), by writing /proc/sys from a thread in
// the namespace (/proc/sys/net shows the writer's network namespace).
func (n *NS) Sysctl(key, value string) error {
	n.lab.Cmd(n, "sysctl -w %s=%s", key, value)
	return n.Do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
}

// ReadProcNet reads a file of /proc/net, such as "ip_vs_conn", as seen from
// inside the namespace. (/proc/net is /proc/self/net, the namespace of the
// process's main thread; /proc/thread-self/net is the calling thread's.)
func (n *NS) ReadProcNet(name string) (string, error) {
	var b []byte
	err := n.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	})
	return string(b), err
}
