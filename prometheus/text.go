package prometheus

import (
	"compress/gzip"
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
)

// emitter takes the samples of the families in turn: to a channel of
// metrics (Collect) or to the text format (Handler).
type emitter struct {
	ch chan<- prom.Metric
	w  *textWriter
	f  *family
	// headed is whether the text has the family's HELP and TYPE lines,
	// written before its first sample: a family without samples is left
	// out, as a registry leaves it out.
	headed bool
}

func (e *emitter) start(f *family) { e.f, e.headed = f, false }

func (e *emitter) sample(v float64, lv ...string) {
	if e.w != nil {
		if !e.headed {
			e.w.header(e.f)
			e.headed = true
		}
		e.w.sample(e.f, v, lv)
		return
	}
	e.ch <- prom.MustNewConstMetric(e.f.desc, e.f.typ, v, lv...)
}

// textWriter writes the Prometheus text format (version 0.0.4) into a
// buffer that it flushes to w as it fills.
type textWriter struct {
	w   io.Writer
	buf []byte
	err error
}

const textFlushAt = 64 << 10

func (t *textWriter) flush() {
	if t.err == nil && len(t.buf) > 0 {
		_, t.err = t.w.Write(t.buf)
	}
	t.buf = t.buf[:0]
}

func (t *textWriter) header(f *family) {
	t.buf = append(t.buf, "# HELP "...)
	t.buf = append(t.buf, f.name...)
	t.buf = append(t.buf, ' ')
	t.buf = append(t.buf, f.help...) // no backslash or newline in our help texts
	t.buf = append(t.buf, "\n# TYPE "...)
	t.buf = append(t.buf, f.name...)
	if f.typ == prom.CounterValue {
		t.buf = append(t.buf, " counter\n"...)
	} else {
		t.buf = append(t.buf, " gauge\n"...)
	}
}

func (t *textWriter) sample(f *family, v float64, lv []string) {
	t.buf = append(t.buf, f.name...)
	if len(lv) > 0 {
		for n, i := range f.order {
			if n == 0 {
				t.buf = append(t.buf, '{')
			} else {
				t.buf = append(t.buf, ',')
			}
			t.buf = append(t.buf, f.labels[i]...)
			t.buf = append(t.buf, '=', '"')
			t.buf = appendLabelValue(t.buf, lv[i])
			t.buf = append(t.buf, '"')
		}
		t.buf = append(t.buf, '}')
	}
	t.buf = append(t.buf, ' ')
	t.buf = appendFloat(t.buf, v)
	t.buf = append(t.buf, '\n')
	if len(t.buf) >= textFlushAt {
		t.flush()
	}
}

// appendLabelValue escapes a label value as the text format wants.
func appendLabelValue(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\\"\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 0:
		return append(b, '0')
	case v == 1:
		return append(b, '1')
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		q = strings.ReplaceAll(strings.TrimSpace(q), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// WriteText reads the table within ctx and writes the metrics to w in the
// Prometheus text format, as the Collector would export them, without
// building a metric object per series. It returns w's error; a failed read
// is not an error (the text says ipvs_up 0).
func (c *Collector) WriteText(ctx context.Context, w io.Writer) error {
	s := c.read(ctx)
	t := textWriter{w: w, buf: make([]byte, 0, textFlushAt+4096)}
	c.emit(&emitter{w: &t}, s)
	t.flush()
	return t.err
}

// scrapeTimeoutHeader is the header in which Prometheus sends the scrape
// timeout, in seconds.
const scrapeTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

// Handler returns an http.Handler serving the metrics in the text format
// (WriteText), gzipped if the request accepts it (Prometheus's do). The read's deadline is the scrape timeout the scraper sends
// (Prometheus's header X-Prometheus-Scrape-Timeout-Seconds) less a
// quarter of a second for the transfer, at most Options.Timeout; the read
// also ends if the scraper goes away.
func (c *Collector) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timeout := c.opts.Timeout
		if v, err := strconv.ParseFloat(r.Header.Get(scrapeTimeoutHeader), 64); err == nil && v > 0 {
			d := time.Duration(v*float64(time.Second)) - 250*time.Millisecond
			timeout = min(timeout, max(d, time.Duration(v*float64(time.Second))/2))
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Add("Vary", "Accept-Encoding")
		var out io.Writer = w
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
			defer gz.Close()
			out = gz
		}
		_ = c.WriteText(ctx, out) // the client went away: nothing to tell it
	})
}
