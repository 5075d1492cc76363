//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/ipvs-go/ipvs"
)

// workload is the table every implementation builds: n TCP services on
// 10.0.0.0/9 port 80, scheduler rr, each with m NAT destinations on
// 10.128.0.0/9 port 8080, created with weight 1 and updated to weight 2.
// No packet is ever sent to these addresses.
type workload struct {
	n, m  int
	svcs  []ipvs.Service
	dests [][]ipvs.Destination // weight 1
}

const (
	svcPort  = 80
	destPort = 8080
	sched    = "rr"
)

func addrFrom(base uint32, i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], base+uint32(i))
	return netip.AddrFrom4(b)
}

func svcAddr(i int) netip.Addr        { return addrFrom(0x0a000001, i) }     // 10.0.0.1 + i
func destAddr(i, j, m int) netip.Addr { return addrFrom(0x0a800001, i*m+j) } // 10.128.0.1 + i*m + j

func newWorkload(n, m int) *workload {
	w := &workload{n: n, m: m, svcs: make([]ipvs.Service, n), dests: make([][]ipvs.Destination, n)}
	for i := range n {
		w.svcs[i] = ipvs.Service{Protocol: ipvs.TCP, Address: svcAddr(i), Port: svcPort, Scheduler: sched}
		w.dests[i] = make([]ipvs.Destination, m)
		for j := range m {
			w.dests[i][j] = ipvs.Destination{Address: destAddr(i, j, m), Port: destPort, ForwardMethod: ipvs.NAT, Weight: 1}
		}
	}
	return w
}

// desired returns the table as Reconcile input, with every weight set to weight.
func (w *workload) desired(weight int) []ipvs.VirtualService {
	out := make([]ipvs.VirtualService, w.n)
	for i := range w.n {
		ds := make([]ipvs.Destination, w.m)
		for j := range w.m {
			ds[j] = w.dests[i][j]
			ds[j].Weight = weight
		}
		out[i] = ipvs.VirtualService{Service: w.svcs[i], Destinations: ds}
	}
	return out
}

// verify reads the table with this library (untimed) and checks that it is
// exactly the workload with every weight equal to weight.
func (w *workload) verify(ctx context.Context, c *ipvs.Client, weight int) error {
	vs, err := c.VirtualServices(ctx)
	if err != nil {
		return err
	}
	// Kernels with resizable tables (7.x) resize the service table in the
	// background after a burst of creates, and a dump that runs meanwhile
	// can miss services (seen in the VM on 7.2). Read again, for a while,
	// and say so.
	for try := 0; len(vs) != w.n && try < 20; try++ {
		first := len(vs)
		time.Sleep(100 * time.Millisecond)
		if vs, err = c.VirtualServices(ctx); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "ipvsbench: a read listed %d services of %d, the next %d (a dump during the kernel's table resize?)\n", first, w.n, len(vs))
	}
	if len(vs) != w.n {
		return fmt.Errorf("table has %d services, want %d", len(vs), w.n)
	}
	want := make(map[netip.Addr]int, w.n)
	for i, s := range w.svcs {
		want[s.Address] = i
	}
	total := 0
	for _, v := range vs {
		i, ok := want[v.Service.Address]
		if !ok || v.Service.Port != svcPort || v.Service.Protocol != ipvs.TCP || v.Service.Scheduler != sched {
			return fmt.Errorf("unexpected service %v (%s)", v.Service, v.Service.Scheduler)
		}
		delete(want, v.Service.Address)
		if len(v.Destinations) != w.m {
			return fmt.Errorf("service %v has %d destinations, want %d", v.Service, len(v.Destinations), w.m)
		}
		for _, d := range v.Destinations {
			if d.Port != destPort || d.Weight != weight || d.ForwardMethod != ipvs.NAT ||
				d.Address.Compare(destAddr(i, 0, w.m)) < 0 || d.Address.Compare(destAddr(i, w.m-1, w.m)) > 0 {
				return fmt.Errorf("service %v: unexpected destination %v weight %d method %v", v.Service, d.Destination, d.Weight, d.ForwardMethod)
			}
		}
		total += len(v.Destinations)
	}
	if total != w.n*w.m {
		return fmt.Errorf("table has %d destinations, want %d", total, w.n*w.m)
	}
	return nil
}
