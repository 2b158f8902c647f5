package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/control/etcdtest"
)

// Process-level fault tests: edges and connectors as separate processes,
// killed, frozen and restarted under load.

// edgeProc is a `culvert edge` process and what restarting it needs.
type edgeProc struct {
	*proc
	t                                            *testing.T
	args                                         []string
	dataDir                                      string
	tunnelAddr, httpAddr, httpsAddr, apiAddr, mx string
}

var edgeRunning = regexp.MustCompile(`"msg":"edge running"`)

// startEdgeProc starts an edge with its state in dataDir; extra flags are
// appended.
func startEdgeProc(t *testing.T, dataDir string, extra ...string) *edgeProc {
	t.Helper()
	e := &edgeProc{t: t, dataDir: dataDir,
		tunnelAddr: freePort(t), httpAddr: freePort(t), httpsAddr: freePort(t), apiAddr: freePort(t), mx: freePort(t)}
	e.args = append([]string{"edge", "--data-dir", dataDir, "--tunnel-addr", e.tunnelAddr, "--http-addr", e.httpAddr,
		"--https-addr", e.httpsAddr, "--api-addr", e.apiAddr, "--metrics", e.mx, "--log-format", "json", "--grace-period", "10s"}, extra...)
	e.proc = start(t, e.args...)
	e.waitFor(edgeRunning, 20*time.Second)
	return e
}

// restart starts the edge again on the same addresses and state.
func (e *edgeProc) restart() {
	e.t.Helper()
	e.proc = start(e.t, e.args...)
	e.waitFor(edgeRunning, 20*time.Second)
}

// certFor creates zone on the edge and writes its cert.pem into dir.
func (e *edgeProc) certFor(zone, dir string) string {
	e.t.Helper()
	certFile := filepath.Join(dir, zone+".cert.pem")
	out, err := exec.Command(culvertBin, "edge", "zone", "create", zone, "--out", certFile,
		"--data-dir", e.dataDir, "--api", "https://"+e.apiAddr).CombinedOutput()
	if err != nil {
		e.t.Fatalf("zone create %s: %v\n%s", zone, err, out)
	}
	return certFile
}

// metric returns the value of the first sample of the edge's /metrics whose
// line starts with series (name and labels), or -1.
func metricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	_, text, _ := get(t, addr, "", "/metrics")
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// tunnelProc is a `culvert tunnel` process.
type tunnelProc struct {
	*proc
	t       *testing.T
	args    []string
	metrics string
}

func startTunnelProc(t *testing.T, certFile, hostname, originURL string, edges []string, extra ...string) *tunnelProc {
	t.Helper()
	tp := &tunnelProc{t: t, metrics: freePort(t)}
	tp.args = []string{"tunnel", "--hostname", hostname, "--url", originURL, "--origincert", certFile,
		"--metrics", tp.metrics, "--log-format", "json"}
	for _, e := range edges {
		tp.args = append(tp.args, "--edge", e)
	}
	tp.args = append(tp.args, extra...)
	tp.proc = start(t, tp.args...)
	return tp
}

func (tp *tunnelProc) restart() {
	tp.t.Helper()
	tp.proc = start(tp.t, tp.args...)
}

// load sends GET requests for host through the edge at a fixed rate from a
// few keep-alive workers, until stop; it counts answers by kind.
type load struct {
	host    string
	path    string
	addrs   []string // visitor addresses, used in turn
	rate    int      // requests per second in all
	workers int

	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string // the first few
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, host, path string, rate int, addrs ...string) *load {
	l := &load{host: host, path: path, addrs: addrs, rate: rate, workers: 8, stop: make(chan struct{})}
	tokens := make(chan struct{}, rate)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(tokens)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		perTick, carry := rate/100, rate%100
		acc := 0
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			n := perTick
			if acc += carry; acc >= 100 {
				acc -= 100
				n++
			}
			for range n {
				select {
				case tokens <- struct{}{}:
				default: // the workers are behind: the rate drops, nothing queues
				}
			}
		}
	}()
	for w := range l.workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer client.CloseIdleConnections()
			i := w
			for range tokens {
				addr := l.addrs[i%len(l.addrs)]
				i++
				l.one(client, addr)
			}
		}()
	}
	t.Cleanup(l.finish)
	return l
}

