package healthcheck

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// TCP passes when a TCP connection to the target opens (keepalived's
// TCP_CHECK). The connection is reset as soon as it is open (as HAProxy's
// checks do), so that the load balancer keeps no TIME_WAIT entry per check
// (at 10 000 checks a second, 600 000 of them, beyond the kernel's limit);
// Graceful closes it normally instead, as keepalived does. The Monitor
// resets the connection of a check that passed with connect(2) to
// AF_UNSPEC, which leaves the socket open, and connects it again for its
// next check, where keepalived makes and closes a socket per check; a check
// alone (Probe) closes its socket with SO_LINGER 0.
type TCP struct {
	Graceful bool
}

// Probe implements Probe.
func (p TCP) Probe(ctx context.Context, t Target) (int, error) {
	if t.d == nil {
		return KeepWeight, fmt.Errorf("healthcheck: dial %s: target has no dialer", t.Addr)
	}
	return KeepWeight, t.d.connectOnly(ctx, t.Addr, p.Graceful)
}

func (p TCP) reuses() bool { return !p.Graceful }

// start begins the check without waiting (see starter).
func (p TCP) start(t Target, inNS bool, sp *spares) (started, int, error) {
	if t.d == nil {
		return started{}, KeepWeight, fmt.Errorf("healthcheck: dial %s: target has no dialer", t.Addr)
	}
	w, err := t.d.startTCP(t.Addr, p.Graceful, inNS, sp)
	if w == nil {
		return started{}, KeepWeight, err
	}
	return w.started(), KeepWeight, nil
}

// A starter is a probe that can often finish without waiting, such as a
// TCP check of a local destination, whose connection opens within
// connect(2). The Monitor calls start on its own goroutine, for many
// checks at once, with inNS if the thread is in the Client's namespace
// (one namespace check for them all), and the Monitor's spare sockets: it
// returns the result, or the rest of the check (started). start must not
// block.
type starter interface {
	start(t Target, inNS bool, sp *spares) (p started, weight int, err error)
	// reuses reports whether start takes a spare socket when there is
	// one (of the target's family, for a check with no Source).
	reuses() bool
}

// started is the rest of a started check: nothing when both are nil (the
// check is done); else a check the Monitor drives (p), or the rest to run
// on a goroutine of its own with the check's timeout (wait).
type started struct {
	p    driven
	wait func(context.Context) (int, error)
}

// driven is a started check that the Monitor drives from its own
// goroutine. try finishes it if it can without waiting (the Monitor calls
// it once the batch has started, and when poll's socket is ready). poll is
// the socket on which the Monitor may wait, in its own poller, for try to
// go on: until it is writable (out) or readable; -1 if it may not wait
// there. expire ends the check at its timeout, and tells why it failed.
// wait goes on, on a goroutine of its own, from where try left off.
type driven interface {
	try() (done bool, weight int, err error)
	poll() (fd int, out bool)
	expire() error
	wait(context.Context) (int, error)
}

// A StatusRange is a range of HTTP status codes, Min to Max inclusive.
type StatusRange struct{ Min, Max int }

// HTTP passes when a GET of the target answers with an expected status and,
// if set, the expected body (keepalived's HTTP_GET and, with TLS, SSL_GET).
// Every check opens a new connection, and asks the server to close it
// ("Connection: close"). The check ends as soon as what came decides it:
// the status line when the body is not checked, else the body whole by
// its Content-Length or last chunk, or by the server's close; a server that
// keeps the connection open after a whole answer passes (keepalived waits
// for the close, and fails it at the timeout). The Monitor then resets the
// connection of a plain GET and connects the same socket for a next check
// (see TCP): the server's end keeps no TIME_WAIT entry.
type HTTP struct {
	// Path is the request's path and query, "/" by default.
	Path string
	// Host is the Host header; the default is the target's address.
	Host string
	// Status lists the status codes that pass; the default is 200-299.
	Status []StatusRange
	// BodyMD5, if set, is the hex MD5 digest the body must have, as
	// keepalived's digest (genhash prints it). BodyContains, if set, must
	// be in the body. Either reads at most MaxBody bytes (1 MiB by
	// default): a longer body fails.
	BodyMD5      string
	BodyContains string
	MaxBody      int64

	// TLS makes the check HTTPS. ServerName is the TLS server name (SNI
	// and the name the certificate must have); the default is Host, or the
	// target's address. InsecureSkipVerify turns certificate checking off.
	// TLSConfig, if set, is the base of the client's configuration, for
	// example with the RootCAs to trust (nil: the system's).
	TLS                bool
	ServerName         string
	InsecureSkipVerify bool
	TLSConfig          *tls.Config
}

const defaultMaxBody = 1 << 20

func (h HTTP) validate(field string) error {
	for i, r := range h.Status {
		if r.Min < 100 || r.Max > 999 || r.Min > r.Max {
			return invalid(fmt.Sprintf("%s.Status[%d]", field, i), "%d-%d is not a range of status codes", r.Min, r.Max)
		}
	}
	if h.BodyMD5 != "" {
		if b, err := hex.DecodeString(h.BodyMD5); err != nil || len(b) != md5.Size {
			return invalid(field+".BodyMD5", "%q is not a hex MD5 digest", h.BodyMD5)
		}
	}
	if h.MaxBody < 0 {
		return invalid(field+".MaxBody", "is negative")
	}
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		return invalid(field+".Path", "%q does not start with /", h.Path)
	}
	return nil
}

