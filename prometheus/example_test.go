package prometheus_test

import (
	"log"
	"net/http"

	"github.com/ipvs-go/ipvs"
	ipvsprom "github.com/ipvs-go/ipvs/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A Collector in a registry of your own, beside other metrics.
func ExampleNew() {
	c, err := ipvs.New()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(ipvsprom.New(c, ipvsprom.Options{NodeExporterNames: true}))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe(":9748", nil))
}

// The Handler serves the same metrics without a registry, faster, and
// bounds each read by the scrape's timeout.
func ExampleCollector_Handler() {
	c, err := ipvs.New(ipvs.WithNetNSPath("/var/run/netns/lb"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	col := ipvsprom.New(c, ipvsprom.Options{ErrorLog: func(err error) { log.Print(err) }})
	http.Handle("/metrics", col.Handler())
	log.Fatal(http.ListenAndServe(":9748", nil))
}
