package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// bodySizes are the body sizes every method is tried with. 256 MiB is left
// out under -short.
func bodySizes() []int64 {
	sizes := []int64{0, 1 * kib, 1 * mib}
	if !testing.Short() {
		sizes = append(sizes, 256*mib)
	}
	return sizes
}

func sizeName(n int64) string {
	switch {
	case n >= mib:
		return fmt.Sprintf("%dMiB", n/mib)
	case n >= kib:
		return fmt.Sprintf("%dKiB", n/kib)
	}
	return fmt.Sprintf("%dB", n)
}

// helloPattern is the 64 KiB block the hello-world origin's /bytes/N
// repeats (the same xorshift generator).
var helloPattern = sync.OnceValue(func() []byte {
	b := make([]byte, 64*kib)
	x := uint32(0x9e3779b9)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
})

// patternSHA256 is the hex sha256 of the first n bytes of /bytes/N.
func patternSHA256(n int64) string {
	h := sha256.New()
	p := helloPattern()
	for n > 0 {
		k := min(n, int64(len(p)))
		h.Write(p[:k])
		n -= k
	}
	return hex.EncodeToString(h.Sum(nil))
}

// randomBody is a reader of n pseudo-random bytes from seed that hashes
// what it hands out: the body of an upload, generated as it is sent.
type randomBody struct {
	src  io.Reader
	left int64
	h    hash.Hash
}

func newRandomBody(seed uint64, n int64) *randomBody {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &randomBody{src: rand.NewChaCha8(s), left: n, h: sha256.New()}
}

func (r *randomBody) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.src.Read(p)
	r.h.Write(p[:n])
	r.left -= int64(n)
	return n, err
}

// sum is the hex sha256 of what was read.
func (r *randomBody) sum() string { return hex.EncodeToString(r.h.Sum(nil)) }

// hashResult is what the hello-world origin's /sha256 answers.
type hashResult struct {
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// readHash reads a /sha256 answer.
func readHash(t *testing.T, resp *http.Response) hashResult {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200: %q", resp.StatusCode, body)
	}
	var hr hashResult
	if err := json.Unmarshal(body, &hr); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return hr
}

