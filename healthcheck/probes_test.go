package healthcheck

import (
	"context"
	"crypto/md5"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

// probe runs p once against addr, as a Monitor does, with timeout.
func probe(t *testing.T, p Probe, c Check, addr string, timeout time.Duration) (int, error) {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	c.Probe = p
	if err := c.validate("Check"); err != nil {
		t.Fatalf("validate: %v", err)
	}
	tg := c.target(svc, ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Weight: 1}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, tg)
}

func mustPass(t *testing.T, p Probe, addr string) {
	t.Helper()
	if _, err := probe(t, p, Check{}, addr, 2*time.Second); err != nil {
		t.Errorf("%T against %s: %v, want a pass", p, addr, err)
	}
}

func mustFail(t *testing.T, p Probe, addr string, contains string) error {
	t.Helper()
	start := time.Now()
	_, err := probe(t, p, Check{}, addr, 1500*time.Millisecond)
	if err == nil {
		t.Errorf("%T against %s passed, want a failure", p, addr)
		return nil
	}
	if !strings.Contains(err.Error(), contains) {
		t.Errorf("%T against %s: %v, want an error containing %q", p, addr, err, contains)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("%T against %s took %v: the timeout was 1.5s", p, addr, d)
	}
	return err
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T, network string) string {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := c.LocalAddr().String()
		c.Close()
		return a
	}
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	} else {
		network = "tcp4"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	mustPass(t, TCP{}, ln.Addr().String())
	err = mustFail(t, TCP{}, closedPort(t, "tcp"), "connection refused")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not match ECONNREFUSED", err)
	}
}

// The same over IPv6 (the socket address is built by hand: the port's
// byte order and the family must be right for the server to see it).
func TestTCP6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	mustPass(t, TCP{}, ln.Addr().String())
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the server saw no connection")
	}
	mustFail(t, TCP{Graceful: true}, closedPort(t, "tcp6"), "connection refused")
}

// The check's Source is the socket's local address; an address the host
// does not have fails to bind.
func TestTCPSourceAndMark(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			got <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	if _, err := probe(t, TCP{}, Check{Source: netip.MustParseAddr("127.0.0.7")}, ln.Addr().String(), 2*time.Second); err != nil {
		t.Fatalf("with Source 127.0.0.7: %v", err)
	}
	if a := <-got; !strings.HasPrefix(a, "127.0.0.7:") {
		t.Errorf("the server saw %s, want 127.0.0.7", a)
	}
	if _, err := probe(t, TCP{}, Check{Source: netip.MustParseAddr("192.0.2.77")}, ln.Addr().String(), 2*time.Second); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("with a Source the host lacks: %v, want EADDRNOTAVAIL", err)
	}
	_, err = probe(t, TCP{}, Check{Mark: 0x77}, ln.Addr().String(), 2*time.Second)
	if os.Geteuid() == 0 {
		if err != nil {
			t.Errorf("with Mark as root: %v", err)
		}
	} else if !errors.Is(err, syscall.EPERM) {
		t.Errorf("with Mark without CAP_NET_ADMIN: %v, want EPERM", err)
	}
}

// viaStart runs a starter probe as a Monitor does: start, then try (up to
// tries times, pause apart) while it has one, then wait.
type viaStart struct {
	p     Probe
	tries int
	pause time.Duration
	// inline counts the checks that try finished.
	inline *atomic.Int64
}

func (v viaStart) validate(field string) error {
	if x, ok := v.p.(interface{ validate(string) error }); ok {
		return x.validate(field)
	}
	return nil
}

func (v viaStart) Probe(ctx context.Context, t Target) (int, error) {
	s, w, err := v.p.(starter).start(t, false, nil)
	if s.p == nil && s.wait == nil {
		return w, err
	}
	if s.p == nil {
		return s.wait(ctx)
	}
	for i := 0; i < v.tries && ctx.Err() == nil; i++ {
		if ok, w, err := s.p.try(); ok {
			v.inline.Add(1)
			return w, err
		}
		time.Sleep(v.pause)
	}
	return s.p.wait(ctx)
}

