//go:build linux

package ipvs

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// Decoding. Decoders never trust lengths: every fixed-size field is checked,
// unknown attributes are skipped, and messages of other commands are ignored.

// number reads a native-endian u8, u16, u32 or u64 of any of those sizes, so
// the 32-bit and 64-bit statistics nests share one reader.
func number(b []byte) (uint64, bool) {
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.NativeEndian.Uint16(b)), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(b)), true
	case 8:
		return binary.NativeEndian.Uint64(b), true
	}
	return 0, false
}

// field returns the fixed-size number in data or an error naming the
// attribute.
func field(name string, data []byte, size int) (uint64, error) {
	v, ok := number(data)
	if !ok || len(data) != size {
		return 0, fmt.Errorf("attribute %s: %d bytes, want %d", name, len(data), size)
	}
	return v, nil
}

func parseStats(b []byte) (Stats, error) {
	var st Stats
	err := attrs(b, func(typ uint16, data []byte) error {
		var dst *uint64
		switch typ {
		case uapi.StatsAttrConns:
			dst = &st.Connections
		case uapi.StatsAttrInPkts:
			dst = &st.PacketsIn
		case uapi.StatsAttrOutPkts:
			dst = &st.PacketsOut
		case uapi.StatsAttrInBytes:
			dst = &st.BytesIn
		case uapi.StatsAttrOutBytes:
			dst = &st.BytesOut
		case uapi.StatsAttrCPS:
			dst = &st.ConnectionRate
		case uapi.StatsAttrInPPS:
			dst = &st.PacketRateIn
		case uapi.StatsAttrOutPPS:
			dst = &st.PacketRateOut
		case uapi.StatsAttrInBPS:
			dst = &st.ByteRateIn
		case uapi.StatsAttrOutBPS:
			dst = &st.ByteRateOut
		default:
			return nil // PAD and future attributes
		}
		v, ok := number(data)
		if !ok || len(data) < 4 {
			return fmt.Errorf("statistics attribute %d: %d bytes", typ, len(data))
		}
		*dst = v
		return nil
	})
	return st, err
}

// parseAddr decodes a union nf_inet_addr of the given family.
func parseAddr(name string, b []byte, fam Family) (netip.Addr, error) {
	switch fam {
	case IPv4:
		if len(b) < 4 {
			return netip.Addr{}, fmt.Errorf("attribute %s: %d bytes for an IPv4 address", name, len(b))
		}
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case IPv6:
		if len(b) < 16 {
			return netip.Addr{}, fmt.Errorf("attribute %s: %d bytes for an IPv6 address", name, len(b))
		}
		return netip.AddrFrom16([16]byte(b[:16])), nil
	}
	return netip.Addr{}, fmt.Errorf("attribute %s: unknown address family %d", name, fam)
}

