package lab

import "fmt"

// The article's addresses.
const (
	ClientIP   = "192.168.88.2"
	RouterIP   = "192.168.88.1" // the router's client side
	RouterSrv  = "10.0.0.1"     // the router's server side
	LBIP       = "10.0.0.2"
	BackupLBIP = "10.0.0.3" // the second load balancer of the failover lab
	VIP        = "10.0.1.1"
	Backend1IP = "10.0.2.1"
	Backend2IP = "10.0.2.2"
)

// Topology is the article's network, one namespace per machine:
//
//	client  eth0 192.168.88.2/24, default via 192.168.88.1
//	   |  (veth)
//	router  eth0 192.168.88.1/24, eth1 10.0.0.1/16, ip_forward=1
//	   |  (veth)
//	switch  bridge br0: the server segment, 10.0.0.0/16
//	   |-- lb        eth0 10.0.0.2/16, VIP 10.0.1.1/32 added by the lab
//	   |-- lb2       eth0 10.0.0.3/16 (failover lab only)
//	   |-- backend1  eth0 10.0.2.1/16
//	   `-- backend2  eth0 10.0.2.2/16
//
// The load balancer, the backends and the router's 10.0.0.1 share one L2
// segment, as direct routing requires, and one /16 prefix, so that the VIP
// 10.0.1.1 is on-link for the router: the router reaches it by ARP, which is
// what the ARP pitfalls and the gratuitous ARP are about. The load balancers'
// default route is the router, so that NAT replies reach the client; the
// backends' default route is chosen by each lab (the load balancer for NAT,
// the router otherwise). The switch namespace holds only the bridge. No
// namespace has a link to anything outside the lab.
type Topology struct {
	Client, Router, Switch, LB *NS
	// Backup is the second load balancer, nil unless asked for.
	Backup   *NS
	Backends [2]*NS
}

// BackendIPs are the backends' addresses, in the order of Topology.Backends.
var BackendIPs = [2]string{Backend1IP, Backend2IP}

// BuildTopology creates the article's namespaces and links. backendGW is the
// backends' default gateway; withBackup adds the second load balancer.
func (l *Lab) BuildTopology(backendGW string, withBackup bool) (*Topology, error) {
	var t Topology
	l.Section("topology: namespaces %s-ROLE under %s", "ipvslab-"+l.Name+"-"+l.ID, NetnsDir)
	steps := []func() error{
		func() (err error) { t.Client, err = l.AddNS("client"); return },
		func() (err error) { t.Router, err = l.AddNS("router"); return },
		func() (err error) { t.Switch, err = l.AddNS("switch"); return },
		func() (err error) { t.LB, err = l.AddNS("lb"); return },
		func() (err error) {
			if withBackup {
				t.Backup, err = l.AddNS("lb2")
			}
			return
		},
		func() (err error) { t.Backends[0], err = l.AddNS("backend1"); return },
		func() (err error) { t.Backends[1], err = l.AddNS("backend2"); return },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}

	l.Section("client <-> router")
	if err := l.Veth(t.Client, "eth0", t.Router, "eth0"); err != nil {
		return nil, err
	}
	do := func(fns ...func() error) error {
		for _, fn := range fns {
			if err := fn(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := do(
		func() error { return t.Client.AddrAdd("eth0", ClientIP+"/24") },
		func() error { return t.Client.DefaultRoute(RouterIP) },
		func() error { return t.Router.AddrAdd("eth0", RouterIP+"/24") },
	); err != nil {
		return nil, err
	}

	l.Section("server segment: a bridge in the switch namespace")
	if err := t.Switch.Bridge("br0"); err != nil {
		return nil, err
	}
	// plug connects ns's dev to a port of the bridge named after ns.
	plug := func(ns *NS, dev, cidr, gw string) error {
		if err := l.Veth(ns, dev, t.Switch, ns.Role); err != nil {
			return err
		}
		if err := t.Switch.SetMaster(ns.Role, "br0"); err != nil {
			return err
		}
		if err := ns.AddrAdd(dev, cidr); err != nil {
			return err
		}
		if gw != "" {
			return ns.DefaultRoute(gw)
		}
		return nil
	}
	if err := plug(t.Router, "eth1", RouterSrv+"/16", ""); err != nil {
		return nil, err
	}
	if err := t.Router.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, err
	}
	if err := plug(t.LB, "eth0", LBIP+"/16", RouterSrv); err != nil {
		return nil, err
	}
	if t.Backup != nil {
		if err := plug(t.Backup, "eth0", BackupLBIP+"/16", RouterSrv); err != nil {
			return nil, err
		}
	}
	for i, b := range t.Backends {
		if err := plug(b, "eth0", BackendIPs[i]+"/16", backendGW); err != nil {
			return nil, fmt.Errorf("backend %d: %w", i+1, err)
		}
	}
	return &t, nil
}

// An Owner is the answer to "whom does the router send an address's packets
// to": the MAC address in the router's ARP table, and the namespace whose
// server-segment interface has that address.
type Owner struct {
	IP    string
	MAC   string
	State string
	NS    *NS // nil if no entry or an unknown MAC
}

func (o Owner) String() string {
	if o.MAC == "" {
		return fmt.Sprintf("router: no ARP entry for %s", o.IP)
	}
	who := "an unknown host"
	if o.NS != nil {
		who = o.NS.Role
	}
	return fmt.Sprintf("router: %s lladdr %s %s  (that is %s's eth0)", o.IP, o.MAC, o.State, who)
}

// ShowARPOwner prints the command that shows the router's ARP entry for ip,
// looks it up with ARPOwner and prints the answer.
func (l *Lab) ShowARPOwner(t *Topology, ip string) (Owner, error) {
	l.Cmd(t.Router, "ip neigh show %s", ip)
	o, err := ARPOwner(t, ip)
	if err != nil {
		return o, err
	}
	l.Printf("%s\n", o)
	return o, nil
}

// ARPOwner looks ip up in the router's ARP table and tells which machine of
// the server segment the MAC address belongs to.
func ARPOwner(t *Topology, ip string) (Owner, error) {
	o := Owner{IP: ip}
	mac, state, err := t.Router.Neighbour(ip)
	if err != nil || mac == nil {
		return o, err
	}
	o.MAC, o.State = mac.String(), state
	for _, ns := range []*NS{t.LB, t.Backup, t.Backends[0], t.Backends[1]} {
		if ns == nil {
			continue
		}
		m, err := ns.HardwareAddr("eth0")
		if err != nil {
			return o, err
		}
		if m.String() == o.MAC {
			o.NS = ns
		}
	}
	return o, nil
}
