package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/valyala/fasthttp"
)

// upgradeTransport is an http.RoundTripper that performs upgrades through
// Client.DialUpgrade: coder/websocket's client handshake runs over it and
// then frames messages on the connection DialUpgrade returned, as net/http
// hands a 101's connection over as the response body.
type upgradeTransport struct {
	t testing.TB
	c *Client
}

func (u upgradeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(r.Method)
	req.SetRequestURI(r.URL.RequestURI())
	req.Header.SetHost(r.URL.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	conn, ur, err := u.c.DialUpgrade(r.Context(), req)
	if err != nil {
		return nil, err
	}
	resp := &http.Response{
		Status:     fmt.Sprintf("%d %s", ur.Status, http.StatusText(ur.Status)),
		StatusCode: ur.Status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{},
		Request: r,
	}
	for _, kv := range ur.Header {
		resp.Header.Add(kv[0], kv[1])
	}
	if conn != nil {
		resp.Body = conn.(io.ReadWriteCloser)
	} else {
		resp.Body = io.NopCloser(bytes.NewReader(ur.Body))
	}
	return resp, nil
}

func TestDialUpgradeWebsocket(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://visitor.test/ws", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: upgradeTransport{t, c}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(2 << 20)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for i := range 100 {
		typ := websocket.MessageText
		msg := []byte(fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*37)))
		if i%2 == 1 {
			typ = websocket.MessageBinary
			msg = append(msg, byte(i), 0, 0xff)
		}
		if err := ws.Write(ctx, typ, msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		gotTyp, got, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if gotTyp != typ || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: echoed %v %q, sent %v %q", i, gotTyp, got, typ, msg)
		}
	}
	// A message larger than the hello-world's read buffer chunks.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := ws.Write(ctx, websocket.MessageBinary, big); err != nil {
		t.Fatal(err)
	}
	if _, got, err := ws.Read(ctx); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("1 MiB message: %d bytes, %v", len(got), err)
	}
	if err := ws.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestDialUpgradeRefused(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/hello", 200, "hello world\n"},
		{"/status/404", 404, "status 404\n"},
	} {
		req := fasthttp.AcquireRequest()
		req.SetRequestURI(tc.path)
		req.Header.SetHost("visitor.test")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		conn, ur, err := c.DialUpgrade(t.Context(), req)
		fasthttp.ReleaseRequest(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if conn != nil {
			conn.Close()
			t.Fatalf("%s: a connection for a refused upgrade", tc.path)
		}
		if ur.Status != tc.status || string(ur.Body) != tc.body {
			t.Fatalf("%s: %d %q, want %d %q", tc.path, ur.Status, ur.Body, tc.status, tc.body)
		}
		var ct bool
		for _, kv := range ur.Header {
			ct = ct || kv[0] == "Content-Type"
		}
		if !ct {
			t.Fatalf("%s: headers %v", tc.path, ur.Header)
		}
	}

	// /ws without the websocket headers: coder/websocket refuses with 426.
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/ws")
	_, ur, err := c.DialUpgrade(t.Context(), req)
	if err != nil || ur.Status != http.StatusUpgradeRequired {
		t.Fatalf("/ws without upgrade headers: %v %+v", err, ur)
	}
}

func TestDialUpgradeBoundedBody(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/bytes/1000000")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	_, ur, err := c.DialUpgrade(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if ur.Status != 200 || len(ur.Body) != maxUpgradeBody {
		t.Fatalf("%d, %d body bytes, want %d", ur.Status, len(ur.Body), maxUpgradeBody)
	}
}

func TestDialUpgradeLeftoverAndCancel(t *testing.T) {
	// An origin that sends bytes right behind its 101 head, in the same
	// write: the returned conn yields them first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				n, _ := conn.Read(buf)
				if strings.Contains(string(buf[:n]), "/silent") {
					<-hold
					return
				}
				io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\nConnection: Upgrade\r\n\r\nearly bytes|")
				io.WriteString(conn, "later bytes")
				<-hold
			}()
		}
	}()
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/up")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "x-test")
	conn, ur, err := c.DialUpgrade(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ur.Status != 101 {
		t.Fatalf("status %d", ur.Status)
	}
	got := make([]byte, 0, 64)
	buf := make([]byte, 64)
	for len(got) < len("early bytes|later bytes") {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "early bytes|later bytes" {
		t.Fatalf("read %q", got)
	}
	if _, ok := conn.(interface{ CloseWrite() error }); !ok {
		t.Fatal("no CloseWrite")
	}

	// An origin that never answers: cancelling ctx ends the handshake.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	req.SetRequestURI("/silent")
	start := time.Now()
	_, _, err = c.DialUpgrade(ctx, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}
