package ipvsrules

import (
	"math"
	"strings"

	"github.com/ipvs-go/ipvs"
)

// option handles one option after the command.
func (st *state) option(def *optDef, arg string, hasArg bool, at int) *SyntaxError {
	switch def.tag {
	case 't', 'u', tagSCTP:
		if err := st.setOption(2, at); err != nil {
			return err
		}
		switch def.tag {
		case 't':
			st.proto = ipvs.TCP
		case 'u':
			st.proto = ipvs.UDP
		default:
			st.proto = ipvs.SCTP
		}
		hp, ok := st.p.parseService(arg, st.proto)
		if !ok {
			return st.fail(st.badOption(), "illegal virtual server address[:port] specified")
		}
		st.addr = hp.addr
		if hp.addr.Is6() {
			st.af, st.netmask = ipvs.IPv6, 128
		} else {
			st.af = ipvs.IPv4
		}
		if hp.hasPort {
			st.port = hp.port
		}
	case 'f':
		if err := st.setOption(2, at); err != nil {
			return err
		}
		st.af, st.proto = ipvs.IPv4, ipvs.TCP
		n, ok := parseDecimal(arg)
		if !ok || n <= 0 || n > math.MaxUint32 {
			return st.fail(st.badOption(), "invalid fwmark value `%s' specified", arg)
		}
		st.fwmark = uint32(n)
	case 's':
		if err := st.setOption(3, at); err != nil {
			return err
		}
		st.sched = truncate(arg, schedNameMax)
	case 'p':
		if err := st.setOption(4, at); err != nil {
			return err
		}
		st.flags |= ipvs.FlagPersistent
		if !hasArg {
			st.timeout = defaultPersistence
			break
		}
		max := int64(maxTimeout)
		if st.p.Extensions {
			max = maxExtTimeout
		}
		v, err := st.parseTimeout(st.badOption(), arg, 1, max)
		if err != nil {
			return err
		}
		st.timeout = v
	case 'M':
		if err := st.setOption(5, at); err != nil {
			return err
		}
		if st.af != ipvs.IPv6 {
			a, ok := inetAton(arg)
			if !ok {
				a, ok = st.p.lookupHost(arg)
			}
			if !ok {
				return st.fail(st.badOption(), "illegal virtual server persistent mask specified")
			}
			b := a.As4()
			st.netmask = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		} else {
			n := atoi(arg)
			if n < 1 || n > 128 {
				return st.fail(st.badOption(), "illegal ipv6 netmask specified")
			}
			st.netmask = uint32(n)
		}
	case 'r':
		if err := st.setOption(6, at); err != nil {
			return err
		}
		hp, ok := st.p.parseService(arg, st.proto)
		if !ok {
			return st.fail(st.badOption(), "illegal real server address[:port] specified")
		}
		st.daddr = hp.addr
		if hp.hasPort {
			st.dport = hp.port
		} else {
			st.dport = st.port // copy vport to dport if not specified
		}
	case 'i', 'g', 'm', tagLocalNode:
		if err := st.setOption(7, at); err != nil {
			return err
		}
		switch def.tag {
		case 'i':
			st.fwd = ipvs.IPIP
		case 'g':
			st.fwd = ipvs.DR
		case 'm':
			st.fwd = ipvs.NAT
		default:
			st.fwd = ipvs.Local
		}
	case 'w':
		if err := st.setOption(8, at); err != nil {
			return err
		}
		// ipvsadm 1.31's source takes 0-65535, but the ipvsadm 1.31 of
		// Debian (and so of the VM cross-check) takes up to INT_MAX, as
		// the kernel does.
		n, ok := numberIn(arg, 0, ipvs.MaxWeight)
		if !ok {
			return st.fail(st.badOption(), "illegal weight specified")
		}
		st.weight = n
	case 'x', 'y':
		o, name := 9, "u_threshold"
		if def.tag == 'y' {
			o, name = 10, "l_threshold"
		}
		if err := st.setOption(o, at); err != nil {
			return err
		}
		n, ok := numberIn(arg, 0, math.MaxInt32)
		if !ok {
			return st.fail(st.badOption(), "illegal %s specified", name)
		}
		if def.tag == 'x' {
			st.uthresh = uint32(n)
		} else {
			st.lthresh = uint32(n)
		}
	case 'c':
		return st.setOption(1, at)
	case 'n':
		return st.setOption(0, at)
	case tagMcastInterface:
		if err := st.setOption(11, at); err != nil {
			return err
		}
		st.daemon.Interface = truncate(arg, ifNameMax)
	case 'I':
		if err := st.setOption(19, at); err != nil {
			return err
		}
		n, ok := numberIn(arg, 0, 255)
		if !ok {
			return st.fail(st.badOption(), "illegal syncid specified")
		}
		st.daemon.SyncID = uint32(n)
	case tagTimeout:
		return st.setOption(12, at)
	case tagDaemon:
		return st.setOption(13, at)
	case tagStats:
		return st.setOption(14, at)
	case tagRate:
		return st.setOption(15, at)
	case tagThresholds:
		return st.setOption(16, at)
	case tagPersistentConn:
		return st.setOption(17, at)
	case tagNoSort:
		return st.setOption(18, at)
	case tagSort:
		// The default; a no-op for compatibility.
	case 'X':
		return st.setOption(20, at)
	case '6':
		if st.fwmark == 0 {
			return st.fail(at, "-6 used before -f\n")
		}
		st.af, st.netmask = ipvs.IPv6, 128
	case 'o':
		if err := st.setOption(21, at); err != nil {
			return err
		}
		st.flags |= ipvs.FlagOnePacket
	case tagPE:
		if err := st.setOption(22, at); err != nil {
			return err
		}
		st.pe = truncate(arg, peNameMax)
	case 'b':
		if err := st.setOption(23, at); err != nil {
			return err
		}
		st.schedArg, st.schedAt = truncate(arg, 127), st.badOption()
	case tagMcastGroup:
		if err := st.setOption(24, at); err != nil {
			return err
		}
		if strings.Contains(arg, ":") {
			a, ok := inetPton6(arg)
			if !ok || !a.IsMulticast() {
				return st.fail(st.badOption(), "invalid IPv6 mcast-group `%s'", arg)
			}
			st.daemon.Group = a
		} else {
			a, ok := inetPton4(arg)
			if !ok || !a.IsMulticast() {
				return st.fail(st.badOption(), "invalid IPv4 mcast-group `%s'", arg)
			}
			st.daemon.Group = a
		}
	case tagMcastPort:
		if err := st.setOption(25, at); err != nil {
			return err
		}
		n, ok := numberIn(arg, 1, 65535)
		if !ok {
			return st.fail(st.badOption(), "illegal mcast-port specified")
		}
		st.daemon.Port = uint16(n)
	case tagMcastTTL:
		if err := st.setOption(26, at); err != nil {
			return err
		}
		n, ok := numberIn(arg, 1, 255)
		if !ok {
			return st.fail(st.badOption(), "illegal mcast-ttl specified")
		}
		st.daemon.TTL = uint8(n)
	case tagSyncMaxLen:
		if err := st.setOption(27, at); err != nil {
			return err
		}
		n, ok := numberIn(arg, 1, 65535-20-8)
		if !ok {
			return st.fail(st.badOption(), "illegal sync-maxlen specified")
		}
		st.daemon.MaxLength = int(n)
	case tagTunInfo:
		return st.setOption(28, at)
	case tagTunType:
		if err := st.setOption(29, at); err != nil {
			return err
		}
		switch arg {
		case "ipip":
			st.tunType = ipvs.TunnelIPIP
		case "gue":
			st.tunType = ipvs.TunnelGUE
		case "gre":
			st.tunType = ipvs.TunnelGRE
		default:
			return st.fail(st.badOption(), "illegal tunnel type specified")
		}
	case tagTunPort:
		if err := st.setOption(30, at); err != nil {
			return err
		}
		n, ok := numberIn(arg, 1, 65535)
		if !ok {
			return st.fail(st.badOption(), "illegal tunnel port specified")
		}
		st.tunPort = uint16(n)
	case tagTunNoCsum:
		return st.setOption(31, at)
	case tagTunCsum:
		if err := st.setOption(32, at); err != nil {
			return err
		}
		st.tunFlags |= 1
	case tagTunRemCsum:
		if err := st.setOption(33, at); err != nil {
			return err
		}
		st.tunFlags |= 2
	case tagKeepPort:
		return st.setOption(34, at)
	case tagSvcTimeout:
		if err := st.setOption(35, at); err != nil {
			return err
		}
		v, err := st.parseTimeout(st.badOption(), arg, 0, maxExtTimeout)
		if err != nil {
			return err
		}
		st.timeout = v
	default:
		// A command after the first, -h or -v.
		return st.fail(st.badOption(), "invalid option `%s'", st.args[st.badOption()])
	}
	return nil
}
