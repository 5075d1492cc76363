// Package healthcheck runs health checks of IPVS destinations and sets their
// weights through an ipvs.Client, with the semantics of keepalived's checker.
//
// IPVS never checks whether a destination is alive: a dead one keeps its
// share of new connections until something sets its weight to 0. A Monitor
// does that for the services it is given:
//
//   - Checks (Check): TCP connect, HTTP and HTTPS GET (status codes, body
//     digest or substring, Host header, TLS server name, certificate checking
//     on or off), UDP (payload, reply), DNS (a query that must be answered),
//     a command (keepalived's MISC_CHECK, and misc_dynamic where the exit
//     status sets the weight), or a Go function. Each has its interval
//     (delay_loop), timeout, retries and delay between them, successes
//     needed to pass again, a random warm-up, the address and port to check,
//     a source address and a firewall mark.
//   - A destination is up when all its checks pass. Down, its weight is
//     set to 0 so that its connections drain (inhibit_on_failure), or it is
//     removed (Destination.Remove); up, it gets its configured weight back.
//     Destination.Alpha starts it down until its checks pass.
//   - Each service has a quorum with hysteresis: below it, a sorry server
//     takes over (Service.Sorry).
//   - Beyond keepalived: a depool threshold (Service.DepoolThreshold) never
//     takes out more than a fraction of a service's destinations at once;
//     flap damping (Options.Damping) holds a flapping destination down; a
//     Monitor started over a table that a previous one left reads the
//     kernel's weights and takes nothing live out; every transition is an
//     Event, with the error of the check that caused it.
//   - Changes go through Client.Apply, all those of the results received
//     together in one call, the ones that add capacity first. A Monitor
//     changes only the destinations it is given and the sorry servers, and
//     a service only to create it if it is missing.
//
// # Where checks run from
//
// Checks run from the network namespace of the Client, the load balancer's,
// even when the process runs in another one: each check socket is created by
// a thread in that namespace (ipvs.Client.InNetNS) and used from anywhere
// afterwards; commands are started from such a thread too. Entering another
// namespace needs CAP_SYS_ADMIN, and costs two setns(2) per socket; a Client
// of the process's own namespace needs neither.
//
// # Cost
//
// A Monitor keeps the waiting checks in a timer heap and takes each result
// by looking only at the destination that reported, so a check costs the
// same with 10 or 10 000 destinations. The checks due together start
// together (Options.Coalesce: by default those due within a 20th of their
// interval, at most 50 ms, start at once, so that a second of 1000 checks
// is 20 wake-ups), and a TCP check whose connection opens within
// connect(2) (a local destination) finishes there. A TCP check or plain
// HTTP GET that passed leaves its socket to the next: its connection is
// reset with connect(2) to AF_UNSPEC, which keeps the socket, and the next
// check connects it again, with no socket(2), close(2) or visit to the
// Client's namespace (keepalived makes and closes a socket per check); new
// sockets are made in one visit per 16 checks. TCP checks and plain HTTP
// GETs that must wait (for a remote handshake, for an answer) wait, as
// keepalived's do, in one epoll instance of the Monitor's. The Monitor's
// goroutine itself waits in a second one, alone in the Go runtime's
// poller, which holds the first (armed one-shot, only while the Monitor
// waits for sockets), a timerfd for the next due check and an eventfd for
// the results of the checks on goroutines: no goroutine, timer or context
// per check, no hand-off between goroutines per wake-up, and no runtime
// timer, whose firing would also wake an idle thread of the runtime that
// finds nothing to do. It takes the sockets ready at most once per 5 ms,
// and answers that come meanwhile wake no thread, so that answers coming
// one by one wake it once for many. The other checks (HTTPS, UDP, DNS,
// commands, Func) run on goroutines. At most Options.MaxInFlight checks are under way at
// once. A local TCP check is three system calls (connect, getpeername,
// and the reset; a remote destination adds its registration in the epoll
// instance); an HTTP check is one GET over its own connection, judged by
// its status line and, when set, its body, and ends once what came
// decides it (a plain GET reads at most 64 KiB of head and MaxBody of
// body on the Monitor's goroutine, which always decides it). A plain GET
// acknowledges late (TCP_QUICKACK off): the ACK that ends the handshake
// leaves with the request, and an answer read within the delayed-ACK
// timeout is never acknowledged, the reset ends the connection; the
// server receives three segments of the check (SYN, request, reset)
// instead of five.
//
// BENCHMARKS.md compares the Monitor with keepalived's checker.
//
// # Checking through the forwarding path
//
// A check of a DR or IPIP destination normally connects to the destination's
// own address, which tests the server but not what clients reach: the
// virtual address on the backend's loopback or tunnel device, the ARP and
// rp_filter settings, the tunnel. To check through the forwarding path, give
// each such destination a firewall-mark service of its own that holds only
// it (same forwarding method), and point its checks at the virtual address
// with that mark:
//
//	// ipvsadm -A -f 101 -s rr; ipvsadm -a -f 101 -r 10.0.2.1 -g
//	healthcheck.Check{
//		Probe:   healthcheck.HTTP{Path: "/health"},
//		Address: vip,          // connect to the virtual address...
//		Mark:    101,          // ...marked for the service of this one destination
//		Source:  lbAddress,    // a real address of the load balancer, not the VIP
//	}
//
// IPVS schedules packets that the load balancer itself sends (its LOCAL_OUT
// hook) and matches firewall-mark services on the packet's mark, which
// SO_MARK sets, so the check's connection reaches that one destination the
// way client connections do; the backend answers the source address
// directly. Source must be a real address of the load balancer: with the
// VIP as source, the backend, which holds the VIP itself, would answer
// itself. The answers come from the VIP, which is an address of the load
// balancer too, so its interface towards the backends must accept them:
// net.ipv4.conf.IFACE.accept_local=1 and rp_filter 0 (without them the
// kernel drops them as martians and the check never passes; the real-kernel
// test does both). The mark services are not given to the Monitor (their
// one destination must not be taken out by its own checks).
//
// # Timing
//
// A check begins Interval after the previous one began (as it was due),
// whatever each takes, so that a slow check or a busy Monitor does not lower
// the rate; keepalived counts delay_loop from the end of the previous check.
// A check may start up to Options.Coalesce early, which does not move the
// next.
// A destination that fails is down after the next check and Retries more,
// RetryDelay apart: at most Interval + Retries×RetryDelay + (Retries+1)×Timeout
// after it stopped. A failed check passes again after Rise successes,
// Interval apart.
package healthcheck
