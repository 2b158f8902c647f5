package dataplane

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

var bodySizes = []int{0, 1, 1 << 10, 16384, 16385, 1 << 20, 64 << 20}

// x/net's Transport → our server role.
func TestInterop_XnetClient_GET(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	cl := xnetClient(addr)
	for _, n := range bodySizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			resp, err := cl.Get(fmt.Sprintf("http://%s/bytes/%d", addr, n))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			got, err := io.Copy(h, resp.Body)
			if err != nil || got != int64(n) || hex.EncodeToString(h.Sum(nil)) != patternSum(n) {
				t.Fatalf("got %d bytes, err %v; sha mismatch or short", got, err)
			}
		})
	}
}

func TestInterop_XnetClient_POST(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	cl := xnetClient(addr)
	for _, n := range bodySizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writePattern(pw, n)) }()
			resp, err := cl.Post("http://"+addr+"/sha", "application/octet-stream", pr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("%d %s", n, patternSum(n)); string(b) != want {
				t.Fatalf("server saw %q, want %q", b, want)
			}
		})
	}
}

func TestInterop_XnetClient_EchoTrailers(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	cl := xnetClient(addr)
	body := pattern(3<<20 + 17)
	resp, err := cl.Post("http://"+addr+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("echo: %d bytes, err %v", len(got), err)
	}
	sum := sha256.Sum256(body)
	if tr := resp.Trailer.Get("X-Sha256"); tr != hex.EncodeToString(sum[:]) {
		t.Fatalf("trailer %q", tr)
	}
}

func TestInterop_XnetClient_1000Concurrent(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	cl := xnetClient(addr)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := i * 37 % 5000
			resp, err := cl.Get(fmt.Sprintf("http://%s/bytes/%d", addr, n))
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(b, pat1M[:n]) {
				errs <- fmt.Errorf("stream %d: %d bytes, %v", i, len(b), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestInterop_XnetClient_CancelMidBody(t *testing.T) {
	addr, conns := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	cl := xnetClient(addr)
	resp, err := cl.Get("http://" + addr + "/bytes/" + fmt.Sprint(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100000)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close() // x/net resets the stream with CANCEL
	c := <-conns
	waitFor(t, "stream gone after RST_STREAM", func() bool { return c.ActiveStreams() == 0 })
	// The connection still serves.
	r2, err := cl.Get("http://" + addr + "/bytes/10")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	if len(b) != 10 || c.Stats().PeerResets != 1 {
		t.Fatalf("after reset: %d bytes, %d peer resets", len(b), c.Stats().PeerResets)
	}
}

// our client role → x/net's server.
func xnetApp(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/bytes/"):
		var n int
		fmt.Sscan(r.URL.Path[len("/bytes/"):], &n)
		writePattern(w, n)
	case r.URL.Path == "/sha":
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	case r.URL.Path == "/trailers":
		w.Header().Set("Trailer", "X-Sum")
		io.Copy(w, r.Body)
		w.Header().Set("X-Sum", "done:"+r.Trailer.Get("X-Req"))
	}
}

// roundTrip sends a request on our client role and returns the response
// status, body and trailers.
func roundTrip(t testing.TB, c *Conn, method, path string, body []byte, trailers []string) (string, []byte, *HeaderList) {
	t.Helper()
	ctx := t.Context()
	hdr := fields(":method", method, ":scheme", "http", ":authority", "test", ":path", path)
	if trailers != nil {
		hdr = append(hdr, fields("trailer", trailers[0])...)
	}
	s, err := c.OpenStream(ctx, hdr, body == nil && trailers == nil)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if body == nil && trailers == nil {
			return
		}
		if _, werr = s.Write(body); werr != nil {
			return
		}
		if trailers != nil {
			werr = s.WriteTrailers(fields(trailers...))
		} else {
			werr = s.CloseWrite()
		}
	}()
	h, err := s.ReadHeaders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if werr != nil {
		t.Fatal(werr)
	}
	return string(h.Get(":status")), got, s.Trailers()
}

func TestInterop_XnetServer_GET(t *testing.T) {
	c := dialClient(t, startXnetServer(t, http.HandlerFunc(xnetApp)), nil)
	for _, n := range bodySizes {
		st, b, _ := roundTrip(t, c, "GET", fmt.Sprintf("/bytes/%d", n), nil, nil)
		if st != "200" || len(b) != n || !bytes.Equal(b, pattern(n)) {
			t.Fatalf("GET %d: status %s, %d bytes", n, st, len(b))
		}
	}
}

func TestInterop_XnetServer_POST(t *testing.T) {
	c := dialClient(t, startXnetServer(t, http.HandlerFunc(xnetApp)), nil)
	for _, n := range bodySizes {
		st, b, _ := roundTrip(t, c, "POST", "/sha", pattern(n), nil)
		if want := fmt.Sprintf("%d %s", n, patternSum(n)); st != "200" || string(b) != want {
			t.Fatalf("POST %d: status %s, server saw %q", n, st, b)
		}
	}
}

func TestInterop_XnetServer_Trailers(t *testing.T) {
	c := dialClient(t, startXnetServer(t, http.HandlerFunc(xnetApp)), nil)
	st, b, tr := roundTrip(t, c, "POST", "/trailers", []byte("payload"), []string{"x-req", "abc"})
	if st != "200" || string(b) != "payload" || string(tr.Get("x-sum")) != "done:abc" {
		t.Fatalf("status %s body %q trailer %q", st, b, tr.Get("x-sum"))
	}
}

func TestInterop_XnetServer_1000Concurrent(t *testing.T) {
	c := dialClient(t, startXnetServer(t, http.HandlerFunc(xnetApp)), nil)
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := i * 37 % 5000
			st, b, _ := roundTrip(t, c, "GET", fmt.Sprintf("/bytes/%d", n), nil, nil)
			if st != "200" || !bytes.Equal(b, pat1M[:n]) {
				t.Errorf("stream %d: %s %d bytes", i, st, len(b))
			}
		}()
	}
	wg.Wait()
}
