package origin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestKeepAliveOneConnection(t *testing.T) {
	url, ln := startHello(t)
	c := newClient(t, Config{URL: url})
	for i := range 100 {
		r := mustDo(t, c, "GET", "/hello")
		if r.status != 200 || string(r.body) != "hello world\n" {
			t.Fatalf("request %d: %d %q", i, r.status, r.body)
		}
		if r.stream {
			t.Fatalf("request %d: a 12-byte body arriving with the head was streamed", i)
		}
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("100 sequential requests used %d connections, want 1", n)
	}
	// Streamed bodies give their connection back too.
	for range 10 {
		r := mustDo(t, c, "GET", "/bytes/1000000")
		if !r.stream || len(r.body) != 1000000 {
			t.Fatalf("bytes: stream %v, %d bytes", r.stream, len(r.body))
		}
		r = mustDo(t, c, "GET", "/sse?n=3&interval=0")
		if !r.stream || strings.Count(string(r.body), "data: ") != 3 {
			t.Fatalf("sse (chunked): stream %v, %q", r.stream, r.body)
		}
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("streamed responses: %d connections, want 1", n)
	}
	// Idle past the probe threshold: a live connection is kept.
	time.Sleep(idleProbeAfter + 50*time.Millisecond)
	mustDo(t, c, "GET", "/hello")
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("after an idle pause: %d connections, want 1", n)
	}
}

func TestKeepAliveIdleBound(t *testing.T) {
	url, ln := startHello(t)
	c := newClient(t, Config{URL: url, KeepAliveConnections: -1})
	for range 5 {
		mustDo(t, c, "GET", "/hello")
	}
	if n := ln.accepted.Load(); n != 5 {
		t.Fatalf("KeepAliveConnections -1: %d connections for 5 requests, want 5", n)
	}
	if n := c.hc.IdleConnsCount(); n != 0 {
		t.Fatalf("%d idle connections kept, want 0", n)
	}
}

