package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/culvert-tunnel/culvert/origin"
)

// edgeErrors is the edge's counter of error responses, by kind.
const edgeErrors = "culvert_edge_errors_total"

// expectError checks an error response: its status, its culvert-error
// header (none when kind is empty) and a short text body.
func expectError(t *testing.T, resp *http.Response, status int, kind string) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the error page: %v", err)
	}
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if kind != "" {
		if got := resp.Header.Get("Culvert-Error"); got != kind {
			t.Errorf("culvert-error %q, want %q", got, kind)
		}
	}
	if !strings.HasPrefix(string(body), "culvert: ") {
		t.Errorf("body %q, want culvert's own error text", body)
	}
}

// expectCounterMoves waits until the counter name{labels} of scrape is
// exactly by above before.
func expectCounterMoves(t *testing.T, what string, scrape func() metricFamilies, before float64, by float64, name string, labels ...string) {
	t.Helper()
	var got float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := scrape().value(name, labels...)
		got = v - before
		if ok && got == by {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %s%v moved by %v, want %v (present: %v)", what, name, labels, got, by, ok)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectCounterGrows waits until the counter name{labels} of scrape is at
// least by above before: for failures a retrying connector repeats.
func expectCounterGrows(t *testing.T, what string, scrape func() metricFamilies, before float64, by float64, name string, labels ...string) {
	t.Helper()
	var got float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := scrape().value(name, labels...)
		got = v - before
		if ok && got >= by {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %s%v moved by %v, want at least %v (present: %v)", what, name, labels, got, by, ok)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestErrorUnknownHostname: a hostname no tunnel was ever registered for
// gets 404 unknown-hostname, counted as kind="unknown_hostname".
func TestErrorUnknownHostname(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	m := tn.edge.scrape()
	before := m.get(edgeErrors, "kind", "unknown_hostname")
	before404 := m.get("culvert_edge_responses_total", "status", "404")
	resp, err := tn.client.Get("http://nobody.example.test/hello")
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 404, "unknown-hostname")
	expectCounterMoves(t, "edge", tn.edge.scrape, before, 1, edgeErrors, "kind", "unknown_hostname")
	expectCounterMoves(t, "edge", tn.edge.scrape, before404, 1, "culvert_edge_responses_total", "status", "404")
	// The tunnel's own hostname still works.
	resp, err = tn.client.Get(tn.url("/hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the tunnel's hostname: status %d, want 200", resp.StatusCode)
	}
}

// TestErrorTunnelOffline: once the connector of a known tunnel is gone,
// its hostname gets 530 tunnel-offline, counted as kind="tunnel_offline".
func TestErrorTunnelOffline(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	resp, err := tn.client.Get(tn.url("/hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("while connected: status %d, want 200", resp.StatusCode)
	}
	// Nothing is in flight: the connector leaves at once, not after its
	// grace period (5 s).
	stopStart := time.Now()
	tn.conn.stop()
	if d := time.Since(stopStart); d > 4*time.Second {
		t.Errorf("the idle connector took %v to stop: it waited out its grace period", d)
	}
	if tn.conn.err != nil {
		t.Errorf("connector Run returned %v after its context ended, want nil", tn.conn.err)
	}
	waitFor(t, 10*time.Second, "the edge to drop the tunnel connection", func() bool {
		return tn.edge.e.LiveConnections(tn.hostname) == 0 && tn.edge.e.Connections() == 0
	})
	before := tn.edge.scrape().get(edgeErrors, "kind", "tunnel_offline")
	resp, err = tn.client.Get(tn.url("/hello"))
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 530, "tunnel-offline")
	expectCounterMoves(t, "edge", tn.edge.scrape, before, 1, edgeErrors, "kind", "tunnel_offline")
	if got := tn.edge.scrape().get("culvert_edge_tunnel_connections"); got != 0 {
		t.Errorf("culvert_edge_tunnel_connections %v after the connector left, want 0", got)
	}
}

// TestErrorOriginUnreachable: a connector whose origin refuses connections
// answers 502 origin-unreachable; the edge and the connector both count it
// as kind="origin_unreachable".
func TestErrorOriginUnreachable(t *testing.T) {
	tn := startTunnel(t, connOptions{originURL: closedPortURL(t)})
	edgeBefore := tn.edge.scrape().get(edgeErrors, "kind", "origin_unreachable")
	connBefore := tn.conn.scrape().get("culvert_connector_errors_total", "kind", "origin_unreachable")
	resp, err := tn.client.Get(tn.url("/hello"))
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 502, "origin-unreachable")
	expectCounterMoves(t, "edge", tn.edge.scrape, edgeBefore, 1, edgeErrors, "kind", "origin_unreachable")
	expectCounterMoves(t, "connector", tn.conn.scrape, connBefore, 1, "culvert_connector_errors_total", "kind", "origin_unreachable")
}

// TestErrorOriginTimeout: an origin slower than the connector's response
// timeout gets 504 origin-timeout, counted as kind="origin_timeout" on
// both sides.
func TestErrorOriginTimeout(t *testing.T) {
	tn := startTunnel(t, connOptions{origin: func(c *origin.Config) { c.ResponseTimeout = 300 * time.Millisecond }})
	edgeBefore := tn.edge.scrape().get(edgeErrors, "kind", "origin_timeout")
	connBefore := tn.conn.scrape().get("culvert_connector_errors_total", "kind", "origin_timeout")
	start := time.Now()
	resp, err := tn.client.Get(tn.url("/sleep?d=2s"))
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 504, "origin-timeout")
	if d := time.Since(start); d >= 2*time.Second {
		t.Errorf("the 504 came after %v: the timeout (300ms) did not cut the wait", d)
	}
	expectCounterMoves(t, "edge", tn.edge.scrape, edgeBefore, 1, edgeErrors, "kind", "origin_timeout")
	expectCounterMoves(t, "connector", tn.conn.scrape, connBefore, 1, "culvert_connector_errors_total", "kind", "origin_timeout")
}

// rawExchange writes payload on a new connection to addr (from a goroutine:
// the edge may answer and close before reading it all) and reads one
// response.
func rawExchange(t *testing.T, addr string, payload []byte) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		c.Write(payload)
	}()
	t.Cleanup(func() { c.Close(); <-wrote })
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp
}

