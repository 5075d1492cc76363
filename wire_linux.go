//go:build linux

package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Netlink framing, by hand: requests are appended into reused buffers and
// replies are decoded in place from the receive buffer, with no intermediate
// message or attribute values.

// nlaTypeMask is an attribute type without its NLA_F_NESTED and
// NLA_F_NET_BYTEORDER flags (NLA_TYPE_MASK, which x/sys/unix lacks).
const nlaTypeMask = ^(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER) & 0xffff

var ne = binary.NativeEndian

// encoder appends netlink attributes to a buffer.
type encoder struct{ b []byte }

func (e *encoder) header(typ uint16, n int) {
	e.b = ne.AppendUint16(e.b, uint16(unix.NLA_HDRLEN+n))
	e.b = ne.AppendUint16(e.b, typ)
}

func (e *encoder) pad() {
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) u8(typ uint16, v uint8) {
	e.header(typ, 1)
	e.b = append(e.b, v)
	e.pad()
}

func (e *encoder) u16(typ uint16, v uint16) {
	e.header(typ, 2)
	e.b = ne.AppendUint16(e.b, v)
	e.pad()
}

func (e *encoder) be16(typ uint16, v uint16) {
	e.header(typ, 2)
	e.b = binary.BigEndian.AppendUint16(e.b, v)
	e.pad()
}

func (e *encoder) u32(typ uint16, v uint32) {
	e.header(typ, 4)
	e.b = ne.AppendUint32(e.b, v)
}

func (e *encoder) bytes(typ uint16, b []byte) {
	e.header(typ, len(b))
	e.b = append(e.b, b...)
	e.pad()
}

// str writes a NUL-terminated string.
func (e *encoder) str(typ uint16, s string) {
	e.header(typ, len(s)+1)
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
	e.pad()
}

// nest starts a nested attribute (with NLA_F_NESTED, as libnl sends it);
// end closes it.
func (e *encoder) nest(typ uint16) int {
	off := len(e.b)
	e.header(typ|unix.NLA_F_NESTED, 0)
	return off
}

func (e *encoder) end(off int) {
	ne.PutUint16(e.b[off:], uint16(len(e.b)-off))
}

// beginMessage appends a netlink and generic netlink header; endMessage
// sets the length once the attributes are written.
func (e *encoder) beginMessage(family, flags uint16, seq, pid uint32, cmd uint8) int {
	off := len(e.b)
	e.b = ne.AppendUint32(e.b, 0)
	e.b = ne.AppendUint16(e.b, family)
	e.b = ne.AppendUint16(e.b, flags)
	e.b = ne.AppendUint32(e.b, seq)
	e.b = ne.AppendUint32(e.b, pid)
	e.b = append(e.b, cmd, 1, 0, 0) // version 1, reserved
	return off
}

func (e *encoder) endMessage(off int) {
	ne.PutUint32(e.b[off:], uint32(len(e.b)-off))
}

var errMalformed = errors.New("malformed netlink attributes")

// attrs walks the attributes of b, calling fn with each type (flag bits
// masked) and payload. It never reads outside b.
func attrs(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= unix.NLA_HDRLEN {
		l := int(ne.Uint16(b))
		if l < unix.NLA_HDRLEN || l > len(b) {
			return errMalformed
		}
		if err := fn(ne.Uint16(b[2:])&nlaTypeMask, b[unix.NLA_HDRLEN:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b) // the last attribute's padding may be missing
		}
		b = b[l:]
	}
	if len(b) != 0 {
		return errMalformed
	}
	return nil
}

// message is one netlink message of a received datagram. data aliases the
// receive buffer: decode it before the next read.
type message struct {
	typ   uint16
	flags uint16
	seq   uint32
	cmd   uint8  // generic netlink command, for family messages
	data  []byte // attributes after the generic netlink header; for NLMSG_ERROR, the error payload
}

// messages splits a datagram into messages.
func messages(b []byte, fn func(m message) error) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return fmt.Errorf("netlink message of %d bytes in a datagram of %d", l, len(b))
		}
		m := message{typ: ne.Uint16(b[4:]), flags: ne.Uint16(b[6:]), seq: ne.Uint32(b[8:]), data: b[unix.NLMSG_HDRLEN:l]}
		if m.typ >= 0x10 { // a family message: generic netlink header first
			if len(m.data) < unix.GENL_HDRLEN {
				return fmt.Errorf("generic netlink message of %d bytes", l)
			}
			m.cmd = m.data[0]
			m.data = m.data[unix.GENL_HDRLEN:]
		}
		if err := fn(m); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return nil
}

// parseError decodes an NLMSG_ERROR payload: the errno (0 for an ACK) and
// the extended acknowledgement message, if any.
func parseError(m message) (errno int32, text string, err error) {
	if len(m.data) < 4+unix.NLMSG_HDRLEN {
		return 0, "", fmt.Errorf("NLMSG_ERROR of %d bytes", len(m.data))
	}
	errno = -int32(ne.Uint32(m.data))
	if m.flags&unix.NLM_F_ACK_TLVS == 0 {
		return errno, "", nil
	}
	off := 4 + unix.NLMSG_HDRLEN
	if m.flags&unix.NLM_F_CAPPED == 0 {
		// The whole request is echoed before the attributes. Its
		// length is compared before the conversion to int, which is
		// negative on 32-bit platforms for lengths of 2 GiB and more.
		l := ne.Uint32(m.data[4:])
		if uint64(l) >= uint64(len(m.data)) {
			return errno, "", nil
		}
		off = 4 + int(l)
	}
	off = (off + 3) &^ 3
	if off >= len(m.data) {
		return errno, "", nil
	}
	_ = attrs(m.data[off:], func(typ uint16, data []byte) error {
		if typ == unix.NLMSGERR_ATTR_MSG {
			text = string(cString(data))
		}
		return nil
	})
	return errno, text, nil
}
