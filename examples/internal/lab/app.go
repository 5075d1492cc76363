package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// listen opens a TCP listener inside the namespace.
func (n *NS) listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	return ln, err
}

// ServeHTTP starts an HTTP server on addr (such as ":80") inside the
// namespace that answers every request with body and a newline. It is
// stopped at the lab's Close.
func (n *NS) ServeHTTP(addr, body string) error {
	n.lab.Printf("# %s: HTTP server on %s answering %q (Go net/http, listening inside the namespace)\n", n.Role, addr, body)
	ln, err := n.listen(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Role, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, body+"\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	n.lab.Defer(func() { srv.Close() })
	return nil
}

// ServeEcho starts a line-echo server on addr inside the namespace: every
// line received is sent back as "NAME: line". It is stopped at the lab's
// Close.
func (n *NS) ServeEcho(addr, name string) error {
	n.lab.Printf("# %s: line-echo server on %s answering %q (Go, listening inside the namespace)\n", n.Role, addr, name+": <line>")
	ln, err := n.listen(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Role, err)
	}
	done := make(chan struct{})
	n.lab.Defer(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go func() { <-done; c.Close() }()
				s := bufio.NewScanner(c)
				for s.Scan() {
					if _, err := fmt.Fprintf(c, "%s: %s\n", name, s.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}

// Dial opens a TCP connection from inside the namespace.
func (n *NS) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// HTTPClient returns an HTTP client whose connections are opened inside the
// namespace, one new TCP connection per request (keep-alive disabled, as
// separate curl runs do), with no proxy whatever the environment says.
func (n *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return n.Dial(ctx, addr)
			},
		},
	}
}

// Get fetches url from inside the namespace ("curl -s url") and returns the
// body without its trailing newline.
func (n *NS) Get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP status %s", resp.Status)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// A Result is the outcome of one request of Curl.
type Result struct {
	Body string
	Err  error
}

// Curl runs "curl -s url" count times from the namespace, printing each
// answer (or failure) as it comes, each request on a new connection that
// gives up after timeout.
func (n *NS) Curl(ctx context.Context, url string, count int, timeout time.Duration) []Result {
	c := n.HTTPClient(timeout)
	var res []Result
	for i := 0; i < count && ctx.Err() == nil; i++ {
		n.lab.Cmd(n, "curl -s -m %g %s", timeout.Seconds(), url)
		body, err := n.Get(ctx, c, url)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no answer within %v", timeout)
			}
			n.lab.Printf("  (failed: %v)\n", err)
		} else {
			n.lab.Printf("%s\n", body)
		}
		res = append(res, Result{Body: body, Err: err})
	}
	return res
}

// CheckRoundRobin checks that every request was answered, that both bodies
// appear, and that they alternate, as the rr scheduler over two
// destinations implies.
func CheckRoundRobin(res []Result, bodies [2]string) error {
	if len(res) < 2 {
		return fmt.Errorf("only %d answers", len(res))
	}
	seen := map[string]int{}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("request %d failed: %w", i+1, r.Err)
		}
		if r.Body != bodies[0] && r.Body != bodies[1] {
			return fmt.Errorf("request %d: unexpected answer %q", i+1, r.Body)
		}
		if i > 0 && r.Body == res[i-1].Body {
			return fmt.Errorf("requests %d and %d were both answered by %q: not round-robin", i, i+1, r.Body)
		}
		seen[r.Body]++
	}
	if len(seen) != 2 {
		return errors.New("only one backend answered")
	}
	return nil
}

// Summarise counts the answers per body, and the failures under "".
func Summarise(res []Result) map[string]int {
	m := map[string]int{}
	for _, r := range res {
		if r.Err != nil {
			m[""]++
		} else {
			m[r.Body]++
		}
	}
	return m
}
