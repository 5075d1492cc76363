package ipvs

import (
	"context"
	"iter"
	"net/netip"
	"strconv"
	"time"
)

// The kernel has no netlink command for its connection table: it shows it
// in /proc/net/ip_vs_conn and /proc/net/ip_vs_conn_sync, one line per entry
// (net/netfilter/ipvs/ip_vs_conn.c, ip_vs_conn_seq_show and
// ip_vs_conn_sync_seq_show):
//
//	Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//	TCP 0A100002 A1C4 0A100001 0050 0A100101 1F90 ESTABLISHED     899
//	TCP 0A100002 0000 0A100003 0050 0A100101 1F90 ASSURED         299 sip 1234@pbx
//
//	Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
//	TCP 0A100002 A1C4 0A100001 0050 0A100101 1F90 ESTABLISHED LOCAL      899
//
// IPv4 addresses are 8 hexadecimal digits, IPv6 ones the full colon form
// (%pI6: eight groups of four digits), ports 4 hexadecimal digits, the expiry
// whole seconds. The engine's name and data follow only in ip_vs_conn, the
// origin only in ip_vs_conn_sync.

// A Connection is one entry of the kernel's IPVS connection table (what
// `ipvsadm -Lcn` lists): a connection, or a persistence template that binds
// a client (or client network) to a destination. It is comparable.
//
// The kernel shows neither the entry's forwarding method nor its flags: the
// method is the destination's (see Destination.ForwardMethod).
type Connection struct {
	// Protocol is TCP, UDP or SCTP; 0 (the kernel's "IP") for the template
	// of a persistent firewall-mark service. The kernel names a few more
	// protocols (ICMP, IPIP, GRE, ICMPv6) that it never uses for entries.
	Protocol Protocol
	// Client is the client's address and port. A template has the client's
	// network (its address masked by the service's netmask) and port 0.
	Client netip.AddrPort
	// Virtual is the address and port the client connected to. A template
	// has the service's port, or 0 for a persistent port-zero or FTP
	// service. It is the zero AddrPort for a firewall-mark template, whose
	// FirewallMark is set instead.
	Virtual netip.AddrPort
	// FirewallMark is the service's mark for the template of a persistent
	// firewall-mark service, 0 otherwise: the kernel keeps the mark in place
	// of the virtual address there. Connections of firewall-mark services
	// show the address the client connected to, not the mark.
	FirewallMark uint32
	// Destination is the real server's address and port. Its family may
	// differ from the client's (a tunnel to a server of the other family).
	Destination netip.AddrPort
	// State is the protocol's state; a template's is StateNone or
	// StateAssured.
	State ConnectionState
	// Expires is the time left before the entry expires, in whole seconds
	// (rounded down; at most 292 years).
	Expires time.Duration
	// Template reports a persistence template. The kernel prints no flag
	// for it: an entry is a template when its client port is 0, which every
	// template has and no TCP, UDP or SCTP connection does (except an FTP
	// data connection that the ip_vs_ftp helper announced and the client
	// has not opened yet).
	Template bool
	// Origin tells the entries a backup sync daemon installed from the
	// ones this host made. It is OriginUnknown when read from ip_vs_conn.
	Origin ConnectionOrigin
	// PEName and PEData are the persistence engine and its data of a
	// template (for "sip", the Call-ID), when it has them. Only ip_vs_conn
	// shows them.
	PEName string
	PEData string
}

// Active reports whether the kernel counts the connection as active
// (ActiveConn in `ipvsadm -Ln`) rather than inactive (InActConn): a TCP
// connection in ESTABLISHED, SYN_SENT, SYN_RECV or SYNACK, an SCTP
// association in ESTABLISHED. UDP connections and templates are never
// active.
func (c Connection) Active() bool {
	if c.Template {
		return false
	}
	switch c.Protocol {
	case TCP:
		switch c.State {
		case StateEstablished, StateSynSent, StateSynRecv, StateSynAck:
			return true
		}
	case SCTP:
		return c.State == StateEstablished
	}
	return false
}

// ConnectionState is the state of a connection table entry, as the kernel
// names it. TCP and SCTP share StateNone, StateEstablished; templates use
// StateNone and StateAssured.
type ConnectionState uint8

