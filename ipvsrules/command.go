package ipvsrules

import (
	"fmt"
	"strings"

	"github.com/ipvs-go/ipvs"
)

// Kind is the command of an ipvsadm command line: its first option.
type Kind uint8

// The commands of ipvsadm 1.31, named after its long options.
const (
	AddService    Kind = iota + 1 // -A, --add-service
	EditService                   // -E, --edit-service
	DeleteService                 // -D, --delete-service
	Clear                         // -C, --clear
	List                          // -L, -l, --list (and no arguments at all)
	AddServer                     // -a, --add-server
	DeleteServer                  // -d, --delete-server
	EditServer                    // -e, --edit-server
	SetTimeouts                   // --set tcp tcpfin udp
	StartDaemon                   // --start-daemon master|backup
	StopDaemon                    // --stop-daemon master|backup
	Restore                       // -R, --restore
	Save                          // -S, --save
	Zero                          // -Z, --zero
	Help                          // -h, --help
	Version                       // -v, --version
)

// cmdNames are ipvsadm's names of the commands, in its error messages.
var cmdNames = [...]string{
	AddService:    "add-service",
	EditService:   "edit-service",
	DeleteService: "delete-service",
	Clear:         "flush",
	List:          "list",
	AddServer:     "add-server",
	DeleteServer:  "delete-server",
	EditServer:    "edit-server",
	SetTimeouts:   "set",
	StartDaemon:   "start-daemon",
	StopDaemon:    "stop-daemon",
	Restore:       "restore",
	Save:          "save",
	Zero:          "zero",
	Help:          "help",
	Version:       "version",
}