// TestKeepAliveBurstReusesConnections: rounds of more concurrent requests
// than KeepAliveConnections reuse the connections of the first round (no
// dial per request), and once the burst is over the idle pool shrinks back
// to KeepAliveConnections.
func TestKeepAliveBurstReusesConnections(t *testing.T) {
	url, ln := startHello(t)
	const keep, burst, rounds = 2, 8, 5
	c := newClient(t, Config{URL: url, KeepAliveConnections: keep})
	for range rounds {
		var wg sync.WaitGroup
		for range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := do(t, c, "GET", "/sleep?d=20ms", nil, 0); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if n := ln.accepted.Load(); n > burst+2 {
		t.Fatalf("%d rounds of %d concurrent requests: %d connections, want about %d", rounds, burst, n, burst)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.hc.IdleConnsCount() > keep {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections 5s after the burst, want %d", c.hc.IdleConnsCount(), keep)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustDo(t, c, "GET", "/hello")
	if n := c.hc.IdleConnsCount(); n != keep {
		t.Fatalf("%d idle connections after a request, want %d", n, keep)
	}
}

func TestUnixSocket(t *testing.T) {
	path := startHelloUnix(t)
	c := newClient(t, Config{URL: "unix:" + path})
	if c.Scheme() != "http" {
		t.Fatalf("Scheme %q", c.Scheme())
	}
	r := mustDo(t, c, "GET", "/hello")
	if r.status != 200 || string(r.body) != "hello world\n" {
		t.Fatalf("%d %q", r.status, r.body)
	}
	// A request without Host gets "localhost" on a unix origin.
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/headers")
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	var hs map[string][]string
	if err := json.Unmarshal(resp.Body(), &hs); err != nil {
		t.Fatalf("%v: %s", err, resp.Body())
	}
	if got := hs["Host"]; len(got) != 1 || got[0] != "localhost" {
		t.Fatalf("Host %q, want localhost", got)
	}
}

func TestUnreachable(t *testing.T) {
	// A missing unix socket.
	c := newClient(t, Config{URL: "unix:" + filepath.Join(t.TempDir(), "missing.sock")})
	_, err := do(t, c, "GET", "/", nil, 0)
	if !errors.Is(err, ErrUnreachable) || Classify(err) != ErrUnreachable {
		t.Fatalf("missing socket: %v, want ErrUnreachable", err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing socket: the cause is not kept: %v", err)
	}

	// A refused port: listen, note the port, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c = newClient(t, Config{URL: "http://" + addr})
	start := time.Now()
	_, err = do(t, c, "GET", "/", nil, 0)
	if !errors.Is(err, ErrUnreachable) || Classify(err) != ErrUnreachable {
		t.Fatalf("refused: %v, want ErrUnreachable", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused: the cause is not kept: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refused took %v", d)
	}
	t.Logf("refused: %v", err)

	// And the upgrade path classifies the same way.
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/ws")
	if _, _, err := c.DialUpgrade(t.Context(), req); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("DialUpgrade refused: %v", err)
	}
}

func TestResponseTimeout(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url, ResponseTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := do(t, c, "GET", "/sleep?d=5s", nil, 0)
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || Classify(err) != ErrTimeout {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if took > time.Second {
		t.Fatalf("timeout after %v, want about 100ms", took)
	}
	t.Logf("%v after %v", err, took)
	// A fast answer on the same client still works, and the timeout does
	// not apply to the body: this stream lasts 3x the response timeout.
	r := mustDo(t, c, "GET", "/sse?n=4&interval=100ms")
	if strings.Count(string(r.body), "data: ") != 4 {
		t.Fatalf("sse under a short response timeout: %q", r.body)
	}
}

func TestNoFreeConnectionIsTimeout(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url, MaxConnsPerHost: 1, ConnectTimeout: 100 * time.Millisecond})
	// Hold the only connection with a streamed response.
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/sse?n=2&interval=10s")
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := do(t, c, "GET", "/hello", nil, 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("all connections busy: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	// Closing the held body (unread) frees the slot.
	resp.CloseBodyStream()
	mustDo(t, c, "GET", "/hello")
}

func TestHostHeader(t *testing.T) {
	url, _ := startHello(t)
	host := func(c *Client) string {
		r := mustDo(t, c, "GET", "/headers")
		var hs map[string][]string
		if err := json.Unmarshal(r.body, &hs); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
		return strings.Join(hs["Host"], ",")
	}
	if h := host(newClient(t, Config{URL: url})); h != "visitor.test" {
		t.Errorf("without HostHeader the origin saw Host %q, want the caller's visitor.test", h)
	}
	if h := host(newClient(t, Config{URL: url, HostHeader: "internal.example"})); h != "internal.example" {
		t.Errorf("with HostHeader the origin saw Host %q, want internal.example", h)
	}
}

func TestRequestSentAsGiven(t *testing.T) {
	// The request target reaches the origin byte for byte, and Do adds no
	// header of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		got <- head.String()
		io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
	}()
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/a//b/../c%2Fd?q=1&q=%20")
	req.Header.SetHost("visitor.test")
	req.Header.Set("X-Custom", "v")
	req.SetBodyString("hi")
	_ = req.URI() // a caller that parsed the URI (for logging, say) changes nothing
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	head := <-got
	want := "POST /a//b/../c%2Fd?q=1&q=%20 HTTP/1.1\r\nHost: visitor.test\r\nContent-Length: 2\r\nX-Custom: v\r\n\r\n"
	if head != want {
		t.Fatalf("origin got\n%q\nwant\n%q", head, want)
	}
	if resp.StatusCode() != 204 || resp.BodyStream() != nil || len(resp.Body()) != 0 {
		t.Fatalf("204: status %d stream %v body %q", resp.StatusCode(), resp.BodyStream() != nil, resp.Body())
	}
	if ct := resp.Header.ContentType(); len(ct) != 0 {
		t.Fatalf("a Content-Type the origin did not send: %q", ct)
	}
}

func TestSSEStreams(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/sse?n=7&interval=200ms") // events at 0, 0.2s, ... 1.2s
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	headAt := time.Now()
	if ct := string(resp.Header.ContentType()); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	bs := resp.BodyStream()
	if bs == nil {
		t.Fatal("no body stream for an event stream")
	}
	br := bufio.NewReader(bs)
	var events []string
	var firstAt, lastAt time.Time
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			if len(events) == 0 {
				firstAt = time.Now()
			}
			lastAt = time.Now()
			events = append(events, line)
		}
	}
	if len(events) != 7 {
		t.Fatalf("%d events: %q", len(events), events)
	}
	first, last := firstAt.Sub(headAt), lastAt.Sub(headAt)
	t.Logf("first event %v after the head, last %v", first, last)
	if first > 150*time.Millisecond {
		t.Errorf("first event %v after the head: it was buffered", first)
	}
	if last < time.Second {
		t.Errorf("last event %v after the head, want >= 1s (6 intervals of 200ms)", last)
	}
}

// TestUploadStreams shows that a request body stream is not buffered
// whole: the origin answers after the first KiB while the rest of the body
// is still blocked in the test's pipe, and Do returns that answer.
func TestUploadStreams(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		first := make([]byte, 1024)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("X-First-KiB", "received")
		w.WriteHeader(200)
		rc.Flush()
		h := sha256.New()
		h.Write(first)
		n, err := io.Copy(h, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d %x\n", 1024+n, h.Sum(nil))
	}))
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})

	const total = 1 << 20
	for _, size := range []int{-1, total} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			pr, pw := io.Pipe()
			answered := make(chan struct{})
			writerDone := make(chan error, 1)
			go func() {
				src := &patternReader{n: total}
				if _, err := io.CopyN(pw, src, 1024); err != nil {
					writerDone <- err
					return
				}
				// The rest only after Do has returned the origin's answer.
				<-answered
				_, err := io.Copy(pw, src)
				pw.CloseWithError(err)
				writerDone <- err
			}()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod("POST")
			req.SetRequestURI("/upload")
			req.SetBodyStream(pr, size)
			var derr error
			doDone := make(chan struct{})
			go func() {
				defer close(doDone)
				derr = c.Do(req, resp)
			}()
			select {
			case <-doDone:
			case <-time.After(5 * time.Second):
				close(answered) // unblock, then fail
				t.Fatal("Do did not return the answer while the body was incomplete: the body is buffered")
			}
			if derr != nil {
				t.Fatal(derr)
			}
			if got := string(resp.Header.Peek("X-First-KiB")); got != "received" {
				t.Fatalf("head: %q", got)
			}
			close(answered)
			body, err := io.ReadAll(resp.BodyStream())
			if err != nil {
				t.Fatal(err)
			}
			if err := <-writerDone; err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%d %s\n", total, patternSHA(total))
			if string(body) != want {
				t.Fatalf("origin read %q, want %q", body, want)
			}
		})
	}
}