// The states the kernel prints (ip_vs_proto_tcp.c, ip_vs_proto_udp.c,
// ip_vs_proto_sctp.c, ip_vs_proto.c).
const (
	// StateUnknown is a name this package does not know, or the kernel's
	// "?" (a state without a name).
	StateUnknown     ConnectionState = iota
	StateNone                        // NONE: TCP, SCTP, or a template
	StateEstablished                 // ESTABLISHED: TCP or SCTP
	// TCP.
	StateSynSent   // SYN_SENT
	StateSynRecv   // SYN_RECV
	StateFinWait   // FIN_WAIT
	StateTimeWait  // TIME_WAIT
	StateClose     // CLOSE
	StateCloseWait // CLOSE_WAIT
	StateLastAck   // LAST_ACK
	StateListen    // LISTEN
	StateSynAck    // SYNACK
	// UDP has a single state.
	StateUDP // UDP
	// SCTP (the names of kernels from 3.13 on).
	StateSCTPInit1            // INIT1
	StateSCTPInit             // INIT
	StateSCTPCookieSent       // C-SENT
	StateSCTPCookieReplied    // C-REPLIED
	StateSCTPCookieWait       // C-WAIT
	StateSCTPCookie           // COOKIE
	StateSCTPCookieEchoed     // C-ECHOED
	StateSCTPShutdownSent     // S-SENT
	StateSCTPShutdownReceived // S-RECEIVED
	StateSCTPShutdownAckSent  // S-ACK-SENT
	StateSCTPRejected         // REJECTED
	StateSCTPClosed           // CLOSED
	// A template whose connection was established.
	StateAssured // ASSURED
	// StateError is the kernel's "ERR!": a state number out of its table.
	StateError
	numConnectionStates
)

var connectionStateNames = [numConnectionStates]string{
	StateUnknown:              "?",
	StateNone:                 "NONE",
	StateEstablished:          "ESTABLISHED",
	StateSynSent:              "SYN_SENT",
	StateSynRecv:              "SYN_RECV",
	StateFinWait:              "FIN_WAIT",
	StateTimeWait:             "TIME_WAIT",
	StateClose:                "CLOSE",
	StateCloseWait:            "CLOSE_WAIT",
	StateLastAck:              "LAST_ACK",
	StateListen:               "LISTEN",
	StateSynAck:               "SYNACK",
	StateUDP:                  "UDP",
	StateSCTPInit1:            "INIT1",
	StateSCTPInit:             "INIT",
	StateSCTPCookieSent:       "C-SENT",
	StateSCTPCookieReplied:    "C-REPLIED",
	StateSCTPCookieWait:       "C-WAIT",
	StateSCTPCookie:           "COOKIE",
	StateSCTPCookieEchoed:     "C-ECHOED",
	StateSCTPShutdownSent:     "S-SENT",
	StateSCTPShutdownReceived: "S-RECEIVED",
	StateSCTPShutdownAckSent:  "S-ACK-SENT",
	StateSCTPRejected:         "REJECTED",
	StateSCTPClosed:           "CLOSED",
	StateAssured:              "ASSURED",
	StateError:                "ERR!",
}

// String returns the kernel's name of the state, such as "ESTABLISHED".
func (s ConnectionState) String() string {
	if s < numConnectionStates {
		return connectionStateNames[s]
	}
	return "ConnectionState(" + strconv.Itoa(int(s)) + ")"
}

// parseConnectionState maps the kernel's name to a state; unknown names
// give StateUnknown.
func parseConnectionState(b []byte) ConnectionState {
	// A switch on string(b) compares without allocating.
	switch string(b) {
	case "NONE":
		return StateNone
	case "ESTABLISHED":
		return StateEstablished
	case "SYN_SENT":
		return StateSynSent
	case "SYN_RECV":
		return StateSynRecv
	case "FIN_WAIT":
		return StateFinWait
	case "TIME_WAIT":
		return StateTimeWait
	case "CLOSE":
		return StateClose
	case "CLOSE_WAIT":
		return StateCloseWait
	case "LAST_ACK":
		return StateLastAck
	case "LISTEN":
		return StateListen
	case "SYNACK":
		return StateSynAck
	case "UDP":
		return StateUDP
	case "INIT1":
		return StateSCTPInit1
	case "INIT":
		return StateSCTPInit
	case "C-SENT":
		return StateSCTPCookieSent
	case "C-REPLIED":
		return StateSCTPCookieReplied
	case "C-WAIT":
		return StateSCTPCookieWait
	case "COOKIE":
		return StateSCTPCookie
	case "C-ECHOED":
		return StateSCTPCookieEchoed
	case "S-SENT":
		return StateSCTPShutdownSent
	case "S-RECEIVED":
		return StateSCTPShutdownReceived
	case "S-ACK-SENT":
		return StateSCTPShutdownAckSent
	case "REJECTED":
		return StateSCTPRejected
	case "CLOSED":
		return StateSCTPClosed
	case "ASSURED":
		return StateAssured
	case "ERR!":
		return StateError
	}
	return StateUnknown
}

// ConnectionOrigin tells where a connection table entry came from.
type ConnectionOrigin uint8

// Origins.
const (
	// OriginUnknown: the entry was read from a file that does not show its
	// origin (/proc/net/ip_vs_conn).
	OriginUnknown ConnectionOrigin = iota
	// OriginLocal: this host scheduled the connection.
	OriginLocal
	// OriginSync: a backup sync daemon installed the entry from a master's
	// sync message.
	OriginSync
)

