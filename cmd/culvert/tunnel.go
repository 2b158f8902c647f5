package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/connector"
	"github.com/culvert-tunnel/culvert/origin"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/spf13/pflag"
)

type tunnelOptions struct {
	hostname     string
	url          string
	helloWorld   bool
	originCert   string
	edges        []string
	edgeCA       string
	serverName   string
	lbPool       string
	haConns      int
	grace        time.Duration
	metricsAddr  string
	pingInterval time.Duration
	pingMisses   int
	discoveryDNS string
	origin       origin.Config
	logs         logFlags
}

func (o *tunnelOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.hostname, "hostname", "", "the public hostname to serve, one label under the zone of cert.pem")
	fs.StringVar(&o.url, "url", "", "the origin: http://host:port, https://host:port or unix:/path")
	fs.BoolVar(&o.helloWorld, "hello-world", false, "serve the built-in hello-world origin instead of --url")
	fs.StringVar(&o.originCert, "origincert", filepath.Join(homeDir(), ".culvert", "cert.pem"), "the cert.pem to log in with")
	fs.StringArrayVar(&o.edges, "edge", nil, "edge tunnel address host:port (repeatable; default: the edges in cert.pem, else found by DNS)")
	fs.StringVar(&o.discoveryDNS, "discovery-dns", "", "DNS server (host:port) to find the edges from, by the SRV record _culvert._tcp.DOMAIN (default: the system resolver, when cert.pem names no edges)")
	fs.StringVar(&o.edgeCA, "edge-ca", "", "CA certificate (PEM file) of the edge (default: the one in cert.pem)")
	fs.StringVar(&o.serverName, "edge-server-name", "", "the edge's tunnel server name (default: the one in cert.pem)")
	fs.StringVar(&o.lbPool, "lb-pool", "", "load-balancer pool this replica joins (every replica of a hostname gives the same one)")
	fs.IntVar(&o.haConns, "ha-connections", 4, "tunnel connections to keep up, spread over the edge addresses")
	fs.DurationVar(&o.grace, "grace-period", 30*time.Second, "how long a shutdown lets in-flight requests finish")
	fs.StringVar(&o.metricsAddr, "metrics", "127.0.0.1:7847", "address of /metrics, /ready and /healthcheck (empty: off)")
	fs.DurationVar(&o.pingInterval, "heartbeat-interval", 5*time.Second, "PING the edge after this much silence")
	fs.IntVar(&o.pingMisses, "heartbeat-count", 5, "drop the connection after this many heartbeat intervals without an answer")
	fs.DurationVar(&o.origin.ConnectTimeout, "proxy-connect-timeout", 30*time.Second, "origin connect timeout")
	fs.IntVar(&o.origin.KeepAliveConnections, "proxy-keepalive-connections", 100, "idle origin connections kept (more may stay idle for a second after a burst; negative: none)")
	fs.IntVar(&o.origin.PipelineDepth, "proxy-pipeline-depth", 0, "pipeline up to this many GET/HEAD requests on one origin connection (HTTP/1.1 pipelining; 0: off)")
	fs.DurationVar(&o.origin.KeepAliveTimeout, "proxy-keepalive-timeout", 90*time.Second, "how long an idle origin connection is kept")
	fs.DurationVar(&o.origin.ResponseTimeout, "proxy-response-timeout", 90*time.Second, "time to the origin's response headers (504 beyond)")
	fs.StringVar(&o.origin.CAPoolFile, "origin-ca-pool", "", "PEM file of CAs trusted for an https origin, beside the system pool")
	fs.StringVar(&o.origin.ServerName, "origin-server-name", "", "server name expected from an https origin")
	fs.BoolVar(&o.origin.NoTLSVerify, "no-tls-verify", false, "do not verify an https origin's certificate")
	fs.StringVar(&o.origin.HostHeader, "http-host-header", "", "Host header sent to the origin (default: the visitor's)")
	o.logs.register(fs)
}

