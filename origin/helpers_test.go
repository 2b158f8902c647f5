package origin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// serveOn serves h on ln until the test ends.
func serveOn(t testing.TB, ln net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// startHello runs the hello-world origin on loopback TCP until the test
// ends and returns its URL and listener.
func startHello(t testing.TB) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHelloWorld(ctx, cl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeHelloWorld: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), cl
}

// startHelloUnix runs the hello-world origin on a unix socket.
func startHelloUnix(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "origin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHelloWorld(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return path
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// result is a response read whole.
type result struct {
	status int
	header map[string]string
	body   []byte
	stream bool // the body came through BodyStream
}

// do sends method path to c with Host visitor.test and reads the answer.
func do(t testing.TB, c *Client, method, path string, body io.Reader, size int) (result, error) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.SetHost("visitor.test")
	if body != nil {
		req.SetBodyStream(body, size)
	}
	if err := c.Do(req, resp); err != nil {
		return result{}, err
	}
	r := result{status: resp.StatusCode(), header: map[string]string{}}
	for k, v := range resp.Header.All() {
		r.header[string(k)] = string(v)
	}
	if bs := resp.BodyStream(); bs != nil {
		r.stream = true
		b, err := io.ReadAll(bs)
		if err != nil {
			return r, err
		}
		r.body = b
	} else {
		r.body = append([]byte(nil), resp.Body()...)
	}
	return r, nil
}

func mustDo(t testing.TB, c *Client, method, path string) result {
	t.Helper()
	r, err := do(t, c, method, path, nil, 0)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// patternSHA returns the hex sha256 of the first n bytes of the /bytes pattern.
func patternSHA(n int64) string {
	h := sha256.New()
	copyPattern(h, n)
	return hex.EncodeToString(h.Sum(nil))
}

func copyPattern(w io.Writer, n int64) error {
	b := patternBlock()
	for n > 0 {
		k := min(n, int64(len(b)))
		if _, err := w.Write(b[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// patternReader yields the /bytes pattern, n bytes of it.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	b := patternBlock()
	i := int(r.off % int64(len(b)))
	k := copy(p[:min(int64(len(p)), r.n-r.off)], b[i:])
	r.off += int64(k)
	return k, nil
}

// within fails the test if f does not return within d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not done within %v", what, d)
	}
}
