package ipvsrules

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ipvs-go/ipvs"
)

// A Parser parses ipvsadm command lines and rules text. The zero Parser
// accepts exactly what ipvsadm 1.31 accepts, with its defaults, and looks
// port names up with WellKnownPort and host names nowhere.
type Parser struct {
	// Extensions accepts, beyond ipvsadm 1.31, what Format writes with
	// Lossless: the options --local-node, --keep-port and --svc-timeout,
	// persistence timeouts up to 4294967 s
	// and port 0 for a service without persistence (see the package
	// documentation).
	Extensions bool
	// LookupPort, if not nil, maps a service name of a protocol to its
	// port, as getservbyname(3) does for ipvsadm; nil is WellKnownPort.
	// ServicesFile makes one from /etc/services.
	LookupPort func(name string, proto ipvs.Protocol) (port uint16, ok bool)
	// LookupHost, if not nil, resolves a host name to an IPv4 address, as
	// gethostbyname(3) does for ipvsadm (virtual and real server
	// addresses, -M netmasks). With nil, only numeric addresses are
	// accepted: a parser does no network I/O unless it is given a
	// resolver.
	LookupHost func(name string) (addr netip.Addr, ok bool)
	// ContinueOnError makes Parse return the commands of every good line
	// with the errors of the bad ones. By default Parse returns no
	// commands when a line is bad.
	ContinueOnError bool
}

// ParseArgs parses an ipvsadm command line without the program name, as
// ipvsadm 1.31 does: a command (the first option), then its options in any
// order, short options combinable ("-Ln") and their values attached or
// not ("-w5", "-w 5", "--weight=5"). No arguments at all is List, as
// ipvsadm lists the table then. Errors are *SyntaxError values.
func ParseArgs(args []string) (Command, error) {
	var p Parser
	return p.ParseArgs(args)
}

// ParseArgs is the package's ParseArgs with p's settings.
func (p *Parser) ParseArgs(args []string) (Command, error) {
	if len(args) == 0 {
		return Command{Kind: List}, nil
	}
	var c Command
	if err := p.parseInto(args, &c); err != nil {
		return Command{}, err
	}
	return c, nil
}

// parseInto parses args into c, which must be the zero Command; after an
// error c holds a partial command.
func (p *Parser) parseInto(args []string, c *Command) error {
	st := state{p: p, args: args}
	return st.parse(c)
}

// state is one command line being parsed: popt's cursor and ipvsadm's
// struct ipvs_command_entry.
type state struct {
	p    *Parser
	args []string

	// popt
	next      int    // the next word
	cluster   string // the rest of a cluster of short options
	clusterAt int    // its word
	rest      bool   // after "--"
	leftovers []int  // words that are not options

	// ipvsadm's entry
	cmd      Kind
	cmdWord  int
	options  Options
	optWord  [36]int32 // the word of each option, for errors
	af       ipvs.Family
	proto    ipvs.Protocol
	addr     netip.Addr
	port     uint16
	fwmark   uint32
	sched    string
	flags    ipvs.ServiceFlags
	timeout  uint32
	netmask  uint32 // IPv4: the mask; IPv6: the prefix length
	pe       string
	schedArg string
	schedAt  int

	daddr    netip.Addr
	dport    uint16
	fwd      ipvs.ForwardMethod
	weight   int64
	uthresh  uint32
	lthresh  uint32
	tunType  ipvs.TunnelType
	tunPort  uint16
	tunFlags uint16

	timeouts [3]uint32
	daemon   ipvs.SyncDaemon
}

// errAt returns the error of word i (len(args) for the end of the line).
func (st *state) errAt(i, status int, format string, a ...any) *SyntaxError {
	e := &SyntaxError{Column: i + 1, Msg: fmt.Sprintf(format, a...), Status: status}
	if i >= 0 && i < len(st.args) {
		e.Word = st.args[i]
	}
	return e
}

// fail is ipvsadm's fail(2, ...), at word i.
func (st *state) fail(i int, format string, a ...any) *SyntaxError {
	return st.errAt(i, 2, format, a...)
}