func runTunnel(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list", "delete":
			return runTunnelAdmin(args)
		}
	}
	var o tunnelOptions
	fs := pflag.NewFlagSet("culvert tunnel", pflag.ContinueOnError)
	o.register(fs)
	logger, err := parseFlags(fs, args, &o.logs)
	if err != nil {
		return err
	}
	b, err := culverttls.ReadBundleFile(o.originCert)
	if err != nil {
		return fmt.Errorf("%w\n(get a cert.pem from your edge's administrator: `culvert edge zone create ZONE`)", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	rt, err := startTunnel(ctx, &o, b, logger)
	if err != nil {
		return err
	}
	defer rt.close()
	err = rt.wait()
	if err != nil {
		return exitError{code: 3, err: err}
	}
	return nil
}

// runningTunnel is a connector with its origin and endpoints.
type runningTunnel struct {
	c         *connector.Connector
	origin    *origin.Client
	helloLn   net.Listener
	metricsLn net.Listener
	done      chan error
}

func (r *runningTunnel) wait() error { return <-r.done }

func (r *runningTunnel) close() {
	for _, ln := range []net.Listener{r.helloLn, r.metricsLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if r.origin != nil {
		r.origin.Close()
	}
}

// startTunnel starts the origin (hello-world if asked), the connector and
// its endpoints; the connector runs until ctx ends.
func startTunnel(ctx context.Context, o *tunnelOptions, b *culverttls.Bundle, logger *slog.Logger) (*runningTunnel, error) {
	if o.hostname == "" {
		return nil, fmt.Errorf("tunnel: --hostname is required (e.g. app.%s)", b.Token.Zone)
	}
	if err := culverttls.CheckHostname(b.Token.Zone, o.hostname); err != nil {
		return nil, fmt.Errorf("tunnel: --hostname %s: %w", o.hostname, err)
	}
	r := &runningTunnel{done: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	switch {
	case o.helloWorld:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		r.helloLn = ln
		go origin.ServeHelloWorld(ctx, ln)
		o.origin.URL = "http://" + ln.Addr().String()
	case o.url != "":
		o.origin.URL = o.url
	default:
		return nil, fmt.Errorf("tunnel: give the origin with --url, or --hello-world")
	}
	oc, err := origin.New(o.origin)
	if err != nil {
		return nil, err
	}
	r.origin = oc

	pool, err := b.EdgeCAPool()
	if o.edgeCA != "" {
		pem, rerr := os.ReadFile(o.edgeCA)
		if rerr != nil {
			return nil, fmt.Errorf("--edge-ca: %w", rerr)
		}
		pool = x509Pool(pem)
		if pool == nil {
			return nil, fmt.Errorf("--edge-ca %s: no certificate in it", o.edgeCA)
		}
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("the edge CA: %w (give --edge-ca)", err)
	}
	serverName := o.serverName
	if serverName == "" {
		serverName = b.Token.TunnelServerName
	}
	if serverName == "" {
		return nil, fmt.Errorf("cert.pem names no tunnel server name: give --edge-server-name")
	}
	edges := o.edges
	if len(edges) == 0 && (o.discoveryDNS != "" || len(b.Token.Edges) == 0) {
		domain, ok := strings.CutPrefix(serverName, "tunnel.")
		if !ok {
			return nil, fmt.Errorf("cannot tell the edge's domain from its server name %q: give --edge host:port", serverName)
		}
		found, err := connector.DiscoverEdges(ctx, o.discoveryDNS, domain)
		if err != nil {
			return nil, fmt.Errorf("finding the edges: %w (or give --edge host:port)", err)
		}
		logger.Info("edges found by DNS", "edges", found, "server", o.discoveryDNS)
		edges = found
	}
	if len(edges) == 0 {
		edges = b.Token.Edges
	}
	if len(edges) == 0 {
		return nil, fmt.Errorf("no edge address: give --edge host:port")
	}
	c, err := connector.New(connector.Config{
		Edges: edges, TLS: culverttls.TunnelClientConfig(b, pool, serverName), Origin: oc,
		Hostname: o.hostname, LBPool: o.lbPool, Token: b.Token.APIToken, Version: version,
		HAConnections: o.haConns, PingInterval: o.pingInterval, PingMisses: o.pingMisses,
		GracePeriod: o.grace, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	r.c = c
	if o.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metricsHandler(c.WritePrometheus))
		mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
			n := c.Registered()
			status := http.StatusOK
			if n == 0 {
				status = http.StatusServiceUnavailable
			}
			writeJSON(w, status, map[string]any{"status": status, "readyConnections": n})
		})
		addPprof(mux)
		mux.HandleFunc("/healthcheck", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK\n") })
		if r.metricsLn, err = serveHTTP(o.metricsAddr, mux, logger, "metrics"); err != nil {
			return nil, fmt.Errorf("--metrics: %w", err)
		}
		logger.Info("connector endpoints", "metrics", r.metricsLn.Addr().String())
	}
	go func() { r.done <- c.Run(ctx) }()
	ok = true
	return r, nil
}
