package dataplane

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames/hpack"
	"golang.org/x/net/http2"
)

// testApp is the handler the interop tests run behind our server role:
//
//	GET  /bytes/N   N bytes of a fixed pattern
//	POST /sha       the request body's length and sha256, as "len hex"
//	POST /echo      the request body streamed back, with a trailer
//	GET  /hang      headers, then waits for the stream to be reset
func testApp(s *Stream) {
	h := s.Headers()
	path := string(h.Get(":path"))
	switch {
	case strings.HasPrefix(path, "/bytes/"):
		n, _ := strconv.Atoi(path[len("/bytes/"):])
		s.WriteHeaders(fields(":status", "200", "content-length", strconv.Itoa(n)), n == 0)
		writePattern(s, n)
	case path == "/sha":
		sum := sha256.New()
		n, err := io.Copy(sum, s)
		if err != nil {
			return
		}
		body := fmt.Sprintf("%d %x", n, sum.Sum(nil))
		s.WriteHeaders(fields(":status", "200"), false)
		s.Write([]byte(body))
	case path == "/echo":
		s.WriteHeaders(fields(":status", "200"), false)
		sum := sha256.New()
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			sum.Write(buf[:n])
			if n > 0 {
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		s.WriteTrailers(fields("x-sha256", hex.EncodeToString(sum.Sum(nil))))
	case path == "/hang":
		s.WriteHeaders(fields(":status", "200"), false)
		s.Write([]byte("started"))
		io.Copy(io.Discard, s)
	default:
		s.WriteHeaders(fields(":status", "404"), true)
	}
}

func fields(kv ...string) []hpack.HeaderField {
	var out []hpack.HeaderField
	for i := 0; i < len(kv); i += 2 {
		out = append(out, hpack.HeaderField{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return out
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

var pat1M = pattern(1 << 20)

func writePattern(w io.Writer, n int) error {
	for n > 0 {
		m := min(n, len(pat1M))
		if _, err := w.Write(pat1M[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

func patternSum(n int) string {
	h := sha256.New()
	writePattern(h, n)
	return hex.EncodeToString(h.Sum(nil))
}

// startServer serves our server role on a loopback listener.
func startServer(t testing.TB, cfg *Config) (addr string, conns chan *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = make(chan *Conn, 1000)
	var wg sync.WaitGroup
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := NewServerConn(nc, cfg)
			select {
			case conns <- c:
			default:
			}
			wg.Add(1)
			go func() { defer wg.Done(); c.Serve() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), conns
}

// xnetClient is x/net's HTTP/2 Transport speaking h2c to addr.
func xnetClient(addr string) *http.Client {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 120 * time.Second}
}

// startXnetServer serves x/net's http2.Server (h2c) with handler h.
func startXnetServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http2.Server{}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(nc, &http2.ServeConnOpts{Handler: h})
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// dialClient opens our client role to addr.
func dialClient(t testing.TB, addr string, cfg *Config) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClientConn(nc, cfg)
	t.Cleanup(func() { c.Close() })
	return c
}
