package ipvsrules

import (
	"strings"

	"github.com/ipvs-go/ipvs"
)

// ipvsadm's options: the table, the legal combinations, and the
// popt-like reader of an argument vector.

type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional
)

// Tags of the long-only options, above the bytes of the short ones.
const (
	tagSet = 128 + iota
	tagStartDaemon
	tagStopDaemon
	tagMcastInterface
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagSort
	tagNoSort
	tagPE
	tagSCTP
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxLen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagLocalNode
	tagKeepPort
	tagSvcTimeout
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	tag   int
	ext   bool // an extension of this package
}

// optTable is ipvsadm 1.31's popt table, in its order, and the extensions.
var optTable = []optDef{
	{"add-service", 'A', argNone, 'A', false},
	{"edit-service", 'E', argNone, 'E', false},
	{"delete-service", 'D', argNone, 'D', false},
	{"clear", 'C', argNone, 'C', false},
	{"list", 'L', argNone, 'L', false},
	{"list", 'l', argNone, 'l', false},
	{"zero", 'Z', argNone, 'Z', false},
	{"add-server", 'a', argNone, 'a', false},
	{"edit-server", 'e', argNone, 'e', false},
	{"delete-server", 'd', argNone, 'd', false},
	{"set", 0, argNone, tagSet, false},
	{"help", 'h', argNone, 'h', false},
	{"version", 'v', argNone, 'v', false},
	{"restore", 'R', argNone, 'R', false},
	{"save", 'S', argNone, 'S', false},
	{"start-daemon", 0, argRequired, tagStartDaemon, false},
	{"stop-daemon", 0, argRequired, tagStopDaemon, false},
	{"tcp-service", 't', argRequired, 't', false},
	{"udp-service", 'u', argRequired, 'u', false},
	{"sctp-service", 0, argRequired, tagSCTP, false},
	{"fwmark-service", 'f', argRequired, 'f', false},
	{"scheduler", 's', argRequired, 's', false},
	{"persistent", 'p', argOptional, 'p', false},
	{"netmask", 'M', argRequired, 'M', false},
	{"real-server", 'r', argRequired, 'r', false},
	{"masquerading", 'm', argNone, 'm', false},
	{"ipip", 'i', argNone, 'i', false},
	{"gatewaying", 'g', argNone, 'g', false},
	{"weight", 'w', argRequired, 'w', false},
	{"u-threshold", 'x', argRequired, 'x', false},
	{"l-threshold", 'y', argRequired, 'y', false},
	{"numeric", 'n', argNone, 'n', false},
	{"connection", 'c', argNone, 'c', false},
	{"mcast-interface", 0, argRequired, tagMcastInterface, false},
	{"syncid", 0, argRequired, 'I', false},
	{"timeout", 0, argNone, tagTimeout, false},
	{"daemon", 0, argNone, tagDaemon, false},
	{"stats", 0, argNone, tagStats, false},
	{"rate", 0, argNone, tagRate, false},
	{"thresholds", 0, argNone, tagThresholds, false},
	{"persistent-conn", 0, argNone, tagPersistentConn, false},
	{"nosort", 0, argNone, tagNoSort, false},
	{"sort", 0, argNone, tagSort, false},
	{"exact", 'X', argNone, 'X', false},
	{"ipv6", '6', argNone, '6', false},
	{"ops", 'o', argNone, 'o', false},
	{"pe", 0, argRequired, tagPE, false},
	{"sched-flags", 'b', argRequired, 'b', false},
	{"mcast-group", 0, argRequired, tagMcastGroup, false},
	{"mcast-port", 0, argRequired, tagMcastPort, false},
	{"mcast-ttl", 0, argRequired, tagMcastTTL, false},
	{"sync-maxlen", 0, argRequired, tagSyncMaxLen, false},
	{"tun-info", 0, argNone, tagTunInfo, false},
	{"tun-type", 0, argRequired, tagTunType, false},
	{"tun-port", 0, argRequired, tagTunPort, false},
	{"tun-nocsum", 0, argNone, tagTunNoCsum, false},
	{"tun-csum", 0, argNone, tagTunCsum, false},
	{"tun-remcsum", 0, argNone, tagTunRemCsum, false},
	{"local-node", 0, argNone, tagLocalNode, true},
	{"keep-port", 0, argNone, tagKeepPort, true},
	{"svc-timeout", 0, argRequired, tagSvcTimeout, true},
}

// The limits of ipvsadm 1.31 and of the extensions.
const (
	maxTimeout         = 86400 * 31 // ipvsadm's MAX_TIMEOUT
	maxExtTimeout      = 4294967    // the kernel's, in seconds (u32 jiffies at HZ=1000)
	defaultPersistence = 6 * 60     // ipvsadm's IPVS_SVC_PERSISTENT_TIMEOUT
	schedNameMax       = 15         // IP_VS_SCHEDNAME_MAXLEN - 1
	peNameMax          = 16         // IP_VS_PENAME_MAXLEN
	ifNameMax          = 15         // IP_VS_IFNAME_MAXLEN - 1
)

