package origin

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawOrigin is an origin whose connections are played by a script: each
// accepted connection's requests are parsed as they arrive (pipelined or
// not) and handed to the script as paths, in order; the script writes the
// answers on the connection it is given.
type rawOrigin struct {
	url      string
	accepted atomic.Int64
}

// originConnScript plays connection n (0 for the first accepted): reqs
// yields the paths of its requests as they are parsed (closed when the
// client closes or sends garbage); the script answers on w and returns
// when it is done with the connection (which is then closed).
type originConnScript func(n int, reqs <-chan string, w net.Conn)

func startRawOrigin(t *testing.T, script originConnScript) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{url: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(o.accepted.Add(1) - 1)
			reqs := make(chan string, 64)
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer close(reqs)
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					r.Body.Close()
					reqs <- r.Method + " " + r.URL.Path
				}
			}()
			go func() {
				defer wg.Done()
				defer c.Close()
				script(n, reqs, c)
			}()
		}
	}()
	return o
}

// answer is a response whose body is the request's path.
func answer(path string, extra string) string {
	_, p, _ := strings.Cut(path, " ")
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(p)) + "\r\n" + extra + "\r\n" + p
}

// answerEach answers every request of reqs at once, each on its own.
func answerEach(reqs <-chan string, w net.Conn) {
	for p := range reqs {
		if _, err := io.WriteString(w, answer(p, "")); err != nil {
			return
		}
	}
}

// onFirstConn plays the first connection with first and answers every
// request on later ones at once.
func onFirstConn(first func(reqs <-chan string, w net.Conn)) originConnScript {
	return func(n int, reqs <-chan string, w net.Conn) {
		if n > 0 {
			answerEach(reqs, w)
			return
		}
		first(reqs, w)
	}
}

// take reads n paths from reqs (failing after 5s).
func take(t *testing.T, reqs <-chan string, n int) []string {
	var got []string
	for len(got) < n {
		select {
		case p, ok := <-reqs:
			if !ok {
				t.Errorf("connection ended after %d requests, want %d", len(got), n)
				return got
			}
			got = append(got, p)
		case <-time.After(5 * time.Second):
			t.Errorf("%d requests arrived, want %d", len(got), n)
			return got
		}
	}
	return got
}

// getAsync starts a GET of path and returns where its body (or error) lands.
func getAsync(t *testing.T, c *Client, path string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		r, err := do(t, c, "GET", path, nil, 0)
		if err != nil {
			r.status = -1
			r.body = []byte(err.Error())
		}
		ch <- r
	}()
	return ch
}

func wantBody(t *testing.T, ch <-chan result, path string) {
	t.Helper()
	select {
	case r := <-ch:
		if r.status != 200 || string(r.body) != path {
			t.Errorf("GET %s: status %d body %q", path, r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("GET %s: no answer", path)
	}
}

// TestPipelineWritesBeforeAnswers proves the requests are pipelined: the
// origin answers nothing until it has four requests on one connection, then
// answers them in one write; each caller gets its own answer.
func TestPipelineWritesBeforeAnswers(t *testing.T) {
	arrived := make(chan string, 8)
	o := startRawOrigin(t, func(n int, reqs <-chan string, w net.Conn) {
		var got []string
		for p := range reqs {
			arrived <- p
			if got = append(got, p); len(got) == 4 {
				break
			}
		}
		var all string
		for _, p := range got {
			all += answer(p, "")
		}
		io.WriteString(w, all)
		answerEach(reqs, w)
	})
	c := newClient(t, Config{URL: o.url, PipelineDepth: 4, ResponseTimeout: 10 * time.Second})
	var chans []<-chan result
	for i := range 4 {
		path := fmt.Sprintf("/r%d", i)
		chans = append(chans, getAsync(t, c, path))
		// One at a time, so that each finds the connection the first one
		// opened (concurrent first requests may each open one).
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d did not reach the origin before the answers to the others", i)
		}
	}
	for i, ch := range chans {
		wantBody(t, ch, fmt.Sprintf("/r%d", i))
	}
	if n := o.accepted.Load(); n != 1 {
		t.Errorf("origin accepted %d connections, want 1", n)
	}
	// The connection went back to the pool: the next request reuses it.
	if r := mustDo(t, c, "GET", "/after"); string(r.body) != "/after" {
		t.Errorf("GET /after: %q", r.body)
	}
	if n := o.accepted.Load(); n != 1 {
		t.Errorf("origin accepted %d connections after one more request, want 1", n)
	}
	if st := c.PipelineStats(); st.Requests != 5 || st.Writes != 5 || st.Resent != 0 {
		t.Errorf("PipelineStats %+v, want 5 requests in 5 writes, none resent", st)
	}
}

// TestPipelineMixedAnswers runs many concurrent requests of every kind of
// answer through a pipelining origin (fasthttp's server) and checks that
// every caller gets its own: bodies read whole and streamed, chunked, empty,
// HEAD; and that far fewer connections than requests were used.
func TestPipelineMixedAnswers(t *testing.T) {
	url, cl := startShapeOrigin(t)
	c := newClient(t, Config{URL: url, PipelineDepth: 8})
	const workers, each = 32, 40
	var total, errs atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range each {
				id := fmt.Sprintf("w%di%d", w, i)
				kind := []string{"len", "len", "len", "chunked", "none"}[rnd.IntN(5)]
				size := []int{0, 5, 1000, 16 << 10, 16<<10 + 1, 100 << 10}[rnd.IntN(6)]
				if kind == "none" {
					size = 0
				}
				method := "GET"
				if rnd.IntN(8) == 0 {
					method = "HEAD"
				}
				path := fmt.Sprintf("/%s/%d/%s", kind, size, id)
				r, err := do(t, c, method, path, nil, 0)
				total.Add(1)
				if err != nil {
					errs.Add(1)
					t.Errorf("%s %s: %v", method, path, err)
					continue
				}
				want := bytes.Repeat([]byte(id+";"), size/(len(id)+1)+1)[:size]
				if method == "HEAD" || kind == "none" {
					want = nil
				}
				if !bytes.Equal(r.body, want) {
					t.Errorf("%s %s: got %d bytes starting %q, want %d", method, path, len(r.body), r.body[:min(len(r.body), 20)], len(want))
				}
			}
		}()
	}
	wg.Wait()
	// fasthttp's server closes the connection after a HEAD answer without
	// Content-Length: the requests behind such answers were sent again.
	t.Logf("%d requests, %d errors, %d connections", total.Load(), errs.Load(), cl.accepted.Load())
}

