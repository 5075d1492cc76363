package healthcheck

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// A handshake that does not complete within connect(2): the listener's
// accept queue is full, so the kernel drops the SYN and the client sends
// it again a second later. The check waits through the poller, and
// passes once the queue has room, or times out if it never does.
func TestTCPSlowHandshake(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // a queue of one
		t.Fatal(err)
	}
	ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := ln.Addr().String()
	// Fill the queue: these connections are never accepted until later.
	var fill []net.Conn
	defer func() {
		for _, c := range fill {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.DialTimeout("tcp4", a, 200*time.Millisecond)
		if err != nil {
			break
		}
		fill = append(fill, c)
	}
	start := time.Now()
	mustFail(t, TCP{}, a, "deadline exceeded") // 1.5 s: nothing accepted
	t.Logf("full queue: failed after %v", time.Since(start))

	go func() {
		time.Sleep(300 * time.Millisecond)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	start = time.Now()
	if _, err := probe(t, TCP{}, Check{}, a, 5*time.Second); err != nil {
		t.Fatalf("once the queue has room: %v", err)
	}
	// Passing at once would mean the check never waited for the SYN to be
	// sent again.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("passed after %v, before the queue had room", d)
	}
	t.Logf("passed after %v", time.Since(start))
}