func TestLarge(t *testing.T) {
	const n = 64 << 20
	url, ln := startHello(t)
	c := newClient(t, Config{URL: url})
	want := patternSHA(n)

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(fmt.Sprintf("/bytes/%d", n))
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	if resp.Header.ContentLength() != n || resp.BodyStream() == nil {
		t.Fatalf("Content-Length %d, stream %v", resp.Header.ContentLength(), resp.BodyStream() != nil)
	}
	h := sha256.New()
	got, err := io.CopyBuffer(h, resp.BodyStream(), make([]byte, 32<<10))
	if err != nil || got != n {
		t.Fatalf("read %d: %v", got, err)
	}
	if s := hex.EncodeToString(h.Sum(nil)); s != want {
		t.Fatalf("/bytes sha256 %s, want %s", s, want)
	}
	resp.CloseBodyStream()

	for _, size := range []int{-1, n} {
		t.Run(fmt.Sprintf("echo size=%d", size), func(t *testing.T) {
			req.Reset()
			req.Header.SetMethod("PUT")
			req.SetRequestURI("/echo")
			req.Header.SetContentType("application/x-test")
			req.SetBodyStream(&patternReader{n: n}, size)
			if err := c.Do(req, resp); err != nil {
				t.Fatal(err)
			}
			if m := string(resp.Header.Peek("X-Echo-Method")); m != "PUT" {
				t.Fatalf("X-Echo-Method %q", m)
			}
			if ct := string(resp.Header.ContentType()); ct != "application/x-test" {
				t.Fatalf("Content-Type %q", ct)
			}
			h := sha256.New()
			got, err := io.CopyBuffer(h, resp.BodyStream(), make([]byte, 32<<10))
			if err != nil || got != n {
				t.Fatalf("echo read %d: %v", got, err)
			}
			if s := hex.EncodeToString(h.Sum(nil)); s != want {
				t.Fatalf("/echo sha256 %s, want %s", s, want)
			}
			resp.CloseBodyStream()
		})
	}

	r, err := do(t, c, "POST", "/sha256", &patternReader{n: n}, -1)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		SHA256 string `json:"sha256"`
		Bytes  int64  `json:"bytes"`
	}
	if err := json.Unmarshal(r.body, &sum); err != nil || sum.SHA256 != want || sum.Bytes != n {
		t.Fatalf("/sha256: %s (%v)", r.body, err)
	}
	if a := ln.accepted.Load(); a != 1 {
		t.Errorf("%d connections for sequential exchanges, want 1", a)
	}
}

