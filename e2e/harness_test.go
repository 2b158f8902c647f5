package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/culvert-tunnel/culvert/control"
	"github.com/culvert-tunnel/culvert/dataplane/connector"
	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/culvert-tunnel/culvert/origin"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// domain is the edge's own DNS domain in every test.
const domain = "culvert.test"

// TestMain runs the tests, then checks that no goroutine of culvert's (or
// of a client a test left open) outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := settleGoroutines(10 * time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "e2e: goroutines still running after the tests:\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakMarkers pick the goroutines a finished test must not leave behind:
// culvert's own, and the clients' and servers' the tests start. fasthttp's
// idle cleaners (worker pool, HostClient) end on their own timers, up to
// their idle durations later: they are not counted.
var leakMarkers = []string{
	"github.com/culvert-tunnel/culvert/",
	"net/http.(*persistConn)",
	"net/http.(*conn).serve",
	"github.com/coder/websocket.",
	"github.com/valyala/fasthttp.(*Server)",
	"github.com/valyala/fasthttp.(*workerPool).workerFunc",
}

// settleGoroutines waits up to d for the goroutines matching leakMarkers
// to end and returns the stacks of those still there.
func settleGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		var leaks []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "e2e.TestMain") || strings.Contains(g, "e2e.settleGoroutines") {
				continue
			}
			for _, mk := range leakMarkers {
				if strings.Contains(g, mk) {
					leaks = append(leaks, g)
					break
				}
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- logs ----

// logRecord is one log line of a component, kept for assertions.
type logRecord struct {
	component string
	level     slog.Level
	msg       string
	attrs     map[string]string
}

func (r logRecord) String() string {
	keys := make([]string, 0, len(r.attrs))
	for k := range r.attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", r.component, r.level, r.msg)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, r.attrs[k])
	}
	return b.String()
}

// logBook collects the log records of a test's components; a failed test
// prints them.
type logBook struct {
	mu      sync.Mutex
	records []logRecord
}

func newLogBook(t testing.TB) *logBook {
	lb := &logBook{}
	t.Cleanup(func() {
		if t.Failed() {
			lb.mu.Lock()
			defer lb.mu.Unlock()
			for _, r := range lb.records {
				t.Log(r.String())
			}
		}
	})
	return lb
}

func (lb *logBook) logger(component string) *slog.Logger {
	return slog.New(&bookHandler{lb: lb, component: component})
}

