// Command ipvs_exporter exports the IPVS table of a network namespace to
// Prometheus: /metrics serves the metrics of package
// github.com/ipvs-go/ipvs/prometheus, one bulk read per scrape bounded by
// the scrape's timeout; /healthz answers 200 if IPVS can be read, 503 with
// the error if not.
//
// It needs CAP_NET_ADMIN only (and CAP_SYS_ADMIN with --netns, to enter
// another namespace); see ipvs_exporter.service. Build it static:
//
//	CGO_ENABLED=0 go build -trimpath -ldflags=-s ./cmd/ipvs_exporter
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ipvs-go/ipvs"
	ipvsprom "github.com/ipvs-go/ipvs/prometheus"
)

func main() {
	listen := flag.String("listen", ":9748", "address to serve /metrics and /healthz on")
	netns := flag.String("netns", "", "network namespace to read, such as /var/run/netns/lb (default: the exporter's own)")
	timeout := flag.Duration("timeout", 10*time.Second, "longest read of the table, if the scraper sends no shorter timeout")
	states := flag.Bool("connection-states", false, "export the connection table's entries per state (reads /proc/net/ip_vs_conn_sync: slow for big tables)")
	node := flag.Bool("node-exporter-names", false, "also export node_exporter's node_ipvs_* metrics (disable node_exporter's ipvs collector then)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "ipvs_exporter: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*listen, *netns, *timeout, *states, *node); err != nil {
		log.Fatalf("ipvs_exporter: %v", err)
	}
}

func run(listen, netns string, timeout time.Duration, states, node bool) error {
	var opts []ipvs.Option
	if netns != "" {
		opts = append(opts, ipvs.WithNetNSPath(netns))
	}
	c, err := ipvs.New(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	col := ipvsprom.New(c, ipvsprom.Options{
		Timeout:           timeout,
		ConnectionStates:  states,
		NodeExporterNames: node,
		ErrorLog:          func(err error) { log.Printf("read of the IPVS table failed: %v", err) },
	})

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", col.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := c.Info(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ipvs_exporter: metrics at /metrics, health at /healthz")
	})
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("ipvs_exporter: listening on %s", listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
