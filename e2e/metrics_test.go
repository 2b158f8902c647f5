package e2e

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestMetrics checks that the edge's and the connector's metrics parse with
// the Prometheus text parser and move with the traffic: requests, statuses,
// bytes both ways, the duration histograms, and the connection gauges.
func TestMetrics(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	edgeBefore, connBefore := tn.edge.scrape(), tn.conn.scrape()
	for _, m := range []struct {
		side string
		mf   metricFamilies
		name string
	}{
		{"edge", edgeBefore, "culvert_edge_tunnel_connections"},
		{"connector", connBefore, "culvert_connector_tunnel_connections"},
	} {
		if v, ok := m.mf.value(m.name); !ok || v != 1 {
			t.Errorf("%s: %s = %v (present %v) while connected, want 1", m.side, m.name, v, ok)
		}
	}

	// Five requests: three small pages, one download, one upload.
	var down int64
	get := func(path string) {
		t.Helper()
		resp, err := tn.client.Get(tn.url(path))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d, %v", path, resp.StatusCode, err)
		}
		down += n
	}
	for range 3 {
		get("/hello")
	}
	get("/bytes/50000")
	const up = 1000
	resp, err := tn.client.Post(tn.url("/sha256"), "application/octet-stream", strings.NewReader(strings.Repeat("x", up)))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /sha256: status %d", resp.StatusCode)
	}
	down += n
	const requests = 5

	// The edge finishes its accounting after the last byte is written: poll.
	type expectation struct {
		what string
		got  func(now, before metricFamilies) float64
		want float64
	}
	delta := func(name string, labels ...string) func(now, before metricFamilies) float64 {
		return func(now, before metricFamilies) float64 {
			return now.get(name, labels...) - before.get(name, labels...)
		}
	}
	check := func(side string, scrape func() metricFamilies, before metricFamilies, prefix, downDir, quietKind string) {
		t.Helper()
		hist := prefix + "_request_duration_seconds"
		exps := []expectation{
			{prefix + "_requests_total", delta(prefix + "_requests_total"), requests},
			{prefix + `_responses_total{status="200"}`, delta(prefix+"_responses_total", "status", "200"), requests},
			{prefix + `_bytes_total{direction="to_origin"}`, delta(prefix+"_bytes_total", "direction", "to_origin"), up},
			{prefix + `_bytes_total{direction="` + downDir + `"}`, delta(prefix+"_bytes_total", "direction", downDir), float64(down)},
			{hist + " (histogram count)", func(now, before metricFamilies) float64 {
				a, _ := now.histCount(hist)
				b, _ := before.histCount(hist)
				return float64(a) - float64(b)
			}, requests},
			{prefix + "_tunnel_connections (gauge)", func(now, _ metricFamilies) float64 { return now.get(prefix + "_tunnel_connections") }, 1},
			{prefix + `_errors_total{kind="origin_unreachable"}`, delta(prefix+"_errors_total", "kind", "origin_unreachable"), 0},
			{prefix + `_errors_total{kind="` + quietKind + `"}`, delta(prefix+"_errors_total", "kind", quietKind), 0},
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			now := scrape()
			ok := true
			for _, e := range exps {
				ok = ok && e.got(now, before) == e.want
			}
			if ok {
				checkHistogram(t, side, now[hist])
				return
			}
			if time.Now().After(deadline) {
				for _, e := range exps {
					if got := e.got(now, before); got != e.want {
						t.Errorf("%s: %s moved by %v, want %v", side, e.what, got, e.want)
					}
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	check("edge", tn.edge.scrape, edgeBefore, "culvert_edge", "to_visitor", "tunnel_stream")
	check("connector", tn.conn.scrape, connBefore, "culvert_connector", "from_origin", "visitor_gone")

	// The gauges drop when the connector leaves.
	tn.conn.stop()
	waitFor(t, 10*time.Second, "culvert_edge_tunnel_connections to drop to 0", func() bool {
		return tn.edge.scrape().get("culvert_edge_tunnel_connections") == 0
	})
	if v := tn.conn.scrape().get("culvert_connector_tunnel_connections"); v != 0 {
		t.Errorf("culvert_connector_tunnel_connections %v after Run returned, want 0", v)
	}
}

// checkHistogram checks a parsed duration histogram: typed as one, with
// cumulative buckets ending at the sample count, and a positive sum.
func checkHistogram(t *testing.T, side string, f *dto.MetricFamily) {
	t.Helper()
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) != 1 {
		t.Errorf("%s: the duration histogram is missing or not a histogram: %v", side, f)
		return
	}
	h := f.GetMetric()[0].GetHistogram()
	var prev uint64
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() < prev {
			t.Errorf("%s: bucket le=%v count %d below the previous %d", side, b.GetUpperBound(), b.GetCumulativeCount(), prev)
		}
		prev = b.GetCumulativeCount()
	}
	if prev > h.GetSampleCount() {
		t.Errorf("%s: the buckets count %d, more than the sample count %d", side, prev, h.GetSampleCount())
	}
	if s := h.GetSampleSum(); !(s > 0) || math.IsInf(s, 0) {
		t.Errorf("%s: histogram sum %v, want > 0", side, s)
	}
}
