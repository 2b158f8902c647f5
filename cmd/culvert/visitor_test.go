package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/culvert-tunnel/culvert/control/browsertest"
	culverttls "github.com/culvert-tunnel/culvert/tls"
)

const helloPage = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">` +
	`<title>culvert</title></head><body><h1 id="hello">Hello over the tunnel</h1></body></html>`

// textBody is compressible text of n bytes.
func textBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d: the quick brown fox jumps over the lazy dog %d times\n", i, i%97)
	}
	return b.Bytes()[:n]
}

// visitorOrigin serves what the visitor tests fetch: a page, 1 MiB of text,
// random bytes, and /echo, which answers the SHA-256 of the request body.
func visitorOrigin(t *testing.T) *httptest.Server {
	text := textBody(1 << 20)
	random := make([]byte, 256<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, helloPage)
		case "/big":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			http.ServeContent(w, r, "big.txt", time.Time{}, bytes.NewReader(text))
		case "/random":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(random)
		case "/echo":
			h := sha256.New()
			io.Copy(h, r.Body)
			io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// visitorSetup is an edge process with HTTPS, a connector and the visitor
// origin behind app.example.test.
type visitorSetup struct {
	edge   *edgeProc
	caFile string
	text   []byte
}

func startVisitorSetup(t *testing.T) *visitorSetup {
	t.Helper()
	dir := t.TempDir()
	e := startEdgeProc(t, filepath.Join(dir, "edge"))
	cert := e.certFor("example.test", dir)
	origin := visitorOrigin(t)
	tun := startTunnelProc(t, cert, "app.example.test", origin.URL, []string{e.tunnelAddr}, "--ha-connections", "2")
	waitTook(t, 15*time.Second, "the tunnel registers", func() bool { return readyCount(tun.metrics) == 2 })
	return &visitorSetup{edge: e, caFile: filepath.Join(dir, "edge", "visitor-ca.pem"), text: textBody(1 << 20)}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// curlTo runs curl against app.example.test at the edge's address and
// returns stdout; extra args come before the URL.
func (v *visitorSetup) curl(t *testing.T, curl string, tls bool, path string, extra ...string) string {
	t.Helper()
	addr, scheme := v.edge.httpAddr, "http"
	if tls {
		addr, scheme = v.edge.httpsAddr, "https"
	}
	args := []string{"-sS", "--fail", "--max-time", "20", "--cacert", v.caFile,
		"--resolve", "app.example.test:" + port(addr) + ":127.0.0.1"}
	args = append(args, extra...)
	args = append(args, scheme+"://app.example.test:"+port(addr)+path)
	out, err := exec.Command(curl, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("curl %v: %v %s", args, err, stderr)
	}
	return string(out)
}

// TestVisitorsHTTP2: curl reaches the tunnel over HTTPS with h2 (ALPN),
// over plain HTTP with h2 prior knowledge, and with HTTP/1.1 on both;
// uploads and compressed downloads arrive whole; headless Chromium loads a
// page over HTTPS/h2.
func TestVisitorsHTTP2(t *testing.T) {
	curl := needTool(t, "curl", "curl")
	v := startVisitorSetup(t)

	const w = "%{http_version} %{http_code}"
	for _, c := range []struct {
		tls  bool
		args []string
		want string
	}{
		{true, []string{"--http2"}, "2 200"},
		{false, []string{"--http2-prior-knowledge"}, "2 200"},
		{true, []string{"--http1.1"}, "1.1 200"},
		{false, []string{"--http1.1"}, "1.1 200"},
	} {
		got := v.curl(t, curl, c.tls, "/", append(c.args, "-o", os.DevNull, "-w", w)...)
		if got != c.want {
			t.Fatalf("curl %v (tls %v): %q, want %q", c.args, c.tls, got, c.want)
		}
	}

	// A 5 MiB upload over h2, both ways of reaching the edge.
	dir := t.TempDir()
	up := bytes.Repeat([]byte("0123456789abcdef"), 5<<16)
	upFile := filepath.Join(dir, "up")
	os.WriteFile(upFile, up, 0o600)
	for _, c := range []struct {
		tls  bool
		flag string
	}{{true, "--http2"}, {false, "--http2-prior-knowledge"}} {
		if got := v.curl(t, curl, c.tls, "/echo", c.flag, "--data-binary", "@"+upFile); got != sha(up) {
			t.Fatalf("upload over %s: origin saw %s, want %s", c.flag, got, sha(up))
		}
	}

	// Compressed over h2 and HTTP/1.1: curl decompresses; the bytes are
	// the origin's, and the edge says it compressed.
	for _, flag := range []string{"--http2", "--http1.1"} {
		hdrFile := filepath.Join(dir, "h")
		body := v.curl(t, curl, true, "/big", flag, "--compressed", "-D", hdrFile)
		hdr, _ := os.ReadFile(hdrFile)
		if sha([]byte(body)) != sha(v.text) {
			t.Fatalf("compressed /big over %s: %d bytes, not the origin's", flag, len(body))
		}
		if !regexp.MustCompile(`(?i)\ncontent-encoding: (gzip|zstd|br)`).Match(hdr) || !regexp.MustCompile(`(?i)\nvary: .*accept-encoding`).Match(hdr) {
			t.Fatalf("compressed /big over %s: headers\n%s", flag, hdr)
		}
	}
	// A range is never compressed.
	hdrFile := filepath.Join(dir, "r")
	part := v.curl(t, curl, true, "/big", "--http2", "--compressed", "-r", "100-199", "-D", hdrFile)
	hdr, _ := os.ReadFile(hdrFile)
	if part != string(v.text[100:200]) || regexp.MustCompile(`(?i)\ncontent-encoding:`).Match(hdr) {
		t.Fatalf("range over h2: %q\n%s", part, hdr)
	}

	// Chromium over HTTPS: the page comes over h2.
	b := browsertest.Start(t, "--host-resolver-rules=MAP app.example.test 127.0.0.1")
	u := "https://app.example.test:" + port(v.edge.httpsAddr) + "/"
	must0(t, b.Navigate(u))
	must0(t, b.WaitVisible("#hello"))
	var proto string
	must0(t, b.Run(chromedp.Evaluate(`performance.getEntriesByType("navigation")[0].nextHopProtocol`, &proto)))
	if proto != "h2" {
		t.Fatalf("Chromium loaded the page over %q, want h2", proto)
	}
	if _, err := b.Screenshot("page"); err != nil {
		t.Fatal(err)
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors: %q", errs)
	}
	if n := metricValue(t, v.edge.mx, `culvert_edge_requests_by_protocol_total{protocol="h2"}`); n < 5 {
		t.Fatalf("the edge counted %v HTTP/2 requests", n)
	}
}

// h2specBin finds h2spec (make tools installs it); fatal under CI=true.
func h2specBin(t *testing.T) string {
	if p := os.Getenv("H2SPEC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, "go", "bin", "h2spec"); fileExists(p) {
			return p
		}
	}
	msg := "h2spec not installed: run `make tools`"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// TestH2SpecVisitors runs h2spec against the edge's visitor ports, h2c and
// TLS, with a live tunnel and origin behind them: h2spec's requests carry
// app.example.test as :authority, so they go through the tunnel. h2spec
// resolves the name from a hosts file mounted over /etc/hosts in a mount
// namespace of its own (unshare; needs root), so the machine's file is not
// touched.
func TestH2SpecVisitors(t *testing.T) {
	bin := h2specBin(t)
	unshare := needTool(t, "unshare", "util-linux")
	if os.Geteuid() != 0 {
		msg := "h2spec against the edge needs root (a mount namespace for its hosts file)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	e := startEdgeProc(t, filepath.Join(dir, "edge"))
	cert := e.certFor("example.test", dir)
	origin := helloOrigin(t, "h2spec")
	tun := startTunnelProc(t, cert, "app.example.test", origin.URL, []string{e.tunnelAddr}, "--ha-connections", "1")
	waitTook(t, 15*time.Second, "the tunnel registers", func() bool { return readyCount(tun.metrics) == 1 })
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 app.example.test\n"), 0o644)

	run := func(want int, args ...string) {
		t.Helper()
		script := `mount --bind "$0" /etc/hosts && exec "$@"`
		cmd := exec.Command(unshare, append([]string{"--mount", "sh", "-c", script, hosts, bin, "-h", "app.example.test"}, args...)...)
		out, err := cmd.CombinedOutput()
		m := h2specSummary.FindSubmatch(out)
		if m == nil {
			t.Fatalf("h2spec %v: no summary (err %v):\n%s", args, err, out)
		}
		t.Logf("h2spec %v: %s", args, m[0])
		if n, _ := strconv.Atoi(string(m[1])); n != want || string(m[1]) != string(m[2]) {
			t.Fatalf("h2spec %v: %s, want %d of %d passed:\n%s", args, m[0], want, want, out)
		}
	}
	before := metricValue(t, e.mx, `culvert_edge_requests_by_protocol_total{protocol="h2"}`)
	run(145, "-p", port(e.httpAddr))
	run(146, "--strict", "-p", port(e.httpAddr))
	run(145, "-t", "-k", "-p", port(e.httpsAddr))
	run(146, "--strict", "-t", "-k", "-p", port(e.httpsAddr))
	// The requests went through the tunnel to the origin.
	if n := metricValue(t, e.mx, `culvert_edge_responses_total{status="200"}`); n < 100 {
		_, all, _ := get(t, e.mx, "", "/metrics")
		t.Errorf("only %v 200 answers from the origin during h2spec:\n%s", n, all)
	}
	t.Logf("%v HTTP/2 requests", metricValue(t, e.mx, `culvert_edge_requests_by_protocol_total{protocol="h2"}`)-before)
	// And none of h2spec's hostile streams broke the tunnel connection.
	if n := metricValue(t, e.mx, "culvert_edge_tunnel_registrations_total"); n != 1 {
		t.Errorf("the tunnel registered %v times: its connection was lost during h2spec", n)
	}
}

// TestVisitorCertFlag: an operator's certificate for *.example.test given
// with --visitor-cert is what HTTPS visitors of app.example.test get; a
// zone without one gets a certificate from the edge's visitor CA.
func TestVisitorCertFlag(t *testing.T) {
	curl := needTool(t, "curl", "curl")
	dir := t.TempDir()
	ca, err := culverttls.NewCA("operator test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer([]string{"*.example.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := filepath.Join(dir, "op.pem"), filepath.Join(dir, "op.key"), filepath.Join(dir, "opca.pem")
	var chain []byte
	for _, der := range leaf.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _, _ := ca.PEM()
	os.WriteFile(certFile, chain, 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(caFile, caPEM, 0o600)

	e := startEdgeProc(t, filepath.Join(dir, "edge"), "--visitor-cert", certFile+","+keyFile)
	cert := e.certFor("example.test", dir)
	e.certFor("other.test", dir)
	origin := visitorOrigin(t)
	tun := startTunnelProc(t, cert, "app.example.test", origin.URL, []string{e.tunnelAddr}, "--ha-connections", "1")
	waitTook(t, 15*time.Second, "the tunnel registers", func() bool { return readyCount(tun.metrics) == 1 })

	p := port(e.httpsAddr)
	fetch := func(host, ca string) (string, error) {
		out, err := exec.Command(curl, "-sS", "--fail", "--max-time", "10", "--http2", "--cacert", ca,
			"--resolve", host+":"+p+":127.0.0.1", "-o", os.DevNull, "-w", "%{http_version} %{http_code}",
			"https://"+host+":"+p+"/").CombinedOutput()
		return string(out), err
	}
	if got, err := fetch("app.example.test", caFile); err != nil || got != "2 200" {
		t.Fatalf("with the operator's certificate: %q %v", got, err)
	}
	// The edge's visitor CA does not vouch for a name the operator covers.
	if got, err := fetch("app.example.test", filepath.Join(dir, "edge", "visitor-ca.pem")); err == nil {
		t.Fatalf("the visitor CA verified the operator's name: %q", got)
	}
	// other.test has no operator certificate: the visitor CA's (no tunnel
	// there: 404 from the edge, over a verified connection).
	got, _ := fetch("app.other.test", filepath.Join(dir, "edge", "visitor-ca.pem"))
	if !strings.HasSuffix(got, "2 404") {
		t.Fatalf("a zone without an operator certificate: %q", got)
	}
}