// hashBody reads resp's body to its end and returns its size and sha256.
func hashBody(t *testing.T, resp *http.Response) (int64, string) {
	t.Helper()
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("reading the body after %d bytes: %v", n, err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

// TestHelloPatternMatchesOrigin checks the test's copy of the /bytes
// generator against the origin itself, read directly (not through the
// tunnel), so the downloads below compare against the right hash.
func TestHelloPatternMatchesOrigin(t *testing.T) {
	originURL := startHelloOrigin(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	n := int64(1*mib + 12345)
	resp, err := (&http.Client{Transport: tr}).Get(originURL + "/bytes/" + strconv.FormatInt(n, 10))
	if err != nil {
		t.Fatal(err)
	}
	got, sum := hashBody(t, resp)
	if got != n || sum != patternSHA256(n) {
		t.Fatalf("origin /bytes/%d: %d bytes sha256 %s; the test's generator gives sha256 %s", n, got, sum, patternSHA256(n))
	}
}

// TestDownload fetches /bytes/N through the tunnel (GET) at every size:
// the visitor gets exactly N bytes, with the origin's Content-Length, and
// the sha256 of the origin's pattern.
func TestDownload(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	for _, n := range bodySizes() {
		t.Run(sizeName(n), func(t *testing.T) {
			start := time.Now()
			resp, err := tn.client.Get(tn.url("/bytes/" + strconv.FormatInt(n, 10)))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				resp.Body.Close()
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if resp.ContentLength != n {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, n)
			}
			got, sum := hashBody(t, resp)
			if got != n {
				t.Fatalf("got %d bytes, want %d", got, n)
			}
			if want := patternSHA256(n); sum != want {
				t.Fatalf("sha256 %s, want %s", sum, want)
			}
			t.Logf("%s down in %v", sizeName(n), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestUpload sends random bodies with POST and PUT to /sha256 at every
// size, with a Content-Length: the origin hashes exactly what the visitor
// sent.
func TestUpload(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	seed := uint64(1)
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		for _, n := range bodySizes() {
			seed++
			t.Run(method+"/"+sizeName(n), func(t *testing.T) {
				start := time.Now()
				body := newRandomBody(seed, n)
				req, err := http.NewRequest(method, tn.url("/sha256"), body)
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = n
				if n == 0 {
					req.Body = http.NoBody
				}
				resp, err := tn.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				hr := readHash(t, resp)
				if hr.Bytes != n || hr.SHA256 != body.sum() {
					t.Fatalf("origin got %d bytes sha256 %s; sent %d bytes sha256 %s", hr.Bytes, hr.SHA256, n, body.sum())
				}
				t.Logf("%s %s up in %v", method, sizeName(n), time.Since(start).Round(time.Millisecond))
			})
		}
	}
}

// TestEchoRoundTrip sends 1 MiB to /echo with POST and PUT: the body comes
// back byte for byte while it is still being sent.
func TestEchoRoundTrip(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	for i, method := range []string{http.MethodPost, http.MethodPut} {
		t.Run(method, func(t *testing.T) {
			const n = 1 * mib
			body := newRandomBody(uint64(100+i), n)
			req, err := http.NewRequest(method, tn.url("/echo"), body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = n
			req.Header.Set("Content-Type", "application/x-e2e")
			resp, err := tn.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				resp.Body.Close()
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("X-Echo-Method"); got != method {
				t.Errorf("X-Echo-Method %q, want %q", got, method)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/x-e2e" {
				t.Errorf("Content-Type %q, want application/x-e2e", got)
			}
			got, sum := hashBody(t, resp)
			if got != n || sum != body.sum() {
				t.Fatalf("echo: %d bytes sha256 %s; sent %d bytes sha256 %s", got, sum, n, body.sum())
			}
		})
	}
}

// TestChunkedUpload sends bodies of unknown length (Transfer-Encoding:
// chunked, written piecewise into an io.Pipe) to /sha256 and /echo: they
// arrive whole.
func TestChunkedUpload(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	// An upload with a Content-Length goes first: the connector's pooled
	// request headers must not carry a length over to the chunked ones.
	for i := range 4 {
		body := newRandomBody(uint64(300+i), 1*kib)
		req, err := http.NewRequest(http.MethodPost, tn.url("/sha256"), body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 1 * kib
		resp, err := tn.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if hr := readHash(t, resp); hr.SHA256 != body.sum() {
			t.Fatalf("a 1 KiB upload arrived as %d bytes sha256 %s", hr.Bytes, hr.SHA256)
		}
	}
	for i, path := range []string{"/sha256", "/echo"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			pr, pw := io.Pipe()
			src := newRandomBody(uint64(200+i), 3*mib+777)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			wrote := make(chan error, 1)
			go func() {
				buf := make([]byte, 64*kib)
				for {
					k, err := src.Read(buf[:1+rng.IntN(len(buf))])
					if k > 0 {
						if _, werr := pw.Write(buf[:k]); werr != nil {
							wrote <- werr
							return
						}
					}
					if err == io.EOF {
						wrote <- pw.Close()
						return
					}
					if err != nil {
						pw.CloseWithError(err)
						wrote <- err
						return
					}
				}
			}()
			req, err := http.NewRequest(http.MethodPost, tn.url(path), pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1 // unknown: chunked
			resp, err := tn.client.Do(req)
			if err != nil {
				pr.CloseWithError(err)
				<-wrote
				t.Fatal(err)
			}
			var gotN int64
			var gotSum string
			if path == "/sha256" {
				hr := readHash(t, resp)
				gotN, gotSum = hr.Bytes, hr.SHA256
			} else {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				gotN, gotSum = hashBody(t, resp)
			}
			if err := <-wrote; err != nil {
				t.Fatalf("writing the upload: %v", err)
			}
			want := int64(3*mib + 777)
			if gotN != want || gotSum != src.sum() {
				t.Fatalf("got %d bytes sha256 %s; sent %d bytes sha256 %s", gotN, gotSum, want, src.sum())
			}
		})
	}
}

// TestServerSentEvents reads /sse?n=3&interval=1s: each event reaches the
// visitor as the origin sends it, not when the response ends.
func TestServerSentEvents(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	start := time.Now()
	resp, err := tn.client.Get(tn.url("/sse?n=3&interval=1s"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	br := bufio.NewReader(resp.Body)
	var arrivals []time.Duration
	for i := 0; ; i++ {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			break
		}
		if err != nil {
			t.Fatalf("reading event %d: %v", len(arrivals), err)
		}
		if line == "\n" {
			continue
		}
		want := fmt.Sprintf("data: %d ", len(arrivals))
		if !strings.HasPrefix(line, want) {
			t.Fatalf("line %q, want an event starting %q", line, want)
		}
		arrivals = append(arrivals, time.Since(start))
	}
	total := time.Since(start)
	if len(arrivals) != 3 {
		t.Fatalf("%d events, want 3", len(arrivals))
	}
	t.Logf("events at %v, end at %v", arrivals, total)
	if arrivals[0] >= 700*time.Millisecond {
		t.Errorf("the first event arrived %v after the request, want < 700ms: the stream was buffered", arrivals[0])
	}
	if total < 2*time.Second {
		t.Errorf("the response ended %v after the request, want >= 2s (3 events 1s apart)", total)
	}
	if arrivals[1]-arrivals[0] < 500*time.Millisecond {
		t.Errorf("events 0 and 1 arrived %v apart, want about 1s", arrivals[1]-arrivals[0])
	}
}

// TestHeadKeepsContentLength: a HEAD answer through the tunnel has no body
// but keeps the origin's Content-Length.
func TestHeadKeepsContentLength(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	resp, err := tn.client.Head(tn.url("/bytes/1000"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 1000 {
		t.Fatalf("HEAD /bytes/1000: status %d, Content-Length %d; want 200 and 1000", resp.StatusCode, resp.ContentLength)
	}
	// The connection is still usable: no body bytes were left on it.
	get, err := tn.client.Get(tn.url("/hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(b) != "hello world\n" {
		t.Fatalf("GET after HEAD: %q", b)
	}
}

// rawOrigin answers every request on its connections with answer(path),
// written as given (headers and body bytes, pauses between the parts),
// then closes the connection if close is set.
func rawOrigin(t *testing.T, answer func(path string) (parts []string, pause time.Duration, close bool)) string {
	t.Helper()
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					parts, pause, close := answer(req.URL.Path)
					for i, p := range parts {
						if i > 0 {
							time.Sleep(pause)
						}
						if _, err := io.WriteString(c, p); err != nil {
							return
						}
					}
					if close {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A small body with a Content-Length is read whole before the response
// goes down the tunnel: one that arrives late still arrives whole, and one
// the origin cuts short becomes the edge's 502, not a 200 with half a body.
func TestSmallBodyLateOrCut(t *testing.T) {
	originURL := rawOrigin(t, func(path string) ([]string, time.Duration, bool) {
		switch path {
		case "/late":
			return []string{"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\n", "hello", " world"}, 200 * time.Millisecond, false
		default: // "/cut"
			return []string{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", 50)}, 0, true
		}
	})
	tn := startTunnel(t, connOptions{originURL: originURL})
	resp, err := tn.client.Get(tn.url("/late"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "hello world" {
		t.Fatalf("/late: %d %q %v", resp.StatusCode, body, err)
	}
	before := tn.conn.scrape().get("culvert_connector_errors_total", "kind", "origin_error")
	resp, err = tn.client.Get(tn.url("/cut"))
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 502, "")
	expectCounterMoves(t, "connector", tn.conn.scrape, before, 1, "culvert_connector_errors_total", "kind", "origin_error")
}
