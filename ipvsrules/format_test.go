package ipvsrules

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

// referenceTable is the table of /work/shared/reference's
// ipvsadm-output-examples.txt (thresholds aside), in another order than
// ipvsadm's.
func referenceTable() []ipvs.VirtualService {
	return []ipvs.VirtualService{
		{Service: ipvs.Service{FirewallMark: 100, Family: ipvs.IPv4, Scheduler: "mh", Flags: ipvs.FlagMHPort}, Destinations: []ipvs.Destination{
			{Address: addr("2001:db8::20"), ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGRE},
			{Address: addr("192.168.1.20"), ForwardMethod: ipvs.IPIP, Weight: 3, TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelChecksum: ipvs.TunnelChecksumOn},
		}},
		{Service: tcp("2001:db8::1", 443), Destinations: []ipvs.Destination{dest("2001:db8::10", 8443, ipvs.NAT, 100)}},
		{Service: ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.0.0.1"), Port: 53, Scheduler: "sh", Flags: ipvs.FlagPersistent | ipvs.FlagOnePacket | ipvs.FlagSHFallback | ipvs.FlagSHPort, Timeout: secs(300), Netmask: ipvs.PrefixMask(ipvs.IPv4, 24)},
			Destinations: []ipvs.Destination{{Address: addr("192.168.1.11"), Port: 53, ForwardMethod: ipvs.DR, UpperThreshold: 1000, LowerThreshold: 800}}},
		{Service: tcp("10.0.0.1", 80), Destinations: []ipvs.Destination{
			dest("192.168.1.10", 8080, ipvs.NAT, 1),
			dest("192.168.1.2", 8080, ipvs.Local, 2),
		}},
	}
}

const referenceSave = `-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -g -w 2
-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 1
-A -u 10.0.0.1:53 -s sh -p 300 -M 255.255.255.0 -o -b sh-fallback,sh-port
-a -u 10.0.0.1:53 -r 192.168.1.11:53 -g -w 0
-A -t [2001:db8::1]:443 -s rr -p 360 -M 64 --pe sip
-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m -w 100
-A -f 100 -s mh -b mh-port
-a -f 100 -r 192.168.1.20:0 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum
-a -f 100 -r [2001:db8::20]:0 -i -w 1 --tun-type gre --tun-nocsum
`

