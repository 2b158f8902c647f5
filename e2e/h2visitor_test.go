package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http2"
)

// h2Clients serves the tunnel's edge over TLS too and returns two HTTP/2
// clients for app.example.test: over TLS (ALPN h2, trusting the edge's
// visitor CA) and over plain TCP with prior knowledge (h2c).
func h2Clients(t *testing.T, tn *setup) (overTLS, h2c *http.Client) {
	t.Helper()
	tlsAddr, pool := serveTLS(t, tn)
	tlsTr := &http2.Transport{
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: tn.hostname, NextProtos: []string{"h2"}}}
			return d.DialContext(ctx, "tcp", tlsAddr)
		},
	}
	h2cTr := &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", tn.edge.visitorAddr)
		},
	}
	t.Cleanup(tlsTr.CloseIdleConnections)
	t.Cleanup(h2cTr.CloseIdleConnections)
	return &http.Client{Transport: tlsTr}, &http.Client{Transport: h2cTr}
}

// serveTLS serves the tunnel's edge on a TLS visitor listener too and
// returns its address and the pool that verifies its certificates.
func serveTLS(t *testing.T, tn *setup) (string, *x509.CertPool) {
	t.Helper()
	ln := listen(t)
	cfg, err := tn.edge.ctl.VisitorTLS(nil)
	if err != nil {
		t.Fatal(err)
	}
	go tn.edge.e.ServeVisitorsTLS(ln, cfg)
	return ln.Addr().String(), tn.edge.ctl.VisitorCA.Pool()
}

// TestWebsocketOverTLS: an HTTP/1.1 websocket (Upgrade) on the HTTPS
// visitor port reaches the origin's echo through the tunnel.
func TestWebsocketOverTLS(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	addr, pool := serveTLS(t, tn)
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: tn.hostname, NextProtos: []string{"http/1.1"}}}
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://"+tn.hostname+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("websocket over TLS: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.SetReadLimit(1 << 20)
	for i := range 20 {
		typ, msg := wsMessage(i)
		if err := c.Write(ctx, typ, msg); err != nil {
			t.Fatal(err)
		}
		gt, got, err := c.Read(ctx)
		if err != nil || gt != typ || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %v %v", i, gt, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestH2Visitors: visitors over HTTP/2 (TLS and h2c) download and upload
// bodies of every size through the tunnel, byte for byte, with 100
// streams at once on one connection.
func TestH2Visitors(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	overTLS, h2c := h2Clients(t, tn)
	for name, c := range map[string]*http.Client{"tls": overTLS, "h2c": h2c} {
		t.Run(name, func(t *testing.T) {
			for _, n := range []int64{0, 1, 16<<10 + 1, mib, 8 * mib} {
				resp, err := c.Get("https://" + tn.hostname + "/bytes/" + strconv.FormatInt(n, 10))
				if err != nil {
					t.Fatal(err)
				}
				if resp.ProtoMajor != 2 {
					t.Fatalf("protocol %s", resp.Proto)
				}
				if got, sum := hashBody(t, resp); got != n || sum != patternSHA256(n) {
					t.Fatalf("GET %d: %d bytes", n, got)
				}
				body := newRandomBody(uint64(n), n)
				req, _ := http.NewRequest("POST", "https://"+tn.hostname+"/sha256", body)
				req.ContentLength = n
				resp, err = c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if hr := readHash(t, resp); hr.Bytes != n || hr.SHA256 != body.sum() {
					t.Fatalf("POST %d: origin got %d bytes", n, hr.Bytes)
				}
			}
			// HEAD keeps the origin's Content-Length, sends no body.
			resp, err := c.Head("https://" + tn.hostname + "/bytes/1000")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ContentLength != 1000 {
				t.Fatalf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
			}
			// 100 at once.
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n := int64(1000 + i*331)
					resp, err := c.Get("https://" + tn.hostname + "/bytes/" + strconv.FormatInt(n, 10))
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					if err != nil || int64(len(b)) != n {
						errs <- fmt.Errorf("stream %d: %d bytes, %v", i, len(b), err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
	// An unknown hostname gets the edge's 404 over HTTP/2 too.
	resp, err := h2c.Get("http://nothing.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Culvert-Error") == "" {
		t.Fatalf("unknown host over h2: %d %v", resp.StatusCode, resp.Header)
	}
}

// compressOrigin serves text and other bodies for the compression tests.
func compressOrigin(t *testing.T, text []byte, sse chan struct{}) string {
	return startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/text":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("ETag", `"v1"`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(text))
		case "/small":
			w.Header().Set("Content-Type", "text/plain")
			w.Write(text[:500])
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(text)
		case "/gzipped":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(text)
			zw.Close()
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-sse
			io.WriteString(w, "data: second\n\n")
		}
	}))
}

func decode(t *testing.T, enc string, r io.Reader) []byte {
	t.Helper()
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, _ := io.ReadAll(r)
	return b
}

// TestCompression: the edge compresses text for visitors who accept gzip
// or zstd, over HTTP/1.1 and HTTP/2: the decompressed bytes are the
// origin's, Vary says Accept-Encoding, a strong ETag becomes weak. Never
// for ranges, small bodies, images, HEAD or a body the origin compressed;
// an event stream is compressed and still flows as it is written.
func TestCompression(t *testing.T) {
	text := bytes.Repeat([]byte("culvert compresses this line of text at the edge.\n"), 20000)
	sse := make(chan struct{})
	tn := startTunnel(t, connOptions{originURL: compressOrigin(t, text, sse)})
	overTLS, h2c := h2Clients(t, tn)
	clients := map[string]*http.Client{"http1": tn.client, "h2-tls": overTLS, "h2c": h2c}
	get := func(c *http.Client, method, path, accept string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+tn.hostname+path, nil)
		if c != tn.client {
			req.URL.Scheme = "https"
		}
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			for accept, want := range map[string]string{"gzip": "gzip", "zstd": "zstd", "gzip, zstd": "zstd", "gzip;q=1, zstd;q=0.5": "gzip", "": "", "br": ""} {
				resp := get(c, "GET", "/text", accept)
				enc := resp.Header.Get("Content-Encoding")
				got := decode(t, enc, resp.Body)
				resp.Body.Close()
				if enc != want || !bytes.Equal(got, text) {
					t.Fatalf("Accept-Encoding %q: encoding %q (want %q), %d bytes decoded (want %d)", accept, enc, want, len(got), len(text))
				}
				if want != "" {
					if resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("Etag") != `W/"v1"` || resp.ContentLength != -1 {
						t.Fatalf("compressed headers: %v", resp.Header)
					}
				} else if resp.ContentLength != int64(len(text)) || resp.Header.Get("Etag") != `"v1"` {
					t.Fatalf("identity headers: length %d %v", resp.ContentLength, resp.Header)
				}
			}
			for _, c2 := range []struct {
				method, path string
				hdr          []string
				status       int
			}{
				{"GET", "/text", []string{"Range", "bytes=0-99"}, 206},
				{"GET", "/small", nil, 200},
				{"GET", "/png", nil, 200},
				{"HEAD", "/text", nil, 200},
			} {
				resp := get(c, c2.method, c2.path, "gzip, zstd", c2.hdr...)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c2.status || resp.Header.Get("Content-Encoding") != "" {
					t.Fatalf("%s %s %v: %d, encoding %q", c2.method, c2.path, c2.hdr, resp.StatusCode, resp.Header.Get("Content-Encoding"))
				}
			}
			// The origin's own gzip passes through untouched.
			resp := get(c, "GET", "/gzipped", "gzip, zstd")
			if enc := resp.Header.Get("Content-Encoding"); enc != "gzip" || !bytes.Equal(decode(t, enc, resp.Body), text) {
				t.Fatalf("origin-compressed body: %q", enc)
			}
			resp.Body.Close()
		})
	}
	// An event stream: the first event arrives, decompressed, before the
	// origin writes the second.
	resp := get(h2c, "GET", "/events", "gzip")
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("event stream not compressed: %v", resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(zr, first); err != nil || string(first) != "data: first\n\n" {
		t.Fatalf("first event: %q %v", first, err)
	}
	close(sse)
	rest, _ := io.ReadAll(zr)
	if string(rest) != "data: second\n\n" {
		t.Fatalf("second event: %q", rest)
	}
}

