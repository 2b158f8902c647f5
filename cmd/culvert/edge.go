package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/culvert-tunnel/culvert/control"
	"github.com/culvert-tunnel/culvert/control/dnsserver"
	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/spf13/pflag"
)

type edgeOptions struct {
	dataDir     string
	store       string
	domain      string
	tunnelAddr  string
	httpAddr    string
	httpsAddr   string
	visitorCert []string
	apiAddr     string
	metricsAddr string
	location    string
	advertise   []string
	grace       time.Duration
	maxBody     int
	tunnelLimit int
	pingEvery   time.Duration
	pingMisses  int
	dnsAddr     string
	publicIPs   []string
	regions     []string
	deleteMin   time.Duration
	deleteMax   time.Duration
	adminEmail  string
	apiURL      string
	logs        logFlags
}

func (o *edgeOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", filepath.Join(homeDir(), ".culvert", "edge"), "state directory (bbolt store, CAs, admin token)")
	fs.StringVar(&o.store, "store", "", "where the control state lives: empty for the bbolt file in --data-dir, or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (e.g. etcd://127.0.0.1:2379/culvert/) to share it between edges")
	fs.StringVar(&o.domain, "domain", "culvert.test", "the edge's own domain; the tunnel server name is tunnel.DOMAIN")
	fs.StringVar(&o.tunnelAddr, "tunnel-addr", ":7844", "address for connectors (TLS 1.3, mTLS)")
	fs.StringVar(&o.httpAddr, "http-addr", ":8080", "address for visitors over plain HTTP: HTTP/1.1, and HTTP/2 with prior knowledge (h2c)")
	fs.StringVar(&o.httpsAddr, "https-addr", ":8443", "address for visitors over HTTPS (HTTP/2 and HTTP/1.1 by ALPN; empty: off)")
	fs.StringArrayVar(&o.visitorCert, "visitor-cert", nil, "an HTTPS certificate for visitors, CERT.pem,KEY.pem, serving the names in it (exact or *.zone; repeatable); "+
		"names without one get a certificate from the edge's visitor CA (DATA-DIR/visitor-ca.pem, /ca.pem on the API)")
	fs.StringVar(&o.apiAddr, "api-addr", ":7845", "address of the control API (HTTPS)")
	fs.StringVar(&o.metricsAddr, "metrics", "127.0.0.1:7846", "address of /metrics (empty: off)")
	fs.StringVar(&o.location, "location", "local", "this edge's name, told to connectors")
	fs.StringSliceVar(&o.advertise, "advertise", nil, "tunnel addresses (host:port) written into new cert.pem files (default: the tunnel address)")
	fs.DurationVar(&o.grace, "grace-period", 30*time.Second, "how long a shutdown lets in-flight requests finish")
	fs.IntVar(&o.maxBody, "max-request-body", 0, "largest visitor request body in bytes (413 beyond; 0: no limit, bodies stream)")
	fs.IntVar(&o.tunnelLimit, "tunnel-limit", control.DefaultTunnelLimit, "tunnels an account may run at once (unless the account sets its own)")
	fs.DurationVar(&o.pingEvery, "heartbeat-interval", 5*time.Second, "PING a connector after this much silence")
	fs.IntVar(&o.pingMisses, "heartbeat-count", 5, "drop a tunnel connection after this many heartbeat intervals without an answer")
	fs.StringVar(&o.dnsAddr, "dns-addr", "", "address of the authoritative DNS server, UDP and TCP (e.g. :53; empty: off)")
	fs.StringSliceVar(&o.publicIPs, "public-ip", nil, "the edge's public addresses: AAAA (IPv6) and A (IPv4) records of tunnel hostnames (default ::1 and 127.0.0.1)")
	fs.StringArrayVar(&o.regions, "region", nil, "a discovery region for the SRV record, NAME=IP[,IP...] (repeatable; default region1 = --public-ip)")
	fs.DurationVar(&o.deleteMin, "dns-delete-min", 24*time.Hour, "an unregistered tunnel's DNS records are deleted after a random delay of at least this")
	fs.DurationVar(&o.deleteMax, "dns-delete-max", 48*time.Hour, "... and at most this")
	fs.StringVar(&o.adminEmail, "admin-email", "", "first start: the first super administrator's email (default admin@DOMAIN); its password is $CULVERT_ADMIN_PASSWORD, or printed once")
	fs.StringVar(&o.apiURL, "api-url", "", "the control API's URL written into cert.pem files (default https://ADDRESS of --api-addr)")
	o.logs.register(fs)
}