// startShapeOrigin runs a fasthttp origin (which implements pipelining)
// answering /kind/size/id with a body repeating "id;" up to size bytes:
// kind len (Content-Length), chunked (7000-byte chunks) or none (204).
func startShapeOrigin(t *testing.T) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		parts := strings.Split(string(ctx.Path()), "/")
		size, _ := strconv.Atoi(parts[2])
		body := bytes.Repeat([]byte(parts[3]+";"), size/(len(parts[3])+1)+1)[:size]
		switch parts[1] {
		case "len":
			ctx.SetBody(body)
		case "chunked":
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				for len(body) > 0 {
					k := min(len(body), 7000)
					w.Write(body[:k])
					w.Flush()
					body = body[k:]
				}
			})
		case "none":
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		}
	}}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String(), cl
}

// TestPipelineBatches: 32 callers, each sending small GETs one after
// another at depth 8, share a handful of connections.
func TestPipelineBatches(t *testing.T) {
	url, cl := startShapeOrigin(t)
	c := newClient(t, Config{URL: url, PipelineDepth: 8})
	const workers, each = 32, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%di%d", w, i)
				r, err := do(t, c, "GET", "/len/100/"+id, nil, 0)
				want := bytes.Repeat([]byte(id+";"), 100/(len(id)+1)+1)[:100]
				if err != nil || !bytes.Equal(r.body, want) {
					t.Errorf("GET %s: %q, %v", id, r.body, err)
				}
			}
		}()
	}
	wg.Wait()
	if n := cl.accepted.Load(); n > 8 {
		t.Errorf("%d connections for %d callers at depth 8, want at most 8", n, workers)
	} else {
		t.Logf("%d connections for %d callers at depth 8", n, workers)
	}
}

// TestPipelineConnectionClose: the origin answers the second of four
// pipelined requests with Connection: close and closes; the two behind it
// are sent again on a new connection.
func TestPipelineConnectionClose(t *testing.T) {
	o := startRawOrigin(t, onFirstConn(func(reqs <-chan string, w net.Conn) {
		got := take(t, reqs, 4)
		if len(got) == 4 {
			io.WriteString(w, answer(got[0], "")+answer(got[1], "Connection: close\r\n"))
		}
	}))
	testFailover(t, o, Config{URL: o.url, PipelineDepth: 4}, 2)
}

// TestPipelineOriginCloses: the origin reads four pipelined requests and
// closes without an answer; all four are sent again.
func TestPipelineOriginCloses(t *testing.T) {
	o := startRawOrigin(t, onFirstConn(func(reqs <-chan string, w net.Conn) {
		take(t, reqs, 4)
	}))
	testFailover(t, o, Config{URL: o.url, PipelineDepth: 4}, 4)
}