// TestH2VisitorWebsocket: a visitor opens a websocket over HTTP/2 with
// extended CONNECT (RFC 8441) through the tunnel to the origin's echo.
func TestH2VisitorWebsocket(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	nc, err := net.Dial("tcp", tn.edge.visitorAddr)
	if err != nil {
		t.Fatal(err)
	}
	dc := dataplane.NewClientConn(nc, &dataplane.Config{})
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := func(kv ...string) []hpack.HeaderField {
		var out []hpack.HeaderField
		for i := 0; i < len(kv); i += 2 {
			out = append(out, hpack.HeaderField{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return out
	}
	s, err := dc.OpenStream(ctx, f(":method", "CONNECT", ":protocol", "websocket", ":scheme", "http",
		":path", "/ws", ":authority", tn.hostname, "sec-websocket-version", "13"), false)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, err := s.ReadHeaders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := string(hdrs.Get(":status")); st != "200" {
		t.Fatalf("extended CONNECT answered %s", st)
	}
	for i := range 50 {
		msg := []byte(fmt.Sprintf("message %d over an HTTP/2 websocket", i))
		s.Write(wsFrame(msg))
		op, got := readWSFrame(t, s)
		if op != 1 || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: op %d %q", i, op, got)
		}
	}
}

// wsFrame is a masked final text frame (RFC 6455 §5.2), as a client sends.
func wsFrame(p []byte) []byte {
	b := []byte{0x81}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	default:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	return b
}

func readWSFrame(t *testing.T, r io.Reader) (op byte, payload []byte) {
	t.Helper()
	// A message may come in fragments: the first frame has the opcode,
	// continuations have 0, the last has FIN.
	for first := true; ; first = false {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatal(err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(r, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(r, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		if first {
			op = h[0] & 0x0f
		}
		payload = append(payload, p...)
		if h[0]&0x80 != 0 {
			return op, payload
		}
	}
}
