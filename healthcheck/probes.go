package healthcheck

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TCP passes when a TCP connection to the target opens (keepalived's
// TCP_CHECK). The connection is closed at once.
type TCP struct{}

// Probe implements Probe.
func (TCP) Probe(ctx context.Context, t Target) (int, error) {
	c, err := t.Dial(ctx, "tcp")
	if err != nil {
		return KeepWeight, err
	}
	return KeepWeight, c.Close()
}

// A StatusRange is a range of HTTP status codes, Min to Max inclusive.
type StatusRange struct{ Min, Max int }

// HTTP passes when a GET of the target answers with an expected status and,
// if set, the expected body (keepalived's HTTP_GET and, with TLS, SSL_GET).
// Every check opens a new connection.
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
	scheme := "http"
	if h.TLS {
		scheme = "https"
	}
	path := h.Path
	if path == "" {
		path = "/"
	}
	host := h.Host
	if host == "" {
		host = t.Addr.String()
	}
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
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return t.Dial(ctx, "tcp")
		},
		TLSClientConfig:    cfg,
		ForceAttemptHTTP2:  false,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+t.Addr.String()+path, nil)
	if err != nil {
		return err
	}
	req.Host = host
	req.Header.Set("User-Agent", "ipvs-healthcheck")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !h.statusOK(resp.StatusCode) {
		return fmt.Errorf("HTTP status %s", resp.Status)
	}
	if h.BodyMD5 == "" && h.BodyContains == "" {
		return nil
	}
	limit := h.MaxBody
	if limit == 0 {
		limit = defaultMaxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("body longer than %d bytes", limit)
	}
	if h.BodyMD5 != "" {
		sum := md5.Sum(body)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, h.BodyMD5) {
			return fmt.Errorf("body digest %s, want %s", got, strings.ToLower(h.BodyMD5))
		}
	}
	if h.BodyContains != "" && !bytes.Contains(body, []byte(h.BodyContains)) {
		return fmt.Errorf("body does not contain %q", h.BodyContains)
	}
	return nil
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