func TestFormatReference(t *testing.T) {
	vs := referenceTable()
	vs[1].Service.Scheduler, vs[1].Service.Flags, vs[1].Service.Timeout = "rr", ipvs.FlagPersistent, secs(360)
	vs[1].Service.Netmask, vs[1].Service.PersistenceEngine = ipvs.PrefixMask(ipvs.IPv6, 64), "sip"
	vs[3].Service.Scheduler = "wlc"
	before := slices.Clone(vs)
	if diff := cmp.Diff(referenceSave, string(Format(vs, FormatOptions{}))); diff != "" {
		t.Errorf("Format (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, vs, cmpAddr); diff != "" {
		t.Errorf("Format changed its input:\n%s", diff)
	}
	lossless := strings.Replace(referenceSave, "192.168.1.2:8080 -g", "192.168.1.2:8080 --local-node", 1)
	lossless = strings.Replace(lossless, "192.168.1.11:53 -g -w 0", "192.168.1.11:53 -g -w 0 -x 1000 -y 800", 1)
	if diff := cmp.Diff(lossless, string(Format(vs, FormatOptions{Lossless: true}))); diff != "" {
		t.Errorf("Format lossless (-want +got):\n%s", diff)
	}
}

func TestFormatQuirks(t *testing.T) {
	fwm := func(m uint32, f ipvs.Family) ipvs.Service {
		return ipvs.Service{FirewallMark: m, Family: f, Scheduler: "rr"}
	}
	with := func(s ipvs.Service, f func(*ipvs.Service)) ipvs.Service { f(&s); return s }
	tests := []struct {
		name           string
		vs             []ipvs.VirtualService
		want, lossless string
	}{{
		name: "signed address order",
		vs:   []ipvs.VirtualService{{Service: full(tcp("10.0.0.1", 80), nil)}, {Service: full(tcp("200.0.0.1", 80), nil)}},
		// 10.0.0.1 - 200.0.0.1 overflows to a positive int.
		want: "-A -t 200.0.0.1:80 -s wlc\n-A -t 10.0.0.1:80 -s wlc\n",
	}, {
		name: "signed address order depends on the input",
		vs: []ipvs.VirtualService{
			{Service: full(tcp("10.0.0.1", 80), nil)},
			{Service: full(tcp("200.0.0.1", 80), nil)},
			{Service: full(tcp("100.0.0.1", 80), nil)},
		},
		// The merge sort compares 10 with 100 only: 200 ends last.
		want: "-A -t 10.0.0.1:80 -s wlc\n-A -t 100.0.0.1:80 -s wlc\n-A -t 200.0.0.1:80 -s wlc\n",
	}, {
		name: "signed mark order, negative mark",
		vs:   []ipvs.VirtualService{{Service: fwm(1, ipvs.IPv4)}, {Service: fwm(0x80000002, ipvs.IPv4)}, {Service: fwm(2, ipvs.IPv6)}},
		want: "-A -f -2147483646 -s rr\n-A -f 1 -s rr\n-A -f 2 -6 -s rr\n",
		// The comparison is the same in both.
		lossless: "-A -f 2147483650 -s rr\n-A -f 1 -s rr\n-A -f 2 -6 -s rr\n",
	}, {
		name:     "sh with flag-3 alone",
		vs:       []ipvs.VirtualService{{Service: with(fwm(3, ipvs.IPv4), func(s *ipvs.Service) { s.Scheduler, s.Flags = "sh", ipvs.FlagSched3 })}},
		want:     "-A -f 3 -s sh -b \n",
		lossless: "-A -f 3 -s sh -b flag-3\n",
	}, {
		name:     "mh with every flag",
		vs:       []ipvs.VirtualService{{Service: with(fwm(3, ipvs.IPv4), func(s *ipvs.Service) { s.Scheduler, s.Flags = "mh", schedFlags })}},
		want:     "-A -f 3 -s mh -b mh-fallback,mh-port\n",
		lossless: "-A -f 3 -s mh -b mh-fallback,mh-port,flag-3\n",
	}, {
		name: "netmask and timeout without persistence",
		vs: []ipvs.VirtualService{{Service: with(tcp("10.0.0.1", 0), func(s *ipvs.Service) {
			s.Scheduler, s.Netmask, s.Timeout = "rr", ipvs.PrefixMask(ipvs.IPv4, 8), secs(30)
		})}, {Service: with(fwm(4, ipvs.IPv6), func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(ipvs.IPv6, 48) })}},
		want:     "-A -t 10.0.0.1:0 -s rr\n-A -f 4 -6 -s rr\n",
		lossless: "-A -t 10.0.0.1:0 -s rr -M 255.0.0.0 --svc-timeout 30\n-A -f 4 -6 -s rr -M 48\n",
	}, {
		name: "destination ports and order",
		vs: []ipvs.VirtualService{{Service: full(tcp("10.0.0.1", 80), nil), Destinations: []ipvs.Destination{
			dest("2001:db8::1", 80, ipvs.IPIP, 1),
			dest("192.168.0.1", 8080, ipvs.DR, 1),
			dest("10.1.0.1", 81, ipvs.IPIP, 1),
			dest("10.1.0.1", 80, ipvs.NAT, 70000),
			dest("::1.2.3.4", 80, ipvs.IPIP, 1),
		}}},
		want: "-A -t 10.0.0.1:80 -s wlc\n" +
			"-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -g -w 1\n" +
			"-a -t 10.0.0.1:80 -r [::1.2.3.4]:80 -i -w 1 --tun-type ipip\n" +
			"-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 70000\n" +
			"-a -t 10.0.0.1:80 -r 10.1.0.1:81 -i -w 1 --tun-type ipip\n" +
			"-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -i -w 1 --tun-type ipip\n",
		lossless: "-A -t 10.0.0.1:80 -s wlc\n" +
			"-a -t 10.0.0.1:80 -r 192.168.0.1:8080 -g -w 1 --keep-port\n" +
			"-a -t 10.0.0.1:80 -r [::1.2.3.4]:80 -i -w 1 --tun-type ipip\n" +
			"-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 70000\n" +
			"-a -t 10.0.0.1:80 -r 10.1.0.1:81 -i -w 1 --tun-type ipip --keep-port\n" +
			"-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -i -w 1 --tun-type ipip\n",
	}, {
		name: "SCTP, unknown protocol",
		vs: []ipvs.VirtualService{
			{Service: with(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Protocol, s.Scheduler = ipvs.SCTP, "lc" })},
			{Service: with(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Protocol, s.Scheduler = 99, "lc" })},
		},
		want: "-A --xxx-service 10.0.0.1:80 -s lc\n-A --sctp-service 10.0.0.1:80 -s lc\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, string(Format(tt.vs, FormatOptions{}))); diff != "" {
				t.Errorf("Format (-want +got):\n%s", diff)
			}
			if tt.lossless == "" {
				tt.lossless = tt.want
			}
			got := Format(tt.vs, FormatOptions{Lossless: true})
			if diff := cmp.Diff(tt.lossless, string(got)); diff != "" {
				t.Errorf("Format lossless (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFormatAddr checks the IPv6 text against glibc's inet_ntop forms.
func TestFormatAddr(t *testing.T) {
	for in, want := range map[string]string{
		"::": "::", "::1": "::1", "::1.2.3.4": "::1.2.3.4", "::ffff:1.2.3.4": "::ffff:1.2.3.4",
		"::0:1:2": "::0.1.0.2", "1::": "1::", "1:0:0:2::3": "1:0:0:2::3", "1:0:1:0:1:0:1:0": "1:0:1:0:1:0:1:0",
		"2001:db8::1": "2001:db8::1", "1:2:3:4:5:6:7:8": "1:2:3:4:5:6:7:8", "1:0:0:1:0:0:0:1": "1:0:0:1::1",
		"::ffff:0:1.2.3.4": "::ffff:0:102:304", "0:0:0:0:0:1:0:0": "::1:0:0",
	} {
		if got := string(appendAddr(nil, addr(in))); got != want {
			t.Errorf("appendAddr(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestMergeSort checks the merge sort against the standard library's on
// a consistent order, and its stability.
func TestMergeSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 70 {
		x := make([]int, n)
		for i := range x {
			x[i] = r.IntN(10)*100 + i // key*100 + original position
		}
		want := slices.Clone(x)
		slices.SortStableFunc(want, func(a, b int) int { return a/100 - b/100 })
		mergeSort(x, func(a, b int) int { return a/100 - b/100 })
		if !slices.Equal(x, want) {
			t.Fatalf("n=%d: %v, want %v", n, x, want)
		}
	}
}

// TestRoundTripLossless formats a table with every field, parses it back
// with Extensions and gets the same table.
func TestRoundTripLossless(t *testing.T) {
	vs := referenceTable()
	vs[3].Service.Scheduler = "wlc"
	vs[1].Service.Scheduler = "rr"
	vs = append(vs,
		ipvs.VirtualService{Service: ipvs.Service{FirewallMark: 0xfffffff0, Family: ipvs.IPv6, Scheduler: "sh", Flags: schedFlags | ipvs.FlagOnePacket, Netmask: ipvs.PrefixMask(ipvs.IPv6, 96), Timeout: secs(7)},
			Destinations: []ipvs.Destination{{Address: addr("10.2.0.1"), Port: 9, ForwardMethod: ipvs.IPIP, Weight: ipvs.MaxWeight, UpperThreshold: 5, TunnelType: ipvs.TunnelGUE, TunnelPort: 1, TunnelChecksum: ipvs.TunnelChecksumRemote}}},
		ipvs.VirtualService{Service: ipvs.Service{Protocol: ipvs.SCTP, Address: addr("10.3.0.1"), Port: 0, Scheduler: "none", Flags: ipvs.FlagPersistent, Timeout: secs(4294967), PersistenceEngine: "sip"},
			Destinations: []ipvs.Destination{{Address: addr("10.3.0.2"), Port: 1, ForwardMethod: ipvs.DR}, {Address: addr("10.3.0.3"), Port: 0, ForwardMethod: ipvs.Local, LowerThreshold: 9}}},
	)
	text := Format(vs, FormatOptions{Lossless: true})
	p := Parser{Extensions: true}
	cmds, err := p.Parse(strings.NewReader(string(text)))
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", text, err)
	}
	got, err := Desired(cmds)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedTable(vs), sortedTable(got), cmpAddr); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\n%s", diff, text)
	}
	// The same text without the extensions is refused.
	var zero Parser
	if _, err := zero.Parse(strings.NewReader(string(text))); !errors.As(err, new(SyntaxErrors)) {
		t.Errorf("Parse of lossless text without Extensions: %v", err)
	}
}

// sortedTable sorts a table by a consistent order, for comparisons.
func sortedTable(vs []ipvs.VirtualService) []ipvs.VirtualService {
	if len(vs) == 0 {
		return nil
	}
	out := slices.Clone(vs)
	for i := range out {
		out[i].Destinations = slices.Clone(out[i].Destinations)
		slices.SortFunc(out[i].Destinations, func(a, b ipvs.Destination) int {
			if c := a.Address.Compare(b.Address); c != 0 {
				return c
			}
			return int(a.Port) - int(b.Port)
		})
		if len(out[i].Destinations) == 0 {
			out[i].Destinations = nil
		}
	}
	slices.SortFunc(out, func(a, b ipvs.VirtualService) int {
		return strings.Compare(a.Service.String(), b.Service.String())
	})
	return out
}
