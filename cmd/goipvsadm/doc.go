// Command goipvsadm is ipvsadm 1.31 on the ipvs package: the same command
// line, the same output byte for byte, the same messages and exit
// statuses, as one static binary (CGO_ENABLED=0) without libnl or popt.
// Installed or symlinked as ipvsadm, it is a drop-in replacement; it names
// itself in its messages by the name it was run as, as ipvsadm does.
//
//	go install github.com/ipvs-go/ipvs/cmd/goipvsadm@latest
//	ln -s "$(go env GOPATH)/bin/goipvsadm" /usr/local/sbin/ipvsadm
//
// Every command (-A -E -D -C -R -S -a -e -d -L/-l -Z --set --start-daemon
// --stop-daemon -h -v) and option of ipvsadm 1.31 is read by
// ipvsrules.ParseArgs, with ipvsadm's defaults and its combined short
// options (-Ln, -Lnc). Listings (-L with -n, --stats, --rate, --exact,
// --thresholds, --persistent-conn, --tun-info, --nosort, -t/-u/-f, -c,
// --timeout, --daemon) and -S print what ipvsadm prints, including its
// sort order and its K/M/G/T numbers.
//
// # Beyond ipvsadm
//
//	--netns NAME|PATH   operate in the network namespace /run/netns/NAME
//	                    or the one of PATH (/proc/PID/ns/net), without
//	                    ip netns exec; it goes with every command.
//	--json              with -L: print JSON instead of text (below).
//	--reconcile FILE    make the table equal to the rules in FILE ("-" for
//	                    stdin; ipvsadm -S text) through Client.Reconcile,
//	                    deleting every other service in scope. Without
//	                    --owns the scope is the WHOLE table.
//	--owns SCOPE        with --reconcile, repeatable: only the services in
//	                    SCOPE are reconciled, the others left alone:
//	                    an address or prefix (10.0.0.0/24, 2001:db8::/64)
//	                    or fwmark:N or fwmark:LO-HI.
//	--dry-run           with --reconcile: print the changes as ipvsadm
//	                    command lines (-A -E -D -a -e -d), change nothing.
//
// -R reads every line before it changes anything: a bad line is reported
// with its line number, all bad lines are, and then nothing is applied
// (ipvsadm applies the lines before the first bad one, then stops). The
// good input is applied through ipvsrules.ApplyText, many rules per system
// call.
//
// # JSON
//
// -L --json prints one object, the same whatever list option is given
// (--stats, --rate, ... select nothing: every field is always there).
// The schema (version 1) only ever gains fields:
//
//	-L [-t|-u|-f service]:
//	{"version": "1.2.1", "size": 4096,          (absent with -t/-u/-f)
//	 "services": [{
//	   "protocol": "TCP"|"UDP"|"SCTP", "address": "10.0.0.1", "port": 80,
//	                                           (address services)
//	   "fwmark": 100,                          (firewall-mark services)
//	   "family": "ipv4"|"ipv6", "scheduler": "wlc",
//	   "sched_flags": ["sh-fallback", ...], "persistent": false,
//	   "timeout": 300, "netmask": "255.255.255.255"|"128", "pe": "sip",
//	   "ops": false,
//	   "stats": {"conns", "inpkts", "outpkts", "inbytes", "outbytes"},
//	   "rate": {"cps", "inpps", "outpps", "inbps", "outbps"},
//	   "destinations": [{
//	     "address": "192.168.1.10", "port": 8080,
//	     "forward": "masq"|"route"|"tunnel"|"local", "weight": 1,
//	     "u_threshold": 0, "l_threshold": 0, "active_conns": 0,
//	     "inactive_conns": 0, "persistent_conns": 0,
//	     "tunnel": {"type": "ipip"|"gue"|"gre", "port": 6080,
//	                "checksum": "nocsum"|"csum"|"remcsum"}, (tunnels)
//	     "stats": {...}, "rate": {...}}]}]}
//	-L --timeout: {"tcp": 900, "tcpfin": 120, "udp": 300}
//	-L --daemon:  {"daemons": [{"state": "master"|"backup",
//	               "mcast_interface": "eth0", "syncid": 0,
//	               "sync_maxlen": 1472, "mcast_group": "224.0.0.81",
//	               "mcast_port": 8848, "mcast_ttl": 1}]}
//	-L -c:        {"connections": [{"protocol": "TCP", "client":
//	               "10.0.0.2:40000", "virtual": "10.0.0.1:80",
//	               "fwmark": 0, "destination": "192.168.1.10:80",
//	               "state": "ESTABLISHED", "expires": 899,
//	               "template": false, "pe_name": "", "pe_data": ""}]}
//
// Numbers are exact; services and destinations are in ipvsadm's order
// (the kernel's with --nosort).
//
// # Differences from ipvsadm 1.31
//
// Kept on purpose (ipvsadm's behaviour, bugs included, is the default):
//   - the sort order of services and destinations compares addresses as
//     signed 32-bit differences (10.0.0.1 sorts after 200.0.0.1);
//   - firewall marks above 2147483647 print as negative numbers;
//   - -R exits with the status of its last line only;
//   - IPv4 names are cut at 33 (service) and 28 (destination) columns.
//
// Not the same:
//   - -h prints ipvsadm's help and then this package's extensions.
//   - Without -n, addresses are named by Go's resolver (/etc/hosts, then
//     DNS per /etc/resolv.conf; ipvsadm uses gethostbyaddr, which may
//     also consult NSS modules) and ports by /etc/services. On the
//     command line, host names resolve through Go's resolver too, and
//     service names through /etc/services or, where there is none, a
//     built-in table of common names (ipvsadm refuses them then).
//   - -R: comment lines are skipped; every bad line is reported as
//     "line N, column C: message", and nothing is applied (above).
//   - A request the ipvs package refuses before sending (an input the
//     kernel would refuse anyway) prints ipvsadm's EINVAL message
//     followed by the package's reason in parentheses.
//   - Without IPVS, the ip_vs module is loaded with /sbin/modprobe as
//     ipvsadm does; a kernel without IPVS gives ipvsadm's message.
//   - -c reads /proc/net/ip_vs_conn through ipvs.Client.ConnectionsWithPE
//     (the namespace of --netns), all of it before printing.
package main

// extensionsText is the end of -h: what goipvsadm adds to ipvsadm.
const extensionsText = `Beyond ipvsadm 1.31 (goipvsadm):
  --netns NAME|PATH                   operate in network namespace /run/netns/NAME or PATH
  --json                              with -L: JSON output (schema: go doc github.com/ipvs-go/ipvs/cmd/goipvsadm)
  --reconcile FILE                    make the table equal to the rules in FILE (- for stdin),
                                      deleting every service in scope that FILE does not name
  --owns SCOPE                        with --reconcile: the services it may touch (repeatable):
                                      address, prefix (10.0.0.0/24) or fwmark:N[-M];
                                      default: the whole table
  --dry-run                           with --reconcile: print the changes as ipvsadm commands
  -R                                  reads and checks every line first: bad lines are reported
                                      with their line numbers and then nothing is applied
`
