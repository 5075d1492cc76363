// Package ipvsrules reads and writes ipvsadm's command lines and rules text,
// the format of "ipvsadm -S -n" and "ipvsadm -R", for the ipvs package.
//
// Format writes a table, as ipvs.Client.VirtualServices reads it, byte for
// byte as ipvsadm 1.31's "ipvsadm -S -n" does. Parse reads rules text into
// Commands: the changes (-A, -E, -D, -a, -e, -d) for ipvs.Client.Apply, and
// -C, -Z, --set, --start-daemon and --stop-daemon, which Apply in this
// package runs in order with the rest. ApplyText does both, for a restore
// like "ipvsadm -R", a chunk at a time. ParseArgs parses one command line,
// every command and option of ipvsadm 1.31 with its popt syntax, its
// defaults and its error messages, for a command-line tool.
//
// # What ipvsadm accepts, and what this package adds
//
// Parsing follows ipvsadm 1.31's source: a line's first option is the
// command; short options combine ("-Ln", "-w5", "-p=60"); a long option
// takes "--opt value" or "--opt=value"; -p without a value is 360 seconds (not 300: IPVS_SVC_PERSISTENT_TIMEOUT);
// -A and -E default to the wlc scheduler, -a and -e to weight 1 and -g;
// ports are numbers or service names of the protocol; IPv4 addresses are
// read as inet_aton reads them ("10.1" is 10.0.0.1); IPv6 addresses go in
// brackets when a port follows; -M is a dotted mask for IPv4 and a prefix
// length for IPv6; DR and IPIP destinations of an address service take
// the service's port, as ipvsadm forces it. Options apply in order, as in
// ipvsadm: -r without a port takes the port of a -t given before it, -6 (after
// -f) resets -M, -b is checked against the scheduler at the end.
//
// -E and -e are replacements: ipvsadm sends the whole service or
// destination, every field not given at its default, so
// "-E -t 10.0.0.1:80 -s rr" turns persistence off. Command.Change keeps
// that meaning (ipvs.UpdateService, ipvs.UpdateDestination).
//
// Differences from ipvsadm 1.31, all documented choices:
//   - Host names (ipvsadm's gethostbyname) are resolved only through
//     Parser.LookupHost; service names through Parser.LookupPort, by
//     default a built-in table of common names (WellKnownPort), or
//     /etc/services with ServicesFile.
//   - Rules text: comment lines ("#" first) are skipped, where ipvsadm -R
//     stops with an error (its ipvsadm-restore script strips them); a last
//     line that ends in blanks without a newline is parsed, where ipvsadm
//     drops it; every bad line is reported and, by default, nothing is
//     returned to apply, where ipvsadm -R runs the lines before the first
//     bad one and stops there.
//   - "-b ," is an error (ipvsadm 1.31 crashes).
//
// # What ipvsadm -S loses
//
// ipvsadm -S -n does not write: destination thresholds (-x, -y); the
// scheduler flag flag-3 of sh and mh services (and with flag-3 alone it
// writes "-b " with no value, which its -R refuses); a netmask or
// persistence timeout of a service without persistence; the Local
// forwarding method (written as -g); the port of a DR or IPIP destination
// that differs from its service's (written, but -R replaces it with the
// service's). It writes firewall marks above 2147483647 as negative
// numbers, and -R refuses those, timeouts above 31
// days and port 0 without persistence, all of which the kernel keeps.
//
// FormatOptions.Lossless writes all of it, with ipvsadm's own options where
// it has one (-x, -y, -b flag-3, -M) and three extension options where it
// has none: --local-node (the Local forwarding method, instead of -g),
// --keep-port (keep a DR or IPIP destination's port) and --svc-timeout N
// (a timeout without persistence). Parser.Extensions reads them and lifts
// ipvsadm's limits; ipvsadm -R refuses them. Scheduler and persistence
// engine names that hold blanks, or are the word "ipvsadm", cannot be
// written as rules text at all.
//
// # Order
//
// ipvsadm sorts services by firewall mark, family, protocol, address and
// port, and destinations by address and port, but compares 32-bit values by
// subtracting them as signed integers: 10.0.0.1 sorts after 200.0.0.1
// (their difference overflows), and the comparison is not even a
// consistent order. Format reproduces the order glibc's qsort (a merge sort)
// makes of it, which depends on the order of its input: for byte-identical
// output, give Format the table in the kernel's order, as VirtualServices
// returns it.
package ipvsrules
