package origin

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"
)

// startFastHello serves /hello with fasthttp on loopback: an origin that
// costs as little as possible, so that the benchmark measures the client.
// /64k answers the 64 KiB pattern block.
func startFastHello(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	big := patternBlock()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/64k" {
			ctx.SetContentType("application/octet-stream")
			ctx.Response.SetBodyRaw(big)
			return
		}
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("hello world\n")
	}}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// helloExchange returns a pooled GET /hello for Host visitor.test and a
// pooled response; release gives both back.
func helloExchange() (req *fasthttp.Request, resp *fasthttp.Response, release func()) {
	req, resp = fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("/hello")
	req.Header.SetHost("visitor.test")
	return req, resp, func() {
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}

func BenchmarkOriginClient(b *testing.B) {
	addr := startFastHello(b)
	b.Run("hello/fasthttp", func(b *testing.B) {
		c := newClient(b, Config{URL: "http://" + addr})
		req, resp, release := helloExchange()
		defer release()
		b.ReportAllocs()
		b.SetBytes(12)
		for b.Loop() {
			if err := c.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if bs := resp.BodyStream(); bs != nil {
				b.Fatal("streamed")
			}
			if len(resp.Body()) != 12 {
				b.Fatalf("%q", resp.Body())
			}
		}
	})
	// hello100: 100 requests in flight (parallelism 50 x GOMAXPROCS 2),
	// one connection each, or pipelined 16 deep.
	hello100 := func(b *testing.B, cfg Config) {
		c := newClient(b, cfg)
		b.ReportAllocs()
		b.SetBytes(12)
		b.SetParallelism(max(1, 100/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			req, resp, release := helloExchange()
			defer release()
			for pb.Next() {
				if err := c.Do(req, resp); err != nil {
					b.Error(err)
					return
				}
				if len(resp.Body()) != 12 {
					b.Errorf("%q", resp.Body())
					return
				}
			}
		})
	}
	b.Run("hello100/fasthttp", func(b *testing.B) { hello100(b, Config{URL: "http://" + addr}) })
	b.Run("hello100/pipelined", func(b *testing.B) { hello100(b, Config{URL: "http://" + addr, PipelineDepth: 16}) })
	b.Run("hello/nethttp", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest("GET", "http://"+addr+"/hello", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Host = "visitor.test"
		buf := make([]byte, 64)
		b.ReportAllocs()
		b.SetBytes(12)
		for b.Loop() {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.ReadFull(resp.Body, buf[:12])
			if err != nil || n != 12 {
				b.Fatal(n, err)
			}
			resp.Body.Close()
		}
	})
}