func (st *state) tryHelp(i int) *SyntaxError {
	return st.errAt(i, 255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.")
}

// badOption is popt's poptBadOption: the last word consumed.
func (st *state) badOption() int { return st.next - 1 }

// setOption is ipvsadm's set_option.
func (st *state) setOption(o int, at int) *SyntaxError {
	bit := Options(1) << o
	if st.options&bit != 0 {
		return st.fail(at, "multiple '%s' options specified", optNames[o])
	}
	st.options |= bit
	st.optWord[o] = int32(at)
	return nil
}

// parse is ipvsadm's process_options up to the call into libipvs.
func (st *state) parse(c *Command) error {
	st.weight = 1
	st.fwd = ipvs.DR
	st.netmask = 0xffffffff

	def, arg, hasArg, at, perr := st.nextOpt()
	if perr != nil || def == nil {
		if perr != nil {
			return st.tryHelp(perr.word)
		}
		return st.tryHelp(len(st.args))
	}
	st.cmdWord = at
	switch def.tag {
	case 'A':
		st.cmd = AddService
	case 'E':
		st.cmd = EditService
	case 'D':
		st.cmd = DeleteService
	case 'a':
		st.cmd = AddServer
	case 'e':
		st.cmd = EditServer
	case 'd':
		st.cmd = DeleteServer
	case 'C':
		st.cmd = Clear
	case 'L', 'l':
		st.cmd = List
	case 'Z':
		st.cmd = Zero
	case tagSet:
		st.cmd = SetTimeouts
	case 'R':
		st.cmd = Restore
	case 'S':
		st.cmd = Save
	case tagStartDaemon, tagStopDaemon:
		st.cmd = StartDaemon
		msg := "illegal start-daemon parameter specified"
		if def.tag == tagStopDaemon {
			st.cmd, msg = StopDaemon, "illegal start_daemon specified"
		}
		switch arg {
		case "master":
			st.daemon.State = ipvs.Master
		case "backup":
			st.daemon.State = ipvs.Backup
		default:
			return st.fail(st.badOption(), "%s", msg)
		}
	case 'h':
		c.Kind = Help
		return nil
	case 'v':
		c.Kind = Version
		return nil
	default:
		return st.tryHelp(at)
	}
	_ = hasArg

	for {
		def, arg, hasArg, at, perr = st.nextOpt()
		if perr != nil {
			return st.errAt(perr.word, 255, "%s: %s", st.args[perr.word], perr.msg)
		}
		if def == nil {
			break
		}
		if err := st.option(def, arg, hasArg, at); err != nil {
			return err
		}
	}

	left := st.leftovers
	if st.cmd == SetTimeouts {
		if len(left) < 3 {
			return st.fail(st.cmdWord, "--set option requires 3 timeout values")
		}
		for i := range 3 {
			v, err := st.parseTimeout(left[i], st.args[left[i]], 0, maxTimeout)
			if err != nil {
				return err
			}
			st.timeouts[i] = v
		}
		left = left[3:]
	}
	if len(left) > 0 {
		return st.fail(left[0], "unexpected argument %s", st.args[left[0]])
	}
	if st.schedArg != "" {
		flags, err := st.parseSchedFlags()
		if err != nil {
			return err
		}
		st.flags = st.flags&^(ipvs.FlagSched1|ipvs.FlagSched2|ipvs.FlagSched3) | flags
	}
	if err := st.genericOptCheck(); err != nil {
		return err
	}
	return st.finish(c)
}

// truncate is strncpy into ipvsadm's fixed-size buffers.
func truncate(s string, n int) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		return s[:n]
	}
	return s
}

// parseTimeout is ipvsadm's parse_timeout for word i.
func (st *state) parseTimeout(i int, arg string, min, max int64) (uint32, *SyntaxError) {
	n, ok := numberIn(arg, min, max)
	if !ok {
		return 0, st.fail(i, "invalid timeout value `%s' specified", arg)
	}
	return uint32(n), nil
}

// parseSchedFlags is ipvsadm's parse_sched_flags, for the scheduler given
// or wlc.
func (st *state) parseSchedFlags() (ipvs.ServiceFlags, *SyntaxError) {
	sched := st.sched
	if sched == "" {
		sched = ipvs.WeightedLeastConnection
	}
	var flags ipvs.ServiceFlags
	n := 0
	for flag := range strings.SplitSeq(st.schedArg, ",") {
		if flag == "" {
			continue // strtok skips empty fields
		}
		n++
		want := ""
		switch flag {
		case "flag-1":
			flags |= ipvs.FlagSched1
		case "flag-2":
			flags |= ipvs.FlagSched2
		case "flag-3":
			flags |= ipvs.FlagSched3
		case "sh-fallback":
			flags |= ipvs.FlagSHFallback
			want = "sh"
		case "sh-port":
			flags |= ipvs.FlagSHPort
			want = "sh"
		case "mh-fallback":
			flags |= ipvs.FlagMHFallback
			want = "mh"
		case "mh-port":
			flags |= ipvs.FlagMHPort
			want = "mh"
		default:
			return 0, st.fail(st.schedAt, "invalid scheduler flag `%s'", flag)
		}
		if want != "" && sched != want {
			return 0, st.fail(st.schedAt, "incompatible scheduler flag `%s'", flag)
		}
	}
	if n == 0 {
		// ipvsadm 1.31 crashes on a list of commas alone.
		return 0, st.fail(st.schedAt, "invalid scheduler flag `%s'", st.schedArg)
	}
	return flags, nil
}

