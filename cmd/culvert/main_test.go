package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// culvertBin is the binary under test, built once by TestMain.
var culvertBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "culvert-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	culvertBin = filepath.Join(dir, "culvert")
	out, err := exec.Command("go", "build", "-o", culvertBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building culvert: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a culvert process whose output the test reads.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
	err  error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(culvertBin, args...), done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout = pw
	p.cmd.Stderr = pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of culvert %s:\n%s", strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output matches re and returns the submatches.
func (p *proc) waitFor(re *regexp.Regexp, d time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.output()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.output()); m != nil {
				return m
			}
			p.t.Fatalf("culvert exited (%v) before printing %v", p.err, re)
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatalf("culvert did not print %v within %v", re, d)
	return nil
}

// stop sends sig and waits for the exit.
func (p *proc) stop(sig os.Signal, d time.Duration) error {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("culvert did not exit within %v of %v", d, sig)
		return nil
	}
}

func (p *proc) wait(d time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("culvert did not exit within %v", d)
		return nil
	}
}

// freePort returns a loopback address for a child process to listen on.
// The port is below Linux's ephemeral range (32768 up): a port the kernel
// handed out for 127.0.0.1:0 is also what the next outgoing connection of
// any process may get, between the check here and the child's listen. No
// port is handed out twice by this test binary.
func freePort(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[p] = true
		return ln.Addr().String()
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

func get(t *testing.T, addr, host, path string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s (Host %s): %v", addr, path, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestQuickstart is what `make demo` runs: one process, a printed curl
// command that works, and a clean exit on Ctrl-C.
func TestQuickstart(t *testing.T) {
	p := start(t, "quickstart", "--listen", "127.0.0.1:0")
	m := p.waitFor(regexp.MustCompile(`curl -H 'Host: ([^']+)' http://([0-9.:]+)/`), 20*time.Second)
	status, body, _ := get(t, m[2], m[1], "/")
	if status != 200 || !strings.Contains(body, "Hello from culvert") {
		t.Fatalf("through the tunnel: %d %q", status, body)
	}
	if !strings.Contains(body, "culvert-request-id") {
		t.Errorf("the hello page shows no request id: %q", body)
	}
	if err := p.stop(os.Interrupt, 15*time.Second); err != nil {
		t.Fatalf("quickstart exit after Ctrl-C: %v", err)
	}
}

// TestEdgeAndTunnelProcesses runs the parts as separate processes, as in
// production: an edge, the admin command that writes cert.pem, a
// connector; then restarts the edge and checks that its state and the
// tunnel come back.
func TestEdgeAndTunnelProcesses(t *testing.T) {
	originSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "origin saw %s %s host=%s xff=%s", r.Method, r.URL.Path, r.Host, r.Header.Get("X-Forwarded-For"))
	}))
	defer originSrv.Close()

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "edge")
	tunnelAddr, httpAddr, apiAddr, edgeMetrics := freePort(t), freePort(t), freePort(t), freePort(t)
	edgeArgs := []string{"edge", "--data-dir", dataDir, "--tunnel-addr", tunnelAddr, "--http-addr", httpAddr,
		"--api-addr", apiAddr, "--https-addr", "127.0.0.1:0", "--metrics", edgeMetrics, "--log-format", "json"}
	edgeProc := start(t, edgeArgs...)
	edgeProc.waitFor(regexp.MustCompile(`"msg":"edge running"`), 15*time.Second)

	certFile := filepath.Join(dir, "cert.pem")
	admin := func(args ...string) (string, error) {
		args = append(args, "--data-dir", dataDir, "--api", "https://"+apiAddr)
		out, err := exec.Command(culvertBin, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := admin("edge", "zone", "create", "example.test", "--out", certFile); err != nil {
		t.Fatalf("zone create: %v\n%s", err, out)
	}
	if fi, err := os.Stat(certFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cert.pem: %v mode %v", err, fi.Mode())
	}
	if out, err := admin("edge", "cert", "issue", "example.test", "--out", certFile); err == nil || !strings.Contains(out, "--force") {
		t.Fatalf("issuing over an existing cert.pem: err %v, out %q; want a refusal naming --force", err, out)
	}
	if out, err := admin("edge", "zone", "create", "example.test", "--no-cert"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("creating a zone twice: err %v, out %q", err, out)
	}

	connMetrics := freePort(t)
	tun := start(t, "tunnel", "--hostname", "app.example.test", "--url", originSrv.URL,
		"--origincert", certFile, "--edge", tunnelAddr, "--metrics", connMetrics, "--log-format", "json")
	waitReady(t, connMetrics, 4, 15*time.Second)

	status, body, _ := get(t, httpAddr, "app.example.test", "/hi")
	if status != 200 || !strings.HasPrefix(body, "origin saw GET /hi host=app.example.test xff=127.0.0.1") {
		t.Fatalf("through the tunnel: %d %q", status, body)
	}
	if status, _, h := get(t, httpAddr, "other.example.test", "/"); status != 404 || h.Get("Culvert-Error") != "unknown-hostname" {
		t.Fatalf("unknown hostname: %d %v", status, h)
	}
	_, metricsText, _ := get(t, edgeMetrics, "", "/metrics")
	if !strings.Contains(metricsText, `culvert_edge_responses_total{status="200"} 1`) {
		t.Errorf("edge metrics do not count the request:\n%s", metricsText)
	}

	// Restart the edge: the store keeps the CAs, zone and certificate, and
	// the connector comes back on its own.
	t0 := time.Now()
	if err := edgeProc.stop(syscall.SIGTERM, 40*time.Second); err != nil {
		t.Fatalf("edge exit after SIGTERM: %v", err)
	}
	t.Logf("edge stopped in %v", time.Since(t0))
	waitReady(t, connMetrics, 0, 10*time.Second)
	edgeProc = start(t, edgeArgs...)
	edgeProc.waitFor(regexp.MustCompile(`"msg":"edge running"`), 15*time.Second)
	if strings.Contains(edgeProc.output(), "first super administrator created") {
		t.Error("the restarted edge initialised itself again")
	}
	t0 = time.Now()
	waitReady(t, connMetrics, 4, 40*time.Second)
	t.Logf("connector back in %v", time.Since(t0))
	if status, body, _ := get(t, httpAddr, "app.example.test", "/again"); status != 200 || !strings.Contains(body, "/again") {
		t.Fatalf("after the edge restart: %d %q", status, body)
	}

	// The connector's own checks: an apex hostname is refused before dialing.
	apex := start(t, "tunnel", "--hostname", "example.test", "--url", originSrv.URL,
		"--origincert", certFile, "--edge", tunnelAddr, "--metrics", "")
	if err := apex.wait(10 * time.Second); err == nil || !strings.Contains(apex.output(), "apex") {
		t.Fatalf("apex hostname: err %v, output %q", err, apex.output())
	}

	if err := tun.stop(syscall.SIGTERM, 40*time.Second); err != nil {
		t.Fatalf("tunnel exit after SIGTERM: %v", err)
	}
	if err := edgeProc.stop(syscall.SIGTERM, 40*time.Second); err != nil {
		t.Fatalf("edge exit after SIGTERM: %v", err)
	}
}

// waitReady polls the connector's /ready until it reports n connections
// (n > 0: status 200; n == 0: status 503).
func waitReady(t *testing.T, addr string, n int, d time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/ready", nil)
		resp, err := c.Do(req)
		if err == nil {
			var r struct {
				ReadyConnections int `json:"readyConnections"`
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			json.Unmarshal(b, &r)
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			want := 200
			if n == 0 {
				want = 503
			}
			if r.ReadyConnections == n && resp.StatusCode == want {
				cancel()
				return
			}
		} else {
			last = err.Error()
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/ready did not report %d connections within %v; last: %s", n, d, last)
}

// TestMakeDemo runs the README's first command as a newcomer would:
// `make demo` from the repository root (on a free port), then Ctrl-C to
// the whole process group, as a terminal sends it.
func TestMakeDemo(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed; the README's commands need it")
	}
	cmd := exec.Command("make", "-s", "-C", "../..", "demo", "DEMO_FLAGS=--listen 127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			mu.Lock()
			t.Logf("make demo output:\n%s", out.String())
			mu.Unlock()
		}
	}()
	re := regexp.MustCompile(`curl -H 'Host: ([^']+)' http://([0-9.:]+)/`)
	var m []string
	for deadline := time.Now().Add(3 * time.Minute); m == nil; {
		mu.Lock()
		m = re.FindStringSubmatch(out.String())
		mu.Unlock()
		select {
		case err := <-done:
			if m == nil {
				t.Fatalf("make demo exited (%v) before printing the curl command", err)
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("make demo printed no curl command within 3 minutes")
		}
	}
	status, body, _ := get(t, m[2], m[1], "/")
	if status != 200 || !strings.Contains(body, "Hello from culvert") {
		t.Fatalf("the printed curl command: %d %q", status, body)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("make demo did not stop on Ctrl-C")
	}
}
