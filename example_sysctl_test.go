package ipvs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/ipvs-go/ipvs"
)

// What kube-proxy and kube-router set at start: reuse no connection of a
// deleted or quiescent backend. Fields left nil are not touched; a knob
// this kernel lacks fails before anything is written.
func ExampleClient_SetSysctls() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// sysctl -w net.ipv4.vs.conn_reuse_mode=0 net.ipv4.vs.expire_nodest_conn=1 \
	//	net.ipv4.vs.expire_quiescent_template=1
	err = c.SetSysctls(ctx, ipvs.Sysctls{
		ConnReuseMode:           new(0),
		ExpireNoDestConn:        new(true),
		ExpireQuiescentTemplate: new(true),
	})
	if err != nil {
		log.Fatal(err)
	}

	// A knob of newer kernels: errors.ErrUnsupported names the release.
	err = c.SetSysctls(ctx, ipvs.Sysctls{EstimatorNice: new(10)})
	if errors.Is(err, errors.ErrUnsupported) {
		log.Print(err) // ... has no net.ipv4.vs.est_nice: Linux 6.2 added it
	}
}

// Sysctls reads every knob of the namespace; one this kernel lacks is nil.
func ExampleClient_Sysctls() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// sysctl net.ipv4.vs
	s, err := c.Sysctls(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if s.ConnReuseMode != nil && *s.ConnReuseMode != 0 {
		fmt.Println("conn_reuse_mode is", *s.ConnReuseMode)
	}
	if s.RunEstimation == nil {
		fmt.Println("no run_estimation before Linux 5.15")
	}
	for name, value := range s.Other {
		fmt.Printf("%s = %s (unknown to this package)\n", name, value)
	}
}

// Totals are what node_exporter's IPVS collector reads: the namespace's
// counters over every service, deleted ones included.
func ExampleClient_Totals() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// cat /proc/net/ip_vs_stats
	t, err := c.Totals(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d connections, %d packets in, %d bytes out; %d conn/s\n",
		t.Stats.Connections, t.Stats.PacketsIn, t.Stats.BytesOut, t.Stats.ConnectionRate)
	for _, cpu := range t.PerCPU {
		fmt.Printf("CPU %d: %d connections\n", cpu.CPU, cpu.Stats.Connections)
	}
}

func ExampleDefenseMode_String() {
	fmt.Println(ipvs.DefenseOff, ipvs.DefenseAuto, ipvs.DefenseAutoActive, ipvs.DefenseAlways)
	// Output: off auto auto-active always
}
