package connector

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/culvert-tunnel/culvert/dataplane/internal/prom"
)

// connMetrics are the connector's Prometheus metrics (culvert_connector_*).
type connMetrics struct {
	set      *metrics.Set
	requests *metrics.Counter
	inflight atomic.Int64

	errUnreachable, errTimeout, errOrigin, errBadRequest, errVisitor *metrics.Counter

	bytesUp, bytesDown *metrics.Counter
	websockets         *metrics.Counter
	connects           *metrics.Counter
	reconnects         *metrics.Counter
	// Registered connections that ended, by why.
	lostHeartbeat, lostDrain, lostOther *metrics.Counter
	statuses                            *prom.StatusCounters
	duration                            *prom.Histogram
}

func newConnMetrics(set *metrics.Set, c *Connector) *connMetrics {
	m := &connMetrics{set: set, statuses: prom.NewStatusCounters(set, "culvert_connector_responses_total")}
	m.requests = set.NewCounter("culvert_connector_requests_total")
	errs := func(kind string) *metrics.Counter {
		return set.NewCounter(fmt.Sprintf(`culvert_connector_errors_total{kind=%q}`, kind))
	}
	m.errUnreachable = errs("origin_unreachable")
	m.errTimeout = errs("origin_timeout")
	m.errOrigin = errs("origin_error")
	m.errBadRequest = errs("bad_request")
	m.errVisitor = errs("visitor_gone")
	m.bytesUp = set.NewCounter(`culvert_connector_bytes_total{direction="to_origin"}`)
	m.bytesDown = set.NewCounter(`culvert_connector_bytes_total{direction="from_origin"}`)
	m.websockets = set.NewCounter("culvert_connector_websockets_total")
	m.connects = set.NewCounter("culvert_connector_tunnel_connects_total")
	m.reconnects = set.NewCounter("culvert_connector_tunnel_reconnects_total")
	lost := func(reason string) *metrics.Counter {
		return set.NewCounter(fmt.Sprintf(`culvert_connector_tunnel_disconnects_total{reason=%q}`, reason))
	}
	m.lostHeartbeat = lost("heartbeat")
	m.lostDrain = lost("edge_drain")
	m.lostOther = lost("connection_error")
	set.NewGauge("culvert_connector_requests_inflight", func() float64 { return float64(m.inflight.Load()) })
	set.NewGauge("culvert_connector_tunnel_connections", func() float64 { return float64(c.Registered()) })
	set.NewGauge("culvert_connector_ping_rtt_seconds", func() float64 { return c.pingRTT().Seconds() })
	m.duration = prom.New("culvert_connector_request_duration_seconds",
		"Time from a request stream's arrival to the end of its response.", prom.DurationBuckets)
	return m
}

// status counts a response status from the origin.
func (m *connMetrics) status(code int) { m.statuses.Inc(code) }

func (m *connMetrics) observe(start time.Time, _ int64) {
	m.duration.Observe(time.Since(start).Seconds())
}

// WritePrometheus writes the connector's metrics.
func (c *Connector) WritePrometheus(w io.Writer) {
	c.metrics.set.WritePrometheus(w)
	c.metrics.duration.WritePrometheus(w)
	ps := c.origin.PipelineStats()
	metrics.WriteCounterUint64(w, "culvert_connector_origin_pipelined_requests_total", ps.Requests)
	metrics.WriteCounterUint64(w, "culvert_connector_origin_pipeline_writes_total", ps.Writes)
	metrics.WriteCounterUint64(w, "culvert_connector_origin_pipeline_resent_total", ps.Resent)
}

// pingRTT returns the largest last PING round trip over the live connections.
func (c *Connector) pingRTT() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rtt time.Duration
	for cn := range c.conns {
		rtt = max(rtt, cn.dc.Stats().LastPingRTT)
	}
	return rtt
}
