// Package uapi holds the constants of the Linux IPVS generic netlink family,
// transcribed by hand from include/uapi/linux/ip_vs.h (values checked against
// the 6.1 header and current mainline, which agree).
//
// golang.org/x/sys/unix carries none of these, so they live here. Each
// attribute's comment gives its wire type, its byte order and the kernel
// release that added it. "host" means the CPU's native byte order; "BE" means
// the bytes are already in network order and the kernel does not swap them.
package uapi

// Family name and version (IPVS_GENL_NAME, IPVS_GENL_VERSION). The family ID is
// dynamic and must be resolved through the generic netlink controller.
const (
	GenlName    = "IPVS"
	GenlVersion = 1
)

// Commands (IPVS_CMD_*), carried in genlmsghdr.cmd.
const (
	CmdNewService = 1  // create a service; also the reply command of GET_SERVICE
	CmdSetService = 2  // replace a service's configuration (full entry)
	CmdDelService = 3  // delete a service
	CmdGetService = 4  // doit: one service; with NLM_F_DUMP: all services
	CmdNewDest    = 5  // add a destination; also the reply command of GET_DEST
	CmdSetDest    = 6  // replace a destination's configuration
	CmdDelDest    = 7  // delete a destination
	CmdGetDest    = 8  // dump only: the destinations of one service
	CmdNewDaemon  = 9  // start a sync daemon; also the reply command of GET_DAEMON
	CmdDelDaemon  = 10 // stop a sync daemon
	CmdGetDaemon  = 11 // dump only: running sync daemons
	CmdSetConfig  = 12 // set timeouts; also the reply command of GET_CONFIG
	CmdGetConfig  = 13 // doit only: read timeouts
	CmdSetInfo    = 14 // reply command of GET_INFO only (no handler)
	CmdGetInfo    = 15 // doit only: version and connection table size
	CmdZero       = 16 // zero counters of one service, or of all
	CmdFlush      = 17 // delete every service in the network namespace
)

// Top-level attributes (IPVS_CMD_ATTR_*).
const (
	CmdAttrService       = 1 // nested, SvcAttr*
	CmdAttrDest          = 2 // nested, DestAttr*
	CmdAttrDaemon        = 3 // nested, DaemonAttr*
	CmdAttrTimeoutTCP    = 4 // u32 host, seconds
	CmdAttrTimeoutTCPFin = 5 // u32 host, seconds
	CmdAttrTimeoutUDP    = 6 // u32 host, seconds
)

// GET_INFO reply attributes (IPVS_INFO_ATTR_*), at the top level of the reply,
// in the same number space as CmdAttr*: decode by reply command.
const (
	InfoAttrVersion     = 1 // u32 host, 0x00MMmmpp (1.2.1 is 0x010201)
	InfoAttrConnTabSize = 2 // u32 host, 1 << ip_vs.conn_tab_bits
)

// Service attributes (IPVS_SVC_ATTR_*), inside CmdAttrService.
const (
	SvcAttrAF        = 1  // u16 host: AF_INET or AF_INET6 (2.6.28)
	SvcAttrProtocol  = 2  // u16 host: IPPROTO_TCP/UDP/SCTP (2.6.28)
	SvcAttrAddr      = 3  // binary <= 16 bytes, union nf_inet_addr, raw network bytes (2.6.28)
	SvcAttrPort      = 4  // u16 BE (2.6.28)
	SvcAttrFwmark    = 5  // u32 host; its presence selects a fwmark service, even with value 0 (2.6.28)
	SvcAttrSchedName = 6  // NUL string, at most 15 bytes + NUL (2.6.28)
	SvcAttrFlags     = 7  // binary 8 bytes: struct ip_vs_flags {u32 flags; u32 mask}, both host (2.6.28)
	SvcAttrTimeout   = 8  // u32 host, persistence timeout in seconds (2.6.28)
	SvcAttrNetmask   = 9  // u32: IPv4 mask as BE bytes; IPv6 prefix length 1-128 as host u32 (2.6.28)
	SvcAttrStats     = 10 // nested StatsAttr*, 32-bit flavour, reply only (2.6.28)
	SvcAttrPEName    = 11 // NUL string, at most 16 bytes + NUL; persistence engine (2.6.37)
	SvcAttrStats64   = 12 // nested StatsAttr*, all u64, reply only (4.1)
)