// runningEdge is an edge with its listeners up.
type runningEdge struct {
	ctl              *control.Edge
	dp               *edge.Edge
	tunnelLn, httpLn net.Listener
	apiLn, metricsLn net.Listener
	httpsLn          net.Listener
	dns              *dnsserver.Server
	stop             context.CancelFunc
	logger           *slog.Logger
	errc             chan error
}

// startEdge opens the state and starts every listener.
func startEdge(o *edgeOptions, logger *slog.Logger) (*runningEdge, error) {
	ctl, err := control.OpenEdgeStore(o.store, o.dataDir, o.domain, logger)
	if err != nil {
		return nil, err
	}
	ctl.TunnelLimit = o.tunnelLimit
	ctx, stop := context.WithCancel(context.Background())
	r := &runningEdge{ctl: ctl, logger: logger, errc: make(chan error, 4), stop: stop}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	// The sign-in of the first super administrator (the control API
	// serves the login and dashboard pages; without it there is none).
	if o.apiAddr != "" {
		generated, err := ctl.SetupAdmin(o.adminEmail, os.Getenv("CULVERT_ADMIN_PASSWORD"))
		if err != nil {
			return nil, fmt.Errorf("first super administrator: %w", err)
		}
		if generated != "" {
			u, _ := ctl.Store.GetUser(ctl.AdminUserID)
			fmt.Fprintf(os.Stderr, "culvert edge: first super administrator %s, password %s\n"+
				"(printed this once; set $CULVERT_ADMIN_PASSWORD at first start to choose it)\n", u.Email, generated)
		}
	}
	for _, ip := range o.publicIPs {
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return nil, fmt.Errorf("--public-ip %q: %w", ip, err)
		}
		ctl.PublicAddrs = append(ctl.PublicAddrs, a)
	}
	if ctl.Regions, err = parseRegions(o.regions); err != nil {
		return nil, err
	}
	ctl.RecordDeleteMin, ctl.RecordDeleteMax = o.deleteMin, o.deleteMax
	if o.deleteMax < o.deleteMin {
		return nil, fmt.Errorf("--dns-delete-max %v is below --dns-delete-min %v", o.deleteMax, o.deleteMin)
	}
	tlsCfg, err := ctl.TunnelTLS()
	if err != nil {
		return nil, err
	}
	r.dp, err = edge.New(edge.Config{TunnelTLS: tlsCfg, Registrar: ctl, Location: o.location,
		MaxRequestBodySize: o.maxBody, PingInterval: o.pingEvery, PingMisses: o.pingMisses, Logger: logger})
	if err != nil {
		return nil, err
	}
	if r.tunnelLn, err = net.Listen("tcp", o.tunnelAddr); err != nil {
		return nil, fmt.Errorf("--tunnel-addr: %w", err)
	}
	ctl.Edges = o.advertise
	if len(ctl.Edges) == 0 && o.dnsAddr == "" {
		// With a DNS server, connectors find the edges by its SRV record.
		ctl.Edges = []string{advertised(r.tunnelLn.Addr())}
	}
	ctl.TunnelPort = uint16(r.tunnelLn.Addr().(*net.TCPAddr).Port)
	if len(ctl.Regions) == 0 {
		ctl.Regions = []dnsserver.Region{{Name: "region1", Addrs: ctl.PublicAddrs}}
		if len(o.publicIPs) == 0 {
			ctl.Regions[0].Addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
	}
	if r.httpLn, err = net.Listen("tcp", o.httpAddr); err != nil {
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	var visitorTLS *tls.Config
	if o.httpsAddr != "" {
		var pairs [][2]string
		for _, v := range o.visitorCert {
			c, k, ok := strings.Cut(v, ",")
			if !ok || c == "" || k == "" {
				return nil, fmt.Errorf("--visitor-cert %q: want CERT.pem,KEY.pem", v)
			}
			pairs = append(pairs, [2]string{c, k})
		}
		if visitorTLS, err = ctl.VisitorTLS(pairs); err != nil {
			return nil, fmt.Errorf("--visitor-cert: %w", err)
		}
		if r.httpsLn, err = net.Listen("tcp", o.httpsAddr); err != nil {
			return nil, fmt.Errorf("--https-addr: %w", err)
		}
	}
	if o.apiAddr != "" {
		apiTLS, err := ctl.APITLS(nil, nil)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", o.apiAddr)
		if err != nil {
			return nil, fmt.Errorf("--api-addr: %w", err)
		}
		r.apiLn = ln
		ctl.API = o.apiURL
		if ctl.API == "" {
			ctl.API = "https://" + advertised(ln.Addr())
		}
		srv := &http.Server{Handler: (&control.API{Edge: ctl}).Handler(), TLSConfig: apiTLS, ReadHeaderTimeout: 10 * time.Second}
		go srv.ServeTLS(ln, "", "")
	}
	if o.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metricsHandler(r.dp.WritePrometheus))
		addPprof(mux)
		mux.HandleFunc("/healthcheck", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK\n") })
		if r.metricsLn, err = serveHTTP(o.metricsAddr, mux, logger, "metrics"); err != nil {
			return nil, fmt.Errorf("--metrics: %w", err)
		}
	}
	if o.dnsAddr != "" {
		r.dns = dnsserver.New(dnsserver.Config{Addr: o.dnsAddr, Logger: logger, Load: ctl.DNSData})
		if err := r.dns.Start(); err != nil {
			return nil, fmt.Errorf("--dns-addr: %w", err)
		}
		ctl.OnDNSChange = r.dns.Reload
	}
	go ctl.Run(ctx)
	go func() { r.errc <- r.dp.ServeTunnels(r.tunnelLn) }()
	go func() { r.errc <- r.dp.ServeVisitors(r.httpLn) }()
	if r.httpsLn != nil {
		go func() { r.errc <- r.dp.ServeVisitorsTLS(r.httpsLn, visitorTLS) }()
	}
	ok = true
	attrs := []any{"tunnel", r.tunnelLn.Addr().String(), "http", r.httpLn.Addr().String(), "data_dir", o.dataDir}
	if r.httpsLn != nil {
		attrs = append(attrs, "https", r.httpsLn.Addr().String())
	}
	if o.store != "" {
		attrs = append(attrs, "store", o.store)
	}
	if r.apiLn != nil {
		attrs = append(attrs, "api", r.apiLn.Addr().String())
	}
	if r.metricsLn != nil {
		attrs = append(attrs, "metrics", r.metricsLn.Addr().String())
	}
	if r.dns != nil {
		attrs = append(attrs, "dns", r.dns.Addr())
	}
	logger.Info("edge running", attrs...)
	return r, nil
}