func TestBodyStreamCloseAborts(t *testing.T) {
	url, ln := startHello(t)
	c := newClient(t, Config{URL: url})
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("/sse?n=2&interval=1h")
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	bs := resp.BodyStream()
	buf := make([]byte, 4096)
	if _, err := bs.Read(buf); err != nil { // the first event
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := bs.Read(buf) // blocks: the next event is an hour away
		readErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	within(t, 2*time.Second, "CloseBodyStream during a blocked Read", func() { resp.CloseBodyStream() })
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the interrupted Read returned no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the blocked Read was not interrupted")
	}
	if _, err := bs.Read(buf); err != io.ErrClosedPipe {
		t.Fatalf("Read after close: %v, want io.ErrClosedPipe", err)
	}
	// The aborted connection is not reused.
	mustDo(t, c, "GET", "/hello")
	if n := ln.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	if n := c.hc.ConnsCount(); n != 1 {
		t.Fatalf("pool counts %d connections, want 1", n)
	}
}

func TestStaleConnection(t *testing.T) {
	// An origin that closes idle connections after 50ms: the pooled
	// connection is dead when the next request comes, and must not fail
	// even a non-idempotent request with a streamed body.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &http.Server{Handler: HelloWorld(), IdleTimeout: 50 * time.Millisecond}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})
	mustDo(t, c, "GET", "/hello")
	time.Sleep(300 * time.Millisecond)
	r, err := do(t, c, "POST", "/sha256", strings.NewReader("abc"), -1)
	if err != nil {
		t.Fatalf("POST on a stale pooled connection: %v", err)
	}
	if !strings.Contains(string(r.body), `"bytes": 3`) {
		t.Fatalf("%s", r.body)
	}
	if n := cl.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestStaleConnectionRetried(t *testing.T) {
	// An origin that closes right after answering, without saying so: the
	// next request meets a dead connection before the idle probe would
	// look. A GET is retried on a fresh connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})
	for i := range 5 {
		r, err := do(t, c, "GET", "/", nil, 0)
		if err != nil || string(r.body) != "ok" {
			t.Fatalf("GET %d: %v %q", i, err, r.body)
		}
		time.Sleep(10 * time.Millisecond) // let the close arrive
	}
}

func TestClose(t *testing.T) {
	url, _ := startHello(t)
	c, err := New(Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, c, "GET", "/hello")
	if n := c.hc.IdleConnsCount(); n != 1 {
		t.Fatalf("%d idle", n)
	}
	c.Close()
	if n := c.hc.ConnsCount(); n != 0 {
		t.Fatalf("%d connections after Close", n)
	}
	if _, err := do(t, c, "GET", "/hello", nil, 0); err == nil {
		t.Fatal("Do after Close succeeded")
	}
}

func TestStatusAndHead(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})
	r := mustDo(t, c, "GET", "/status/418")
	if r.status != 418 || string(r.body) != "status 418\n" {
		t.Fatalf("%d %q", r.status, r.body)
	}
	r = mustDo(t, c, "HEAD", "/bytes/1000000")
	if r.status != 200 || len(r.body) != 0 || r.header["Content-Length"] != "1000000" {
		t.Fatalf("HEAD: %d %d bytes, headers %v", r.status, len(r.body), r.header)
	}
	r = mustDo(t, c, "GET", "/status/204")
	if r.status != 204 || len(r.body) != 0 || r.stream {
		t.Fatalf("204: %+v", r)
	}
	r = mustDo(t, c, "GET", "/nope")
	if r.status != 404 {
		t.Fatalf("unknown page: %d", r.status)
	}
	r = mustDo(t, c, "GET", "/")
	if r.status != 200 || !bytes.Contains(r.body, []byte("Hello from culvert")) || !strings.HasPrefix(r.header["Content-Type"], "text/html") {
		t.Fatalf("/: %d %q", r.status, r.body)
	}
}