// find returns the records of component with message msg.
func (lb *logBook) find(component, msg string) []logRecord {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []logRecord
	for _, r := range lb.records {
		if r.component == component && r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

type bookHandler struct {
	lb        *logBook
	component string
	attrs     []slog.Attr
}

func (h *bookHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *bookHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{component: h.component, level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.lb.mu.Lock()
	h.lb.records = append(h.lb.records, rec)
	h.lb.mu.Unlock()
	return nil
}

func (h *bookHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &bookHandler{lb: h.lb, component: h.component, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *bookHandler) WithGroup(string) slog.Handler { return h }

// ---- edge ----

// testEdge is an edge with its control path, listening on loopback.
type testEdge struct {
	t           testing.TB
	logs        *logBook
	dataDir     string
	ctl         *control.Edge
	e           *edge.Edge
	metrics     *metrics.Set
	tunnelAddr  string
	visitorAddr string

	stopOnce sync.Once
	served   sync.WaitGroup
}

// edgeOptions adjust a test edge.
type edgeOptions struct {
	dataDir  string       // default t.TempDir()
	tunnelLn net.Listener // default a new listener on 127.0.0.1:0
	config   func(*edge.Config)
}

// startEdge opens the control path in a data dir and serves an edge on two
// loopback listeners; it is shut down and closed when the test ends.
func startEdge(t testing.TB, logs *logBook, opts edgeOptions) *testEdge {
	t.Helper()
	if opts.dataDir == "" {
		opts.dataDir = t.TempDir()
	}
	ctl, err := control.OpenEdge(opts.dataDir, domain, logs.logger("control"))
	if err != nil {
		t.Fatalf("OpenEdge: %v", err)
	}
	tlsCfg, err := ctl.TunnelTLS()
	if err != nil {
		ctl.Close()
		t.Fatalf("TunnelTLS: %v", err)
	}
	set := metrics.NewSet()
	cfg := edge.Config{
		TunnelTLS: tlsCfg, Registrar: ctl, Location: "e2e",
		Logger: logs.logger("edge"), Metrics: set,
	}
	if opts.config != nil {
		opts.config(&cfg)
	}
	e, err := edge.New(cfg)
	if err != nil {
		ctl.Close()
		t.Fatalf("edge.New: %v", err)
	}
	tunnelLn := opts.tunnelLn
	if tunnelLn == nil {
		tunnelLn = listen(t)
	}
	visitorLn := listen(t)
	te := &testEdge{
		t: t, logs: logs, dataDir: opts.dataDir, ctl: ctl, e: e, metrics: set,
		tunnelAddr: tunnelLn.Addr().String(), visitorAddr: visitorLn.Addr().String(),
	}
	ctl.Edges = []string{te.tunnelAddr}
	te.served.Add(2)
	go func() {
		defer te.served.Done()
		if err := e.ServeTunnels(tunnelLn); err != nil {
			t.Errorf("ServeTunnels: %v", err)
		}
	}()
	go func() {
		defer te.served.Done()
		if err := e.ServeVisitors(visitorLn); err != nil {
			t.Errorf("ServeVisitors: %v", err)
		}
	}()
	t.Cleanup(te.stop)
	return te
}

// stop shuts the edge down and closes its control path; it may be called
// more than once.
func (te *testEdge) stop() {
	te.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := te.e.Shutdown(ctx); err != nil {
			te.t.Errorf("edge Shutdown: %v", err)
		}
		te.served.Wait()
		if err := te.ctl.Close(); err != nil {
			te.t.Errorf("control Close: %v", err)
		}
	})
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// zoneBundle creates zone (unless it exists) and issues a cert.pem for it.
func (te *testEdge) zoneBundle(zone string) *culverttls.Bundle {
	te.t.Helper()
	if _, err := te.ctl.Store.ZoneByName(zone); errors.Is(err, control.ErrNotFound) {
		if _, err := te.ctl.CreateZone(zone, false); err != nil {
			te.t.Fatalf("CreateZone(%s): %v", zone, err)
		}
	} else if err != nil {
		te.t.Fatalf("ZoneByName(%s): %v", zone, err)
	}
	pem, err := te.ctl.IssueBundle(zone)
	if err != nil {
		te.t.Fatalf("IssueBundle(%s): %v", zone, err)
	}
	b, err := culverttls.ParseBundle(pem)
	if err != nil {
		te.t.Fatalf("ParseBundle: %v", err)
	}
	return b
}

// scrape parses the edge's metrics.
func (te *testEdge) scrape() metricFamilies {
	te.t.Helper()
	return scrapeWith(te.t, te.e.WritePrometheus)
}

// ---- origin ----

// startHelloOrigin serves the hello-world origin on loopback until the test
// ends and returns its URL.
func startHelloOrigin(t testing.TB) string {
	t.Helper()
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- origin.ServeHelloWorld(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeHelloWorld: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// startOrigin serves h on loopback until the test ends and returns its URL.
func startOrigin(t testing.TB, h http.Handler) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	})
	return "http://" + ln.Addr().String()
}

// closedPortURL returns an origin URL nothing listens on.
func closedPortURL(t testing.TB) string {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// ---- connector ----

// testConnector is a connector running against a test edge.
type testConnector struct {
	t       testing.TB
	c       *connector.Connector
	metrics *metrics.Set
	origin  *origin.Client
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // Run's result, once done is closed

	stopOnce sync.Once
}

// connOptions adjust a test connector.
type connOptions struct {
	hostname   string
	originURL  string
	edges      []string // default the edge's tunnel address
	serverName string   // default the one in the bundle
	edgeCAs    func(*culverttls.Bundle) *x509.CertPool
	origin     func(*origin.Config)
	config     func(*connector.Config)
}

// startConnector runs a connector logged in with b until the test ends (or
// stop). It does not wait for the registration.
func startConnector(t testing.TB, te *testEdge, b *culverttls.Bundle, opts connOptions) *testConnector {
	t.Helper()
	ocfg := origin.Config{URL: opts.originURL, ConnectTimeout: 5 * time.Second, ResponseTimeout: 30 * time.Second}
	if opts.origin != nil {
		opts.origin(&ocfg)
	}
	oc, err := origin.New(ocfg)
	if err != nil {
		t.Fatalf("origin.New: %v", err)
	}
	pool, err := b.EdgeCAPool()
	if err != nil {
		oc.Close()
		t.Fatalf("EdgeCAPool: %v", err)
	}
	if opts.edgeCAs != nil {
		pool = opts.edgeCAs(b)
	}
	serverName := b.Token.TunnelServerName
	if opts.serverName != "" {
		serverName = opts.serverName
	}
	edges := opts.edges
	if len(edges) == 0 {
		edges = []string{te.tunnelAddr}
	}
	set := metrics.NewSet()
	cfg := connector.Config{
		Edges: edges, TLS: culverttls.TunnelClientConfig(b, pool, serverName), Origin: oc,
		Hostname: opts.hostname, Token: b.Token.APIToken, Version: "e2e",
		HAConnections: 1, GracePeriod: 5 * time.Second, DialTimeout: 10 * time.Second,
		RetryBase: 50 * time.Millisecond, RetryCap: 500 * time.Millisecond,
		Logger: te.logs.logger("connector"), Metrics: set,
	}
	if opts.config != nil {
		opts.config(&cfg)
	}
	c, err := connector.New(cfg)
	if err != nil {
		oc.Close()
		t.Fatalf("connector.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testConnector{t: t, c: c, metrics: set, origin: oc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tc.done)
		tc.err = c.Run(ctx)
	}()
	t.Cleanup(tc.stop)
	return tc
}

// stop ends Run and waits for it; it may be called more than once.
func (tc *testConnector) stop() {
	tc.stopOnce.Do(func() {
		tc.cancel()
		select {
		case <-tc.done:
		case <-time.After(20 * time.Second):
			tc.t.Errorf("connector Run did not return within 20 s of its context's end")
			<-tc.done
		}
		tc.origin.Close()
	})
}

// wait waits up to d for Run to return and returns its error.
func (tc *testConnector) wait(d time.Duration) (error, bool) {
	select {
	case <-tc.done:
		return tc.err, true
	case <-time.After(d):
		return nil, false
	}
}

// scrape parses the connector's metrics.
func (tc *testConnector) scrape() metricFamilies {
	tc.t.Helper()
	return scrapeWith(tc.t, tc.c.WritePrometheus)
}

// setup is the usual set-up: an edge, the hello-world origin (or
// originURL) and a connector for hostname, registered.
type setup struct {
	logs     *logBook
	edge     *testEdge
	conn     *testConnector
	bundle   *culverttls.Bundle
	hostname string
	client   *http.Client
}

// startTunnel starts an edge, an origin (the hello-world one when opts has
// no originURL) and a connector for opts.hostname (default app.example.test)
// and waits for the registration.
func startTunnel(t testing.TB, opts connOptions) *setup {
	t.Helper()
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	if opts.hostname == "" {
		opts.hostname = "app.example.test"
	}
	if opts.originURL == "" {
		opts.originURL = startHelloOrigin(t)
	}
	zone := opts.hostname[strings.IndexByte(opts.hostname, '.')+1:]
	b := te.zoneBundle(zone)
	tc := startConnector(t, te, b, opts)
	waitRegistered(t, te, tc, opts.hostname)
	return &setup{logs: logs, edge: te, conn: tc, bundle: b, hostname: opts.hostname, client: visitorClient(t, te.visitorAddr)}
}

// waitRegistered waits until the edge routes hostname to the connector.
func waitRegistered(t testing.TB, te *testEdge, tc *testConnector, hostname string) {
	t.Helper()
	waitFor(t, 15*time.Second, "the tunnel connection of "+hostname+" to register", func() bool {
		select {
		case <-tc.done:
			t.Fatalf("connector Run returned before registering: %v", tc.err)
		default:
		}
		return tc.c.Registered() == 1 && te.e.LiveConnections(hostname) == 1
	})
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- visitors ----

// visitorClient returns an HTTP client that sends every request to the
// edge's visitor address, whatever the URL's host: the URL names the
// tunnel hostname, which becomes the Host header.
func visitorClient(t testing.TB, visitorAddr string) *http.Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", visitorAddr)
		},
		MaxIdleConns:        2000,
		MaxIdleConnsPerHost: 1000,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// url is the visitor URL of path on the tunnel's hostname.
func (tn *setup) url(path string) string { return "http://" + tn.hostname + path }

// ---- metrics ----

// metricFamilies is a parsed /metrics page.
type metricFamilies map[string]*dto.MetricFamily

// scrapeWith parses what write writes with the Prometheus text parser.
func scrapeWith(t testing.TB, write func(w io.Writer)) metricFamilies {
	t.Helper()
	var buf bytes.Buffer
	write(&buf)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, buf.String())
	}
	return fams
}

// value returns the value of the sample name{labels} (counter, gauge or
// untyped), with ok false when there is none.
func (mf metricFamilies) value(name string, labels ...string) (float64, bool) {
	f := mf[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// get is value, zero when absent.
func (mf metricFamilies) get(name string, labels ...string) float64 {
	v, _ := mf.value(name, labels...)
	return v
}

// histCount returns the sample count of the histogram name.
func (mf metricFamilies) histCount(name string) (uint64, bool) {
	f := mf[name]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) == 0 {
		return 0, false
	}
	return f.GetMetric()[0].GetHistogram().GetSampleCount(), true
}

// hasLabels reports whether m has every label of the name, value pairs.
func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
