package lab

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// An HTTPServer is an HTTP server in a namespace that can be stopped and
// started again on the same address, as "systemctl stop nginx" would.
type HTTPServer struct {
	ns         *NS
	addr, body string
	mu         sync.Mutex
	srv        *http.Server
}

// StartHTTP starts an HTTP server on addr inside the namespace that answers
// every request with body and a newline, like ServeHTTP, but can be stopped
// and restarted. It is stopped at the lab's Close.
func (n *NS) StartHTTP(addr, body string) (*HTTPServer, error) {
	s := &HTTPServer{ns: n, addr: addr, body: body}
	n.lab.Printf("# %s: HTTP server on %s answering %q (Go net/http, listening inside the namespace)\n", n.Role, addr, body)
	if err := s.start(); err != nil {
		return nil, err
	}
	n.lab.Defer(func() { s.stop() })
	return s, nil
}

func (s *HTTPServer) start() error {
	ln, err := s.ns.listen(s.addr)
	if err != nil {
		return fmt.Errorf("%s: %w", s.ns.Role, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, s.body+"\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

func (s *HTTPServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// Stop stops the server: its listening socket is closed, so connections to
// it are refused.
func (s *HTTPServer) Stop() {
	s.ns.lab.Cmd(s.ns, "systemctl stop http   # the server on %s stops", s.addr)
	s.stop()
}

// Start starts the stopped server again.
func (s *HTTPServer) Start() error {
	s.ns.lab.Cmd(s.ns, "systemctl start http  # the server on %s is back", s.addr)
	return s.start()
}
