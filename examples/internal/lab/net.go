package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Veth creates a veth pair with one end, aName, in a and the other, bName, in
// b, and brings both up. The pair is created from inside a with its peer
// placed directly in b, so it never appears in any other namespace.
func (l *Lab) Veth(a *NS, aName string, b *NS, bName string) error {
	l.Cmd(a, "ip link add %s type veth peer name %s netns %s", aName, bName, b.Role)
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.fd)),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("%s: adding veth %s: %w", a.Role, aName, err)
	}
	if err := a.LinkUp(aName); err != nil {
		return err
	}
	return b.LinkUp(bName)
}

// LinkUp brings a link up.
func (n *NS) LinkUp(name string) error {
	n.lab.Cmd(n, "ip link set %s up", name)
	link, err := n.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", n.Role, name, err)
	}
	return n.nl.LinkSetUp(link)
}

// LinkDown takes a link down.
func (n *NS) LinkDown(name string) error {
	n.lab.Cmd(n, "ip link set %s down", name)
	link, err := n.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", n.Role, name, err)
	}
	return n.nl.LinkSetDown(link)
}

// Bridge creates a bridge and brings it up.
func (n *NS) Bridge(name string) error {
	n.lab.Cmd(n, "ip link add %s type bridge", name)
	if err := n.nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("%s: adding bridge %s: %w", n.Role, name, err)
	}
	return n.LinkUp(name)
}

// SetMaster enslaves port to bridge.
func (n *NS) SetMaster(port, bridge string) error {
	n.lab.Cmd(n, "ip link set %s master %s", port, bridge)
	p, err := n.nl.LinkByName(port)
	if err != nil {
		return err
	}
	br, err := n.nl.LinkByName(bridge)
	if err != nil {
		return err
	}
	return n.nl.LinkSetMaster(p, br)
}

// AddrAdd adds an address such as "10.0.0.2/16" to a link.
func (n *NS) AddrAdd(dev, cidr string) error {
	n.lab.Cmd(n, "ip addr add %s dev %s", cidr, dev)
	link, addr, err := n.linkAddr(dev, cidr)
	if err != nil {
		return err
	}
	if err := n.nl.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("%s: adding %s to %s: %w", n.Role, cidr, dev, err)
	}
	return nil
}

// AddrDel removes an address from a link.
func (n *NS) AddrDel(dev, cidr string) error {
	n.lab.Cmd(n, "ip addr del %s dev %s", cidr, dev)
	link, addr, err := n.linkAddr(dev, cidr)
	if err != nil {
		return err
	}
	if err := n.nl.AddrDel(link, addr); err != nil {
		return fmt.Errorf("%s: removing %s from %s: %w", n.Role, cidr, dev, err)
	}
	return nil
}

func (n *NS) linkAddr(dev, cidr string) (netlink.Link, *netlink.Addr, error) {
	link, err := n.nl.LinkByName(dev)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", n.Role, dev, err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return nil, nil, err
	}
	return link, addr, nil
}

// DefaultRoute adds "default via gw".
func (n *NS) DefaultRoute(gw string) error {
	n.lab.Cmd(n, "ip route add default via %s", gw)
	ip := net.ParseIP(gw)
	if ip == nil {
		return fmt.Errorf("bad gateway %q", gw)
	}
	if err := n.nl.RouteAdd(&netlink.Route{Gw: ip}); err != nil {
		return fmt.Errorf("%s: default via %s: %w", n.Role, gw, err)
	}
	return nil
}

