package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
)

func sniffTestListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func sniffDial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptResult is one return of Accept.
type acceptResult struct {
	c   net.Conn
	err error
}

func acceptAsync(ln net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// waitClosedByPeer fails unless the peer closes c within d.
func waitClosedByPeer(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("read data, want the connection closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

// settleGoroutines fails unless the goroutine count drops to before.
func settleGoroutines(t *testing.T, before int) {
	t.Helper()
	settle(t, func() (int, int) { return runtime.NumGoroutine(), before })
}

// settleSniffGoroutines fails unless no goroutine runs the sniffing
// listener's code (for tests where libraries keep goroutines of their own,
// like fasthttp's clock).
func settleSniffGoroutines(t *testing.T) {
	t.Helper()
	settle(t, func() (int, int) {
		n := 0
		for g := range strings.SplitSeq(allStacks(), "\n\n") {
			if strings.Contains(g, "edge.(*sniffListener)") || strings.Contains(g, "edge.newSniffListener") {
				n++
			}
		}
		return n, 0
	})
}

func settle(t *testing.T, count func() (n, want int)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, want := count()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, want %d:\n%s", n, want, allStacks())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestSniffHTTP1AndH2OnOnePort(t *testing.T) {
	func() {
		ln := sniffTestListener(t)
		h2srv := &http2.Server{}
		var h2conns sync.WaitGroup
		h2handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "h2 "+r.Proto+" "+r.URL.Path)
		})
		sl := sniffH2C(ln, 5*time.Second, func(c net.Conn) {
			h2conns.Add(1)
			defer h2conns.Done()
			h2srv.ServeConn(c, &http2.ServeConnOpts{Handler: h2handler})
		})
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.WriteString("h1 " + string(ctx.Request.Header.Protocol()) + " " + string(ctx.Path()))
		}}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(sl) }()
		url := "http://" + ln.Addr().String()

		h1 := &http.Client{Transport: &http.Transport{}}
		h2 := &http.Client{Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		}}
		get := func(c *http.Client, path, want string) {
			t.Helper()
			resp, err := c.Get(url + path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != want {
				t.Fatalf("GET %s: %q, want %q", path, body, want)
			}
		}
		for range 3 {
			get(h1, "/one", "h1 HTTP/1.1 /one")
			get(h2, "/two", "h2 HTTP/2.0 /two")
		}

		h1.CloseIdleConnections()
		h2.CloseIdleConnections()
		if err := srv.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		h2conns.Wait()
	}()
	settleSniffGoroutines(t)
}

func TestSniffDecidesHTTP1AtOnce(t *testing.T) {
	ln := sniffTestListener(t)
	const timeout = 500 * time.Millisecond
	sl := sniffH2C(ln, timeout, func(c net.Conn) { t.Error("HTTP/1 request handed to onH2"); c.Close() })
	defer sl.Close()
	if sl.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr %v, want %v", sl.Addr(), ln.Addr())
	}
	cli := sniffDial(t, ln.Addr())
	req := "GET / HTTP/1.0\r\n\r\n"
	start := time.Now()
	accepted := acceptAsync(sl)
	if _, err := io.WriteString(cli, req); err != nil {
		t.Fatal(err)
	}
	var r acceptResult
	select {
	case r = <-accepted:
	case <-time.After(timeout / 2):
		t.Fatal("an 18-byte HTTP/1.0 request is not decided at once")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	t.Logf("decided in %v", time.Since(start))
	if r.c.RemoteAddr().String() != cli.LocalAddr().String() || r.c.LocalAddr().String() != cli.RemoteAddr().String() {
		t.Errorf("addresses %v -> %v, want %v -> %v", r.c.RemoteAddr(), r.c.LocalAddr(), cli.LocalAddr(), cli.RemoteAddr())
	}
	nc, ok := r.c.(interface{ NetConn() net.Conn })
	if !ok {
		t.Fatalf("%T has no NetConn", r.c)
	}
	if _, ok := nc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn is a %T, not a *net.TCPConn", nc.NetConn())
	}
	got := make([]byte, len(req))
	if _, err := io.ReadFull(r.c, got); err != nil || string(got) != req {
		t.Fatalf("read %q, %v; want the request replayed", got, err)
	}
	// The sniffing deadline is gone: bytes sent after it still arrive.
	time.Sleep(timeout + 100*time.Millisecond)
	if _, err := io.WriteString(cli, "more"); err != nil {
		t.Fatal(err)
	}
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second)) // deadlines pass through
	got = make([]byte, 4)
	if _, err := io.ReadFull(r.c, got); err != nil || string(got) != "more" {
		t.Fatalf("read %q, %v after the sniffing timeout", got, err)
	}
}