// TestPipelineTimeout: the first of four pipelined requests gets no answer
// within the response timeout: it fails with ErrTimeout, the three behind
// it are sent again.
func TestPipelineTimeout(t *testing.T) {
	o := startRawOrigin(t, onFirstConn(func(reqs <-chan string, w net.Conn) {
		take(t, reqs, 4)
		for range reqs {
		}
	}))
	c := newClient(t, Config{URL: o.url, PipelineDepth: 4, ResponseTimeout: 300 * time.Millisecond})
	chans := queueFour(t, c, o)
	select {
	case r := <-chans[0]:
		if r.status != -1 || !strings.Contains(string(r.body), "within") {
			t.Errorf("GET /r0: status %d %q, want a timeout", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GET /r0: no timeout")
	}
	for i := 1; i < 4; i++ {
		wantBody(t, chans[i], fmt.Sprintf("/r%d", i))
	}
}

// TestPipelineStallFailsOver: the first answer is an endless chunked stream;
// the three requests behind it are sent again on another connection after
// pipelineStall, while the stream goes on; closing the stream closes its
// connection.
func TestPipelineStallFailsOver(t *testing.T) {
	closed := make(chan struct{})
	o := startRawOrigin(t, onFirstConn(func(reqs <-chan string, w net.Conn) {
		take(t, reqs, 4)
		io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		go func() {
			for range reqs { // until the client closes
			}
			close(closed)
		}()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				return
			case <-tick.C:
				if _, err := io.WriteString(w, "6\r\nevent\n\r\n"); err != nil {
					return
				}
			}
		}
	}))
	c := newClient(t, Config{URL: o.url, PipelineDepth: 4})
	started := make(chan io.ReadCloser, 1)
	arrivedFirst := make(chan struct{})
	go func() {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI("/stream")
		req.Header.SetHost("visitor.test")
		close(arrivedFirst)
		if err := c.Do(req, resp); err != nil {
			t.Errorf("GET /stream: %v", err)
			started <- nil
			return
		}
		started <- readCloser{resp}
	}()
	<-arrivedFirst
	// The stream's request must be first on the connection.
	time.Sleep(50 * time.Millisecond)
	var chans []<-chan result
	for i := range 3 {
		chans = append(chans, getAsync(t, c, fmt.Sprintf("/r%d", i)))
		time.Sleep(20 * time.Millisecond)
	}
	rc := <-started
	if rc == nil {
		t.FailNow()
	}
	start := time.Now()
	for i := range 3 {
		wantBody(t, chans[i], fmt.Sprintf("/r%d", i))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("requests behind the stream took %v", d)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "event\nevent\n" {
		t.Errorf("stream after the fail-over: %q, %v", buf, err)
	}
	rc.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Error("the stalled connection was not closed after its stream")
	}
}

// readCloser reads and closes a response's body stream.
type readCloser struct{ resp *fasthttp.Response }

func (r readCloser) Read(p []byte) (int, error) { return r.resp.BodyStream().Read(p) }
func (r readCloser) Close() error {
	err := r.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(r.resp)
	return err
}

// queueFour sends GET /r0../r3 one after another, each once the one before
// has had time to reach the origin, so that all four are on the first
// connection (the origin's script checks that they are).
func queueFour(t *testing.T, c *Client, o *rawOrigin) []<-chan result {
	t.Helper()
	var chans []<-chan result
	for i := range 4 {
		chans = append(chans, getAsync(t, c, fmt.Sprintf("/r%d", i)))
		time.Sleep(30 * time.Millisecond)
	}
	return chans
}

// testFailover sends four requests that the origin's first connection
// gets, and checks that each gets its own answer, resent of them after
// the first connection failed them.
func testFailover(t *testing.T, o *rawOrigin, cfg Config, resent int) {
	t.Helper()
	c := newClient(t, cfg)
	chans := queueFour(t, c, o)
	for i, ch := range chans {
		wantBody(t, ch, fmt.Sprintf("/r%d", i))
	}
	if n := o.accepted.Load(); n < 2 {
		t.Errorf("origin accepted %d connections, want a second one for the fail-over", n)
	}
	if st := c.PipelineStats(); st.Resent != uint64(resent) {
		t.Errorf("PipelineStats %+v, want %d resent", st, resent)
	}
}

func TestPipelinable(t *testing.T) {
	for _, tc := range []struct {
		method, header string
		body           bool
		want           bool
	}{
		{"GET", "", false, true},
		{"HEAD", "", false, true},
		{"GET", "Connection: close", false, false},
		{"GET", "Upgrade: websocket", false, false},
		{"GET", "", true, false},
		{"POST", "", false, false},
		{"OPTIONS", "", false, false},
		{"DELETE", "", false, false},
	} {
		req := fasthttp.AcquireRequest()
		req.Header.SetMethod(tc.method)
		req.SetRequestURI("/")
		if k, v, ok := strings.Cut(tc.header, ": "); ok {
			req.Header.Set(k, v)
		}
		if tc.body {
			req.SetBodyStream(strings.NewReader("x"), 1)
		}
		if got := pipelinable(req); got != tc.want {
			t.Errorf("%s %q body=%v: pipelinable %v, want %v", tc.method, tc.header, tc.body, got, tc.want)
		}
		fasthttp.ReleaseRequest(req)
	}
}
