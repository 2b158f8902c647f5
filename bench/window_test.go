package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane"
)

// delayRelay forwards a TCP connection both ways, holding every chunk for
// oneWay before passing it on: a long link with a round trip of 2*oneWay,
// on loopback. Its queue (4096 chunks) is far larger than any window
// measured here, so it limits nothing but latency.
func delayRelay(b *testing.B, target string, oneWay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	pipe := func(dst, src net.Conn) {
		type chunk struct {
			at time.Time
			b  []byte
		}
		q := make(chan chunk, 4096)
		go func() {
			defer dst.Close()
			for c := range q {
				time.Sleep(time.Until(c.at))
				if _, err := dst.Write(c.b); err != nil {
					return
				}
			}
		}()
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(oneWay), buf[:n]}
			}
			if err != nil {
				close(q)
				return
			}
		}
	}
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			t, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				return
			}
			go pipe(t, a)
			go pipe(a, t)
		}
	}()
	return ln.Addr().String()
}

// BenchmarkWindow measures one stream's upload throughput over a 20 ms
// round trip for several initial stream windows (the connection window is
// four times the stream window, as in Config's defaults). It is how the
// default windows were chosen: throughput tracks window / RTT until the
// link or the CPU is the limit.
func BenchmarkWindow(b *testing.B) {
	const rtt = 20 * time.Millisecond
	for _, w := range []uint32{64 << 10, 1 << 20, 4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB/culvert", w>>10), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			cfg := &dataplane.Config{InitialStreamWindow: w, InitialConnWindow: 4 * w,
				Handler: dataplane.HandlerFunc(func(s *dataplane.Stream) {
					n, _ := io.Copy(io.Discard, s)
					s.WriteHeaders(hf(":status", "200", "x-n", fmt.Sprint(n)), true)
				})}
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					go dataplane.NewServerConn(nc, cfg).Serve()
				}
			}()
			nc, err := net.Dial("tcp", delayRelay(b, ln.Addr().String(), rtt/2))
			if err != nil {
				b.Fatal(err)
			}
			c := dataplane.NewClientConn(nc, nil)
			defer c.Close()
			size := int(8 * w) // enough round trips to reach steady state
			body := make([]byte, 64<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				s, err := c.OpenStream(context.Background(), hf(":method", "POST", ":scheme", "http", ":authority", "w", ":path", "/"), false)
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < size; sent += len(body) {
					if _, err := s.Write(body); err != nil {
						b.Fatal(err)
					}
				}
				s.CloseWrite()
				h, err := s.ReadHeaders(context.Background())
				if err != nil || string(h.Get("x-n")) != fmt.Sprint(size) {
					b.Fatalf("upload: %v, server saw %s", err, h.Get("x-n"))
				}
				s.Release()
			}
		})
	}
}