// commandsVsOptions is ipvsadm's table of legal combinations of commands
// and options: '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
var commandsVsOptions = [...]string{
	// -n -c svc -s -p -M -r fwd -w -x -y -mc tot dmn -st -rt thr -pc srt sid -ex ops -pe -b grp port ttl size tinf type tprt nocs csum remc
	AddService:    "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
	EditService:   "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
	DeleteService: "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	Clear:         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	List:          " 11xxxxxxxxx11       xxxxxxx xxxxx",
	AddServer:     "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
	DeleteServer:  "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
	EditServer:    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
	SetTimeouts:   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	StartDaemon:   "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",
	StopDaemon:    "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",
	Restore:       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	Save:          " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	Zero:          "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// optionMask is a row of commandsVsOptions as sets of options.
type optionMask struct{ required, illegal, exclusive Options }

// optionMasks are the rows of commandsVsOptions as sets, for a quick check
// of a command line that has no error.
var optionMasks = func() (ms [len(commandsVsOptions)]optionMask) {
	for k, row := range commandsVsOptions {
		for j := 0; j < len(row); j++ {
			switch row[j] {
			case '+':
				ms[k].required |= 1 << j
			case 'x':
				ms[k].illegal |= 1 << j
			case '1':
				ms[k].exclusive |= 1 << j
			}
		}
	}
	return ms
}()

// The legal combinations of tunnel types and options (tun-port, nocsum,
// csum, remcsum), indexed by ipvs.TunnelType.
var tunnelVsOptions = [...]string{
	ipvs.TunnelIPIP: "xxxx",
	ipvs.TunnelGUE:  "+111",
	ipvs.TunnelGRE:  "x11x",
}

var tunOpts = [4]int{30, 31, 32, 33} // tun-port, tun-nocsum, tun-csum, tun-remcsum

var tunNames = [...]string{"ipip", "gue", "gre"}

// The errors of popt.
type poptErr struct {
	word int
	msg  string
}

// nextOpt is popt's poptGetNextOpt: the next option, its argument and the
// word that held the option; def is nil at the end.
func (st *state) nextOpt() (def *optDef, arg string, hasArg bool, at int, perr *poptErr) {
	for {
		if st.cluster == "" {
			if st.next >= len(st.args) {
				return nil, "", false, 0, nil
			}
			w := st.args[st.next]
			at = st.next
			st.next++
			if st.rest || w == "" || w[0] != '-' || w == "-" {
				st.leftovers = append(st.leftovers, at)
				continue
			}
			if w == "--" {
				st.rest = true
				continue
			}
			if w[1] == '-' {
				name, val, hasVal := strings.Cut(w[2:], "=")
				def = st.findLong(name)
				if def == nil {
					return nil, "", false, at, &poptErr{at, "unknown option"}
				}
				if def.arg == argNone {
					// popt ignores "=value" after an option without one.
					return def, "", false, at, nil
				}
				if hasVal {
					return def, val, true, at, nil
				}
				return st.takeArg(def, at)
			}
			// A single dash: short options (popt tries long options
			// with one dash only for those marked ONEDASH: none).
			st.cluster, st.clusterAt = w[1:], at
		}
		at = st.clusterAt
		c := st.cluster[0]
		st.cluster = st.cluster[1:]
		def = st.findShort(c)
		if def == nil {
			st.cluster = ""
			return nil, "", false, at, &poptErr{at, "unknown option"}
		}
		if st.cluster != "" && st.cluster[0] == '=' {
			st.cluster = st.cluster[1:]
		}
		if def.arg == argNone {
			return def, "", false, at, nil
		}
		if st.cluster != "" {
			arg, st.cluster = st.cluster, ""
			return def, arg, true, at, nil
		}
		return st.takeArg(def, at)
	}
}

// takeArg takes the option's argument from the next word.
func (st *state) takeArg(def *optDef, at int) (*optDef, string, bool, int, *poptErr) {
	if st.next >= len(st.args) {
		if def.arg == argOptional {
			return def, "", false, at, nil
		}
		return nil, "", false, at, &poptErr{at, "missing argument"}
	}
	w := st.args[st.next]
	if def.arg == argOptional && strings.HasPrefix(w, "-") {
		return def, "", false, at, nil
	}
	st.next++
	return def, w, true, at, nil
}

func (st *state) findLong(name string) *optDef {
	for i := range optTable {
		if optTable[i].long == name && (!optTable[i].ext || st.p.Extensions) {
			return &optTable[i]
		}
	}
	return nil
}

func (st *state) findShort(c byte) *optDef {
	if i := shortOpts[c]; i != 0 {
		return &optTable[i-1]
	}
	return nil
}

// shortOpts indexes optTable by short option: 1 + the index of the first
// entry with that short option, 0 for none.
var shortOpts = func() (t [256]uint8) {
	for i := len(optTable) - 1; i >= 0; i-- {
		if c := optTable[i].short; c != 0 {
			t[c] = uint8(i + 1)
		}
	}
	return t
}()
