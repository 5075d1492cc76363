//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// floorImpl is the kernel floor: every request is encoded before the clock
// starts, and the timed region only writes them with raw sendto calls on a
// blocking NETLINK_GENERIC socket, batch requests per call, and reads
// datagrams until each request has its ACK. The list is a raw service dump
// and one destination dump per service (requests pre-encoded from the
// known service identities) read with a one-page buffer (the kernel sizes
// dump datagrams after the reads: see dumpSlot in the library); the replies
// are only counted (message headers walked), never decoded.
type floorImpl struct {
	batch  int
	fd     int
	family uint16
	buf    []byte

	creates, updates, deletes *batches
	svcDump                   []byte
	destDumps                 [][]byte
	n, m                      int
}

// batches are pre-encoded datagrams, each holding count[i] requests.
type batches struct {
	dgrams [][]byte
	count  []int
	total  int
}

// nlenc appends netlink messages and attributes in the kernel's byte order.
type nlenc struct{ b []byte }

var hostEndian = binary.NativeEndian

func (e *nlenc) attr(typ uint16, payload []byte) {
	e.b = hostEndian.AppendUint16(e.b, uint16(4+len(payload)))
	e.b = hostEndian.AppendUint16(e.b, typ)
	e.b = append(e.b, payload...)
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
}

func (e *nlenc) u16(typ, v uint16) { e.attr(typ, hostEndian.AppendUint16(nil, v)) }
func (e *nlenc) u32(typ uint16, v uint32) {
	e.attr(typ, hostEndian.AppendUint32(nil, v))
}
func (e *nlenc) be16(typ, v uint16) { e.attr(typ, binary.BigEndian.AppendUint16(nil, v)) }

// open starts a nested attribute and returns its offset for close.
func (e *nlenc) open(typ uint16) int {
	off := len(e.b)
	e.b = hostEndian.AppendUint16(e.b, 0)
	e.b = hostEndian.AppendUint16(e.b, typ|0x8000) // NLA_F_NESTED
	return off
}

func (e *nlenc) close(off int) { hostEndian.PutUint16(e.b[off:], uint16(len(e.b)-off)) }

// msg starts a generic netlink message; the returned function ends it.
func (e *nlenc) msg(family, flags uint16, seq uint32, cmd uint8) func() {
	off := len(e.b)
	e.b = hostEndian.AppendUint32(e.b, 0)
	e.b = hostEndian.AppendUint16(e.b, family)
	e.b = hostEndian.AppendUint16(e.b, flags)
	e.b = hostEndian.AppendUint32(e.b, seq)
	e.b = hostEndian.AppendUint32(e.b, 0)
	e.b = append(e.b, cmd, 1, 0, 0)
	return func() { hostEndian.PutUint32(e.b[off:], uint32(len(e.b)-off)) }
}

func addr16(a netip.Addr) []byte {
	b := make([]byte, 16)
	v := a.As4()
	copy(b, v[:])
	return b
}

func (e *nlenc) svcID(a netip.Addr, port uint16) {
	off := e.open(uapi.CmdAttrService)
	e.u16(uapi.SvcAttrAF, uapi.AFInet)
	e.u16(uapi.SvcAttrProtocol, syscall.IPPROTO_TCP)
	e.attr(uapi.SvcAttrAddr, addr16(a))
	e.be16(uapi.SvcAttrPort, port)
	e.close(off)
}