// TestHTTP runs every case through Probe, and through start as a Monitor
// does: waiting at once; trying once at once, then waiting; trying until
// the answer is in (finished on the Monitor's goroutine).
func TestHTTP(t *testing.T) {
	var inline atomic.Int64
	for _, mode := range []struct {
		name string
		wrap func(HTTP) Probe
	}{
		{"Probe", func(h HTTP) Probe { return h }},
		{"start+wait", func(h HTTP) Probe { return viaStart{p: h, inline: &inline} }},
		{"start+try+wait", func(h HTTP) Probe { return viaStart{p: h, tries: 1, inline: &inline} }},
		{"start+tries", func(h HTTP) Probe { return viaStart{p: h, tries: 200, pause: 5 * time.Millisecond, inline: &inline} }},
	} {
		t.Run(mode.name, func(t *testing.T) { testHTTP(t, mode.wrap) })
	}
	// The tries finished the checks that answered in time.
	if n := inline.Load(); n < 8 {
		t.Errorf("%d checks finished by their try, want at least 8", n)
	}
}

func testHTTP(t *testing.T, wrap func(HTTP) Probe) {
	big := strings.Repeat("x", 2<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "all good\n") })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host="+r.Host) })
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(418) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	a := srv.Listener.Addr().String()
	sum := md5.Sum([]byte("all good\n"))

	mustPass(t, wrap(HTTP{Path: "/ok"}), a)
	mustPass(t, wrap(HTTP{Path: "/ok", BodyMD5: hex.EncodeToString(sum[:])}), a)
	mustPass(t, wrap(HTTP{Path: "/ok", BodyContains: "good"}), a)
	mustPass(t, wrap(HTTP{Path: "/host", Host: "www.example.com", BodyContains: "host=www.example.com"}), a)
	mustPass(t, wrap(HTTP{Path: "/teapot", Status: []StatusRange{{200, 299}, {418, 418}}}), a)
	mustFail(t, wrap(HTTP{Path: "/teapot"}), a, "HTTP status 418")
	mustFail(t, wrap(HTTP{Path: "/missing"}), a, "HTTP status 404")
	mustFail(t, wrap(HTTP{Path: "/ok", BodyMD5: strings.Repeat("0", 32)}), a, "body digest")
	mustFail(t, wrap(HTTP{Path: "/ok", BodyContains: "bad"}), a, "does not contain")
	mustFail(t, wrap(HTTP{Path: "/big", BodyContains: "y"}), a, "body longer than")
	mustPass(t, wrap(HTTP{Path: "/big", BodyContains: "x", MaxBody: 4 << 20}), a)
	mustFail(t, wrap(HTTP{Path: "/slow"}), a, "deadline exceeded")
	mustFail(t, wrap(HTTP{Path: "/ok"}), closedPort(t, "tcp"), "connection refused")

	// Servers that keep the connection open after their answer: a whole
	// answer passes at once (by its length, or its status line for a
	// check of the status alone), on every path; one that stops short of
	// its length fails at the timeout.
	open := keepOpenServer(t, map[string]string{
		"/whole":  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"/status": "HTTP/1.1 200 OK\r\n",
		"/short":  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
	})
	mustPass(t, wrap(HTTP{Path: "/whole", BodyContains: "hello"}), open)
	mustPass(t, wrap(HTTP{Path: "/status"}), open)
	mustFail(t, wrap(HTTP{Path: "/short", BodyContains: "hello"}), open, "deadline exceeded")

	// Accept and hang: the connection opens, no answer ever comes.
	hang, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	mustFail(t, wrap(HTTP{}), hang.Addr().String(), "deadline exceeded")

	// Reset: the server closes at once with an RST.
	rst, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	go func() {
		for {
			c, err := rst.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	if _, err := probe(t, wrap(HTTP{}), Check{}, rst.Addr().String(), 2*time.Second); err == nil {
		t.Errorf("HTTP against a server that resets passed")
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sni="+r.TLS.ServerName)
	}))
	defer srv.Close()
	a := srv.Listener.Addr().String()
	// httptest's certificate is for example.com and 127.0.0.1, signed by
	// no authority the system trusts.
	// (Loading the system's roots takes seconds under the race detector.)
	if _, err := probe(t, HTTP{TLS: true}, Check{}, a, 20*time.Second); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("HTTPS with certificate checking against a self-signed server: %v", err)
	}
	mustPass(t, HTTP{TLS: true, InsecureSkipVerify: true, ServerName: "www.example.org", BodyContains: "sni=www.example.org"}, a)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.RootCAs = pool
	mustPass(t, HTTP{TLS: true, TLSConfig: cfg, ServerName: "example.com", BodyContains: "sni=example.com"}, a)
	// The wrong name for the certificate.
	mustFail(t, HTTP{TLS: true, TLSConfig: cfg, ServerName: "other.test"}, a, "certificate")
	// TLS to a plain HTTP server fails.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	mustFail(t, HTTP{TLS: true, InsecureSkipVerify: true}, plain.Listener.Addr().String(), "")
}

