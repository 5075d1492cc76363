package ipvs_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"strings"

	"github.com/ipvs-go/ipvs"
)

// The connection table, as ipvsadm -Lcn lists it, with each entry's origin
// (LOCAL, or SYNC for an entry a backup sync daemon installed).
func ExampleClient_Connections() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for cn, err := range c.Connections(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		kind := "connection"
		if cn.Template {
			kind = "template"
		}
		fmt.Printf("%v %-11v %v -> %v -> %v expires in %v (%s, %v)\n",
			cn.Protocol, cn.State, cn.Client, cn.Virtual, cn.Destination, cn.Expires, kind, cn.Origin)
	}
}

// Is a destination drained? After setting its weight to 0, wait until no
// connection uses it, then delete it.
func ExampleClient_ConnectionCounts() {
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	counts, err := c.ConnectionCounts(ctx)
	if err != nil {
		log.Fatal(err)
	}
	n := counts[ipvs.ConnectionKey{
		Protocol:    ipvs.TCP,
		Virtual:     netip.MustParseAddrPort("10.0.1.1:80"),
		Destination: netip.MustParseAddrPort("10.0.2.2:80"),
	}]
	fmt.Printf("active %d, inactive %d, templates %d, drained %v\n", n.Active, n.Inactive, n.Templates, n.Drained())
}

// The parser reads any io.Reader in the kernel's format, for example a
// saved copy of /proc/net/ip_vs_conn.
func ExampleParseConnections() {
	const saved = `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 0A000102 A1C4 0A000101 0050 0A000201 0050 ESTABLISHED     899
TCP 0A000100 0000 0A000103 0050 0A000201 0050 ASSURED         299
UDP 0A000102 0000 0A000104 13C4 0A000202 13C4 NONE            360 sip 1234@pbx
`
	for cn, err := range ipvs.ParseConnections(strings.NewReader(saved)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(cn.Protocol, cn.State, cn.Client, cn.Virtual, cn.Destination, cn.Expires, cn.Template)
		if cn.PEName != "" {
			fmt.Println("  engine", cn.PEName, "data", cn.PEData)
		}
	}
	// Output:
	// TCP ESTABLISHED 10.0.1.2:41412 10.0.1.1:80 10.0.2.1:80 14m59s false
	// TCP ASSURED 10.0.1.0:0 10.0.1.3:80 10.0.2.1:80 4m59s true
	// UDP NONE 10.0.1.2:0 10.0.1.4:5060 10.0.2.2:5060 6m0s true
	//   engine sip data 1234@pbx
}
