package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"golang.org/x/net/http2"
)

// Engine benchmarks: a client and a server of the same implementation over
// a loopback TCP connection, in one process.
//
//	RoundTrip1    one request at a time: GET, 64-byte response body
//	RoundTrip100  100 requests in flight on the connection at all times
//	Bulk1M        one request at a time, 1 MiB response body (SetBytes)
//	Bulk1M/tcpcopy the same bytes over a bare TCP connection: the floor

const smallBody = 64

var (
	small = bytes.Repeat([]byte("s"), smallBody)
	bulk  = bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16)
)

func hf(kv ...string) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out = append(out, hpack.HeaderField{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return out
}

var (
	respSmall = hf(":status", "200", "content-type", "text/plain", "content-length", "64")
	respBulk  = hf(":status", "200", "content-type", "application/octet-stream", "content-length", "1048576")
	reqSmall  = hf(":method", "GET", ":scheme", "http", ":authority", "bench.test", ":path", "/small")
	reqBulk   = hf(":method", "GET", ":scheme", "http", ":authority", "bench.test", ":path", "/bulk")
)

func culvertHandler(s *dataplane.Stream) {
	if string(s.Headers().Get(":path")) == "/bulk" {
		s.WriteHeaders(respBulk, false)
		for off := 0; off < len(bulk); off += 64 << 10 {
			if _, err := s.Write(bulk[off : off+64<<10]); err != nil {
				return
			}
		}
	} else {
		s.WriteHeaders(respSmall, false)
		s.Write(small)
	}
	s.CloseWrite()
}

func loopbackPair(b *testing.B) (client, server net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return client, <-acc
}

// culvertPair returns our client role connected to our server role.
func culvertPair(b *testing.B) *dataplane.Conn {
	cc, sc := loopbackPair(b)
	srv := dataplane.NewServerConn(sc, &dataplane.Config{Handler: dataplane.HandlerFunc(culvertHandler), MaxConcurrentStreams: 1000})
	go srv.Serve()
	cl := dataplane.NewClientConn(cc, nil)
	b.Cleanup(func() { cl.Close(); srv.Close() })
	return cl
}

// culvertGet does one request and reads the whole response into buf.
func culvertGet(b *testing.B, c *dataplane.Conn, req []hpack.HeaderField, buf []byte) int {
	ctx := context.Background()
	s, err := c.OpenStream(ctx, req, true)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.ReadHeaders(ctx); err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		m, err := s.Read(buf)
		n += m
		if err == io.EOF {
			s.Release()
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func xnetHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/bulk" {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "1048576")
		for off := 0; off < len(bulk); off += 64 << 10 {
			w.Write(bulk[off : off+64<<10])
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", "64")
	w.Write(small)
}

// xnetPair returns an x/net ClientConn connected to an x/net Server.
func xnetPair(b *testing.B) *http2.ClientConn {
	cc, sc := loopbackPair(b)
	srv := &http2.Server{MaxConcurrentStreams: 1000}
	go srv.ServeConn(sc, &http2.ServeConnOpts{Handler: http.HandlerFunc(xnetHandler)})
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
		return nil, io.EOF
	}}
	cl, err := tr.NewClientConn(cc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close(); sc.Close() })
	return cl
}

func xnetGet(b *testing.B, c *http2.ClientConn, path string, buf []byte) int {
	req, _ := http.NewRequest("GET", "http://bench.test"+path, nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		m, err := resp.Body.Read(buf)
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	resp.Body.Close()
	return n
}

func BenchmarkEngine(b *testing.B) {
	b.Run("RoundTrip1/culvert", func(b *testing.B) {
		c := culvertPair(b)
		buf := make([]byte, 4096)
		b.ReportAllocs()
		b.SetBytes(smallBody)
		for b.Loop() {
			if culvertGet(b, c, reqSmall, buf) != smallBody {
				b.Fatal("short body")
			}
		}
	})
	b.Run("RoundTrip1/xnet", func(b *testing.B) {
		c := xnetPair(b)
		buf := make([]byte, 4096)
		b.ReportAllocs()
		b.SetBytes(smallBody)
		for b.Loop() {
			if xnetGet(b, c, "/small", buf) != smallBody {
				b.Fatal("short body")
			}
		}
	})
	// RoundTrip100: 100 goroutines (parallelism 50 x GOMAXPROCS 2) share
	// one connection, so about 100 streams are in flight at any time.
	roundTrip100 := func(b *testing.B, get func(buf []byte) int) {
		b.ReportAllocs()
		b.SetBytes(smallBody)
		b.SetParallelism(100 / max(1, runtimeGOMAXPROCS()))
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 4096)
			for pb.Next() {
				if get(buf) != smallBody {
					b.Error("short body")
					return
				}
			}
		})
	}
	b.Run("RoundTrip100/culvert", func(b *testing.B) {
		c := culvertPair(b)
		roundTrip100(b, func(buf []byte) int { return culvertGet(b, c, reqSmall, buf) })
	})
	b.Run("RoundTrip100/xnet", func(b *testing.B) {
		c := xnetPair(b)
		roundTrip100(b, func(buf []byte) int { return xnetGet(b, c, "/small", buf) })
	})
	b.Run("Bulk1M/culvert", func(b *testing.B) {
		c := culvertPair(b)
		buf := make([]byte, 64<<10)
		b.ReportAllocs()
		b.SetBytes(1 << 20)
		for b.Loop() {
			if culvertGet(b, c, reqBulk, buf) != 1<<20 {
				b.Fatal("short body")
			}
		}
	})
	b.Run("Bulk1M/xnet", func(b *testing.B) {
		c := xnetPair(b)
		buf := make([]byte, 64<<10)
		b.ReportAllocs()
		b.SetBytes(1 << 20)
		for b.Loop() {
			if xnetGet(b, c, "/bulk", buf) != 1<<20 {
				b.Fatal("short body")
			}
		}
	})
	b.Run("Bulk1M/tcpcopy", func(b *testing.B) { tcpCopy(b, -1, -1) })
}

// tcpCopy sends bulk over a bare loopback TCP connection per op: one byte
// asks, 1 MiB comes back in 64 KiB writes and is read in 64 KiB reads. The
// writer's and the reader's threads run on the CPUs given (-1: wherever the
// scheduler puts them).
func tcpCopy(b *testing.B, writerCPU, readerCPU int) {
	cc, sc := loopbackPair(b)
	defer cc.Close()
	go func() {
		defer sc.Close()
		defer pinThread(b, writerCPU)()
		req := make([]byte, 1)
		for {
			if _, err := io.ReadFull(sc, req); err != nil {
				return
			}
			for off := 0; off < len(bulk); off += 64 << 10 {
				if _, err := sc.Write(bulk[off : off+64<<10]); err != nil {
					return
				}
			}
		}
	}()
	defer pinThread(b, readerCPU)()
	buf := make([]byte, 64<<10)
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	for b.Loop() {
		cc.Write([]byte{1})
		for n := 0; n < 1<<20; {
			m, err := cc.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
	}
}
