package healthcheck

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
	"golang.org/x/sys/unix"
)

// A plain GET acknowledges late: the ACK that ends the handshake leaves
// with the request, and the answer is not acknowledged before the check
// resets the connection. The server counts the segments it received
// (TCP_INFO's tcpi_segs_in) from a client that sends every ACK at once
// (net.Dial, then a reset) and from the check, spare sockets included.
func TestIntegrationPlainGETSegments(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type count struct {
		segs uint32
		err  error
	}
	counts := make(chan count, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			counts <- serveCounting(c.(*net.TCPConn))
		}
	}()
	addr := netip.MustParseAddrPort(ln.Addr().String())

	// The reference: a client that acknowledges at once.
	c, err := net.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
	ref := <-counts
	if ref.err != nil {
		t.Fatal(ref.err)
	}

	tg := (&Check{}).target(svc, ipvs.Destination{Address: addr.Addr(), Port: addr.Port(), Weight: 1}, nil)
	sp := &spares{}
	defer sp.close()
	fewest := 0 // checks that sent two ACKs fewer
	for i := range 3 {
		s, _, err := HTTP{}.start(tg, false, sp)
		if err == nil {
			err = finishStarted(s)
		}
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		got := <-counts
		if got.err != nil {
			t.Fatal(got.err)
		}
		t.Logf("check %d: the server received %d segments (a client that acknowledges at once: %d; spares reused %d)", i, got.segs, ref.segs, sp.reused)
		// The handshake's ACK always goes with the request; the
		// answer's is left out if the check resets the connection
		// within the delayed-ACK timeout (40 ms or more), which a
		// stalled VM may miss once.
		if got.segs > ref.segs-1 {
			t.Errorf("check %d: the server received %d segments, want at most %d: the handshake's ACK with the request", i, got.segs, ref.segs-1)
		}
		if got.segs <= ref.segs-2 {
			fewest++
		}
	}
	if fewest == 0 {
		t.Errorf("no check left the answer unacknowledged: each sent more than %d segments", ref.segs-2)
	}
	if sp.reused == 0 {
		t.Errorf("no spare socket was reused")
	}
}

// serveCounting reads a request head, answers it without closing, waits
// for the client's reset (or close) and counts the segments received.
func serveCounting(c *net.TCPConn) (n struct {
	segs uint32
	err  error
}) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			n.err = err
			return n
		}
		if l == "\r\n" {
			break
		}
	}
	if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
		n.err = err
		return n
	}
	if _, err := br.ReadByte(); err == nil || (!errors.Is(err, syscall.ECONNRESET) && err.Error() != "EOF") {
		n.err = errors.New("no reset from the client: " + errString(err))
		return n
	}
	rc, err := c.SyscallConn()
	if err != nil {
		n.err = err
		return n
	}
	_ = rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, n.err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); n.err == nil {
			n.segs = info.Segs_in
		}
	})
	return n
}

func errString(err error) string {
	if err == nil {
		return "a byte"
	}
	return err.Error()
}