// parseServiceAttrs decodes the attributes of one IPVS_CMD_ATTR_SERVICE;
// without stats it leaves the statistics undecoded, for callers that only
// compare configurations.
func parseServiceAttrs(b []byte, stats bool) (ServiceStats, error) {
	var (
		s                     ServiceStats
		af                    Family
		addr, netmask         []byte
		hasMark               bool
		stats32, stats64      []byte
		hasStats32, hasStat64 bool
	)
	err := attrs(b, func(typ uint16, data []byte) error {
		switch typ {
		case uapi.SvcAttrAF:
			v, err := field("AF", data, 2)
			af = Family(v)
			return err
		case uapi.SvcAttrProtocol:
			v, err := field("PROTOCOL", data, 2)
			s.Protocol = Protocol(v)
			return err
		case uapi.SvcAttrAddr:
			addr = data
		case uapi.SvcAttrPort:
			if len(data) != 2 {
				return fmt.Errorf("attribute PORT: %d bytes, want 2", len(data))
			}
			s.Port = binary.BigEndian.Uint16(data)
		case uapi.SvcAttrFwmark:
			v, err := field("FWMARK", data, 4)
			s.FirewallMark = uint32(v)
			hasMark = true
			return err
		case uapi.SvcAttrSchedName:
			s.Scheduler = knownName(cString(data))
		case uapi.SvcAttrPEName:
			s.PersistenceEngine = knownName(cString(data))
		case uapi.SvcAttrFlags:
			if len(data) != 8 {
				return fmt.Errorf("attribute FLAGS: %d bytes, want 8", len(data))
			}
			f := binary.NativeEndian.Uint32(data[0:4]) & binary.NativeEndian.Uint32(data[4:8])
			s.Flags = ServiceFlags(f) & knownServiceFlags
		case uapi.SvcAttrTimeout:
			v, err := field("TIMEOUT", data, 4)
			s.Timeout = time.Duration(v) * time.Second
			return err
		case uapi.SvcAttrNetmask:
			if len(data) != 4 {
				return fmt.Errorf("attribute NETMASK: %d bytes, want 4", len(data))
			}
			netmask = data
		case uapi.SvcAttrStats:
			stats32, hasStats32 = data, true
		case uapi.SvcAttrStats64:
			stats64, hasStat64 = data, true
		}
		return nil
	})
	if err != nil {
		return ServiceStats{}, err
	}
	if af != IPv4 && af != IPv6 {
		return ServiceStats{}, fmt.Errorf("service with address family %d", af)
	}
	if hasMark {
		s.Family = af
		s.Protocol = 0 // the kernel forces TCP on mark services; it is not part of their identity
	} else {
		if s.Address, err = parseAddr("ADDR", addr, af); err != nil {
			return ServiceStats{}, err
		}
	}
	if netmask != nil {
		v := binary.NativeEndian.Uint32(netmask) // an IPv6 prefix length
		if af == IPv4 {
			v = binary.BigEndian.Uint32(netmask)
		}
		var ok bool
		if s.Netmask, ok = netmaskFromWire(af, v); !ok {
			return ServiceStats{}, fmt.Errorf("attribute NETMASK: IPv6 prefix length %d is outside 1-128", v)
		}
	}
	switch {
	case !stats:
	case hasStat64:
		s.Stats, err = parseStats(stats64)
	case hasStats32:
		s.Stats, err = parseStats(stats32)
	}
	return s, err
}