// udpServer answers each datagram with reply(datagram), or not at all if
// reply returns nil.
func udpServer(t *testing.T, reply func([]byte) []byte) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				c.WriteTo(r, from)
			}
		}
	}()
	return c.LocalAddr().String()
}

func TestUDP(t *testing.T) {
	echo := udpServer(t, func(b []byte) []byte { return append([]byte("echo "), b...) })
	silent := udpServer(t, func([]byte) []byte { return nil })
	closed := closedPort(t, "udp")

	mustPass(t, UDP{Payload: []byte("ping"), RequireReply: true}, echo)
	mustPass(t, UDP{Payload: []byte("ping"), Expect: []byte("echo ping")}, echo)
	mustFail(t, UDP{Payload: []byte("ping"), Expect: []byte("pong")}, echo, "unexpected reply")
	mustFail(t, UDP{Payload: []byte("ping"), RequireReply: true}, silent, "")
	// Without RequireReply silence passes, a port unreachable fails.
	if _, err := probe(t, UDP{Payload: []byte("ping")}, Check{}, silent, 300*time.Millisecond); err != nil {
		t.Errorf("UDP without RequireReply against a silent server: %v", err)
	}
	err := mustFail(t, UDP{Payload: []byte("ping")}, closed, "refused")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not match ECONNREFUSED", err)
	}
}

// dnsResponder answers queries: for "good.test." with one A record, for
// "empty.test." with none, otherwise NXDOMAIN; it checks the query.
func dnsResponder(t *testing.T, wrongID bool) string {
	return udpServer(t, func(q []byte) []byte {
		if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
			return nil
		}
		name, rest, ok := readName(q[12:])
		if !ok || len(rest) < 4 || binary.BigEndian.Uint16(rest) != TypeA || binary.BigEndian.Uint16(rest[2:]) != 1 {
			return nil
		}
		r := append([]byte(nil), q[:12+len(q[12:])-len(rest)+4]...)
		flags := uint16(0x8180) // QR, RD, RA
		var an uint16
		switch name {
		case "good.test.":
			an = 1
		case "empty.test.":
		default:
			flags |= 3 // NXDOMAIN
		}
		binary.BigEndian.PutUint16(r[2:], flags)
		binary.BigEndian.PutUint16(r[6:], an)
		if an == 1 {
			r = append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1)
		}
		if wrongID {
			r[0] ^= 0xff
		}
		return r
	})
}

func readName(b []byte) (string, []byte, bool) {
	var labels []string
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		if n == 0 {
			return strings.Join(labels, ".") + ".", b, true
		}
		if n > len(b) {
			return "", nil, false
		}
		labels = append(labels, string(b[:n]))
		b = b[n:]
	}
	return "", nil, false
}