func TestRequestBodyErrorIsReturned(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})
	boom := errors.New("visitor went away")
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("partial"))
		pw.CloseWithError(boom)
	}()
	_, err := do(t, c, "POST", "/sha256", pr, -1)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the body's error", err)
	}
	if Classify(err) != err {
		t.Fatalf("a visitor-side failure classified as %v", Classify(err))
	}
	// A stream shorter than its declared size fails too.
	_, err = do(t, c, "POST", "/sha256", strings.NewReader("short"), 100)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
	mustDo(t, c, "GET", "/hello")
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := writeFile(garbage, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "empty URL"},
		{Config{URL: "localhost:8080"}, "scheme"},
		{Config{URL: "ftp://x"}, "unsupported scheme"},
		{Config{URL: "http://"}, "no host"},
		{Config{URL: "http://x/path"}, "path"},
		{Config{URL: "http://u:p@x"}, "user info"},
		{Config{URL: "unix:"}, "socket path"},
		{Config{URL: "https://x", CAPoolFile: filepath.Join(dir, "missing.pem")}, "CA pool"},
		{Config{URL: "https://x", CAPoolFile: garbage}, "no PEM certificate"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	for _, u := range []string{"http://localhost", "http://[::1]:8080/", "https://x:8443", "unix:///run/x.sock", "unix+tls:/x"} {
		c, err := New(Config{URL: u})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		c.Close()
	}
}

func TestClassify(t *testing.T) {
	other := errors.New("other")
	for _, tc := range []struct {
		err, want error
	}{
		{nil, nil},
		{other, other},
		{unreachable(other), ErrUnreachable},
		{fmt.Errorf("x: %w", timedOut(other)), ErrTimeout},
		{fasthttp.ErrTimeout, ErrTimeout},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ErrUnreachable},
		{&net.DNSError{Err: "no such host", Name: "x"}, ErrUnreachable},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, &net.OpError{Op: "read", Err: syscall.ECONNRESET}},
	} {
		got := Classify(tc.err)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestEarlyAnswerAbortsUpload(t *testing.T) {
	// The origin refuses the upload at once, without reading it; the
	// visitor's body never ends. Do returns the refusal and stops reading
	// the body (the pipe is closed under the pending Read).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Full duplex, or net/http reads up to 256 KiB of the body
		// before it sends the answer.
		http.NewResponseController(w).EnableFullDuplex()
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("the start of a long upload"))
		// and nothing more until the reader goes away
	}()
	var r result
	within(t, 5*time.Second, "Do with an early answer", func() {
		r, err = do(t, c, "POST", "/upload", pr, -1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 413 || string(r.body) != "too large\n" {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if _, err := pw.Write([]byte("more")); err != io.ErrClosedPipe {
		t.Fatalf("the body stream was not closed: write %v", err)
	}
	mustDo(t, c, "GET", "/hello") // the pool is fine
}

func TestResponseTimeoutCountsFromRequestEnd(t *testing.T) {
	// An upload that takes 3x ResponseTimeout, with pauses shorter than
	// it: neither the writes nor the wait for the head time out.
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url, ResponseTimeout: 200 * time.Millisecond})
	pr, pw := io.Pipe()
	go func() {
		for range 6 {
			pw.Write(bytes.Repeat([]byte("x"), 1000))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	r, err := do(t, c, "POST", "/sha256", pr, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.body), `"bytes": 6000`) {
		t.Fatalf("%s", r.body)
	}
}
