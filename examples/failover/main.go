// Command failover reproduces the article's redundant pair: two load
// balancers with the same IPVS rules, whose sync daemons copy the primary's
// connection entries to the backup, so that a TCP connection survives when
// the VIP moves to the backup.
//
// It uses direct routing (DR). With DR, the backends answer the client
// directly and the load balancer only picks the backend: all that the backup
// needs to carry on a connection is the connection entry (client address and
// port to backend), which is exactly what the sync daemon transfers. With
// NAT the backends' default route would also have to follow the VIP, and
// the kernel's connection tracking state would have to be synced too.
//
// Steps: the primary (lb, 10.0.0.2) holds the VIP; the sync daemon runs as
// master on lb and as backup on lb2 (10.0.0.3), multicasting over the shared
// server segment (eth0). The client opens one TCP connection to
// 10.0.1.1:80, where the backends run a line-echo server, and talks over it;
// the program waits until the entry appears in lb2's table. Then the primary
// fails (its eth0 goes down), lb2 takes the VIP and announces it with a
// gratuitous ARP, so the router sends the VIP's packets to lb2, and the
// client sends more lines over the same connection. The program exits 0
// only if they are answered by the same backend.
//
// With -pitfall no sync daemon runs: the backup does not know the
// connection and the program checks that it breaks.
//
// Run as root on a kernel with IPVS. Everything happens in network
// namespaces that are deleted at the end; see ../README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/examples/internal/lab"
)

var (
	pitfall  = flag.Bool("pitfall", false, "run no sync daemons, and check that the connection breaks at the failover")
	syncWait = flag.Duration("sync-wait", 15*time.Second, "how long to wait for the connection entry to reach the backup")
)

func main() {
	flag.Parse()
	lab.Run("failover", 3*time.Minute, run)
}