func (l *load) one(client *http.Client, addr string) {
	req, _ := http.NewRequest("GET", "http://"+addr+l.path, nil)
	req.Host = l.host
	resp, err := client.Do(req)
	if err != nil {
		l.fail(err.Error())
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		l.fail("body: " + err.Error())
	case resp.StatusCode != 200:
		l.fail(fmt.Sprintf("status %d (%s): %.80s", resp.StatusCode, resp.Header.Get("Culvert-Error"), body))
	default:
		l.ok.Add(1)
	}
}

func (l *load) fail(what string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000 ")+what)
	}
	l.mu.Unlock()
}

// finish stops the load and waits for requests in flight.
func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *load) report() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d ok, %d failed; first failures: %q", l.ok.Load(), l.failed.Load(), l.failures)
}

// readyCount reads the connector's /ready count (-1 when it does not answer).
func readyCount(addr string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/ready")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`"readyConnections":(\d+)`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// waitTook polls cond every 20 ms for up to d and returns how long it took.
func waitTook(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func helloOrigin(t *testing.T, name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Replica", name)
		if r.URL.Path == "/big" {
			serveBig(w, r)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// bigSize is the size of /big: sent in 64 KiB pieces over about 4 s, so a
// download is in flight while a process is stopped.
const bigSize = 32 << 20

func bigBody() []byte {
	b := make([]byte, bigSize)
	for i := range b {
		b[i] = byte(i*7 + i>>16)
	}
	return b
}

var bigOnce = sync.OnceValue(bigBody)

func serveBig(w http.ResponseWriter, _ *http.Request) {
	b := bigOnce()
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	const piece = 64 << 10
	pause := 4 * time.Second / time.Duration(len(b)/piece)
	for off := 0; off < len(b); off += piece {
		if _, err := w.Write(b[off : off+piece]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(pause)
	}
}

// download fetches /big for host and reports the replica that served it,
// and whether the body arrived whole and unchanged.
type download struct {
	replica string
	err     error
	started chan struct{} // closed when the headers arrived or it failed
	done    chan struct{}
}

func startDownload(addr, host string) *download {
	d := &download{started: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		startedOnce := sync.OnceFunc(func() { close(d.started) })
		defer startedOnce()
		req, _ := http.NewRequest("GET", "http://"+addr+"/big", nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			d.err = err
			return
		}
		defer resp.Body.Close()
		d.replica = resp.Header.Get("X-Replica")
		startedOnce()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		want := sha256.Sum256(bigOnce())
		switch {
		case err != nil:
			d.err = fmt.Errorf("after %d bytes: %w", n, err)
		case n != bigSize || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want[:]):
			d.err = fmt.Errorf("%d bytes, sha256 differs", n)
		}
	}()
	return d
}

// TestRollingRestart: two connector replicas serve one hostname under a
// continuous load; each in turn gets SIGTERM, exits once its in-flight
// requests are done, and is started again. No request fails, and a large
// download on the stopping replica completes intact.
func TestRollingRestart(t *testing.T) {
	dir := t.TempDir()
	edge := startEdgeProc(t, filepath.Join(dir, "edge"))
	cert := edge.certFor("example.test", dir)
	const host = "app.example.test"
	replicas := map[string]*tunnelProc{}
	for _, name := range []string{"a", "b"} {
		origin := helloOrigin(t, name)
		replicas[name] = startTunnelProc(t, cert, host, origin.URL, []string{edge.tunnelAddr}, "--ha-connections", "2")
	}
	for _, r := range replicas {
		waitReady(t, r.metrics, 2, 20*time.Second)
	}

	const rate = 250
	l := startLoad(t, host, "/", rate, edge.httpAddr)
	began := time.Now()
	time.Sleep(2 * time.Second)
	var downloads []*download
	for _, name := range []string{"a", "b"} {
		r := replicas[name]
		// Downloads until one is served by the replica about to stop.
		var mine *download
		for i := 0; mine == nil; i++ {
			if i == 6 {
				t.Fatalf("no download landed on replica %s", name)
			}
			d := startDownload(edge.httpAddr, host)
			downloads = append(downloads, d)
			select {
			case <-d.started:
			case <-time.After(10 * time.Second):
				t.Fatal("a download got no response headers in 10 s")
			}
			if d.replica == name {
				mine = d
			}
		}
		t0 := time.Now()
		if err := r.stop(syscall.SIGTERM, 40*time.Second); err != nil {
			t.Fatalf("replica %s exit after SIGTERM: %v", name, err)
		}
		// The replica exits once it has sent everything; the last bytes
		// may still be on their way through the edge.
		select {
		case <-mine.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("the download on replica %s did not end after the replica exited", name)
		}
		if mine.err != nil {
			t.Fatalf("the download on stopping replica %s: %v", name, mine.err)
		}
		t.Logf("replica %s stopped in %v, its download complete", name, time.Since(t0).Round(time.Millisecond))
		r.restart()
		waitReady(t, r.metrics, 2, 20*time.Second)
		time.Sleep(time.Second)
	}
	if rest := 22*time.Second - time.Since(began); rest > 0 {
		time.Sleep(rest)
	}
	l.finish()
	took := time.Since(began)
	for _, d := range downloads {
		<-d.done
		if d.err != nil {
			t.Errorf("download from replica %s: %v", d.replica, d.err)
		}
	}
	t.Logf("load: %s in %v (%.0f req/s)", l.report(), took.Round(time.Millisecond), float64(l.ok.Load())/took.Seconds())
	if l.failed.Load() != 0 {
		t.Fatalf("requests failed during the rolling restart: %s", l.report())
	}
	if got := float64(l.ok.Load()) / took.Seconds(); got < 200 {
		t.Fatalf("the load ran at %.0f req/s, below the 200 req/s the test needs", got)
	}
	if n := metricValue(t, edge.mx, "culvert_edge_tunnel_connections"); n != 4 {
		t.Errorf("edge reports %v tunnel connections after the restarts, want 4", n)
	}
}

// TestKillEdgeUnderLoad: kill -9 of the only edge under load; the
// connector notices at once, and once the edge is started again it is
// back as soon as its backoff allows, and requests succeed again.
func TestKillEdgeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	edge := startEdgeProc(t, filepath.Join(dir, "edge"))
	cert := edge.certFor("example.test", dir)
	const host = "app.example.test"
	tun := startTunnelProc(t, cert, host, helloOrigin(t, "a").URL, []string{edge.tunnelAddr}, "--ha-connections", "2")
	waitReady(t, tun.metrics, 2, 20*time.Second)

	l := startLoad(t, host, "/", 200, edge.httpAddr)
	time.Sleep(2 * time.Second)
	if l.failed.Load() != 0 {
		t.Fatalf("failures before the kill: %s", l.report())
	}
	edge.cmd.Process.Kill()
	<-edge.done
	noticed := waitTook(t, 5*time.Second, "the connector notices the dead edge", func() bool { return readyCount(tun.metrics) == 0 })
	t.Logf("connector noticed the dead edge in %v", noticed.Round(time.Millisecond))

	edge.restart()
	back := waitTook(t, 20*time.Second, "the connector back on the restarted edge", func() bool { return readyCount(tun.metrics) == 2 })
	t.Logf("connector registered again %v after the edge was running", back.Round(time.Millisecond))
	// Two failed dials at most fit in the restart gap: full jitter waits
	// of at most 1 s, 2 s and 4 s.
	if back > 8*time.Second {
		t.Errorf("the connector took %v to come back, more than its backoff allows", back)
	}
	failedBefore := l.failed.Load()
	okBefore := l.ok.Load()
	time.Sleep(2 * time.Second)
	l.finish()
	if l.failed.Load() != failedBefore || l.ok.Load() < okBefore+300 {
		t.Fatalf("after the connector came back: %s (before the last 2 s: %d ok, %d failed)", l.report(), okBefore, failedBefore)
	}
	t.Logf("load: %s", l.report())
	if v := metricValue(t, tun.metrics, "culvert_connector_tunnel_reconnects_total"); v < 2 {
		t.Errorf("culvert_connector_tunnel_reconnects_total = %v, want >= 2", v)
	}
	if v := metricValue(t, tun.metrics, `culvert_connector_tunnel_disconnects_total{reason="connection_error"}`); v != 2 {
		t.Errorf(`culvert_connector_tunnel_disconnects_total{reason="connection_error"} = %v, want 2`, v)
	}
	if v := metricValue(t, tun.metrics, "culvert_connector_tunnel_connects_total"); v != 4 {
		t.Errorf("culvert_connector_tunnel_connects_total = %v, want 4", v)
	}
}

// twoEdges starts two edge processes sharing one state in etcd, a zone's
// cert.pem, and a connector with 4 connections over both (2 on each).
func twoEdges(t *testing.T, tunnelFlags ...string) (a, b *edgeProc, tun *tunnelProc) {
	t.Helper()
	endpoint := etcdtest.Start(t)
	dir := t.TempDir()
	store := "--store=etcd://" + endpoint + "/culvert-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"
	a = startEdgeProc(t, filepath.Join(dir, "edge-a"), store, "--location", "region1")
	b = startEdgeProc(t, filepath.Join(dir, "edge-b"), store, "--location", "region2")
	cert := a.certFor("example.test", dir)
	tun = startTunnelProc(t, cert, "app.example.test", helloOrigin(t, "a").URL,
		[]string{a.tunnelAddr, b.tunnelAddr}, tunnelFlags...)
	waitReady(t, tun.metrics, 4, 20*time.Second)
	for _, e := range []*edgeProc{a, b} {
		if n := metricValue(t, e.mx, "culvert_edge_tunnel_connections"); n != 2 {
			t.Fatalf("edge %s holds %v tunnel connections, want 2 of the 4", e.tunnelAddr, n)
		}
	}
	return a, b, tun
}

// TestTwoEdgesKillOne: with two edges, kill -9 of one keeps every request
// through the other succeeding, and the connector moves the lost
// connections to the survivor.
func TestTwoEdgesKillOne(t *testing.T) {
	a, b, tun := twoEdges(t)
	l := startLoad(t, "app.example.test", "/", 200, b.httpAddr)
	time.Sleep(time.Second)
	a.cmd.Process.Kill()
	<-a.done
	// Noticed: both connections to it dropped (counted; the ready count
	// may dip to 2 for only a few milliseconds, as the first redial goes
	// straight to the other edge).
	drops := func() float64 {
		return metricValue(t, tun.metrics, `culvert_connector_tunnel_disconnects_total{reason="connection_error"}`)
	}
	noticed := waitTook(t, 5*time.Second, "the connector notices the dead edge", func() bool { return drops() >= 2 })
	moved := waitTook(t, 20*time.Second, "the lost connections move to the other edge", func() bool { return readyCount(tun.metrics) == 4 })
	t.Logf("connector noticed in %v, all 4 connections up again %v later", noticed.Round(time.Millisecond), moved.Round(time.Millisecond))
	if n := metricValue(t, b.mx, "culvert_edge_tunnel_connections"); n != 4 {
		t.Errorf("the surviving edge holds %v tunnel connections, want 4", n)
	}
	if v := drops(); v != 2 {
		t.Errorf(`culvert_connector_tunnel_disconnects_total{reason="connection_error"} = %v, want 2`, v)
	}
	time.Sleep(time.Second)
	l.finish()
	t.Logf("load through the surviving edge: %s", l.report())
	if l.failed.Load() != 0 || l.ok.Load() < 300 {
		t.Fatalf("requests through the surviving edge: %s", l.report())
	}
}

// TestFrozenEdge: an edge that stops answering (SIGSTOP) is noticed by the
// heartbeat within interval x misses, and the connector reconnects to the
// other edge.
func TestFrozenEdge(t *testing.T) {
	const interval, misses = time.Second, 3
	a, b, tun := twoEdges(t, "--heartbeat-interval", interval.String(), "--heartbeat-count", strconv.Itoa(misses))
	l := startLoad(t, "app.example.test", "/", 200, b.httpAddr)
	time.Sleep(time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer a.cmd.Process.Signal(syscall.SIGCONT)
	// Noticed: both connections to it dropped by the heartbeat (counted;
	// the ready count may dip to 2 for only a moment, as a dropped
	// connection can be up on the other edge again within milliseconds).
	heartbeatDrops := func() float64 {
		return metricValue(t, tun.metrics, `culvert_connector_tunnel_disconnects_total{reason="heartbeat"}`)
	}
	noticed := waitTook(t, 15*time.Second, "the connector notices the frozen edge", func() bool { return heartbeatDrops() >= 2 })
	t.Logf("frozen edge noticed after %v (interval %v x %d misses)", noticed.Round(time.Millisecond), interval, misses)
	// The heartbeat checks every interval/4; the test polls every 20 ms.
	if noticed > interval*misses+interval/2+300*time.Millisecond {
		t.Errorf("the frozen edge was noticed after %v, later than %v x %d", noticed, interval, misses)
	}
	moved := waitTook(t, 20*time.Second, "the connections move to the other edge", func() bool { return readyCount(tun.metrics) == 4 })
	t.Logf("all 4 connections up again %v later", moved.Round(time.Millisecond))
	if n := metricValue(t, b.mx, "culvert_edge_tunnel_connections"); n != 4 {
		t.Errorf("the other edge holds %v tunnel connections, want 4", n)
	}
	if v := heartbeatDrops(); v != 2 {
		t.Errorf(`culvert_connector_tunnel_disconnects_total{reason="heartbeat"} = %v, want 2`, v)
	}
	l.finish()
	t.Logf("load through the other edge: %s", l.report())
	if l.failed.Load() != 0 {
		t.Fatalf("requests through the other edge failed: %s", l.report())
	}
}

// TestEdgeShutdownMovesConnectors: an edge's SIGTERM tells its connectors
// to move (Drain) before it closes: their connections are on the other
// edge at once, without a backoff wait, and no request through the other
// edge fails.
func TestEdgeShutdownMovesConnectors(t *testing.T) {
	a, b, tun := twoEdges(t)
	l := startLoad(t, "app.example.test", "/", 200, b.httpAddr)
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := a.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("edge exit after SIGTERM: %v", err)
	}
	t.Logf("edge stopped in %v", time.Since(t0).Round(time.Millisecond))
	moved := waitTook(t, 10*time.Second, "the connections on the other edge", func() bool {
		return metricValue(t, b.mx, "culvert_edge_tunnel_connections") == 4
	})
	t.Logf("all 4 connections on the other edge %v after the first edge exited", moved.Round(time.Millisecond))
	if moved > time.Second {
		t.Errorf("the drained connections took %v to move: they should not wait for a backoff", moved)
	}
	if v := metricValue(t, tun.metrics, `culvert_connector_tunnel_disconnects_total{reason="edge_drain"}`); v != 2 {
		t.Errorf(`culvert_connector_tunnel_disconnects_total{reason="edge_drain"} = %v, want 2`, v)
	}
	if n := readyCount(tun.metrics); n != 4 {
		t.Errorf("/ready reports %d connections, want 4", n)
	}
	time.Sleep(500 * time.Millisecond)
	l.finish()
	if l.failed.Load() != 0 {
		t.Fatalf("requests through the other edge failed: %s", l.report())
	}
}

// TestSecondSignalExitsAtOnce: the first SIGTERM waits for the request in
// flight (up to --grace-period); a second one ends the process at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir := t.TempDir()
	edge := startEdgeProc(t, filepath.Join(dir, "edge"))
	cert := edge.certFor("example.test", dir)
	const host = "app.example.test"
	tun := startTunnelProc(t, cert, host, helloOrigin(t, "a").URL, []string{edge.tunnelAddr}, "--grace-period", "60s")
	waitReady(t, tun.metrics, 4, 20*time.Second)
	d := startDownload(edge.httpAddr, host)
	select {
	case <-d.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the download did not start")
	}
	tun.cmd.Process.Signal(syscall.SIGTERM)
	waitTook(t, 5*time.Second, "the connector unregisters", func() bool { return readyCount(tun.metrics) == 0 })
	select {
	case <-tun.done:
		t.Fatal("the connector exited on the first signal with a request in flight")
	case <-time.After(300 * time.Millisecond):
	}
	t0 := time.Now()
	err := tun.stop(syscall.SIGTERM, 5*time.Second)
	t.Logf("exited %v after the second signal: %v", time.Since(t0).Round(time.Millisecond), err)
	if time.Since(t0) > time.Second {
		t.Errorf("the second signal took %v to end the process", time.Since(t0))
	}
	if !strings.Contains(tun.output(), "second signal, exiting now") {
		t.Errorf("no word of the second signal in the output:\n%s", tun.output())
	}
	<-d.done
	if d.err == nil {
		t.Error("the download cut by the exit reports no error")
	}
}