// cString returns the bytes of a NUL-terminated string attribute, without
// the terminator.
func cString(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// knownName returns the constant for a scheduler or persistence engine
// name, so that decoding a table allocates no string per service, or a new
// string for an unknown name.
func knownName(b []byte) string {
	switch string(b) { // compiled without a conversion
	case RoundRobin:
		return RoundRobin
	case WeightedRoundRobin:
		return WeightedRoundRobin
	case LeastConnection:
		return LeastConnection
	case WeightedLeastConnection:
		return WeightedLeastConnection
	case LocalityBasedLeastConnection:
		return LocalityBasedLeastConnection
	case LocalityBasedLeastConnectionRepl:
		return LocalityBasedLeastConnectionRepl
	case DestinationHashing:
		return DestinationHashing
	case SourceHashing:
		return SourceHashing
	case ShortestExpectedDelay:
		return ShortestExpectedDelay
	case NeverQueue:
		return NeverQueue
	case WeightedFailover:
		return WeightedFailover
	case WeightedOverflow:
		return WeightedOverflow
	case MaglevHashing:
		return MaglevHashing
	case WeightedRandomTwoChoices:
		return WeightedRandomTwoChoices
	case NoScheduler:
		return NoScheduler
	case PersistenceEngineSIP:
		return PersistenceEngineSIP
	}
	return string(b)
}

// nested finds the payload of the top-level attribute typ of a message.
func nested(data []byte, typ uint16) ([]byte, bool, error) {
	var (
		out   []byte
		found bool
	)
	err := attrs(data, func(t uint16, b []byte) error {
		if t == typ && !found {
			out, found = b, true
		}
		return nil
	})
	return out, found, err
}

// parseService decodes a NEW_SERVICE message with its statistics; ok is
// false if it carries no service.
func parseService(data []byte) (s ServiceStats, ok bool, err error) {
	return parseServiceMsg(data, true)
}

// parseServiceConfig is parseService without the statistics.
func parseServiceConfig(data []byte) (s Service, ok bool, err error) {
	st, ok, err := parseServiceMsg(data, false)
	return st.Service, ok, err
}

func parseServiceMsg(data []byte, stats bool) (s ServiceStats, ok bool, err error) {
	b, ok, err := nested(data, uapi.CmdAttrService)
	if err != nil || !ok {
		return ServiceStats{}, false, err
	}
	s, err = parseServiceAttrs(b, stats)
	return s, err == nil, err
}

// parseDestAttrs decodes one IPVS_CMD_ATTR_DEST; svcFamily is the address
// family to assume when the kernel (before 3.18) sends none. Without stats
// it leaves the statistics undecoded.
func parseDestAttrs(b []byte, svcFamily Family, stats bool) (DestinationStats, error) {
	var (
		d                     DestinationStats
		af                    = svcFamily
		addr                  []byte
		stats32, stats64      []byte
		hasStats32, hasStat64 bool
	)
	err := attrs(b, func(typ uint16, data []byte) error {
		var err error
		var v uint64
		switch typ {
		case uapi.DestAttrAddr:
			addr = data
		case uapi.DestAttrPort:
			if len(data) != 2 {
				return fmt.Errorf("attribute PORT: %d bytes, want 2", len(data))
			}
			d.Port = binary.BigEndian.Uint16(data)
		case uapi.DestAttrFwdMethod:
			v, err = field("FWD_METHOD", data, 4)
			d.ForwardMethod = ForwardMethod(v & uapi.ConnFlagFwdMask)
		case uapi.DestAttrWeight:
			v, err = field("WEIGHT", data, 4)
			d.Weight = int(int32(v))
		case uapi.DestAttrUThresh:
			v, err = field("U_THRESH", data, 4)
			d.UpperThreshold = uint32(v)
		case uapi.DestAttrLThresh:
			v, err = field("L_THRESH", data, 4)
			d.LowerThreshold = uint32(v)
		case uapi.DestAttrActiveConns:
			v, err = field("ACTIVE_CONNS", data, 4)
			d.ActiveConnections = uint32(v)
		case uapi.DestAttrInactConns:
			v, err = field("INACT_CONNS", data, 4)
			d.InactiveConnections = uint32(v)
		case uapi.DestAttrPersistConns:
			v, err = field("PERSIST_CONNS", data, 4)
			d.PersistentConnections = uint32(v)
		case uapi.DestAttrAddrFamily:
			v, err = field("ADDR_FAMILY", data, 2)
			if v != 0 {
				af = Family(v)
			}
		case uapi.DestAttrTunType:
			v, err = field("TUN_TYPE", data, 1)
			d.TunnelType = TunnelType(v)
		case uapi.DestAttrTunPort:
			if len(data) != 2 {
				return fmt.Errorf("attribute TUN_PORT: %d bytes, want 2", len(data))
			}
			d.TunnelPort = binary.BigEndian.Uint16(data)
		case uapi.DestAttrTunFlags:
			v, err = field("TUN_FLAGS", data, 2)
			d.TunnelChecksum = TunnelChecksum(v)
		case uapi.DestAttrStats:
			stats32, hasStats32 = data, true
		case uapi.DestAttrStats64:
			stats64, hasStat64 = data, true
		}
		return err
	})
	if err != nil {
		return DestinationStats{}, err
	}
	if d.Address, err = parseAddr("ADDR", addr, af); err != nil {
		return DestinationStats{}, err
	}
	switch {
	case !stats:
	case hasStat64:
		d.Stats, err = parseStats(stats64)
	case hasStats32:
		d.Stats, err = parseStats(stats32)
	}
	return d, err
}

// parseDest decodes a NEW_DEST message with its statistics; ok is false if
// it carries no destination.
func parseDest(data []byte, svcFamily Family) (d DestinationStats, ok bool, err error) {
	return parseDestMsg(data, svcFamily, true)
}

// parseDestConfig is parseDest without the traffic statistics; the
// connection counts are decoded.
func parseDestConfig(data []byte, svcFamily Family) (d DestinationStats, ok bool, err error) {
	return parseDestMsg(data, svcFamily, false)
}

func parseDestMsg(data []byte, svcFamily Family, stats bool) (d DestinationStats, ok bool, err error) {
	b, ok, err := nested(data, uapi.CmdAttrDest)
	if err != nil || !ok {
		return DestinationStats{}, false, err
	}
	d, err = parseDestAttrs(b, svcFamily, stats)
	return d, err == nil, err
}

func parseDaemonAttrs(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	err := attrs(b, func(typ uint16, data []byte) error {
		var err error
		var v uint64
		switch typ {
		case uapi.DaemonAttrState:
			v, err = field("STATE", data, 4)
			d.State = DaemonState(v)
		case uapi.DaemonAttrMcastIfn:
			d.Interface = string(cString(data))
		case uapi.DaemonAttrSyncID:
			v, err = field("SYNC_ID", data, 4)
			d.SyncID = uint32(v)
		case uapi.DaemonAttrSyncMaxLen:
			v, err = field("SYNC_MAXLEN", data, 2)
			d.MaxLength = int(v)
		case uapi.DaemonAttrMcastGroup:
			if len(data) != 4 {
				return fmt.Errorf("attribute MCAST_GROUP: %d bytes, want 4", len(data))
			}
			d.Group = netip.AddrFrom4([4]byte(data))
		case uapi.DaemonAttrMcastGroup6:
			if len(data) != 16 {
				return fmt.Errorf("attribute MCAST_GROUP6: %d bytes, want 16", len(data))
			}
			d.Group = netip.AddrFrom16([16]byte(data))
		case uapi.DaemonAttrMcastPort:
			v, err = field("MCAST_PORT", data, 2)
			d.Port = uint16(v)
		case uapi.DaemonAttrMcastTTL:
			v, err = field("MCAST_TTL", data, 1)
			d.TTL = uint8(v)
		}
		return err
	})
	return d, err
}

// parseDaemon decodes a NEW_DAEMON message.
func parseDaemon(data []byte) (d SyncDaemon, ok bool, err error) {
	b, ok, err := nested(data, uapi.CmdAttrDaemon)
	if err != nil || !ok {
		return SyncDaemon{}, false, err
	}
	d, err = parseDaemonAttrs(b)
	return d, err == nil, err
}

// parseInfo decodes the GET_INFO reply's attributes.
func parseInfo(data []byte) (Info, error) {
	var info Info
	err := attrs(data, func(typ uint16, data []byte) error {
		var err error
		var v uint64
		switch typ {
		case uapi.InfoAttrVersion:
			v, err = field("VERSION", data, 4)
			info.Version = Version{Major: uint8(v >> 16), Minor: uint8(v >> 8), Patch: uint8(v)}
		case uapi.InfoAttrConnTabSize:
			v, err = field("CONN_TAB_SIZE", data, 4)
			info.ConnectionTableSize = uint32(v)
		}
		return err
	})
	return info, err
}

// parseTimeouts decodes the GET_CONFIG reply's attributes.
func parseTimeouts(data []byte) (Timeouts, error) {
	var t Timeouts
	err := attrs(data, func(typ uint16, data []byte) error {
		var dst *time.Duration
		switch typ {
		case uapi.CmdAttrTimeoutTCP:
			dst = &t.TCP
		case uapi.CmdAttrTimeoutTCPFin:
			dst = &t.TCPFin
		case uapi.CmdAttrTimeoutUDP:
			dst = &t.UDP
		default:
			return nil
		}
		v, err := field("TIMEOUT", data, 4)
		*dst = time.Duration(v) * time.Second
		return err
	})
	return t, err
}
