// Package prom holds the two metric helpers the edge and the connector
// share beside VictoriaMetrics/metrics: a fixed-bucket histogram written in
// the Prometheus text format (cumulative "le" buckets, _sum and _count; the
// library's own Histogram uses "vmrange" buckets that Prometheus cannot
// aggregate), and a per-status-code counter family that costs no map lookup
// per response.
//
// What it is not: a general metrics library; the counters and gauges come
// from VictoriaMetrics/metrics.
package prom

import (
	"fmt"
	"io"
	"math"
	"sync/atomic"
)

// DurationBuckets are upper bounds in seconds, from 1 ms to 60 s.
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Histogram counts observations into fixed buckets; Observe is lock-free.
type Histogram struct {
	name    string
	help    string
	bounds  []float64
	counts  []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumBits atomic.Uint64
	count   atomic.Uint64
}

// New returns a histogram with the given upper bounds (ascending).
func New(name, help string, bounds []float64) *Histogram {
	return &Histogram{name: name, help: help, bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
	h.count.Add(1)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// WritePrometheus writes the histogram with HELP and TYPE lines.
func (h *Histogram) WritePrometheus(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", h.name, b, cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", h.name, cum)
	fmt.Fprintf(w, "%s_sum %g\n", h.name, math.Float64frombits(h.sumBits.Load()))
	fmt.Fprintf(w, "%s_count %d\n", h.name, cum)
}