// parseRegions reads --region NAME=IP[,IP...] flags.
func parseRegions(flags []string) ([]dnsserver.Region, error) {
	var out []dnsserver.Region
	for _, f := range flags {
		name, ips, ok := strings.Cut(f, "=")
		if !ok || name == "" || ips == "" {
			return nil, fmt.Errorf("--region %q: want NAME=IP[,IP...]", f)
		}
		reg := dnsserver.Region{Name: strings.ToLower(name)}
		for _, ip := range strings.Split(ips, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(ip))
			if err != nil {
				return nil, fmt.Errorf("--region %q: %w", f, err)
			}
			reg.Addrs = append(reg.Addrs, a)
		}
		out = append(out, reg)
	}
	return out, nil
}

// advertised turns a listener address into one a connector can dial: an
// unspecified host becomes loopback.
func advertised(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ta.IP == nil || ta.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	return ta.String()
}

func (r *runningEdge) shutdown(grace time.Duration) {
	if r.dp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		r.dp.Shutdown(ctx)
		cancel()
	}
	r.close()
}

func (r *runningEdge) close() {
	if r.stop != nil {
		r.stop()
	}
	if r.dns != nil {
		r.dns.Close()
	}
	for _, ln := range []net.Listener{r.tunnelLn, r.httpLn, r.httpsLn, r.apiLn, r.metricsLn} {
		if ln != nil {
			ln.Close()
		}
	}
	r.ctl.Close()
}

func runEdgeCommand(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "zone", "cert", "account", "user":
			return runEdgeAdmin(args)
		}
	}
	var o edgeOptions
	fs := pflag.NewFlagSet("culvert edge", pflag.ContinueOnError)
	o.register(fs)
	logger, err := parseFlags(fs, args, &o.logs)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	r, err := startEdge(&o, logger)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("edge shutting down", "grace_period", o.grace)
	case err = <-r.errc:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			logger.Error("edge listener failed", "err", err)
		}
	}
	r.shutdown(o.grace)
	return err
}
