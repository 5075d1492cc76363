//go:build linux

package prometheus

// Small helpers for the real-kernel test: a network namespace of its own,
// links and addresses over rtnetlink, ipvsadm inside the namespace. (The
// root module's test helpers cannot be imported.)

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

type netNS struct {
	f  *os.File
	fd int
}

// newNetNS creates a network namespace with lo up. It skips the test when
// the process cannot (not root).
func newNetNS(t *testing.T) *netNS {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("the real-kernel test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), running as uid %d", uid)
	}
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread stays in the new namespace and ends
		// with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: os.NewSyscallError("unshare(CLONE_NEWNET)", err)}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		if errors.Is(r.err, os.ErrPermission) {
			t.Skipf("cannot create a network namespace: %v", r.err)
		}
		t.Fatalf("creating a network namespace: %v", r.err)
	}
	t.Cleanup(func() { _ = r.f.Close() })
	ns := &netNS{f: r.f, fd: int(r.f.Fd())}
	ns.linkUp(t, "lo")
	return ns
}

// do runs fn on a thread in the namespace.
func (ns *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see newNetNS
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- os.NewSyscallError("setns", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func (ns *netNS) rtnl(t *testing.T, typ int, flags netlink.HeaderFlags, hdr []byte, attrs func(*netlink.AttributeEncoder)) []netlink.Message {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	if attrs != nil {
		attrs(ae)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatalf("encoding rtnetlink attributes: %v", err)
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: ns.fd})
	if err != nil {
		t.Fatalf("rtnetlink: %v", err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request | flags},
		Data:   append(hdr, b...),
	})
	if err != nil {
		t.Fatalf("rtnetlink message %d: %v", typ, err)
	}
	return msgs
}

func ifInfoMsg(index, flags, change uint32) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b[4:], index)
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

func (ns *netNS) linkIndex(t *testing.T, name string) uint32 {
	t.Helper()
	// A doit: no NLM_F_ACK, or the ACK would follow in a second datagram.
	for _, m := range ns.rtnl(t, unix.RTM_GETLINK, 0, ifInfoMsg(0, 0, 0), func(ae *netlink.AttributeEncoder) { ae.String(unix.IFLA_IFNAME, name) }) {
		if m.Header.Type == unix.RTM_NEWLINK && len(m.Data) >= 16 {
			return binary.NativeEndian.Uint32(m.Data[4:8])
		}
	}
	t.Fatalf("no link %s", name)
	return 0
}

func (ns *netNS) linkUp(t *testing.T, name string) {
	t.Helper()
	ns.rtnl(t, unix.RTM_NEWLINK, netlink.Acknowledge, ifInfoMsg(ns.linkIndex(t, name), unix.IFF_UP, unix.IFF_UP), nil)
}

// addDummy creates a dummy interface, up, with the IPv4 /32 addresses.
func (ns *netNS) addDummy(t *testing.T, name string, addrs ...string) {
	t.Helper()
	ns.rtnl(t, unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, ifInfoMsg(0, 0, 0), func(ae *netlink.AttributeEncoder) {
		ae.String(unix.IFLA_IFNAME, name)
		ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
			nae.String(unix.IFLA_INFO_KIND, "dummy")
			return nil
		})
	})
	ns.linkUp(t, name)
	idx := ns.linkIndex(t, name)
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		hdr := make([]byte, 8) // struct ifaddrmsg
		hdr[0], hdr[1] = unix.AF_INET, 32
		binary.NativeEndian.PutUint32(hdr[4:], idx)
		ns.rtnl(t, unix.RTM_NEWADDR, netlink.Acknowledge|netlink.Create|netlink.Excl, hdr, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.IFA_LOCAL, a.AsSlice())
			ae.Bytes(unix.IFA_ADDRESS, a.AsSlice())
		})
	}
}

// ipvsadm runs ipvsadm in the namespace and returns its output.
func (ns *netNS) ipvsadm(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("ipvsadm")
	if err != nil {
		for _, p := range []string{"/sbin/ipvsadm", "/usr/sbin/ipvsadm"} {
			if _, err := os.Stat(p); err == nil {
				path = p
			}
		}
	}
	if path == "" {
		t.Fatalf("ipvsadm not found: the VM has it; this test cross-checks with it")
	}
	var stdout, stderr bytes.Buffer
	err = ns.do(func() error {
		cmd := exec.Command(path, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ipvsadm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// echoServer answers each connection's "ping\n" with "pong\n".
func echoServer(ln net.Listener) {
	for {
		cn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer cn.Close()
			_ = cn.SetDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 5)
			if _, err := io.ReadFull(cn, buf); err == nil {
				_, _ = cn.Write([]byte("pong\n"))
			}
		}()
	}
}

// ping makes one connection to addr and exchanges "ping" and "pong".
func ping(addr string) error {
	cn, err := net.DialTimeout("tcp4", addr, 20*time.Second)
	if err != nil {
		return err
	}
	defer cn.Close()
	_ = cn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := cn.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err = io.ReadFull(cn, buf)
	return err
}