// Destination attributes (IPVS_DEST_ATTR_*), inside CmdAttrDest.
const (
	DestAttrAddr         = 1  // binary <= 16 bytes, raw network bytes (2.6.28)
	DestAttrPort         = 2  // u16 BE (2.6.28)
	DestAttrFwdMethod    = 3  // u32 host: conn flags & 0x7 (2.6.28); not range-checked by the kernel
	DestAttrWeight       = 4  // u32 host, read as int: >= 2^31 gives ERANGE (2.6.28)
	DestAttrUThresh      = 5  // u32 host, 0 = none (2.6.28)
	DestAttrLThresh      = 6  // u32 host, must be <= UThresh (2.6.28)
	DestAttrActiveConns  = 7  // u32 host, reply only (2.6.28)
	DestAttrInactConns   = 8  // u32 host, reply only (2.6.28)
	DestAttrPersistConns = 9  // u32 host, reply only (2.6.28)
	DestAttrStats        = 10 // nested StatsAttr*, 32-bit flavour, reply only (2.6.28)
	DestAttrAddrFamily   = 11 // u16 host; absent or 0 means the service's family (3.18)
	DestAttrStats64      = 12 // nested StatsAttr*, all u64, reply only (4.1)
	DestAttrTunType      = 13 // u8: TunnelType*; not range-checked by the kernel (5.2; GRE 5.3)
	DestAttrTunPort      = 14 // u16 BE, GUE destination port (5.2)
	DestAttrTunFlags     = 15 // u16 host, TunnelFlag* (5.3)
)

// Sync daemon attributes (IPVS_DAEMON_ATTR_*), inside CmdAttrDaemon.
const (
	DaemonAttrState       = 1 // u32 host: StateMaster or StateBackup (2.6.28)
	DaemonAttrMcastIfn    = 2 // NUL string, at most 15 bytes + NUL (2.6.28)
	DaemonAttrSyncID      = 3 // u32 host, 0-255 meaningful (2.6.28)
	DaemonAttrSyncMaxLen  = 4 // u16 host, UDP payload size (4.3, fixed 4.7)
	DaemonAttrMcastGroup  = 5 // u32 BE IPv4 group (4.3)
	DaemonAttrMcastGroup6 = 6 // 16 bytes, raw in6_addr (4.3)
	DaemonAttrMcastPort   = 7 // u16 host order (the kernel applies htons itself) (4.3)
	DaemonAttrMcastTTL    = 8 // u8 (4.3)
)

// Statistics attributes (IPVS_STATS_ATTR_*), inside *AttrStats (32-bit
// flavour: CONNS, packets and rates u32, bytes u64) and *AttrStats64 (all u64).
const (
	StatsAttrConns    = 1
	StatsAttrInPkts   = 2
	StatsAttrOutPkts  = 3
	StatsAttrInBytes  = 4 // u64 in both flavours
	StatsAttrOutBytes = 5 // u64 in both flavours
	StatsAttrCPS      = 6
	StatsAttrInPPS    = 7
	StatsAttrOutPPS   = 8
	StatsAttrInBPS    = 9  // bytes per second
	StatsAttrOutBPS   = 10 // bytes per second
	StatsAttrPad      = 11 // zero-length padding before u64s on some architectures; skip
)

// Service flags (IP_VS_SVC_F_*).
const (
	SvcFlagPersistent = 0x0001
	SvcFlagHashed     = 0x0002 // kernel-internal, always set in replies, ignored on input
	SvcFlagOnePacket  = 0x0004
	SvcFlagSched1     = 0x0008 // sh-fallback / mh-fallback
	SvcFlagSched2     = 0x0010 // sh-port / mh-port
	SvcFlagSched3     = 0x0020
)

// Forwarding methods (IP_VS_CONN_F_*), the value of DestAttrFwdMethod.
const (
	ConnFlagFwdMask   = 0x0007
	ConnFlagMasq      = 0x0000
	ConnFlagLocalNode = 0x0001
	ConnFlagTunnel    = 0x0002
	ConnFlagDRoute    = 0x0003
)

// Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*) and encapsulation flags
// (IP_VS_TUNNEL_ENCAP_FLAG_*).
const (
	TunnelTypeIPIP = 0
	TunnelTypeGUE  = 1
	TunnelTypeGRE  = 2

	TunnelFlagNoCsum  = 0
	TunnelFlagCsum    = 1 << 0
	TunnelFlagRemCsum = 1 << 1
)

// Sync daemon states (IP_VS_STATE_*).
const (
	StateNone   = 0
	StateMaster = 1
	StateBackup = 2
)

// Name length limits, counting the terminating NUL as the kernel's policies do.
const (
	SchedNameMaxLen = 16 // IP_VS_SCHEDNAME_MAXLEN: names up to 15 bytes
	PENameMaxLen    = 16 // IP_VS_PENAME_MAXLEN: the policy admits 16 bytes + NUL, but no engine name is that long
	IfNameMaxLen    = 16 // IP_VS_IFNAME_MAXLEN: names up to 15 bytes
)

// Address families as carried by SvcAttrAF and DestAttrAddrFamily.
const (
	AFInet  = 2
	AFInet6 = 10
)