// String returns "LOCAL" or "SYNC" as the kernel prints them, or
// "unknown".
func (o ConnectionOrigin) String() string {
	switch o {
	case OriginUnknown:
		return "unknown"
	case OriginLocal:
		return "LOCAL"
	case OriginSync:
		return "SYNC"
	}
	return "ConnectionOrigin(" + strconv.Itoa(int(o)) + ")"
}

// Connections streams the connection table of the Client's network
// namespace from /proc/net/ip_vs_conn_sync, which shows each entry's
// origin, or from /proc/net/ip_vs_conn on a kernel without it; it stops at
// the first error, which it yields with a zero Connection. The kernel shows
// persistence-engine data only in ip_vs_conn: read it with
// ConnectionsWithPE.
//
// The table is read in chunks, not as one snapshot: an entry added or
// removed meanwhile may be missed, and one may appear twice. 7.x kernels
// also rehash the connection table into one of another size as the number
// of connections grows or shrinks, and a read that spans a rehash goes on
// in the new table from the same bucket: it may miss many entries and
// repeat others, with no error. Treat the listing as a view of a table in
// motion, not an exact count. Memory use
// does not depend on the table's size, and an entry costs no allocation
// (but for its PEData). ctx is checked between chunks. A goroutine of its
// own reads the next chunks while the caller's goroutine decodes; it ends
// before the iteration does.
//
// Kernels 5.10 to 6.12 walk their whole table (every namespace's) from the
// start for each chunk, so reading n entries costs them O(n²); 7.2 does
// not. See BENCHMARKS.md.
func (c *Client) Connections(ctx context.Context) iter.Seq2[Connection, error] {
	return c.c.connections(ctx, false)
}

// ConnectionsWithPE is Connections reading /proc/net/ip_vs_conn, which
// shows the persistence engine's name and data (PEName, PEData) but not the
// origin (Origin is OriginUnknown).
func (c *Client) ConnectionsWithPE(ctx context.Context) iter.Seq2[Connection, error] {
	return c.c.connections(ctx, true)
}

// ConnectionCounts counts the entries of the Client's connection table per
// destination of a virtual service (CountConnections), reading it as
// Connections does.
func (c *Client) ConnectionCounts(ctx context.Context) (map[ConnectionKey]ConnectionCount, error) {
	return CountConnections(c.Connections(ctx))
}

// ConnectionKey is a destination of a virtual service as the connection
// table shows it.
type ConnectionKey struct {
	Protocol Protocol
	// Virtual is the address and port the clients connected to: for an
	// address service, its address and port; for a firewall-mark service,
	// the address each client used, one key per address. Templates of a
	// persistent firewall-mark service have Protocol 0 and FirewallMark
	// instead.
	Virtual      netip.AddrPort
	FirewallMark uint32
	Destination  netip.AddrPort
}

// ConnectionCount is what the connection table holds for a destination:
// the kernel's ActiveConn, InActConn and PersistConn counters of it (as
// `ipvsadm -Ln --persistent-conn` shows them), from the entries themselves,
// with the connections counted per state.
type ConnectionCount struct {
	// Active and Inactive count connections (Connection.Active).
	Active, Inactive int
	// Templates counts persistence templates: they carry no traffic, but
	// send the clients they remember to this destination until they
	// expire (unless the expire_quiescent_template sysctl is set and the
	// destination's weight is 0).
	Templates int
	// States counts the connections (not templates) per state.
	States map[ConnectionState]int
}

// Drained reports that no connection (active or not) uses the destination:
// removing it now breaks no flow. Templates may remain.
func (n ConnectionCount) Drained() bool { return n.Active == 0 && n.Inactive == 0 }

// CountConnections counts the entries seq yields (for example
// Client.Connections or ParseConnections) per destination of a virtual
// service. It returns the first error seq yields.
//
// A destination is drained when its count is Drained, or absent from the
// map. A destination of several services has one key per service.
func CountConnections(seq iter.Seq2[Connection, error]) (map[ConnectionKey]ConnectionCount, error) {
	counts := make(map[ConnectionKey]ConnectionCount)
	for cn, err := range seq {
		if err != nil {
			return nil, err
		}
		k := ConnectionKey{Protocol: cn.Protocol, Virtual: cn.Virtual, FirewallMark: cn.FirewallMark, Destination: cn.Destination}
		n := counts[k]
		switch {
		case cn.Template:
			n.Templates++
		case cn.Active():
			n.Active++
		default:
			n.Inactive++
		}
		if !cn.Template {
			if n.States == nil {
				n.States = make(map[ConnectionState]int)
			}
			n.States[cn.State]++
		}
		counts[k] = n
	}
	return counts, nil
}
