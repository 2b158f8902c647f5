package edge

import (
	"fmt"
	"io"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/culvert-tunnel/culvert/dataplane/internal/prom"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
)

// edgeMetrics are the edge's Prometheus metrics (culvert_edge_*).
type edgeMetrics struct {
	set      *metrics.Set
	requests *metrics.Counter

	// Errors by kind: each error response the edge makes, and each the
	// connector made (counted from its culvert-error header).
	errUnknownHost, errTunnelOffline, errTunnel                                 *metrics.Counter
	errBadRequest, errHeaderTooLarge, errBodyTooLarge, errVisitorTimeout        *metrics.Counter
	errVisitorGone, retries                                                     *metrics.Counter
	errOriginUnreachable, errOriginTimeout, errOriginError, errConnectorRequest *metrics.Counter

	bytesUp, bytesDown              *metrics.Counter
	websockets                      *metrics.Counter
	registrations, registerFailures *metrics.Counter
	tunnelHandshakeFailures         *metrics.Counter
	visitorTLSFailures              *metrics.Counter
	h2Conns                         *metrics.Counter // open HTTP/2 visitor connections (Inc/Dec)
	h2Requests, compressed          *metrics.Counter
	statuses                        *prom.StatusCounters
	duration                        *prom.Histogram
}

func newEdgeMetrics(set *metrics.Set, e *Edge) *edgeMetrics {
	m := &edgeMetrics{set: set, statuses: prom.NewStatusCounters(set, "culvert_edge_responses_total")}
	m.requests = set.NewCounter("culvert_edge_requests_total")
	errs := func(kind string) *metrics.Counter {
		return set.NewCounter(fmt.Sprintf(`culvert_edge_errors_total{kind=%q}`, kind))
	}
	m.errUnknownHost = errs("unknown_hostname")
	m.errTunnelOffline = errs("tunnel_offline")
	m.errTunnel = errs("tunnel_stream")
	m.errBadRequest = errs("bad_request")
	m.errHeaderTooLarge = errs("header_too_large")
	m.errBodyTooLarge = errs("body_too_large")
	m.errVisitorTimeout = errs("visitor_timeout")
	m.errVisitorGone = errs("visitor_gone")
	m.errOriginUnreachable = errs("origin_unreachable")
	m.errOriginTimeout = errs("origin_timeout")
	m.errOriginError = errs("origin_error")
	m.errConnectorRequest = errs("connector_bad_request")
	m.retries = set.NewCounter("culvert_edge_request_retries_total")
	m.bytesUp = set.NewCounter(`culvert_edge_bytes_total{direction="to_origin"}`)
	m.bytesDown = set.NewCounter(`culvert_edge_bytes_total{direction="to_visitor"}`)
	m.websockets = set.NewCounter("culvert_edge_websockets_total")
	m.registrations = set.NewCounter("culvert_edge_tunnel_registrations_total")
	m.registerFailures = set.NewCounter("culvert_edge_tunnel_registration_failures_total")
	m.tunnelHandshakeFailures = set.NewCounter("culvert_edge_tunnel_handshake_failures_total")
	m.visitorTLSFailures = set.NewCounter("culvert_edge_visitor_tls_handshake_failures_total")
	m.h2Conns = set.NewCounter("culvert_edge_visitor_h2_connections")
	m.h2Requests = set.NewCounter(`culvert_edge_requests_by_protocol_total{protocol="h2"}`)
	m.compressed = set.NewCounter("culvert_edge_compressed_responses_total")
	set.NewGauge("culvert_edge_tunnel_connections", func() float64 { return float64(e.Connections()) })
	set.NewGauge("culvert_edge_tunnel_hostnames", func() float64 { return float64(e.reg.hostnames()) })
	set.NewGauge("culvert_edge_requests_inflight", func() float64 {
		n := 0
		for _, t := range e.reg.all() {
			n += int(t.inflight.Load())
		}
		return float64(n)
	})
	set.NewGauge("culvert_edge_tunnel_ping_rtt_seconds", func() float64 {
		// The largest last heartbeat round trip over the tunnel connections.
		var rtt time.Duration
		for _, t := range e.reg.all() {
			rtt = max(rtt, t.dc.Stats().LastPingRTT)
		}
		return rtt.Seconds()
	})
	m.duration = prom.New("culvert_edge_request_duration_seconds",
		"Time from a visitor request's arrival to the end of its response.", prom.DurationBuckets)
	return m
}

func (m *edgeMetrics) status(code int) { m.statuses.Inc(code) }

// connectorError counts a response the connector made itself.
func (m *edgeMetrics) connectorError(kind []byte) {
	switch string(kind) {
	case tunnel.ErrorOriginUnreachable:
		m.errOriginUnreachable.Inc()
	case tunnel.ErrorOriginTimeout:
		m.errOriginTimeout.Inc()
	case tunnel.ErrorBadRequest:
		m.errConnectorRequest.Inc()
	default:
		m.errOriginError.Inc()
	}
}

func (m *edgeMetrics) observe(start time.Time) {
	m.duration.Observe(time.Since(start).Seconds())
}

// WritePrometheus writes the edge's metrics.
func (e *Edge) WritePrometheus(w io.Writer) {
	e.metrics.set.WritePrometheus(w)
	e.metrics.duration.WritePrometheus(w)
}
