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

var helloBody = []byte("hello world\n")

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
	osrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(helloBody) }}
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

// BenchmarkTunnel: HTTP/1.1 requests for a 12-byte body, 50 at a time
// (RunParallel), through the tunnel (visitor → edge → TLS/HTTP/2 →
// connector → origin) and, as the baseline, to the origin directly. The
// load generator shares the process and the cores: the ratio of the two is
// what to watch, and ns/op of culvert is the whole path's cost.
func BenchmarkTunnel(b *testing.B) {
	rig := startTunnelRig(b)
	defer rig.stop()
	run := func(b *testing.B, addr, host string) {
		hc := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
		b.ReportAllocs()
		b.SetBytes(int64(len(helloBody)))
		b.SetParallelism(25)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + host + "/hello")
			req.Header.SetHost(host)
			for pb.Next() {
				if err := hc.Do(req, resp); err != nil {
					b.Error(err)
					return
				}
				if resp.StatusCode() != 200 || len(resp.Body()) != len(helloBody) {
					b.Errorf("status %d, %d bytes", resp.StatusCode(), len(resp.Body()))
					return
				}
			}
		})
	}
	b.Run("Hello50/culvert", func(b *testing.B) { run(b, rig.visitorAddr, "app.bench.test") })
	b.Run("Hello50/direct", func(b *testing.B) { run(b, rig.originAddr, "app.bench.test") })
}