func run(ctx context.Context, l *lab.Lab) error {
	t, err := l.BuildTopology(lab.RouterSrv, true)
	if err != nil {
		return err
	}
	primary, backup := t.LB, t.Backup

	l.Section("backends (DR): the VIP on lo, hidden from ARP; a line-echo server on port 80")
	for i, b := range t.Backends {
		if err := b.AddrAdd("lo", lab.VIP+"/32"); err != nil {
			return err
		}
		for _, kv := range [][2]string{
			{"net.ipv4.conf.all.arp_ignore", "1"},
			{"net.ipv4.conf.lo.arp_ignore", "1"},
			{"net.ipv4.conf.all.arp_announce", "2"},
			{"net.ipv4.conf.lo.arp_announce", "2"},
		} {
			if err := b.Sysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		if err := b.ServeEcho(":80", fmt.Sprintf("backend %d", i+1)); err != nil {
			return err
		}
	}

	svc := ipvs.Service{
		Protocol:  ipvs.TCP,
		Address:   netip.MustParseAddr(lab.VIP),
		Port:      80,
		Scheduler: ipvs.RoundRobin,
	}
	clients := map[*lab.NS]*ipvs.Client{}
	for _, lb := range []*lab.NS{primary, backup} {
		l.Section("IPVS rules on %s (the same on both load balancers)", lb.Role)
		c, err := lb.IPVS()
		if err != nil {
			return err
		}
		clients[lb] = c
		// ipvsadm -A -t 10.0.1.1:80 -s rr
		l.Cmd(lb, "ipvsadm -A -t 10.0.1.1:80 -s rr")
		if err := c.CreateService(ctx, svc); err != nil {
			return err
		}
		l.Defer(func() {
			// ipvsadm -D -t 10.0.1.1:80
			l.Cmd(lb, "ipvsadm -D -t 10.0.1.1:80")
			if err := c.DeleteService(context.Background(), svc); err != nil {
				l.Printf("warning: %v\n", err)
			}
		})
		for _, ip := range lab.BackendIPs {
			// ipvsadm -a -t 10.0.1.1:80 -r 10.0.2.N:80 -g
			l.Cmd(lb, "ipvsadm -a -t 10.0.1.1:80 -r %s:80 -g", ip)
			if err := c.CreateDestination(ctx, svc, ipvs.Destination{
				Address:       netip.MustParseAddr(ip),
				Port:          80,
				ForwardMethod: ipvs.DR,
				Weight:        1,
			}); err != nil {
				return err
			}
		}
	}
	cp, cb := clients[primary], clients[backup]

	l.Section("connection synchronisation over the server segment (eth0)")
	if *pitfall {
		l.Printf("# pitfall: no sync daemons\n")
	} else {
		// ipvsadm --start-daemon master --mcast-interface eth0 --syncid 1
		l.Cmd(primary, "ipvsadm --start-daemon master --mcast-interface eth0 --syncid 1")
		if err := cp.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "eth0", SyncID: 1}); err != nil {
			return err
		}
		l.Defer(func() {
			// ipvsadm --stop-daemon master
			l.Cmd(primary, "ipvsadm --stop-daemon master")
			if err := cp.StopSyncDaemon(context.Background(), ipvs.Master); err != nil {
				l.Printf("warning: %v\n", err)
			}
		})
		// ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 1
		l.Cmd(backup, "ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 1")
		if err := cb.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "eth0", SyncID: 1}); err != nil {
			return err
		}
		l.Defer(func() {
			// ipvsadm --stop-daemon backup
			l.Cmd(backup, "ipvsadm --stop-daemon backup")
			if err := cb.StopSyncDaemon(context.Background(), ipvs.Backup); err != nil {
				l.Printf("warning: %v\n", err)
			}
		})
		for _, lb := range []*lab.NS{primary, backup} {
			// ipvsadm -L --daemon
			l.Cmd(lb, "ipvsadm -L --daemon")
			ds, err := clients[lb].SyncDaemons(ctx)
			if err != nil {
				return err
			}
			for _, d := range ds {
				l.Printf("%s sync daemon (mcast=%s, syncid=%d, maxlen=%d, group=%v, port=%d, ttl=%d)\n",
					d.State, d.Interface, d.SyncID, d.MaxLength, d.Group, d.Port, d.TTL)
			}
		}
	}

	l.Section("the primary takes the VIP")
	if err := primary.AddrAdd("eth0", lab.VIP+"/32"); err != nil {
		return err
	}
	if err := primary.GratuitousARP("eth0", lab.VIP); err != nil {
		return err
	}

	l.Section("client: one long-lived TCP connection through the primary")
	l.Cmd(t.Client, "nc %s 80", lab.VIP)
	conn, err := t.Client.Dial(ctx, lab.VIP+":80")
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	l.Printf("# connected from %v\n", local)
	r := bufio.NewReader(conn)
	talk := func(line string) (string, error) {
		l.Printf("> %s\n", line)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
			return "", err
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		reply = strings.TrimSuffix(reply, "\n")
		l.Printf("< %s\n", reply)
		return reply, nil
	}
	var backend string
	for i := 1; i <= 3; i++ {
		reply, err := talk(fmt.Sprintf("line %d via the primary", i))
		if err != nil {
			return fmt.Errorf("before the failover: %w", err)
		}
		b, _, _ := strings.Cut(reply, ":")
		if backend != "" && b != backend {
			return fmt.Errorf("one connection answered by %s and %s", backend, b)
		}
		backend = b
	}
	mine := func(c lab.Conn) bool {
		return c.Client == netip.AddrPortFrom(netip.MustParseAddr(lab.ClientIP), local.Port()) && c.Virtual.Port() == 80
	}
	if _, err := primary.ListConnections(); err != nil {
		return err
	}

	if !*pitfall {
		l.Section("waiting for the connection entry to reach the backup")
		deadline := time.Now().Add(*syncWait)
		found := false
		for !found && time.Now().Before(deadline) && ctx.Err() == nil {
			conns, err := backup.Connections()
			if err != nil {
				return err
			}
			for _, c := range conns {
				found = found || mine(c)
			}
			if !found {
				time.Sleep(250 * time.Millisecond)
			}
		}
		conns, err := backup.ListConnections()
		if err != nil {
			return err
		}
		if !found && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !found {
			return fmt.Errorf("the connection from %v did not reach the backup's table within %v", local, *syncWait)
		}
		for _, c := range conns {
			if mine(c) {
				l.Printf("# the backup has the entry for %v -> %v, installed by its sync daemon (origin %s)\n", c.Client, c.Dest, c.Origin)
			}
		}
	} else {
		conns, err := backup.ListConnections()
		if err != nil {
			return err
		}
		for _, c := range conns {
			if mine(c) {
				return errors.New("pitfall: the backup knows the connection although no sync daemon runs")
			}
		}
	}

	l.Section("failover: the primary fails, the backup takes the VIP")
	if _, err := l.ShowARPOwner(t, lab.VIP); err != nil {
		return err
	}
	if err := primary.LinkDown("eth0"); err != nil {
		return err
	}
	if err := backup.AddrAdd("eth0", lab.VIP+"/32"); err != nil {
		return err
	}
	if err := backup.GratuitousARP("eth0", lab.VIP); err != nil {
		return err
	}
	after, err := l.ShowARPOwner(t, lab.VIP)
	if err != nil {
		return err
	}
	if after.NS != backup {
		return fmt.Errorf("after the gratuitous ARP the router still sends the VIP to %s", after)
	}

	l.Section("client: the same TCP connection, now through the backup")
	var failed error
	for i := 4; i <= 6; i++ {
		reply, err := talk(fmt.Sprintf("line %d via the backup", i))
		if err != nil {
			failed = err
			l.Printf("  (failed: %v)\n", err)
			break
		}
		if b, _, _ := strings.Cut(reply, ":"); b != backend {
			return fmt.Errorf("after the failover the connection was answered by %s, not %s", b, backend)
		}
	}
	if _, err := backup.ListConnections(); err != nil {
		return err
	}
	if err := backup.ListIPVS(ctx, cb); err != nil {
		return err
	}

	l.Section("verdict")
	if *pitfall {
		if failed == nil {
			return errors.New("pitfall NOT reproduced: the connection survived the failover without sync daemons")
		}
		l.Printf("Pitfall reproduced: without the sync daemon the connection broke at the failover (%v).\n"+
			"The backup had no entry for it, and IPVS schedules only new connections (SYN), so the\n"+
			"packet went to the backup's own TCP stack, which has no such connection and resets it.\n", failed)
		l.Outcome = "pitfall reproduced"
		return nil
	}
	if failed != nil {
		return fmt.Errorf("the connection did not survive the failover: %w", failed)
	}
	l.Printf("The TCP connection from %v survived the failover: the backup forwarded it to %s\n"+
		"using the entry its sync daemon had received from the primary.\n", local, backend)
	return nil
}
