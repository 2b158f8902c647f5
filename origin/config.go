package origin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultConnectTimeout       = 30 * time.Second
	DefaultKeepAliveConnections = 100
	DefaultKeepAliveTimeout     = 90 * time.Second
	DefaultResponseTimeout      = 90 * time.Second
	DefaultMaxConnsPerHost      = 1024
)

// Buffer sizes of the pooled per-request readers and writers.
const (
	// readBufferSize bounds the origin's response head: fasthttp parses the
	// head inside the read buffer, so a head larger than this fails with
	// fasthttp.ErrSmallBuffer.
	readBufferSize  = 16 << 10
	writeBufferSize = 8 << 10
)

// Config is the origin client's configuration. The zero value of every
// field means its default.
type Config struct {
	// URL is the origin: "http://host[:port]", "https://host[:port]",
	// "unix:/path/to.sock" (HTTP over a unix socket) or "unix+tls:/path"
	// (HTTPS over a unix socket). Paths, queries and user info are refused:
	// the request target is the visitor's.
	URL string

	// ConnectTimeout bounds a new connection: dial plus TLS handshake
	// (--proxy-connect-timeout). It also bounds the wait for a pooled
	// connection when MaxConnsPerHost connections are busy. Default 30s.
	ConnectTimeout time.Duration

	// KeepAliveConnections is how many idle connections the pool keeps
	// (--proxy-keepalive-connections): idle connections beyond it are
	// closed once the pool has been above it for a second (not at once, so
	// a burst of more concurrent requests reuses its connections instead of
	// dialing one per request). It is the idle bound only: the bound on all
	// connections, busy ones included, is MaxConnsPerHost. Default 100;
	// negative keeps no idle connection (one connection per request).
	KeepAliveConnections int

	// KeepAliveTimeout is how long an idle connection stays in the pool
	// (--proxy-keepalive-timeout). Default 90s.
	KeepAliveTimeout time.Duration

	// ResponseTimeout bounds the wait for the response head, counted from
	// the moment the request is written; with a streamed request body it is
	// counted from the end of the body, and the origin must also accept each
	// write of the body within it. It does not apply to reading the
	// response body (a stream of server-sent events may idle for hours).
	// Exceeded: ErrTimeout. Default 90s; negative disables it.
	ResponseTimeout time.Duration

	// CAPoolFile is a PEM file of CA certificates trusted, in addition to
	// the system pool, for https origins (--origin-ca-pool).
	CAPoolFile string

	// ServerName is the TLS server name sent (SNI) and verified
	// (--origin-server-name). Default: the URL's host name; "localhost" for
	// unix+tls.
	ServerName string

	// NoTLSVerify disables verification of the origin's certificate
	// (--no-tls-verify).
	NoTLSVerify bool

	// HostHeader, when set, replaces the Host header of every request
	// (--http-host-header). Otherwise the visitor's Host is sent as is.
	HostHeader string

	// PipelineDepth, above 1, turns on HTTP/1.1 pipelining for GET and HEAD
	// requests without a body (--proxy-pipeline-depth): up to this many
	// are in flight on one connection, written in batches and answered in
	// order. A request goes to the pipelined connection with the fewest in
	// flight, and a new connection is opened only when all have
	// PipelineDepth, so under load the origin sees few connections each
	// carrying a batch of requests: both sides make one system call per
	// batch instead of one per request. The price is head-of-line
	// blocking: an answer waits for those before it on its connection.
	// Bodies up to 16 KiB are read at once; behind a larger or open-ended
	// one (a download, server-sent events) the connection takes no new
	// requests, and those already queued are sent again on another
	// connection after 250ms. Other requests (POST, uploads, upgrades) use
	// a connection each, as without pipelining. Use it for origins that
	// answer quickly and implement pipelining (nginx, Apache, Go net/http,
	// Node.js, fasthttp all do); default 0, off.
	PipelineDepth int

	// MaxConnsPerHost bounds the connections to the origin, busy and idle.
	// A request finding all of them busy waits up to ConnectTimeout for one
	// and then fails with ErrTimeout. Every streamed response (a download,
	// an event stream) holds a connection while it is read, so raise this
	// for many long-lived streams. Default 1024.
	MaxConnsPerHost int
}

// target is a parsed origin URL.
type target struct {
	scheme      string // "http" or "https"
	network     string // "tcp" or "unix"
	address     string // host:port or socket path
	defaultHost string // Host for a request that has none
	serverName  string // TLS name when the config gives none
	tls         bool
}

func parseURL(raw string) (target, error) {
	if raw == "" {
		return target{}, errors.New("origin: empty URL")
	}
	bad := func(why string) (target, error) {
		return target{}, fmt.Errorf("origin: URL %q: %s", raw, why)
	}
	for _, p := range []struct {
		prefix string
		tls    bool
	}{{"unix+tls:", true}, {"unix:", false}} {
		path, ok := strings.CutPrefix(raw, p.prefix)
		if !ok {
			continue
		}
		path = strings.TrimPrefix(path, "//") // unix:///run/app.sock
		if path == "" {
			return bad("no socket path")
		}
		t := target{scheme: "http", network: "unix", address: path, defaultHost: "localhost", serverName: "localhost", tls: p.tls}
		if p.tls {
			t.scheme = "https"
		}
		return t, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("origin: URL %q: %w", raw, err)
	}
	var t target
	switch u.Scheme {
	case "http":
		t = target{scheme: "http", network: "tcp"}
	case "https":
		t = target{scheme: "https", network: "tcp", tls: true}
	case "":
		return bad("missing scheme (want http://, https://, unix: or unix+tls:)")
	default:
		return bad("unsupported scheme " + u.Scheme + " (want http, https, unix or unix+tls)")
	}
	switch {
	case u.Host == "":
		return bad("no host")
	case u.User != nil:
		return bad("user info is not supported")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return bad("a path, query or fragment is not supported (the visitor's request target is sent)")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return bad("no host")
	}
	if port == "" {
		port = "80"
		if t.tls {
			port = "443"
		}
	}
	t.address = net.JoinHostPort(host, port)
	t.defaultHost = u.Host
	t.serverName = host
	return t, nil
}

// tlsConfig builds the client TLS configuration for a TLS origin.
func tlsConfig(cfg *Config, t target) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.CAPoolFile != "" {
		pem, err := os.ReadFile(cfg.CAPoolFile)
		if err != nil {
			return nil, fmt.Errorf("origin: CA pool: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("origin: CA pool %s: no PEM certificate in it", cfg.CAPoolFile)
		}
	}
	name := cfg.ServerName
	if name == "" {
		name = t.serverName
	}
	return &tls.Config{
		RootCAs:            roots,
		ServerName:         name,
		InsecureSkipVerify: cfg.NoTLSVerify, //nolint:gosec // --no-tls-verify, the operator's choice
		NextProtos:         []string{"http/1.1"},
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}, nil
}
