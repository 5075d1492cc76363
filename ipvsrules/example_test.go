package ipvsrules_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// Save the table as "ipvsadm -S -n" does.
func ExampleFormat() {
	table := []ipvs.VirtualService{{
		Service: ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.1.1"), Port: 80,
			Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: 300 * time.Second},
		Destinations: []ipvs.Destination{
			{Address: netip.MustParseAddr("10.0.2.2"), Port: 80, ForwardMethod: ipvs.NAT, Weight: 1, UpperThreshold: 500},
			{Address: netip.MustParseAddr("10.0.2.1"), Port: 80, ForwardMethod: ipvs.NAT, Weight: 1},
		},
	}}
	// With a Client: table := ipvs.Desired(c.VirtualServices(ctx)).
	os.Stdout.Write(ipvsrules.Format(table, ipvsrules.FormatOptions{}))
	// Lossless keeps the threshold, which ipvsadm -S does not save.
	os.Stdout.Write(ipvsrules.Format(table, ipvsrules.FormatOptions{Lossless: true}))
	// Output:
	// -A -t 10.0.1.1:80 -s rr -p 300
	// -a -t 10.0.1.1:80 -r 10.0.2.1:80 -m -w 1
	// -a -t 10.0.1.1:80 -r 10.0.2.2:80 -m -w 1
	// -A -t 10.0.1.1:80 -s rr -p 300
	// -a -t 10.0.1.1:80 -r 10.0.2.1:80 -m -w 1
	// -a -t 10.0.1.1:80 -r 10.0.2.2:80 -m -w 1 -x 500
}

// Restore rules, as "ipvsadm -R" does, through Apply.
func ExampleApply() {
	rules := `-A -t 10.0.1.1:80 -s rr
-a -t 10.0.1.1:80 -r 10.0.2.1:80 -m
-a -t 10.0.1.1:80 -r 10.0.2.2:80 -m -w 2
`
	cmds, err := ipvsrules.Parse(strings.NewReader(rules))
	if err != nil {
		log.Fatal(err) // every bad line, with its line and column; nothing applied
	}
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	errs, err := ipvsrules.Apply(ctx, c, cmds)
	if err != nil {
		log.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			log.Printf("line %d: %v", cmds[i].Line, err)
		}
	}
}

// Restore a saved table, as "ipvsadm -R < rules" does, without holding
// every command in memory.
func ExampleApplyText() {
	f, err := os.Open("rules") // saved by "ipvsadm -S -n"
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := ipvsrules.ApplyText(ctx, c, f)
	for _, e := range res.Failed {
		log.Print(e) // "line 4: add-server: ...": the kernel refused it
	}
	if err != nil {
		log.Fatal(err) // every bad line, with line and column: nothing applied
	}
	log.Printf("%d commands, %d failed", res.Commands, len(res.Failed))
}

// Parse rules text into changes for Client.Apply.
func ExampleParse() {
	rules := `-A -t 10.0.1.1:80 -s rr -p
-a -t 10.0.1.1:80 -r 10.0.2.1:8080 -m
-a -t 10.0.1.1:80 -r 10.0.2.2:8080 -g -w 3
`
	cmds, err := ipvsrules.Parse(strings.NewReader(rules))
	if err != nil {
		fmt.Println(err)
		return
	}
	changes, err := ipvsrules.Changes(cmds)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ch := range changes {
		fmt.Println(ch)
	}
	fmt.Println(changes[0].Service.Scheduler, changes[0].Service.Timeout)
	fmt.Println(changes[2].Destination.ForwardMethod, changes[2].Destination.Weight)

	_, err = ipvsrules.Parse(strings.NewReader("-A -t 10.0.1.1:80\n-a -t 10.0.1.1:80 -r 10.0.2.1 -w 2147483648\n"))
	fmt.Println(err)
	// Output:
	// create service TCP 10.0.1.1:80
	// create destination 10.0.2.1:8080 of TCP 10.0.1.1:80
	// create destination 10.0.2.2:80 of TCP 10.0.1.1:80
	// rr 6m0s
	// DR 3
	// line 2, column 34: illegal weight specified
}

// Parse a command line as ipvsadm does.
func ExampleParseArgs() {
	cmd, err := ipvsrules.ParseArgs([]string{"-Ln", "--stats"})
	fmt.Println(cmd.Kind, cmd.Options, err)
	_, err = ipvsrules.ParseArgs([]string{"-a", "-t", "10.0.1.1:80", "-r", "10.0.2.1", "-m", "-g"})
	fmt.Println(err)
	// Output:
	// list numeric|stats <nil>
	// argument 7 ("-g"): multiple 'forwarding-method' options specified
}
