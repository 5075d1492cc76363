package healthcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
)

// The HTTP check speaks just enough HTTP/1.1 for one GET per connection:
// a request with "Connection: close", then the status line and, when the
// body is checked, the headers that frame it (Content-Length, chunked
// Transfer-Encoding, or the end of the connection). net/http's Transport
// costs several goroutines and many allocations per connection, which a
// checker of thousands of destinations a second cannot afford.

// maxHead bounds the status line and headers of a response.
const maxHead = 64 << 10

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// httpResume is where an HTTP check started on the Monitor's goroutine
// left off: the part of the request not written yet and the part of the
// response read (plain HTTP only).
type httpResume struct {
	req, pre []byte
}

// appendRequest appends the GET request of the check of t to b: what
// httpRequest(h.hostPath(t)) returns.
func (h *HTTP) appendRequest(b []byte, t Target) []byte {
	path := h.Path
	if path == "" {
		path = "/"
	}
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if h.Host != "" {
		b = append(b, h.Host...)
	} else {
		b = t.Addr.AppendTo(b)
	}
	return append(b, "\r\nUser-Agent: ipvs-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n"...)
}

// request is the GET request of path from host.
func httpRequest(host, path string) []byte {
	req := make([]byte, 0, 128+len(path)+len(host))
	req = append(req, "GET "...)
	req = append(req, path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, host...)
	req = append(req, "\r\nUser-Agent: ipvs-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n"...)
	return req
}

// exchange makes the GET over conn, or goes on from resume.
func (h *HTTP) exchange(ctx context.Context, conn net.Conn, cfg *tls.Config, host, path string, resume *httpResume) error {
	var rw io.ReadWriter = conn
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		rw = tc
	}
	var r io.Reader = rw
	req := httpRequest(host, path)
	if resume != nil {
		req = resume.req
		if len(resume.pre) > 0 {
			r = io.MultiReader(bytes.NewReader(resume.pre), rw)
		}
	}
	if len(req) > 0 {
		if _, err := rw.Write(req); err != nil {
			return err
		}
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	return h.response(br)
}

// response reads and judges the response from br.
func (h *HTTP) response(br *bufio.Reader) error {
	hr := headReader{br: br}
	var code int
	var status []byte
	for {
		line, err := hr.line()
		if err != nil {
			return fmt.Errorf("reading the status line: %w", err)
		}
		code, status, err = parseStatusLine(line)
		if err != nil {
			return err
		}
		if code >= 200 || code == 101 {
			break
		}
		// 1xx: its headers, then the real response.
		if _, _, err := hr.headers(false); err != nil {
			return err
		}
	}
	if !h.statusOK(code) {
		return fmt.Errorf("HTTP status %s", status)
	}
	if h.BodyMD5 == "" && h.BodyContains == "" {
		return nil
	}
	length, chunked, err := hr.headers(true)
	if err != nil {
		return err
	}
	limit := h.MaxBody
	if limit == 0 {
		limit = defaultMaxBody
	}
	if length > limit {
		return fmt.Errorf("body longer than %d bytes", limit)
	}
	bp := bodies.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			bodies.Put(bp)
		}
	}()
	var b []byte
	if chunked {
		b, err = readBody(httputil.NewChunkedReader(br), limit+1, (*bp)[:0])
	} else {
		// Read from br itself: a reader of its own would be one
		// allocation more.
		n := limit + 1
		if length >= 0 {
			n = min(n, length)
		}
		b, err = readBody(br, n, (*bp)[:0])
	}
	*bp = b[:0]
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("body longer than %d bytes", limit)
	}
	if length > 0 && int64(len(b)) < length {
		return fmt.Errorf("body of %d bytes, %d announced", len(b), length)
	}
	if h.BodyMD5 != "" {
		sum := md5.Sum(b)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, h.BodyMD5) {
			return fmt.Errorf("body digest %s, want %s", got, strings.ToLower(h.BodyMD5))
		}
	}
	if h.BodyContains != "" && !bytes.Contains(b, []byte(h.BodyContains)) {
		return fmt.Errorf("body does not contain %q", h.BodyContains)
	}
	return nil
}

// bodies holds buffers for the bodies checks read.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readBody appends to b what r has, until EOF or n bytes in all.
func readBody(r io.Reader, n int64, b []byte) ([]byte, error) {
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := r.Read(b[len(b):min(int64(cap(b)), n)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// parseStatusLine parses "HTTP/1.1 200 OK" into 200 and "200 OK" (a part
// of line).
func parseStatusLine(line []byte) (int, []byte, error) {
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/"))
	if !ok {
		return 0, nil, fmt.Errorf("not an HTTP response: %q", truncate(line))
	}
	_, status, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return 0, nil, fmt.Errorf("malformed HTTP status line %q", truncate(line))
	}
	code := 0
	for _, c := range status[:3] {
		if c < '0' || c > '9' {
			return 0, nil, fmt.Errorf("malformed HTTP status line %q", truncate(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return 0, nil, fmt.Errorf("malformed HTTP status line %q", truncate(line))
	}
	return code, status, nil
}

// headReader reads the lines of a response's head, at most maxHead bytes
// in all.
type headReader struct {
	br   *bufio.Reader
	read int
}

var errHeadTooLong = fmt.Errorf("response head longer than %d bytes", maxHead)

// line returns the next line without its CRLF (or LF); it is valid until
// the next read.
func (r *headReader) line() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	r.read += len(line)
	if errors.Is(err, bufio.ErrBufferFull) || r.read > maxHead {
		return nil, errHeadTooLong
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// headers reads the header lines up to the empty line and, if framing,
// returns the body's Content-Length (-1 if none) and whether it is chunked.
func (r *headReader) headers(framing bool) (length int64, chunked bool, err error) {
	length = -1
	for {
		line, err := r.line()
		if err != nil {
			return 0, false, fmt.Errorf("reading the headers: %w", err)
		}
		if len(line) == 0 {
			return length, chunked, nil
		}
		if !framing {
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header line %q", truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", truncate(value))
			}
			length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