func TestSniffSilentTimesOut(t *testing.T) {
	ln := sniffTestListener(t)
	const timeout = time.Second
	sl := sniffH2C(ln, timeout, func(c net.Conn) { t.Error("onH2 called"); c.Close() })
	defer sl.Close()
	silent := sniffDial(t, ln.Addr())
	partial := sniffDial(t, ln.Addr())
	io.WriteString(partial, h2Preface[:5]) // could still be HTTP/2
	time.Sleep(50 * time.Millisecond)

	// Others proceed while those two wait.
	for i := range 3 {
		c := sniffDial(t, ln.Addr())
		io.WriteString(c, "POST / HTTP/1.1\r\n")
		start := time.Now()
		r := <-acceptAsync(sl)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if d := time.Since(start); d > timeout/2 {
			t.Errorf("request %d accepted after %v", i, d)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(r.c, got); err != nil || string(got) != "POST" {
			t.Errorf("read %q, %v", got, err)
		}
		r.c.Close()
	}
	waitClosedByPeer(t, silent, 5*time.Second)
	waitClosedByPeer(t, partial, 5*time.Second)
}

func TestSniffSlowPrefaceReachesH2(t *testing.T) {
	ln := sniffTestListener(t)
	got := make(chan string, 1)
	sl := sniffH2C(ln, 5*time.Second, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, len(h2Preface)+5)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.ReadFull(c, buf)
		if err != nil {
			t.Error(err)
		}
		got <- string(buf[:n])
	})
	defer sl.Close()
	accepted := acceptAsync(sl)
	cli := sniffDial(t, ln.Addr())
	for i := range len(h2Preface) {
		if _, err := cli.Write([]byte{h2Preface[i]}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	io.WriteString(cli, "hello")
	select {
	case s := <-got:
		if s != h2Preface+"hello" {
			t.Fatalf("onH2 read %q", s)
		}
	case r := <-accepted:
		t.Fatalf("the preface went to Accept: %v, %v", r.c, r.err)
	case <-time.After(5 * time.Second):
		t.Fatal("onH2 not called")
	}
}

func TestSniffCloseUnblocksAccept(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ln := sniffTestListener(t)
		sl := newSniffListener(ln, time.Minute, func(c net.Conn) { c.Close() }, maxSniffing)
		accepted := acceptAsync(sl)
		silent := sniffDial(t, ln.Addr())
		waitSniffing(t, sl, 1)
		if err := sl.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-accepted:
			if !errors.Is(r.err, net.ErrClosed) {
				t.Fatalf("Accept after Close: %v, %v", r.c, r.err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Close did not unblock Accept")
		}
		waitClosedByPeer(t, silent, 2*time.Second)
		if _, err := sl.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Accept: %v", err)
		}
		silent.Close()
	}()
	settleGoroutines(t, before)
}

func TestSniffListenerClosedUnderneath(t *testing.T) {
	ln := sniffTestListener(t)
	sl := sniffH2C(ln, time.Minute, func(c net.Conn) { c.Close() })
	defer sl.Close()
	accepted := acceptAsync(sl)
	ln.Close()
	select {
	case r := <-accepted:
		if r.err == nil {
			t.Fatal("Accept returned a connection")
		}
		if !strings.Contains(r.err.Error(), "use of closed network connection") {
			t.Errorf("Accept: %v (fasthttp expects a closed-listener error)", r.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("closing the wrapped listener did not unblock Accept")
	}
}

// waitSniffing waits until n connections are being sniffed.
func waitSniffing(t *testing.T, l *sniffListener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		got := l.active
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections being sniffed, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSniffBound(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ln := sniffTestListener(t)
		sl := newSniffListener(ln, time.Minute, func(c net.Conn) { c.Close() }, 2)
		defer sl.Close()
		a := sniffDial(t, ln.Addr())
		sniffDial(t, ln.Addr())
		waitSniffing(t, sl, 2)
		over := sniffDial(t, ln.Addr())
		waitClosedByPeer(t, over, 2*time.Second)

		// A slot freed, a new connection is sniffed again.
		a.Close()
		waitSniffing(t, sl, 1)
		c := sniffDial(t, ln.Addr())
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		r := <-acceptAsync(sl)
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.c.Close()
	}()
	settleGoroutines(t, before)
}
