package dataplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

// x/net's Transport → our server role: Shutdown while a large response is in
// flight. The in-flight stream completes intact, the connection goes away,
// and x/net opens a new connection for the next request.
func TestInterop_XnetClient_GoAwayMidFlight(t *testing.T) {
	addr, conns := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	cl := xnetClient(addr)
	const size = 32 << 20
	resp, err := cl.Get(fmt.Sprintf("http://%s/bytes/%d", addr, size))
	if err != nil {
		t.Fatal(err)
	}
	first := <-conns
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- first.Shutdown(ctx)
	}()
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(rest)+len(buf) != size {
		t.Fatalf("in-flight response after GOAWAY: %d bytes, %v", len(rest)+len(buf), err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The next request gets a new connection.
	r2, err := cl.Get("http://" + addr + "/bytes/100")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if len(b) != 100 {
		t.Fatalf("after GOAWAY: %d bytes", len(b))
	}
	select {
	case second := <-conns:
		if second == first {
			t.Fatal("same connection after GOAWAY")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no new connection after GOAWAY")
	}
}

// our client role → x/net's server (TLS, http.Server with HTTP/2): a
// graceful server shutdown while our stream is in flight. The stream
// completes; the connection then refuses new streams.
func TestInterop_XnetServer_GoAwayMidFlight(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first half,"))
		w.(http.Flusher).Flush()
		<-release
		w.Write([]byte("second half"))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	nc, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if nc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN: %q", nc.ConnectionState().NegotiatedProtocol)
	}
	c := NewClientConn(nc, nil)
	defer c.Close()
	s, err := c.OpenStream(t.Context(), fields(":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadHeaders(t.Context()); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("first half,"))
	if _, err := io.ReadFull(s, head); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Config.Shutdown(context.Background()) }()
	waitFor(t, "GOAWAY received", func() bool { return !c.CanTakeNewStreams() })
	if _, err := c.OpenStream(t.Context(), fields(":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/"), true); err != ErrNoNewStreams {
		t.Fatalf("new stream after GOAWAY: %v", err)
	}
	close(release)
	rest, err := io.ReadAll(s)
	if err != nil || string(head)+string(rest) != "first half,second half" {
		t.Fatalf("in-flight stream after GOAWAY: %q, %v", string(head)+string(rest), err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// our client role → x/net's server: our RST_STREAM mid-body; the
// connection goes on serving.
func TestInterop_XnetServer_ResetMidBody(t *testing.T) {
	c := dialClient(t, startXnetServer(t, http.HandlerFunc(xnetApp)), nil)
	s, err := c.OpenStream(t.Context(), fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/bytes/67108864"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadHeaders(t.Context()); err != nil {
		t.Fatal(err)
	}
	io.ReadFull(s, make([]byte, 100000))
	s.Reset(0x8) // CANCEL
	if _, err := s.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after reset succeeded")
	}
	st, b, _ := roundTrip(t, c, "GET", "/bytes/1000", nil, nil)
	if st != "200" || len(b) != 1000 {
		t.Fatalf("after reset: %s, %d bytes", st, len(b))
	}
}

// slowConn reads its socket slowly: small reads with a pause before each,
// so bytes wait in the kernel's buffers, as they do under a loaded client.
type slowConn struct {
	net.Conn
	pause time.Duration
}

func (c slowConn) Read(p []byte) (int, error) {
	time.Sleep(c.pause)
	return c.Conn.Read(p[:min(len(p), 32<<10)])
}

// A graceful shutdown whose last response is still in the slow client's
// socket buffers: the connection must not be closed under the client (a
// TCP reset provoked by its later WINDOW_UPDATEs destroys what it has not
// read yet). The close lingers until the client closes its side.
func TestShutdownSlowReaderGetsEverything(t *testing.T) {
	addr, conns := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClientConn(slowConn{nc, 20 * time.Millisecond}, &Config{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const size = 8 << 20
	s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", fmt.Sprintf("/bytes/%d", size)), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadHeaders(ctx); err != nil {
		t.Fatal(err)
	}
	first := <-conns
	go first.Shutdown(context.Background())
	n, err := io.Copy(io.Discard, s)
	if err != nil || n != size {
		t.Fatalf("got %d of %d bytes: %v", n, size, err)
	}
}

// A graceful shutdown is two GOAWAY frames (RFC 9113 §6.8): the first
// names the largest stream id and is followed by a PING; a request the
// client sent before it saw that GOAWAY is still served, and the second
// GOAWAY, sent when the PING comes back, names it as the last stream.
func TestShutdownTwoPhaseGoAway(t *testing.T) {
	srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
	p := dialPeer(t, srv.addr, peerOpts{})
	c := srv.conn(t)
	p.request(1, true, "GET", "/")
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	p.expectHeaders(1, 5*time.Second)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- c.Shutdown(ctx)
	}()
	if f := p.expectGoAway(frames.ErrCodeNo, 5*time.Second); f.LastID != 1<<31-1 {
		t.Fatalf("first GOAWAY: %v, want last=%d", f, 1<<31-1)
	}
	var ping [8]byte
	for {
		f, err := p.next(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for the PING after GOAWAY: %v", err)
		}
		if f.Type == frames.FramePing && f.Flags&frames.FlagPingAck == 0 {
			ping = f.Ping
			break
		}
	}
	// A request that crossed the GOAWAY on the wire, then the PING's ACK.
	p.request(3, true, "GET", "/")
	p.fw.WritePing(true, ping)
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	var gotHeaders, gotGoAway bool
	for !gotHeaders || !gotGoAway {
		f, err := p.next(5 * time.Second)
		if err != nil {
			t.Fatalf("headers=%v goaway=%v: %v", gotHeaders, gotGoAway, err)
		}
		switch {
		case f.Type == frames.FrameHeaders && f.StreamID == 3:
			gotHeaders = true
		case f.Type == frames.FrameRSTStream && f.StreamID == 3:
			t.Fatalf("stream 3 refused: %v", f)
		case f.Type == frames.FrameGoAway:
			if f.LastID != 3 || f.Code != frames.ErrCodeNo {
				t.Fatalf("second GOAWAY: %v, want NO_ERROR last=3", f)
			}
			gotGoAway = true
		}
	}
	// A stream after the second GOAWAY is ignored, and the connection ends
	// once stream 3 is done.
	p.request(5, true, "GET", "/")
	p.flush()
	p.expectClosed(5 * time.Second)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Without the PING's ACK the second GOAWAY follows after a bounded wait.
func TestShutdownGoAwayWithoutPingAck(t *testing.T) {
	srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
	p := dialPeer(t, srv.addr, peerOpts{})
	c := srv.conn(t)
	go c.Shutdown(context.Background())
	if f := p.expectGoAway(frames.ErrCodeNo, 5*time.Second); f.LastID != 1<<31-1 {
		t.Fatalf("first GOAWAY: %v", f)
	}
	start := time.Now()
	if f := p.expectGoAway(frames.ErrCodeNo, 5*time.Second); f.LastID != 0 {
		t.Fatalf("second GOAWAY: %v, want last=0", f)
	}
	if d := time.Since(start); d < shutdownPingWait/2 {
		t.Fatalf("second GOAWAY after %v, before the PING wait", d)
	}
	p.expectClosed(5 * time.Second)
}