// EnsureTunl0 makes sure the namespace has the IPIP fallback device tunl0,
// which the ipip module creates in every namespace (unless
// net.core.fb_tunnels_only_for_init_net says otherwise): it receives every
// IPIP packet that no configured tunnel claims.
func (n *NS) EnsureTunl0() error {
	if _, err := n.nl.LinkByName("tunl0"); err == nil {
		return nil
	}
	// Asking for an ipip link loads the ipip module, which makes tunl0; if
	// the fallback device is restricted to the initial namespace, the
	// request itself creates a tunl0 that receives from any address.
	n.lab.Printf("(tunl0 is missing: asking for an ipip link loads the ipip module)\n")
	err := n.nl.LinkAdd(&netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: "tunl0"}})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s: no tunl0 and cannot create it (is the ipip module available?): %w", n.Role, err)
	}
	_, err = n.nl.LinkByName("tunl0")
	return err
}

// HardwareAddr returns a link's MAC address.
func (n *NS) HardwareAddr(dev string) (net.HardwareAddr, error) {
	link, err := n.nl.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", n.Role, dev, err)
	}
	return link.Attrs().HardwareAddr, nil
}

// Neighbour returns the MAC address of ip in the namespace's ARP table, and
// its state (such as "REACHABLE"), or a nil address if there is no entry.
func (n *NS) Neighbour(ip string) (net.HardwareAddr, string, error) {
	want := net.ParseIP(ip)
	neighs, err := n.nl.NeighList(0, unix.AF_INET)
	if err != nil {
		return nil, "", err
	}
	for _, ne := range neighs {
		if ne.IP.Equal(want) && len(ne.HardwareAddr) > 0 {
			return ne.HardwareAddr, neighState(ne.State), nil
		}
	}
	return nil, "", nil
}

func neighState(s int) string {
	switch s {
	case netlink.NUD_REACHABLE:
		return "REACHABLE"
	case netlink.NUD_STALE:
		return "STALE"
	case netlink.NUD_DELAY:
		return "DELAY"
	case netlink.NUD_PROBE:
		return "PROBE"
	case netlink.NUD_FAILED:
		return "FAILED"
	case netlink.NUD_PERMANENT:
		return "PERMANENT"
	case netlink.NUD_INCOMPLETE:
		return "INCOMPLETE"
	case netlink.NUD_NOARP:
		return "NOARP"
	}
	return fmt.Sprintf("state %#x", s)
}

// GratuitousARP broadcasts an unsolicited ARP request for ip from dev
// ("arping -c 1 -U -I dev ip"): the sender and target address are both ip,
// so every host on the segment that already has an ARP entry for ip points
// it at dev's MAC address. It uses a raw AF_PACKET socket opened inside the
// namespace.
func (n *NS) GratuitousARP(dev, ip string) error {
	n.lab.Cmd(n, "arping -c 1 -U -I %s %s", dev, ip)
	link, err := n.nl.LinkByName(dev)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return fmt.Errorf("bad IPv4 address %q", ip)
	}
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("%s has no Ethernet address", dev)
	}
	frame := arpFrame(mac, addr.As4())
	return n.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return os.NewSyscallError("socket(AF_PACKET)", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{
			Protocol: htons(unix.ETH_P_ARP),
			Ifindex:  link.Attrs().Index,
			Halen:    6,
			Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		}
		// Three copies, a short while apart, as arping -U -c 3 would.
		for i := 0; i < 3; i++ {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return os.NewSyscallError("sendto", err)
			}
		}
		return nil
	})
}

// arpFrame builds an Ethernet frame carrying a gratuitous ARP request:
// who-has ip tell ip, from mac, to the broadcast address.
func arpFrame(mac net.HardwareAddr, ip [4]byte) []byte {
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // destination
	f = append(f, mac...)                             // source
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // hardware type Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // protocol type IPv4
	f = append(f, 6, 4)                          // address lengths
	f = binary.BigEndian.AppendUint16(f, 1)      // request
	f = append(f, mac...)                        // sender MAC
	f = append(f, ip[:]...)                      // sender IP
	f = append(f, 0, 0, 0, 0, 0, 0)              // target MAC, unknown
	f = append(f, ip[:]...)                      // target IP, the same
	return f
}

// htons converts v to network byte order, as the socket API wants the
// protocol number.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
