package ipvsrules

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

func tcp(a string, port uint16) ipvs.Service {
	return ipvs.Service{Protocol: ipvs.TCP, Address: addr(a), Port: port}
}

// full adds ipvsadm's service defaults and f's changes to s.
func full(s ipvs.Service, f func(*ipvs.Service)) ipvs.Service {
	s.Scheduler = ipvs.WeightedLeastConnection
	if f != nil {
		f(&s)
	}
	return s
}

func dest(a string, port uint16, fwd ipvs.ForwardMethod, w int) ipvs.Destination {
	return ipvs.Destination{Address: addr(a), Port: port, ForwardMethod: fwd, Weight: w}
}

const (
	svcOpts  = OptService
	destOpts = OptService | OptServer
)

func TestParseArgs(t *testing.T) {
	fwm := func(m uint32, f ipvs.Family) ipvs.Service { return ipvs.Service{FirewallMark: m, Family: f} }
	tests := []struct {
		args string
		ext  bool
		want Command
	}{
		{"-A -t 10.0.0.1:80", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), nil), Options: svcOpts}},
		{"--add-service --tcp-service 10.0.0.1:80 --scheduler rr", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "rr" }), Options: svcOpts | OptScheduler}},
		{"--add-service --tcp-service=10.0.0.1:80 --scheduler=rr", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "rr" }), Options: svcOpts | OptScheduler}},
		{"-A -s=rr -t10.0.0.1:80", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "rr" }), Options: svcOpts | OptScheduler}},
		{"-At 10.1:http -s sh", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "sh" }), Options: svcOpts | OptScheduler}},
		{"-A -u 10.0.0.1:domain", false, Command{Kind: AddService, Service: full(ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.0.0.1"), Port: 53}, nil), Options: svcOpts}},
		{"-A --udp-service 0x0a.0.0.01:53", false, Command{Kind: AddService, Service: full(ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.0.0.1"), Port: 53}, nil), Options: svcOpts}},
		{"-A --sctp-service [2001:db8::1]:9000 -s lc", false, Command{Kind: AddService, Service: full(ipvs.Service{Protocol: ipvs.SCTP, Address: addr("2001:db8::1"), Port: 9000}, func(s *ipvs.Service) { s.Scheduler = "lc" }), Options: svcOpts | OptScheduler}},
		{"-A -f 100 -6 -s rr -o", false, Command{Kind: AddService, Service: full(fwm(100, ipvs.IPv6), func(s *ipvs.Service) { s.Scheduler, s.Flags = "rr", ipvs.FlagOnePacket }), Options: svcOpts | OptScheduler | OptOnePacket}},
		{"--add-service --fwmark-service=4294967295 --ipv6 --ops", false, Command{Kind: AddService, Service: full(fwm(4294967295, ipvs.IPv6), func(s *ipvs.Service) { s.Flags = ipvs.FlagOnePacket }), Options: svcOpts | OptOnePacket}},
		{"-A -t 10.0.0.1:0 -p", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 0), func(s *ipvs.Service) { s.Flags, s.Timeout = ipvs.FlagPersistent, secs(360) }), Options: svcOpts | OptPersistent}},
		{"-A -t 10.0.0.1:80 -p 60 -M 255.255.255.0", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(60), ipvs.PrefixMask(ipvs.IPv4, 24)
		}), Options: svcOpts | OptPersistent | OptNetmask}},
		{"-A -t 10.0.0.1:80 --persistent=60 --netmask 255.0.255.0", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(60), ipvs.IPv4Mask(255, 0, 255, 0)
		}), Options: svcOpts | OptPersistent | OptNetmask}},
		// -p takes no value that starts with "-"; -M 24 is inet_aton's 0.0.0.24.
		{"-A -t 10.0.0.1:80 -p -M 24", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask = ipvs.FlagPersistent, secs(360), ipvs.IPv4Mask(0, 0, 0, 24)
		}), Options: svcOpts | OptPersistent | OptNetmask}},
		{"-A -t [2001:db8::1]:443 -p60 -M 64 --pe sip", false, Command{Kind: AddService, Service: full(tcp("2001:db8::1", 443), func(s *ipvs.Service) {
			s.Flags, s.Timeout, s.Netmask, s.PersistenceEngine = ipvs.FlagPersistent, secs(60), ipvs.PrefixMask(ipvs.IPv6, 64), "sip"
		}), Options: svcOpts | OptPersistent | OptNetmask | OptPersistenceEngine}},
		// -6 resets a -M given before it, as in ipvsadm.
		{"-A -f 7 -M 255.0.0.0 -6 -p", false, Command{Kind: AddService, Service: full(fwm(7, ipvs.IPv6), func(s *ipvs.Service) { s.Flags, s.Timeout = ipvs.FlagPersistent, secs(360) }), Options: svcOpts | OptPersistent | OptNetmask}},
		{"-A -t 10.0.0.1:80 -M 255.255.0.0", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Netmask = ipvs.PrefixMask(ipvs.IPv4, 16) }), Options: svcOpts | OptNetmask}},
		{"-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) {
			s.Scheduler, s.Flags = "sh", ipvs.FlagSHFallback|ipvs.FlagSHPort
		}), Options: svcOpts | OptScheduler | OptSchedFlags}},
		{"-A -f 5 -b mh-fallback,,mh-port,flag-3 -s mh", false, Command{Kind: AddService, Service: full(fwm(5, ipvs.IPv4), func(s *ipvs.Service) {
			s.Scheduler, s.Flags = "mh", ipvs.FlagMHFallback|ipvs.FlagMHPort|ipvs.FlagSched3
		}), Options: svcOpts | OptScheduler | OptSchedFlags}},
		{"-A -t 10.0.0.1:80 --sched-flags=flag-1,flag-2,flag-3", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) {
			s.Flags = ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagSched3
		}), Options: svcOpts | OptSchedFlags}},
		{"-A -t 10.0.0.1:80 -s averyveryverylongname", false, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "averyveryverylo" }), Options: svcOpts | OptScheduler}},
		{"-E -t 10.0.0.1:80 -s rr", false, Command{Kind: EditService, Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "rr" }), Options: svcOpts | OptScheduler}},
		{"--edit-service -u 10.0.0.1:53 -o -p 10", false, Command{Kind: EditService, Service: full(ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.0.0.1"), Port: 53}, func(s *ipvs.Service) {
			s.Flags, s.Timeout = ipvs.FlagOnePacket|ipvs.FlagPersistent, secs(10)
		}), Options: svcOpts | OptOnePacket | OptPersistent}},
		{"-D -t 10.0.0.1:80", false, Command{Kind: DeleteService, Service: tcp("10.0.0.1", 80), Options: svcOpts}},
		{"--delete-service -f 1 -6", false, Command{Kind: DeleteService, Service: fwm(1, ipvs.IPv6), Options: svcOpts}},

		{"-a -t 10.0.0.1:80 -r 192.168.1.1", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 80, ipvs.DR, 1), Options: destOpts}},
		{"-a -t 10.0.0.1:80 -r 192.168.1.1:8080 -m -w 5 -x 100 -y 50", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80),
			Destination: ipvs.Destination{Address: addr("192.168.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 5, UpperThreshold: 100, LowerThreshold: 50},
			Options:     destOpts | OptForward | OptWeight | OptUThreshold | OptLThreshold}},
		{"--add-server --tcp-service 10.0.0.1:80 --real-server 192.168.1.1:8080 --masquerading --weight 5 --u-threshold=100 --l-threshold 50", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80),
			Destination: ipvs.Destination{Address: addr("192.168.1.1"), Port: 8080, ForwardMethod: ipvs.NAT, Weight: 5, UpperThreshold: 100, LowerThreshold: 50},
			Options:     destOpts | OptForward | OptWeight | OptUThreshold | OptLThreshold}},
		{"-at 10.0.0.1:80 -r 192.168.1.1:8080 -mw5", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 8080, ipvs.NAT, 5), Options: destOpts | OptForward | OptWeight}},
		// DR and IPIP take the service's port, unless it is a mark service.
		{"-a -t 10.0.0.1:80 -r 192.168.1.1:8080 -g", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 80, ipvs.DR, 1), Options: destOpts | OptForward}},
		{"-a -t 10.0.0.1:80 -r 192.168.1.1:8080 --gatewaying -w 0", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 80, ipvs.DR, 0), Options: destOpts | OptForward | OptWeight}},
		{"-a -f 1 -r 192.168.1.1:8080 -g", false, Command{Kind: AddServer, Service: fwm(1, ipvs.IPv4), Destination: dest("192.168.1.1", 8080, ipvs.DR, 1), Options: destOpts | OptForward}},
		{"-a -t 10.0.0.1:80 -r 2001:db8::9 -i --tun-type gue --tun-port 6080 --tun-remcsum", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80),
			Destination: ipvs.Destination{Address: addr("2001:db8::9"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelChecksum: ipvs.TunnelChecksumRemote},
			Options:     destOpts | OptForward | OptTunType | OptTunPort | OptTunRemCsum}},
		{"-a -t 10.0.0.1:80 -r 192.168.1.1 --ipip --tun-type=gre --tun-csum", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80),
			Destination: ipvs.Destination{Address: addr("192.168.1.1"), Port: 80, ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGRE, TunnelChecksum: ipvs.TunnelChecksumOn},
			Options:     destOpts | OptForward | OptTunType | OptTunCsum}},
		{"-a -f 9 -6 -r 192.168.1.1 -i --tun-type gue --tun-port 1 --tun-nocsum", false, Command{Kind: AddServer, Service: fwm(9, ipvs.IPv6),
			Destination: ipvs.Destination{Address: addr("192.168.1.1"), ForwardMethod: ipvs.IPIP, Weight: 1, TunnelType: ipvs.TunnelGUE, TunnelPort: 1},
			Options:     destOpts | OptForward | OptTunType | OptTunPort | OptTunNoCsum}},
		// -r before -t copies the port -t has not yet set.
		{"-a -r 192.168.1.1 -t 10.0.0.1:80 -m", false, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 0, ipvs.NAT, 1), Options: destOpts | OptForward}},
		{"-e -t 10.0.0.1:80 -r 192.168.1.1 -m -w 0", false, Command{Kind: EditServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 80, ipvs.NAT, 0), Options: destOpts | OptForward | OptWeight}},
		{"--edit-server -t 10.0.0.1:80 -r 192.168.1.1:81", false, Command{Kind: EditServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 80, ipvs.DR, 1), Options: destOpts}},
		{"-d -t 10.0.0.1:80 -r 192.168.1.1:8080", false, Command{Kind: DeleteServer, Service: tcp("10.0.0.1", 80), Destination: ipvs.Destination{Address: addr("192.168.1.1"), Port: 8080}, Options: destOpts}},
		{"--delete-server --fwmark-service 3 --real-server [2001:db8::3]:0", false, Command{Kind: DeleteServer, Service: fwm(3, ipvs.IPv4), Destination: ipvs.Destination{Address: addr("2001:db8::3")}, Options: destOpts}},

		{"-C", false, Command{Kind: Clear}},
		{"--clear", false, Command{Kind: Clear}},
		{"-Z", false, Command{Kind: Zero}},
		{"--zero -t 10.0.0.1:80", false, Command{Kind: Zero, Service: tcp("10.0.0.1", 80), Options: svcOpts}},
		{"--set 900 120 300", false, Command{Kind: SetTimeouts, Timeouts: ipvs.Timeouts{TCP: secs(900), TCPFin: secs(120), UDP: secs(300)}}},
		{"--set 0 0 5", false, Command{Kind: SetTimeouts, Timeouts: ipvs.Timeouts{UDP: secs(5)}}},
		{"--start-daemon master --mcast-interface eth1 --syncid 5 --sync-maxlen 1400 --mcast-group 239.1.1.1 --mcast-port 9000 --mcast-ttl 2", false, Command{Kind: StartDaemon,
			Daemon:  ipvs.SyncDaemon{State: ipvs.Master, Interface: "eth1", SyncID: 5, MaxLength: 1400, Group: addr("239.1.1.1"), Port: 9000, TTL: 2},
			Options: OptMcastInterface | OptSyncID | OptSyncMaxLen | OptMcastGroup | OptMcastPort | OptMcastTTL}},
		{"--start-daemon=backup --mcast-group ff02::1", false, Command{Kind: StartDaemon, Daemon: ipvs.SyncDaemon{State: ipvs.Backup, Interface: "eth0", Group: addr("ff02::1")}, Options: OptMcastGroup}},
		{"--stop-daemon master", false, Command{Kind: StopDaemon, Daemon: ipvs.SyncDaemon{State: ipvs.Master}}},
		{"", false, Command{Kind: List}},
		{"-L -n", false, Command{Kind: List, Options: OptNumeric}},
		{"-Lnc", false, Command{Kind: List, Options: OptNumeric | OptConnection}},
		{"-l --stats --exact --nosort --sort", false, Command{Kind: List, Options: OptStats | OptExact | OptNoSort}},
		{"-L -t 10.0.0.1:80 -n --rate --tun-info -X", false, Command{Kind: List, Service: tcp("10.0.0.1", 80), Options: OptService | OptNumeric | OptRate | OptTunInfo | OptExact}},
		{"-L --timeout", false, Command{Kind: List, Options: OptTimeout}},
		{"-L --daemon", false, Command{Kind: List, Options: OptDaemon}},
		{"-L --thresholds --persistent-conn", false, Command{Kind: List, Options: OptThresholds | OptPersistentConn}},
		{"-S -n", false, Command{Kind: Save, Options: OptNumeric}},
		{"--save", false, Command{Kind: Save}},
		{"-R", false, Command{Kind: Restore}},
		{"--restore", false, Command{Kind: Restore}},
		{"-h", false, Command{Kind: Help}},
		{"--version", false, Command{Kind: Version}},

		// The extensions.
		{"-a -t 10.0.0.1:80 -r 192.168.1.1 --local-node -w 70000", true, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 80, ipvs.Local, 70000), Options: destOpts | OptForward | OptWeight}},
		{"-a -t 10.0.0.1:80 -r 192.168.1.1:8080 -g --keep-port", true, Command{Kind: AddServer, Service: tcp("10.0.0.1", 80), Destination: dest("192.168.1.1", 8080, ipvs.DR, 1), Options: destOpts | OptForward | OptKeepPort}},
		{"-A -t 10.0.0.1:0 -s rr --svc-timeout 30", true, Command{Kind: AddService, Service: full(tcp("10.0.0.1", 0), func(s *ipvs.Service) { s.Scheduler, s.Timeout = "rr", secs(30) }), Options: svcOpts | OptScheduler | OptSvcTimeout}},
		{"-A -f 2147483648 -p 4294967", true, Command{Kind: AddService, Service: full(fwm(2147483648, ipvs.IPv4), func(s *ipvs.Service) { s.Flags, s.Timeout = ipvs.FlagPersistent, secs(4294967) }), Options: svcOpts | OptPersistent}},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			p := Parser{Extensions: tt.ext}
			got, err := p.ParseArgs(strings.Fields(tt.args))
			if err != nil {
				t.Fatalf("ParseArgs: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("ParseArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args   string
		ext    bool
		msg    string
		col    int // 1 + index of the word at fault
		status int
	}{
		{"-t 10.0.0.1:80", false, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 1, 255},
		{"10.0.0.1:80", false, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 2, 255},
		{"-Q", false, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 1, 255},
		{"-A", false, "You need to supply the 'service-address' option for the 'add-service' command", 1, 2},
		{"-A -t 10.0.0.1:80 -w 5", false, "Illegal 'weight' option with the 'add-service' command", 4, 2},
		{"-A -t 10.0.0.1", false, "Zero port specified for non-persistent service", 2, 2},
		{"-A -t 10.0.0.1:80 -t 10.0.0.2:80", false, "multiple 'service-address' options specified", 4, 2},
		{"-A -f 1 -u 10.0.0.2:80", false, "multiple 'service-address' options specified", 4, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -w 2147483648", false, "illegal weight specified", 7, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -w -1", false, "illegal weight specified", 7, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -w", false, "-w: missing argument", 6, 255},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -x 2147483648", false, "illegal u_threshold specified", 7, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -y x", false, "illegal l_threshold specified", 7, 2},
		{"-A -t 10.0.0.1:80 -q", false, "-q: unknown option", 4, 255},
		{"-A -t 10.0.0.1:80 -nq", false, "-nq: unknown option", 4, 255},
		{"-A -t 10.0.0.1:80 --bogus", false, "--bogus: unknown option", 4, 255},
		{"-A -t 10.0.0.1:80 --local-node", false, "--local-node: unknown option", 4, 255},
		{"-A -t 10.0.0.1:80 -s sh -b mh-port", false, "incompatible scheduler flag `mh-port'", 7, 2},
		{"-A -t 10.0.0.1:80 -b sh-port", false, "incompatible scheduler flag `sh-port'", 5, 2},
		{"-A -t 10.0.0.1:80 -b foo", false, "invalid scheduler flag `foo'", 5, 2},
		{"-A -t 10.0.0.1:80 -b ,", false, "invalid scheduler flag `,'", 5, 2},
		{"-A -t 10.0.0.1:80 -6", false, "-6 used before -f\n", 4, 2},
		{"-A -t [2001:db8::1]:80 -p 10 -M 129", false, "illegal ipv6 netmask specified", 7, 2},
		{"-A -t 10.0.0.1:80 -p 10 -M foo", false, "illegal virtual server persistent mask specified", 7, 2},
		{"-A -t 10.0.0.1:80 -p 0", false, "invalid timeout value `0' specified", 5, 2},
		{"-A -t 10.0.0.1:80 -p 2678401", false, "invalid timeout value `2678401' specified", 5, 2},
		{"-A -t 10.0.0.1:80 -p3x", false, "invalid timeout value `3x' specified", 4, 2},
		{"-A -t 10.0.0.1:http2", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t 10.0.0.1:", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t www.example.com:80", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t 167772161", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t [2001:db8::1]", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t fe80::1%eth0", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t 10.0.0.1:65536", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t 1.2.3.4.5:80", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -t 09.1.1.1:80", false, "illegal virtual server address[:port] specified", 3, 2},
		{"-A -f 0", false, "invalid fwmark value `0' specified", 3, 2},
		{"-A -f 4294967296", false, "invalid fwmark value `4294967296' specified", 3, 2},
		{"-A -t 10.0.0.1:80 -o", false, "One-Packet Scheduling is only for UDP virtual services", 4, 2},
		{"-a -t 10.0.0.1:80 -r 2001:db8::1", false, "Different address family is allowed only for tunneling servers", 4, 2},
		{"-a -t 10.0.0.1:80 -r [2001:db8::1]", false, "illegal real server address[:port] specified", 5, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4:x", false, "illegal real server address[:port] specified", 5, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -m --tun-type gue", false, "Tunnel options conflict with forward method", 6, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type vxlan", false, "illegal tunnel type specified", 8, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gue", false, "You need to supply the 'tun-port' option for the 'gue' tunnel type", 4, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gue --tun-port 0", false, "illegal tunnel port specified", 10, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gre --tun-remcsum", false, "Illegal 'tun-remcsum' option with the 'gre' tunnel type", 9, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum", false, "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type", 11, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -i --tun-port 5", false, "Illegal 'tun-port' option with the 'ipip' tunnel type", 7, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -m -g", false, "multiple 'forwarding-method' options specified", 7, 2},
		{"-a -t 10.0.0.1:80 -m", false, "You need to supply the 'real-server' option for the 'add-server' command", 1, 2},
		{"-d -t 10.0.0.1:80 -r 1.2.3.4 -w 1", false, "Illegal 'weight' option with the 'delete-server' command", 6, 2},
		{"-A -t 10.0.0.1:80 -A", false, "invalid option `-A'", 4, 2},
		{"-A -t 10.0.0.1:80 --start-daemon master", false, "invalid option `master'", 5, 2},
		{"-A -t 10.0.0.1:80 extra", false, "unexpected argument extra", 4, 2},
		{"-A -t 10.0.0.1:80 -- -s", false, "unexpected argument -s", 5, 2},
		{"-L -c --stats", false, "options conflicts in the list command", 1, 2},
		{"-L --daemon --persistent-conn", false, "options conflicts in the list command", 1, 2},
		{"-L -c -t 10.0.0.1:80", false, "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 3, 2},
		{"--set 900 120", false, "--set option requires 3 timeout values", 1, 2},
		{"--set 900 120 x", false, "invalid timeout value `x' specified", 4, 2},
		{"--set 1 2 3 4", false, "unexpected argument 4", 5, 2},
		{"--start-daemon foo", false, "illegal start-daemon parameter specified", 2, 2},
		{"--stop-daemon foo", false, "illegal start_daemon specified", 2, 2},
		{"--start-daemon", false, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 1, 255},
		{"--start-daemon master --mcast-group 1.2.3.4", false, "invalid IPv4 mcast-group `1.2.3.4'", 4, 2},
		{"--start-daemon master --mcast-group 2001:db8::1", false, "invalid IPv6 mcast-group `2001:db8::1'", 4, 2},
		{"--start-daemon master --syncid 256", false, "illegal syncid specified", 4, 2},
		{"--start-daemon master --mcast-port 0", false, "illegal mcast-port specified", 4, 2},
		{"--start-daemon master --mcast-ttl 256", false, "illegal mcast-ttl specified", 4, 2},
		{"--start-daemon master --sync-maxlen 65508", false, "illegal sync-maxlen specified", 4, 2},
		{"--start-daemon master -t 10.0.0.1:80", false, "Illegal 'service-address' option with the 'start-daemon' command", 3, 2},
		{"-A -t 10.0.0.1:80 --pe", false, "--pe: missing argument", 4, 255},
		{"-C -n", false, "Illegal 'numeric' option with the 'flush' command", 2, 2},
		// The extensions, where they do not belong.
		{"-A -t 10.0.0.1:80 --keep-port", true, "Illegal 'keep-port' option with the 'add-service' command", 4, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 --svc-timeout 5", true, "Illegal 'svc-timeout' option with the 'add-server' command", 6, 2},
		{"-A -t 10.0.0.1:80 --svc-timeout 5 -p", true, "The option 'svc-timeout' conflicts with the 'persistent' option in the 'add-service' command", 4, 2},
		{"-d -t 10.0.0.1:80 -r 1.2.3.4 --local-node", true, "Illegal 'forwarding-method' option with the 'delete-server' command", 6, 2},
		{"-a -t 10.0.0.1:80 -r 1.2.3.4 -w 2147483648", true, "illegal weight specified", 7, 2},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			p := Parser{Extensions: tt.ext}
			args := strings.Fields(tt.args)
			c, err := p.ParseArgs(args)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseArgs = %+v, %v; want a *SyntaxError", c, err)
			}
			if se.Msg != tt.msg || se.Column != tt.col || se.Status != tt.status || se.Line != 0 {
				t.Errorf("error %q, column %d, status %d, line %d; want %q, column %d, status %d", se.Msg, se.Column, se.Status, se.Line, tt.msg, tt.col, tt.status)
			}
			if tt.col <= len(args) && se.Word != args[tt.col-1] {
				t.Errorf("Word = %q, want %q", se.Word, args[tt.col-1])
			}
		})
	}
}

func TestLookups(t *testing.T) {
	services := "# comment\nhttp\t\t80/tcp\t\twww # WorldWideWeb\nfoo 1234/udp bar\nsctpx 99/sctp\nbad\n"
	look, err := ServicesFile(strings.NewReader(services))
	if err != nil {
		t.Fatal(err)
	}
	p := Parser{
		LookupPort: look,
		LookupHost: func(name string) (netip.Addr, bool) {
			if name == "lb.example" {
				return addr("10.9.9.9"), true
			}
			if name == "v6.example" {
				return addr("2001:db8::1"), true
			}
			return netip.Addr{}, false
		},
	}
	for _, tt := range []struct {
		args string
		want ipvs.Service
	}{
		{"-D -t lb.example:www", tcp("10.9.9.9", 80)},
		{"-D -u lb.example:bar", ipvs.Service{Protocol: ipvs.UDP, Address: addr("10.9.9.9"), Port: 1234}},
		{"-D --sctp-service 10.0.0.1:sctpx", ipvs.Service{Protocol: ipvs.SCTP, Address: addr("10.0.0.1"), Port: 99}},
	} {
		c, err := p.ParseArgs(strings.Fields(tt.args))
		if err != nil || c.Service != tt.want {
			t.Errorf("%s: %v, %v; want %v", tt.args, c.Service, err, tt.want)
		}
	}
	for _, args := range []string{"-D -t v6.example:80", "-D -u lb.example:www", "-D -t nohost:80"} {
		if _, err := p.ParseArgs(strings.Fields(args)); err == nil {
			t.Errorf("%s: no error", args)
		}
	}
	if n, ok := WellKnownPort("https", ipvs.UDP); !ok || n != 443 {
		t.Errorf("WellKnownPort(https, UDP) = %d, %v", n, ok)
	}
	if _, ok := WellKnownPort("ntp", ipvs.TCP); ok {
		t.Errorf("WellKnownPort(ntp, TCP) found a port")
	}
}

func TestInetAton(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1": "10.0.0.1", "10.1": "10.0.0.1", "10.1.2": "10.1.0.2", "167772161": "10.0.0.1",
		"0x0a000001": "10.0.0.1", "012.0.0.1": "10.0.0.1", "0XA.0.0.1": "10.0.0.1", "1.2.3.4\v": "1.2.3.4",
		"0": "0.0.0.0", "255.255.255.255": "255.255.255.255",
		"256.0.0.1": "", "1.2.3.4.5": "", "1..2": "", "": "", "08": "", "0x": "", "1.2.3.256": "",
		"1.65536.1": "", "4294967296": "", "a.b.c.d": "", "1.2.3.4x": "", ".1": "", "1.": "",
	} {
		a, ok := inetAton(in)
		if got := map[bool]string{true: a.String(), false: ""}[ok]; got != want {
			t.Errorf("inetAton(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKindOptionsStrings(t *testing.T) {
	if got := AddServer.String(); got != "add-server" {
		t.Errorf("AddServer = %q", got)
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Errorf("Kind(99) = %q", got)
	}
	if got := (OptNumeric | OptTunRemCsum | 1<<40).String(); got != "numeric|tun-remcsum|0x10000000000" {
		t.Errorf("Options = %q", got)
	}
	if len(optNames) != 36 || len(optTable) == 0 {
		t.Errorf("%d option names", len(optNames))
	}
	for k, row := range commandsVsOptions {
		if row != "" && len(row) != numIpvsadmOpts {
			t.Errorf("%v: %d options in the table", k, len(row))
		}
	}
}
