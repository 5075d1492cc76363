//go:build linux

package ipvs

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rawTestTransport opens a real generic netlink socket (any Linux kernel has
// one; IPVS is not needed).
func rawTestTransport(t *testing.T) *rawTransport {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_GENERIC, nil)
	if err != nil {
		t.Skipf("no generic netlink socket: %v", err)
	}
	tr, err := newRawTransport(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.close() })
	return tr
}

// TestRawTransportExchange sends CTRL_CMD_GETFAMILY for nlctrl and reads
// the answer through both read paths.
func TestRawTransportExchange(t *testing.T) {
	tr := rawTestTransport(t)
	if err := tr.setDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"recv", "recvBatch"} {
		batch := path == "recvBatch"
		t.Run(path, func(t *testing.T) {
			var e encoder
			off := e.beginMessage(unix.GENL_ID_CTRL, unix.NLM_F_REQUEST, uint32(i+1), 0, unix.CTRL_CMD_GETFAMILY)
			e.bytes(unix.CTRL_ATTR_FAMILY_NAME, []byte("nlctrl\x00"))
			e.endMessage(off)
			if err := tr.send(e.b); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, recvBuffer)
			var n int
			var err error
			if batch {
				var lens [ackSlots]int
				var got int
				got, err = tr.recvBatch(buf, dumpSlot(), lens[:], readWait)
				if got != 1 {
					t.Fatalf("recvBatch: %d datagrams, %v", got, err)
				}
				n = lens[0]
			} else {
				n, err = tr.recv(buf[:dumpSlot()], readWait)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n < 20 || ne.Uint16(buf[4:]) != unix.GENL_ID_CTRL || ne.Uint32(buf[8:]) != uint32(i+1) {
				t.Fatalf("reply %x", buf[:min(n, 32)])
			}
		})
	}
}

// TestRawTransportWaits: with nothing queued a read waits until the
// deadline, or until interrupt; setDeadline clears the interrupt.
func TestRawTransportWaits(t *testing.T) {
	tr := rawTestTransport(t)
	buf := make([]byte, dumpSlot())

	if _, err := tr.recv(buf, readNow); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("non-blocking read of an empty socket: %v, want EAGAIN", err)
	}
	start := time.Now()
	_ = tr.setDeadline(start.Add(50 * time.Millisecond))
	if _, err := tr.recv(buf, readWait); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("deadline read returned after %v", d)
	}

	_ = tr.setDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		var lens [4]int
		_, err := tr.recvBatch(make([]byte, 4*dumpSlot()), dumpSlot(), lens[:], readWait)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	tr.interrupt()
	select {
	case err := <-done:
		if !errors.Is(err, errInterrupted) {
			t.Fatalf("interrupted read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("interrupt did not end the read")
	}
	if _, err := tr.recv(buf, readWait); !errors.Is(err, errInterrupted) {
		t.Fatalf("read after interrupt, before setDeadline: %v", err)
	}
	_ = tr.setDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := tr.recv(buf, readWait); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after setDeadline cleared the interrupt: %v, want the deadline", err)
	}
}

// TestRawTransportNotPolled: the socket is in no epoll set of this process,
// so the kernel's datagrams wake no runtime thread (see rawTransport).
func TestRawTransportNotPolled(t *testing.T) {
	tr := rawTestTransport(t)
	// Make sure the runtime's poller exists and has something registered.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_ = r.SetReadDeadline(time.Now().Add(time.Hour))

	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	polls := 0
	for _, f := range fds {
		target, err := os.Readlink("/proc/self/fd/" + f.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		polls++
		info, err := os.ReadFile("/proc/self/fdinfo/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(info), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "tfd:" && fields[1] == strconv.Itoa(tr.fd) {
				t.Errorf("socket fd %d is registered in epoll fd %s: %s", tr.fd, f.Name(), line)
			}
		}
	}
	if polls == 0 {
		t.Skip("found no epoll instance to check")
	}
}