// TestErrorHeaderTooLarge: a request with a 64 KiB header line gets 431,
// counted as kind="header_too_large".
func TestErrorHeaderTooLarge(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	before := tn.edge.scrape().get(edgeErrors, "kind", "header_too_large")
	req := "GET /hello HTTP/1.1\r\nHost: " + tn.hostname + "\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	resp := rawExchange(t, tn.edge.visitorAddr, []byte(req))
	expectError(t, resp, 431, "")
	expectCounterMoves(t, "edge", tn.edge.scrape, before, 1, edgeErrors, "kind", "header_too_large")
	expectCounterMoves(t, "edge", tn.edge.scrape, 0, 1, "culvert_edge_responses_total", "status", "431")
}

// TestErrorMalformedRequest: bytes that are not HTTP get 400, counted as
// kind="bad_request".
func TestErrorMalformedRequest(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	before := tn.edge.scrape().get(edgeErrors, "kind", "bad_request")
	resp := rawExchange(t, tn.edge.visitorAddr, []byte("GARBAGE\r\n\r\n"))
	expectError(t, resp, 400, "")
	expectCounterMoves(t, "edge", tn.edge.scrape, before, 1, edgeErrors, "kind", "bad_request")
	expectCounterMoves(t, "edge", tn.edge.scrape, 0, 1, "culvert_edge_responses_total", "status", "400")
}

// TestVisitorGone: a visitor who hangs up in the middle of a download is
// counted as kind="visitor_gone" at the edge, the stream is cancelled
// through the tunnel (the connector stops reading the origin) and nothing
// stays in flight; the tunnel goes on serving.
func TestVisitorGone(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	edgeBefore := tn.edge.scrape().get(edgeErrors, "kind", "visitor_gone")
	connBefore := tn.conn.scrape().get("culvert_connector_errors_total", "kind", "visitor_gone")
	resp, err := tn.client.Get(tn.url("/bytes/1073741824")) // 1 GiB: far more than is read
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatalf("reading the first MiB: %v", err)
	}
	resp.Body.Close() // unread body: the client closes the connection
	expectCounterMoves(t, "edge", tn.edge.scrape, edgeBefore, 1, edgeErrors, "kind", "visitor_gone")
	expectCounterMoves(t, "connector", tn.conn.scrape, connBefore, 1, "culvert_connector_errors_total", "kind", "visitor_gone")
	waitFor(t, 10*time.Second, "no request in flight", func() bool {
		return tn.edge.scrape().get("culvert_edge_requests_inflight") == 0 &&
			tn.conn.scrape().get("culvert_connector_requests_inflight") == 0
	})
	fetchHello(t, tn.client, tn.hostname)
}

// TestErrorBodyTooLarge: with a body limit, a request whose Content-Length
// is over it gets 413 without reaching the origin (kind="body_too_large"),
// and a chunked body that passes it is cut: the origin never takes it for
// a whole one.
func TestErrorBodyTooLarge(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{config: func(c *edge.Config) { c.MaxRequestBodySize = 1 << 20 }})
	b := te.zoneBundle("example.test")
	tc := startConnector(t, te, b, connOptions{hostname: "app.example.test", originURL: startHelloOrigin(t)})
	waitRegistered(t, te, tc, "app.example.test")
	client := visitorClient(t, te.visitorAddr)
	url := "http://app.example.test/sha256"

	before := te.scrape().get(edgeErrors, "kind", "body_too_large")
	resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(make([]byte, 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || resp.Header.Get("Culvert-Error") != "bad-request" {
		t.Fatalf("2 MiB over a 1 MiB limit: status %d, culvert-error %q; want 413", resp.StatusCode, resp.Header.Get("Culvert-Error"))
	}
	expectCounterMoves(t, "edge", te.scrape, before, 1, edgeErrors, "kind", "body_too_large")

	// Under the limit: whole.
	resp, err = client.Post(url, "application/octet-stream", bytes.NewReader(make([]byte, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"bytes": 1048576`) && !strings.Contains(string(body), `"bytes":1048576`) {
		t.Fatalf("1 MiB at the limit: %d %s", resp.StatusCode, body)
	}

	// Chunked and over the limit: the origin does not answer as if whole.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for i := 0; i < 40; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", url, pr)
	req.ContentLength = -1
	resp, err = client.Do(req)
	pr.Close()
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("a chunked 2.5 MiB body over a 1 MiB limit was answered 200: %s", body)
		}
	}
}