func TestDNS(t *testing.T) {
	a := dnsResponder(t, false)
	mustPass(t, DNS{Name: "good.test"}, a)
	mustPass(t, DNS{Name: "good.test."}, a)
	mustFail(t, DNS{Name: "empty.test"}, a, "no answer records")
	mustFail(t, DNS{Name: "missing.test"}, a, "NXDOMAIN")
	mustFail(t, DNS{Name: "good.test"}, dnsResponder(t, true), "reply ID")
	mustFail(t, DNS{Name: "good.test"}, udpServer(t, func([]byte) []byte { return []byte("junk") }), "shorter than a DNS header")
	mustFail(t, DNS{Name: "good.test"}, closedPort(t, "udp"), "refused")

	q, err := encodeQuery(0x1234, "www.example.com", TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	want := "123401000001000000000000" + "03777777076578616d706c6503636f6d00" + "001c0001"
	if got := hex.EncodeToString(q); got != want {
		t.Errorf("encodeQuery = %s, want %s", got, want)
	}
	if _, err := encodeQuery(0, strings.Repeat("a", 64)+".test", TypeA); err == nil {
		t.Errorf("encodeQuery accepted a 64-byte label")
	}
}

func TestCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs /bin/sh")
	}
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skipf("no %s", sh)
	}
	script := func(body string) Command {
		p := filepath.Join(t.TempDir(), "check.sh")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return Command{Path: p}
	}
	mustPass(t, script("exit 0"), "127.0.0.1:80")
	mustFail(t, script("exit 1"), "127.0.0.1:80", "exit status 1")
	mustFail(t, script("exit 3"), "127.0.0.1:80", "exit status 3")
	// The target is in the environment.
	mustPass(t, script(`test "$IPVS_CHECK_ADDRESS:$IPVS_CHECK_PORT" = 10.0.2.1:8080`), "10.0.2.1:8080")

	dyn := script(`exit "$1"`)
	dyn.Dynamic = true
	for _, tc := range []struct {
		code, weight int
		fails        bool
	}{{0, KeepWeight, false}, {1, KeepWeight, true}, {2, 0, false}, {7, 5, false}, {255, 253, false}} {
		dyn.Args = []string{strconv.Itoa(tc.code)}
		w, err := probe(t, dyn, Check{}, "127.0.0.1:80", 2*time.Second)
		if (err != nil) != tc.fails || w != tc.weight {
			t.Errorf("dynamic, exit %d: weight %d, error %v; want weight %d, failure %v", tc.code, w, err, tc.weight, tc.fails)
		}
	}
	// Killed at the timeout: a failure, and never a weight.
	slow := script("sleep 5; exit 7")
	slow.Dynamic = true
	start := time.Now()
	w, err := probe(t, slow, Check{}, "127.0.0.1:80", 300*time.Millisecond)
	if err == nil || w != KeepWeight || !strings.Contains(err.Error(), "killed at the timeout") {
		t.Errorf("a command killed at the timeout: weight %d, error %v", w, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the killed command took %v", d)
	}
	mustFail(t, Command{Path: filepath.Join(t.TempDir(), "missing")}, "127.0.0.1:80", "no such file")
}

func TestFunc(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var seen netip.AddrPort
	f := Func(func(ctx context.Context, tg Target) error {
		seen = tg.Addr
		c, err := tg.Dial(ctx, "tcp")
		if err != nil {
			return err
		}
		return c.Close()
	})
	ap := netip.MustParseAddrPort(ln.Addr().String())
	// The Port override: the destination says 80, the check says where.
	if _, err := probe(t, f, Check{Port: ap.Port()}, "127.0.0.1:80", 2*time.Second); err != nil {
		t.Errorf("Func: %v", err)
	}
	if seen != ap {
		t.Errorf("Func saw %v, want %v (the check's Port)", seen, ap)
	}
}

// keepOpenServer answers a GET of each path with its answer, and then
// keeps the connection open until the client closes it.
func keepOpenServer(t *testing.T, answers map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveHeads(ln, func(c net.Conn, head string) {
		if f := strings.Fields(head); len(f) >= 2 {
			io.WriteString(c, answers[f[1]])
		}
		_, _ = io.Copy(io.Discard, c) // until the client closes
	})
	return ln.Addr().String()
}