// Probe implements Probe.
func (h HTTP) Probe(ctx context.Context, t Target) (int, error) {
	return KeepWeight, h.get(ctx, t)
}

func (h *HTTP) get(ctx context.Context, t Target) error {
	if t.d == nil {
		return fmt.Errorf("healthcheck: dial %s: target has no dialer", t.Addr)
	}
	conn, err := t.d.dialConn(ctx, "tcp", t.Addr)
	if err != nil {
		return err
	}
	return h.over(ctx, t, conn, nil)
}

// start begins the check without waiting (see starter): the connection
// starts opening at once. A plain GET of a destination whose connection
// opened within connect(2) also sends its request at once, and its try
// reads the answer later without waiting (the Monitor tries once the batch
// has started): an answer complete by then is judged there, with no
// goroutine, no registration with the runtime's poller and no timer.
func (h HTTP) start(t Target, inNS bool, sp *spares) (started, int, error) {
	if t.d == nil {
		return started{}, KeepWeight, fmt.Errorf("healthcheck: dial %s: target has no dialer", t.Addr)
	}
	if !h.TLS {
		if p, ok, err := h.startPlain(t, inNS, sp); ok {
			return p, KeepWeight, err
		}
	}
	return h.startConn(t, inNS)
}

// reuses: a plain GET takes a spare socket (on Linux).
func (h HTTP) reuses() bool { return !h.TLS && plainStarts }

// startConn starts the connection of a GET that a goroutine of its own
// makes (apart from start, so that only this path puts h and t on the
// heap).
func (h HTTP) startConn(t Target, inNS bool) (started, int, error) {
	open, err := t.d.startStream(t.Addr, inNS)
	if err != nil {
		return started{}, KeepWeight, err
	}
	return started{wait: func(ctx context.Context) (int, error) {
		conn, err := open(ctx)
		if err != nil {
			return KeepWeight, err
		}
		return KeepWeight, h.over(ctx, t, conn, nil)
	}}, KeepWeight, nil
}

// hostPath is the request's Host header and path.
func (h *HTTP) hostPath(t Target) (host, path string) {
	path = h.Path
	if path == "" {
		path = "/"
	}
	host = h.Host
	if host == "" {
		host = t.Addr.String()
	}
	return host, path
}

// over makes the GET over conn, or goes on from resume, and closes conn.
func (h *HTTP) over(ctx context.Context, t Target, conn net.Conn, resume *httpResume) error {
	defer conn.Close()
	host, path := h.hostPath(t)
	var cfg *tls.Config
	if h.TLS {
		if h.TLSConfig != nil {
			cfg = h.TLSConfig.Clone()
		} else {
			cfg = &tls.Config{}
		}
		if h.ServerName != "" {
			cfg.ServerName = h.ServerName
		} else if cfg.ServerName == "" {
			if hn, _, err := net.SplitHostPort(host); err == nil {
				cfg.ServerName = hn
			} else {
				cfg.ServerName = host
			}
		}
		if h.InsecureSkipVerify {
			cfg.InsecureSkipVerify = true
		}
	}
	// ctx's end, its deadline included, ends the exchange: no deadline of
	// the socket's own (one timer and clock read less per check).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	err := h.exchange(ctx, conn, cfg, host, path, resume)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

func (h *HTTP) statusOK(code int) bool {
	if len(h.Status) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range h.Status {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// UDP sends Payload to the target over UDP (keepalived's UDP_CHECK). With
// RequireReply it passes only when a reply comes within the timeout, and,
// if Expect is set, the reply starts with Expect. Without it, it fails
// only when the kernel reports the port unreachable (an ICMP error) before
// the timeout, and passes otherwise: use it only where ICMP errors come
// back.
type UDP struct {
	Payload      []byte
	RequireReply bool
	Expect       []byte
}

// Probe implements Probe.
func (u UDP) Probe(ctx context.Context, t Target) (int, error) {
	reply, err := exchangeUDP(ctx, t, u.Payload, !u.RequireReply && len(u.Expect) == 0)
	if err != nil || reply == nil {
		return KeepWeight, err
	}
	if !bytes.HasPrefix(reply, u.Expect) {
		return KeepWeight, fmt.Errorf("unexpected reply %q", truncate(reply))
	}
	return KeepWeight, nil
}

// exchangeUDP sends payload and returns the first reply. With silentOK, no
// reply until ctx is done is a success (nil reply), and only an error
// (such as ECONNREFUSED from an ICMP port unreachable) fails; a reply
// before then is returned too.
func exchangeUDP(ctx context.Context, t Target, payload []byte, silentOK bool) ([]byte, error) {
	c, err := t.Dial(ctx, "udp")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(defaultTimeout)
	}
	_ = c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(payload); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		if silentOK && errors.As(err, &ne) && ne.Timeout() && !errors.Is(ctx.Err(), context.Canceled) {
			return nil, nil
		}
		if ctx.Err() != nil && !silentOK {
			return nil, fmt.Errorf("no reply: %w", ctx.Err())
		}
		return nil, err
	}
	return buf[:n], nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// weightFromExit is keepalived's misc_dynamic rule: exit status 0 passes
// with the weight unchanged, 1 fails, 2-255 passes with weight status-2.
func weightFromExit(code int) (int, error) {
	switch {
	case code == 0:
		return KeepWeight, nil
	case code >= 2 && code <= 255:
		return code - 2, nil
	}
	return KeepWeight, errors.New("exit status " + strconv.Itoa(code))
}