func (e *nlenc) svcFull(a netip.Addr, port uint16) {
	off := e.open(uapi.CmdAttrService)
	e.u16(uapi.SvcAttrAF, uapi.AFInet)
	e.u16(uapi.SvcAttrProtocol, syscall.IPPROTO_TCP)
	e.attr(uapi.SvcAttrAddr, addr16(a))
	e.be16(uapi.SvcAttrPort, port)
	e.attr(uapi.SvcAttrSchedName, append([]byte(sched), 0))
	e.attr(uapi.SvcAttrFlags, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	e.u32(uapi.SvcAttrTimeout, 0)
	e.attr(uapi.SvcAttrNetmask, []byte{0xff, 0xff, 0xff, 0xff})
	e.close(off)
}

func (e *nlenc) dest(a netip.Addr, port uint16, weight uint32) {
	off := e.open(uapi.CmdAttrDest)
	e.u16(uapi.DestAttrAddrFamily, uapi.AFInet)
	e.attr(uapi.DestAttrAddr, addr16(a))
	e.be16(uapi.DestAttrPort, port)
	e.u32(uapi.DestAttrFwdMethod, uapi.ConnFlagMasq)
	e.u32(uapi.DestAttrWeight, weight)
	e.u32(uapi.DestAttrUThresh, 0)
	e.u32(uapi.DestAttrLThresh, 0)
	e.close(off)
}

const (
	nlmFRequest = 0x1
	nlmFAck     = 0x4
	nlmFDump    = 0x300
)

func (im *floorImpl) setup(w *workload) error {
	im.n, im.m = w.n, w.m
	fd, family, err := openGenl("IPVS")
	if err != nil {
		return err
	}
	im.fd, im.family = fd, family
	im.buf = make([]byte, min(os.Getpagesize(), 8<<10))
	seq := uint32(1)
	// Each builder appends one request to e.
	build := func(reqs []func(e *nlenc, seq uint32)) *batches {
		bs := &batches{total: len(reqs)}
		for i := 0; i < len(reqs); i += im.batch {
			var e nlenc
			k := min(im.batch, len(reqs)-i)
			for _, r := range reqs[i : i+k] {
				r(&e, seq)
				seq++
			}
			bs.dgrams = append(bs.dgrams, e.b)
			bs.count = append(bs.count, k)
		}
		return bs
	}
	var creates, updates, deletes []func(*nlenc, uint32)
	for i, s := range w.svcs {
		a, p := s.Address, s.Port
		creates = append(creates, func(e *nlenc, seq uint32) {
			end := e.msg(family, nlmFRequest|nlmFAck, seq, uapi.CmdNewService)
			e.svcFull(a, p)
			end()
		})
		for _, d := range w.dests[i] {
			da, dp := d.Address, d.Port
			creates = append(creates, func(e *nlenc, seq uint32) {
				end := e.msg(family, nlmFRequest|nlmFAck, seq, uapi.CmdNewDest)
				e.svcID(a, p)
				e.dest(da, dp, 1)
				end()
			})
			updates = append(updates, func(e *nlenc, seq uint32) {
				end := e.msg(family, nlmFRequest|nlmFAck, seq, uapi.CmdSetDest)
				e.svcID(a, p)
				e.dest(da, dp, 2)
				end()
			})
		}
		deletes = append(deletes, func(e *nlenc, seq uint32) {
			end := e.msg(family, nlmFRequest|nlmFAck, seq, uapi.CmdDelService)
			e.svcID(a, p)
			end()
		})
	}
	im.creates, im.updates, im.deletes = build(creates), build(updates), build(deletes)
	var e nlenc
	e.msg(family, nlmFRequest|nlmFDump, seq, uapi.CmdGetService)()
	im.svcDump = e.b
	seq++
	for _, s := range w.svcs {
		var e nlenc
		end := e.msg(family, nlmFRequest|nlmFDump, seq, uapi.CmdGetDest)
		e.svcID(s.Address, s.Port)
		end()
		im.destDumps = append(im.destDumps, e.b)
		seq++
	}
	return nil
}

// openGenl opens a blocking generic netlink socket with NETLINK_CAP_ACK (ACKs
// do not echo the request) and resolves the family's ID.
func openGenl(name string) (int, uint16, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	fail := func(err error) (int, uint16, error) { unix.Close(fd); return -1, 0, err }
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail(fmt.Errorf("bind: %w", err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
		return fail(fmt.Errorf("NETLINK_CAP_ACK: %w", err))
	}
	var e nlenc
	end := e.msg(unix.GENL_ID_CTRL, nlmFRequest, 1, unix.CTRL_CMD_GETFAMILY)
	e.attr(unix.CTRL_ATTR_FAMILY_NAME, append([]byte(name), 0))
	end()
	if _, err := unix.Write(fd, e.b); err != nil {
		return fail(fmt.Errorf("write: %w", err))
	}
	buf := make([]byte, min(os.Getpagesize(), 8<<10)) // larger would make every dump datagram of this socket larger
	n, err := unix.Read(fd, buf)
	if err != nil {
		return fail(fmt.Errorf("read: %w", err))
	}
	var id uint16
	err = walk(buf[:n], func(typ uint16, seq uint32, data []byte) error {
		if typ == unix.NLMSG_ERROR {
			return fmt.Errorf("resolving %s: %w", name, syscall.Errno(-int32(hostEndian.Uint32(data))))
		}
		for b := data[4:]; len(b) >= 4; {
			l := int(hostEndian.Uint16(b))
			if l < 4 || l > len(b) {
				return errors.New("malformed attribute")
			}
			if hostEndian.Uint16(b[2:])&0x3fff == unix.CTRL_ATTR_FAMILY_ID && l >= 6 {
				id = hostEndian.Uint16(b[4:])
			}
			b = b[min(len(b), (l+3)&^3):]
		}
		return nil
	})
	if err == nil && id == 0 {
		err = fmt.Errorf("no ID for family %s", name)
	}
	if err != nil {
		return fail(err)
	}
	return fd, id, nil
}

// walk calls fn with every message of a datagram.
func walk(b []byte, fn func(typ uint16, seq uint32, data []byte) error) error {
	for len(b) >= 16 {
		l := int(hostEndian.Uint32(b))
		if l < 16 || l > len(b) {
			return fmt.Errorf("malformed netlink message of %d bytes", l)
		}
		if err := fn(hostEndian.Uint16(b[4:]), hostEndian.Uint32(b[8:]), b[16:l]); err != nil {
			return err
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return nil
}

// send writes each datagram and reads until all its requests are ACKed.
func (im *floorImpl) send(bs *batches) error {
	for i, d := range bs.dgrams {
		if _, err := unix.Write(im.fd, d); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		for pending := bs.count[i]; pending > 0; {
			n, err := unix.Read(im.fd, im.buf)
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			err = walk(im.buf[:n], func(typ uint16, _ uint32, data []byte) error {
				if typ != unix.NLMSG_ERROR {
					return fmt.Errorf("unexpected message type %d", typ)
				}
				if errno := -int32(hostEndian.Uint32(data)); errno != 0 {
					return syscall.Errno(errno)
				}
				pending--
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// dump writes one dump request and counts the messages until NLMSG_DONE.
func (im *floorImpl) dump(req []byte) (int, error) {
	if _, err := unix.Write(im.fd, req); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	count := 0
	for done := false; !done; {
		n, err := unix.Read(im.fd, im.buf)
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		err = walk(im.buf[:n], func(typ uint16, _ uint32, data []byte) error {
			switch typ {
			case unix.NLMSG_DONE:
				done = true
			case unix.NLMSG_ERROR:
				return syscall.Errno(-int32(hostEndian.Uint32(data)))
			default:
				count++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

func (im *floorImpl) create(context.Context) error { return im.send(im.creates) }
func (im *floorImpl) update(context.Context) error { return im.send(im.updates) }
func (im *floorImpl) delete(context.Context) error { return im.send(im.deletes) }

func (im *floorImpl) list(context.Context) (int, int, error) {
	svcs, err := im.dump(im.svcDump)
	if err != nil {
		return 0, 0, err
	}
	dests := 0
	for _, d := range im.destDumps {
		n, err := im.dump(d)
		if err != nil {
			return 0, 0, err
		}
		dests += n
	}
	return svcs, dests, nil
}

func (im *floorImpl) close() { unix.Close(im.fd) }