// String returns ipvsadm's name of the command, such as "add-service", or
// "Kind(N)".
func (k Kind) String() string {
	if int(k) < len(cmdNames) && cmdNames[k] != "" {
		return cmdNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Options is a set of the options given on a command line, for the
// options that have no field of their own in Command (-n, --stats, ...) and
// to tell a value given from a default (Has(OptWeight)).
type Options uint64

// The options, in ipvsadm 1.31's order. An option that sets a field of
// Command is in the set when it was given.
const (
	OptNumeric           Options = 1 << iota // -n, --numeric
	OptConnection                            // -c, --connection
	OptService                               // -t, -u, --sctp-service, -f
	OptScheduler                             // -s, --scheduler
	OptPersistent                            // -p, --persistent
	OptNetmask                               // -M, --netmask
	OptServer                                // -r, --real-server
	OptForward                               // -g, -m, -i (and the extension --local-node)
	OptWeight                                // -w, --weight
	OptUThreshold                            // -x, --u-threshold
	OptLThreshold                            // -y, --l-threshold
	OptMcastInterface                        // --mcast-interface
	OptTimeout                               // --timeout
	OptDaemon                                // --daemon
	OptStats                                 // --stats
	OptRate                                  // --rate
	OptThresholds                            // --thresholds
	OptPersistentConn                        // --persistent-conn
	OptNoSort                                // --nosort
	OptSyncID                                // --syncid
	OptExact                                 // -X, --exact
	OptOnePacket                             // -o, --ops
	OptPersistenceEngine                     // --pe
	OptSchedFlags                            // -b, --sched-flags
	OptMcastGroup                            // --mcast-group
	OptMcastPort                             // --mcast-port
	OptMcastTTL                              // --mcast-ttl
	OptSyncMaxLen                            // --sync-maxlen
	OptTunInfo                               // --tun-info
	OptTunType                               // --tun-type
	OptTunPort                               // --tun-port
	OptTunNoCsum                             // --tun-nocsum
	OptTunCsum                               // --tun-csum
	OptTunRemCsum                            // --tun-remcsum

	// The extensions, accepted only with Parser.Extensions (see the
	// package documentation).
	OptKeepPort   // --keep-port
	OptSvcTimeout // --svc-timeout
)

// numIpvsadmOpts is the number of ipvsadm's own options.
const numIpvsadmOpts = 34

// optNames are ipvsadm's names of the options, in its error messages.
var optNames = [...]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum",
	"tun-remcsum", "keep-port", "svc-timeout",
}

// Has reports whether every option of o2 is in o.
func (o Options) Has(o2 Options) bool { return o&o2 == o2 }

// String returns the options' ipvsadm names, joined by "|", such as
// "numeric|stats".
func (o Options) String() string {
	var names []string
	for i, n := range optNames {
		if o&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := o &^ (1<<len(optNames) - 1); rest != 0 {
		names = append(names, fmt.Sprintf("%#x", uint64(rest)))
	}
	return strings.Join(names, "|")
}

// A Command is one ipvsadm command line, parsed. Fields that its Kind does
// not use are zero; ipvsadm's defaults are filled in where it applies them:
// scheduler wlc for -A and -E, weight 1 and forwarding method DR (-g) for -a
// and -e, persistence timeout 360 s for -p without a value, multicast
// interface eth0 for --start-daemon.
type Command struct {
	Kind Kind
	// Service is the service of -A, -E, -D, -a, -e, -d, and of -L and -Z
	// when one is given (Options has OptService). For -A and -E it is
	// the whole configuration that ipvsadm sends; for the others only its
	// identity fields are set.
	Service ipvs.Service
	// Destination is the real server of -a, -e and -d (for -d, only its
	// identity: Address and Port).
	Destination ipvs.Destination
	// Timeouts are the values of --set; 0 leaves that timeout unchanged.
	Timeouts ipvs.Timeouts
	// Daemon is the sync daemon of --start-daemon and --stop-daemon (for
	// --stop-daemon only State and, if given, SyncID).
	Daemon ipvs.SyncDaemon
	// Options are the options given.
	Options Options
	// Line is the command's line in rules text, 1 for the first; 0 from
	// ParseArgs.
	Line int
}

// Change returns the change that the command makes, for ipvs.Client.Apply:
// -A, -E, -D, -a, -e and -d are changes; ok is false for the others.
//
// -E and -e replace the whole configuration of the service or destination
// with the command's, fields not given taking ipvsadm's defaults, as
// ipvsadm does: "-E -t 10.0.0.1:80 -s rr" removes persistence.
func (c Command) Change() (ch ipvs.Change, ok bool) {
	ok = c.changeTo(&ch)
	return ch, ok
}

// changeKinds are the kinds of change of the commands that are changes.
var changeKinds = [...]ipvs.ChangeKind{
	AddService:    ipvs.CreateService,
	EditService:   ipvs.UpdateService,
	DeleteService: ipvs.DeleteService,
	AddServer:     ipvs.CreateDestination,
	EditServer:    ipvs.UpdateDestination,
	DeleteServer:  ipvs.DeleteDestination,
}

// changeTo sets every field of *ch to the command's change, as Change
// returns it, writing in place; it reports false, leaving *ch as it was,
// if the command is not a change.
func (c *Command) changeTo(ch *ipvs.Change) bool {
	if !c.Kind.isChange() {
		return false
	}
	ch.Kind = changeKinds[c.Kind]
	ch.Service = c.Service
	switch c.Kind {
	case AddServer, EditServer, DeleteServer:
		ch.Destination = c.Destination
	default:
		ch.Destination = ipvs.Destination{}
	}
	return true
}

// isChange reports whether Command.Change returns a change for k.
func (k Kind) isChange() bool {
	switch k {
	case AddService, EditService, DeleteService, AddServer, EditServer, DeleteServer:
		return true
	}
	return false
}

// A SyntaxError is a command line or rules text that ipvsadm refuses, or
// that this package cannot represent.
type SyntaxError struct {
	// Line and Column locate the word at fault in rules text, both
	// counted from 1 (Column in bytes). From ParseArgs, Line is 0 and
	// Column is 1 + the index in args of the word at fault.
	Line, Column int
	// Word is the word at fault, such as "-w" or "70000"; empty for the
	// end of the line.
	Word string
	// Msg is the message, the one ipvsadm 1.31 prints on stderr where it
	// has one (such as "illegal weight specified"), without the newline.
	Msg string
	// Status is ipvsadm 1.31's exit status for this error: 2 for most,
	// 255 for the errors of its option parser (popt) and for a first
	// option that is not a command. It is 1 for inputs ipvsadm would
	// accept but this package refuses (an address it cannot represent, a
	// host name without Parser.LookupHost, a rules text line that would
	// list or save).
	Status int
}

// Error returns the message with its position: "line 3, column 18: illegal
// weight specified" in rules text, "argument 4 ("70000"): ..." from
// ParseArgs.
func (e *SyntaxError) Error() string {
	msg := strings.TrimRight(e.Msg, "\n")
	if e.Line > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, msg)
	}
	if e.Column > 0 {
		return fmt.Sprintf("argument %d (%q): %s", e.Column, e.Word, msg)
	}
	return msg
}

// SyntaxErrors are the errors of every bad line of rules text, in order.
type SyntaxErrors []*SyntaxError

// Error returns the errors, one per line.
func (es SyntaxErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors, for errors.As.
func (es SyntaxErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
