//go:build linux

package ipvs

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// addr16 writes a as a 16-byte union nf_inet_addr: an IPv4 address in the
// first four bytes, the rest zero.
func addr16(e *encoder, typ uint16, a netip.Addr) {
	var b [16]byte
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
	} else if a.IsValid() {
		b = a.As16()
	}
	e.bytes(typ, b[:])
}

// encodeServiceID writes IPVS_CMD_ATTR_SERVICE with the service's identity
// only, which is what every command naming an existing service reads.
func encodeServiceID(e *encoder, s Service) {
	off := e.nest(uapi.CmdAttrService)
	serviceID(e, s)
	e.end(off)
}

// encodeService writes IPVS_CMD_ATTR_SERVICE with the identity and the
// configuration NEW_SERVICE and SET_SERVICE require. The flags attribute
// carries flags and the mask of the bits to change.
func encodeService(e *encoder, s Service, flags, mask ServiceFlags) {
	off := e.nest(uapi.CmdAttrService)
	serviceID(e, s)
	e.str(uapi.SvcAttrSchedName, s.Scheduler)
	if s.PersistenceEngine != "" {
		// Always sent when set: SET_SERVICE without it removes the
		// engine.
		e.str(uapi.SvcAttrPEName, s.PersistenceEngine)
	}
	e.header(uapi.SvcAttrFlags, 8)
	e.b = ne.AppendUint32(e.b, uint32(flags&knownServiceFlags))
	e.b = ne.AppendUint32(e.b, uint32(mask))
	e.u32(uapi.SvcAttrTimeout, uint32(s.Timeout/time.Second))
	if m := s.Netmask.wire(s.family()); s.family() == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], m)
		e.bytes(uapi.SvcAttrNetmask, b[:])
	} else {
		e.u32(uapi.SvcAttrNetmask, m)
	}
	e.end(off)
}

// serviceID writes the identity attributes of a service nest.
func serviceID(e *encoder, s Service) {
	e.u16(uapi.SvcAttrAF, uint16(s.family()))
	if s.FirewallMark != 0 {
		// Only for mark services: an FWMARK attribute of 0 would still
		// select the mark branch and mean TCP 0.0.0.0:0.
		e.u32(uapi.SvcAttrFwmark, s.FirewallMark)
		return
	}
	e.u16(uapi.SvcAttrProtocol, uint16(s.Protocol))
	addr16(e, uapi.SvcAttrAddr, s.Address)
	e.be16(uapi.SvcAttrPort, s.Port)
}

// encodeDestID writes IPVS_CMD_ATTR_DEST with the destination's identity
// (family, address, port) only, for DEL_DEST.
func encodeDestID(e *encoder, d Destination) {
	off := e.nest(uapi.CmdAttrDest)
	destID(e, d)
	e.end(off)
}

// encodeDest writes IPVS_CMD_ATTR_DEST with the identity and the
// configuration NEW_DEST and SET_DEST require. The tunnel attributes are
// always sent, zero for non-tunnel destinations, as ipvsadm does; kernels
// before 5.2 ignore them.
func encodeDest(e *encoder, d Destination) {
	off := e.nest(uapi.CmdAttrDest)
	destID(e, d)
	e.u32(uapi.DestAttrFwdMethod, uint32(d.ForwardMethod))
	e.u32(uapi.DestAttrWeight, uint32(d.Weight))
	e.u8(uapi.DestAttrTunType, uint8(d.TunnelType))
	e.be16(uapi.DestAttrTunPort, d.TunnelPort)
	e.u16(uapi.DestAttrTunFlags, uint16(d.TunnelChecksum))
	e.u32(uapi.DestAttrUThresh, d.UpperThreshold)
	e.u32(uapi.DestAttrLThresh, d.LowerThreshold)
	e.end(off)
}

// destID writes the identity attributes of a destination nest.
func destID(e *encoder, d Destination) {
	e.u16(uapi.DestAttrAddrFamily, uint16(familyOf(d.Address)))
	addr16(e, uapi.DestAttrAddr, d.Address)
	e.be16(uapi.DestAttrPort, d.Port)
}

// encodeDaemon writes IPVS_CMD_ATTR_DAEMON for NEW_DAEMON. Optional
// attributes are sent only when set, so the kernel fills its defaults.
func encodeDaemon(e *encoder, d SyncDaemon) {
	off := e.nest(uapi.CmdAttrDaemon)
	e.u32(uapi.DaemonAttrState, uint32(d.State))
	e.str(uapi.DaemonAttrMcastIfn, d.Interface)
	e.u32(uapi.DaemonAttrSyncID, d.SyncID)
	if d.MaxLength != 0 {
		e.u16(uapi.DaemonAttrSyncMaxLen, uint16(d.MaxLength))
	}
	if d.Port != 0 {
		e.u16(uapi.DaemonAttrMcastPort, d.Port)
	}
	if d.TTL != 0 {
		e.u8(uapi.DaemonAttrMcastTTL, d.TTL)
	}
	switch {
	case d.Group.Is4():
		g := d.Group.As4()
		e.bytes(uapi.DaemonAttrMcastGroup, g[:])
	case d.Group.Is6():
		g := d.Group.As16()
		e.bytes(uapi.DaemonAttrMcastGroup6, g[:])
	}
	e.end(off)
}

func encodeTimeouts(e *encoder, t Timeouts) {
	e.u32(uapi.CmdAttrTimeoutTCP, uint32(t.TCP/time.Second))
	e.u32(uapi.CmdAttrTimeoutTCPFin, uint32(t.TCPFin/time.Second))
	e.u32(uapi.CmdAttrTimeoutUDP, uint32(t.UDP/time.Second))
}
