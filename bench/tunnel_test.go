package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/control"
	"github.com/culvert-tunnel/culvert/dataplane/connector"
	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/culvert-tunnel/culvert/origin"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/valyala/fasthttp"
)

// tunnelRig is an edge, a connector and a fasthttp origin in this process,
// over loopback TCP and TLS 1.3, as `culvert quickstart` wires them.
type tunnelRig struct {
	visitorAddr string
	originAddr  string
	stop        func()
}

var (
	helloBody = []byte("hello world\n")
	bulkBody  = pattern1M()
)

func pattern1M() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func startTunnelRig(b *testing.B) *tunnelRig {
	b.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := control.OpenEdge(b.TempDir(), "culvert.test", logger)
	if err != nil {
		b.Fatal(err)
	}
	tlsCfg, err := ctl.TunnelTLS()
	if err != nil {
		b.Fatal(err)
	}
	e, err := edge.New(edge.Config{TunnelTLS: tlsCfg, Registrar: ctl, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	tunLn, _ := net.Listen("tcp", "127.0.0.1:0")
	visLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go e.ServeTunnels(tunLn)
	go e.ServeVisitors(visLn)

	oLn, _ := net.Listen("tcp", "127.0.0.1:0")
	osrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/1m" {
			ctx.SetBody(bulkBody)
			return
		}
		ctx.SetBody(helloBody)
	}}
	go osrv.Serve(oLn)

	if _, err := ctl.CreateZone("bench.test", false); err != nil {
		b.Fatal(err)
	}
	pem, err := ctl.IssueBundle("bench.test")
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := culverttls.ParseBundle(pem)
	if err != nil {
		b.Fatal(err)
	}
	pool, _ := bundle.EdgeCAPool()
	oc, err := origin.New(origin.Config{URL: "http://" + oLn.Addr().String()})
	if err != nil {
		b.Fatal(err)
	}
	c, err := connector.New(connector.Config{
		Edges: []string{tunLn.Addr().String()}, TLS: culverttls.TunnelClientConfig(bundle, pool, bundle.Token.TunnelServerName),
		Origin: oc, Hostname: "app.bench.test", Token: bundle.Token.APIToken, Logger: logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); c.Registered() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("the tunnel did not register")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &tunnelRig{
		visitorAddr: visLn.Addr().String(),
		originAddr:  oLn.Addr().String(),
		stop: func() {
			cancel()
			<-done
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			e.Shutdown(sctx)
			scancel()
			osrv.Shutdown()
			oc.Close()
			ctl.Close()
		},
	}
}

// BenchmarkTunnel: HTTP/1.1 requests through the tunnel (visitor → edge →
// TLS/HTTP/2 → connector → origin) and, as the baseline, to the origin
// directly. Hello50: a 12-byte body, 50 requests at a time (RunParallel).
// Bulk1M: 1 MiB bodies, 4 at a time. The load generator shares the process
// and the cores: the ratio of the two is what to watch, and ns/op of
// culvert is the whole path's cost.
func BenchmarkTunnel(b *testing.B) {
	rig := startTunnelRig(b)
	defer rig.stop()
	run := func(b *testing.B, addr, path string, body []byte, par int) {
		host := "app.bench.test"
		hc := &fasthttp.HostClient{Addr: addr, MaxConns: 64, MaxResponseBodySize: 2 << 20}
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + host + path)
			req.Header.SetHost(host)
			for pb.Next() {
				if err := hc.Do(req, resp); err != nil {
					b.Error(err)
					return
				}
				if resp.StatusCode() != 200 || len(resp.Body()) != len(body) {
					b.Errorf("status %d, %d bytes", resp.StatusCode(), len(resp.Body()))
					return
				}
			}
		})
	}
	b.Run("Hello50/culvert", func(b *testing.B) { run(b, rig.visitorAddr, "/hello", helloBody, 25) })
	b.Run("Hello50/direct", func(b *testing.B) { run(b, rig.originAddr, "/hello", helloBody, 25) })
	b.Run("Bulk1M/culvert", func(b *testing.B) { run(b, rig.visitorAddr, "/1m", bulkBody, 2) })
	b.Run("Bulk1M/direct", func(b *testing.B) { run(b, rig.originAddr, "/1m", bulkBody, 2) })
}