// finish makes the checks ipvsadm makes after generic_opt_check and
// returns the command.
func (st *state) finish(c *Command) error {
	c.Kind, c.Options = st.cmd, st.options
	switch st.cmd {
	case AddService, EditService:
		if st.fwmark == 0 && st.port == 0 && st.flags&ipvs.FlagPersistent == 0 && !st.p.Extensions {
			return st.fail(int(st.optWord[2]), "Zero port specified for non-persistent service")
		}
		if st.flags&ipvs.FlagOnePacket != 0 && st.fwmark == 0 && st.proto != ipvs.UDP {
			return st.fail(int(st.optWord[21]), "One-Packet Scheduling is only for UDP virtual services")
		}
		if st.sched == "" {
			st.sched = ipvs.WeightedLeastConnection
		}
		c.Service = st.service(true)
	case DeleteService, AddServer, EditServer, DeleteServer:
		c.Service = st.service(false)
	case List, Zero:
		o := st.options
		if o&(OptConnection|OptTimeout|OptDaemon) != 0 && o&(OptStats|OptRate|OptThresholds) != 0 ||
			o&(OptTimeout|OptDaemon) != 0 && o&OptPersistentConn != 0 {
			return st.fail(st.cmdWord, "options conflicts in the list command")
		}
		if st.options.Has(OptService) {
			c.Service = st.service(false)
		}
	case SetTimeouts:
		c.Timeouts = ipvs.Timeouts{
			TCP:    time.Duration(st.timeouts[0]) * time.Second,
			TCPFin: time.Duration(st.timeouts[1]) * time.Second,
			UDP:    time.Duration(st.timeouts[2]) * time.Second,
		}
	case StartDaemon:
		if st.daemon.Interface == "" {
			st.daemon.Interface = "eth0"
		}
		c.Daemon = st.daemon
	case StopDaemon:
		c.Daemon = ipvs.SyncDaemon{State: st.daemon.State, SyncID: st.daemon.SyncID}
	}
	if st.cmd == AddServer || st.cmd == EditServer {
		if st.fwmark == 0 && (st.fwd == ipvs.IPIP || st.fwd == ipvs.DR) && !st.options.Has(OptKeepPort) {
			st.dport = st.port
		}
		dfam := ipvs.IPv4
		if st.daddr.Is6() {
			dfam = ipvs.IPv6
		}
		if dfam != st.af && st.fwd != ipvs.IPIP {
			return st.fail(int(st.optWord[6]), "Different address family is allowed only for tunneling servers")
		}
		if st.options&(OptTunType|OptTunPort|OptTunNoCsum|OptTunCsum|OptTunRemCsum) != 0 && st.fwd != ipvs.IPIP {
			return st.fail(int(st.optWord[7]), "Tunnel options conflict with forward method")
		}
		if err := st.tunnelOptCheck(); err != nil {
			return err
		}
		c.Destination = ipvs.Destination{
			Address:        st.daddr,
			Port:           st.dport,
			ForwardMethod:  st.fwd,
			Weight:         int(st.weight),
			UpperThreshold: st.uthresh,
			LowerThreshold: st.lthresh,
		}
		if st.fwd == ipvs.IPIP {
			c.Destination.TunnelType = st.tunType
			c.Destination.TunnelPort = st.tunPort
			c.Destination.TunnelChecksum = ipvs.TunnelChecksum(st.tunFlags)
		}
	}
	if st.cmd == DeleteServer {
		c.Destination = ipvs.Destination{Address: st.daddr, Port: st.dport}
	}
	return nil
}

// service returns the service of the command line: its identity, and with
// full its configuration.
func (st *state) service(full bool) ipvs.Service {
	var s ipvs.Service
	if st.fwmark != 0 {
		s.FirewallMark, s.Family = st.fwmark, st.af
	} else {
		s.Protocol, s.Address, s.Port = st.proto, st.addr, st.port
	}
	if !full {
		return s
	}
	s.Scheduler = st.sched
	s.Flags = st.flags
	s.Timeout = time.Duration(st.timeout) * time.Second
	s.PersistenceEngine = st.pe
	if st.af == ipvs.IPv6 {
		s.Netmask = ipvs.PrefixMask(ipvs.IPv6, int(st.netmask))
	} else {
		m := st.netmask
		s.Netmask = ipvs.IPv4Mask(byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
	}
	return s
}
