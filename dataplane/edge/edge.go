// Package edge is culvert's edge side: it accepts tunnel connections from
// connectors (TLS with a client certificate, then the HTTP/2 engine's client
// role), registers them through a Registrar, and serves visitors, sending
// each request down the least busy live connection of its hostname as one
// stream. Visitors speak HTTP/1.1 (fasthttp) or HTTP/2 (the engine's server
// role): on the plain port by prior knowledge (h2c), on the TLS port by
// ALPN; websockets by Upgrade or by extended CONNECT (RFC 8441). Responses
// are compressed (gzip, zstd) for visitors who accept it.
//
// What it is not: the control path. Who may register which hostname, the
// store, DNS and the audit log sit behind the Registrar interface (package
// control implements it); TLS configs come from package culverttls.
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/valyala/fasthttp"
)

// Registrar decides registrations; the control path implements it.
type Registrar interface {
	// Register checks a connection's registration: cert is the verified
	// origin certificate the connector presented, r its Register message.
	// It returns the tunnel's identity, or a refusal to send back.
	Register(ctx context.Context, cert *x509.Certificate, r *tunnel.Register) (*Registration, *tunnel.Error)
	// Unregistered says a tunnel's last live connection is gone.
	Unregistered(reg *Registration)
	// Known reports whether hostname belongs to a tunnel the edge knows,
	// live or not: it tells "tunnel offline" (530) from "no such tunnel"
	// (404).
	Known(hostname string) bool
}

// Registration is the identity of a registered tunnel connection.
type Registration struct {
	TunnelID  string
	AccountID string
	Hostname  string // normalised
	DNSRecord string
	// CNAME is the record the user must create at their own DNS provider
	// (partial zones), as "name. CNAME target.".
	CNAME string
	URL   string
}

// Config sets up an Edge.
type Config struct {
	TunnelTLS *tls.Config // culverttls.TunnelServerConfig
	Registrar Registrar
	Location  string // the edge's name in Registered messages; default "local"

	PingInterval time.Duration // heartbeat; zero keeps the engine's 5 s
	PingMisses   int           // zero keeps 5
	// HandshakeTimeout bounds TLS plus registration of a new tunnel
	// connection; default 15 s.
	HandshakeTimeout time.Duration

	// Visitor limits.
	MaxHeaderBytes     int           // request line and headers; default 16 KiB (431 beyond)
	MaxRequestBodySize int           // 0: unlimited (bodies stream); else 413 beyond
	VisitorIdleTimeout time.Duration // keep-alive idle; default 120 s
	VisitorReadTimeout time.Duration // request head; default 30 s

	Logger  *slog.Logger
	Metrics *metrics.Set
}

// Edge is one edge process's data plane.
type Edge struct {
	cfg     Config
	logger  *slog.Logger
	reg     *registry
	metrics *edgeMetrics
	visitor *fasthttp.Server

	connSeq   atomic.Uint64
	reqPrefix uint64
	reqSeq    atomic.Uint64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	pending   map[net.Conn]struct{}
	h2conns   map[*dataplane.Conn]struct{} // HTTP/2 visitor connections
	h2workers dataplane.Workers            // run the HTTP/2 visitors' stream handlers
	closing   bool
	wg        sync.WaitGroup
}

// New returns an Edge; serve it with ServeTunnels and ServeVisitors.
func New(cfg Config) (*Edge, error) {
	if cfg.TunnelTLS == nil || cfg.Registrar == nil {
		return nil, errors.New("edge: TunnelTLS and Registrar are required")
	}
	if cfg.Location == "" {
		cfg.Location = "local"
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 16 << 10
	}
	if cfg.VisitorIdleTimeout <= 0 {
		cfg.VisitorIdleTimeout = 120 * time.Second
	}
	if cfg.VisitorReadTimeout <= 0 {
		cfg.VisitorReadTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	e := &Edge{
		cfg: cfg, logger: cfg.Logger, reg: newRegistry(),
		reqPrefix: rand.Uint64() << 32,
		listeners: map[net.Listener]struct{}{},
		pending:   map[net.Conn]struct{}{},
		h2conns:   map[*dataplane.Conn]struct{}{},
	}
	e.metrics = newEdgeMetrics(cfg.Metrics, e)
	e.visitor = e.newVisitorServer()
	return e, nil
}

// ServeTunnels accepts tunnel connections on ln until ln is closed or the
// edge shuts down.
func (e *Edge) ServeTunnels(ln net.Listener) error {
	return e.serve(ln, e.handleTunnel)
}

// serve accepts connections on ln and runs handle for each on its own
// goroutine (counted in e.wg) until ln is closed or the edge shuts down;
// accept timeouts back off up to a second.
func (e *Edge) serve(ln net.Listener, handle func(net.Conn)) error {
	if !e.track(ln) {
		ln.Close()
		return errClosed
	}
	defer e.untrack(ln)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if e.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			handle(nc)
		}()
	}
}

var errClosed = errors.New("edge: shut down")

func (e *Edge) track(ln net.Listener) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.listeners[ln] = struct{}{}
	return true
}

func (e *Edge) untrack(ln net.Listener) {
	e.mu.Lock()
	delete(e.listeners, ln)
	e.mu.Unlock()
}

func (e *Edge) isClosing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}

// controlRequest opens the control stream.
var controlRequest = []hpack.HeaderField{
	{Name: []byte(":method"), Value: []byte("POST")},
	{Name: []byte(":scheme"), Value: []byte("https")},
	{Name: []byte(":authority"), Value: []byte("culvert")},
	{Name: []byte(":path"), Value: []byte("/control")},
	{Name: []byte(tunnel.HeaderStream), Value: []byte(tunnel.StreamControl)},
}

// handleTunnel runs one tunnel connection: TLS, the control stream and
// registration, then routing until the connection ends.
func (e *Edge) handleTunnel(nc net.Conn) {
	m := e.metrics
	deadline := time.Now().Add(e.cfg.HandshakeTimeout)
	tc := tls.Server(nc, e.cfg.TunnelTLS)
	tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		m.tunnelHandshakeFailures.Inc()
		e.logger.Info("tunnel TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	cert, err := culverttls.PeerOriginCert(tc.ConnectionState())
	if err != nil {
		m.tunnelHandshakeFailures.Inc()
		tc.Close()
		return
	}
	ecfg := tunnel.EngineConfig(e.cfg.PingInterval, e.cfg.PingMisses)
	ecfg.Logger = e.logger
	dc := dataplane.NewClientConn(tc, &ecfg)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	fail := func(msg string, err error) {
		m.registerFailures.Inc()
		e.logger.Info(msg, "remote", nc.RemoteAddr().String(), "err", err)
		dc.Close()
	}
	ctrl, err := dc.OpenStream(ctx, controlRequest, false)
	if err != nil {
		fail("tunnel control stream failed", err)
		return
	}
	if _, err := ctrl.ReadHeaders(ctx); err != nil {
		fail("tunnel control stream failed", err)
		return
	}
	stop := context.AfterFunc(ctx, func() { ctrl.Reset(frames.ErrCodeCancel) })
	msg, err := tunnel.ReadMessage(ctrl)
	stop()
	if err != nil {
		fail("tunnel registration unreadable", err)
		return
	}
	if msg.Type != tunnel.TypeRegister {
		e.refuse(dc, ctrl, &tunnel.Error{Code: tunnel.CodeBadMessage, Message: "the first control message must be register", Permanent: true})
		return
	}
	if e.isClosing() {
		e.refuse(dc, ctrl, &tunnel.Error{Code: tunnel.CodeShuttingDown, Message: "this edge is shutting down", RetryAfter: 1})
		return
	}
	// Replicas: every connector that registers the hostname serves it, and
	// they must agree on its load-balancer pool (the pool decides the
	// hostname's DNS record).
	if pool, ok := e.reg.pool(culverttls.NormalizeHostname(msg.Register.Hostname)); ok && pool != msg.Register.LBPool {
		e.refuse(dc, ctrl, &tunnel.Error{Code: tunnel.CodeLBPoolMismatch, Permanent: true,
			Message: fmt.Sprintf("hostname %q is served by connectors with --lb-pool %q: give every replica the same --lb-pool",
				msg.Register.Hostname, pool)})
		return
	}
	reg, terr := e.cfg.Registrar.Register(ctx, cert, msg.Register)
	if terr != nil {
		e.logger.Info("tunnel registration refused", "remote", nc.RemoteAddr().String(),
			"hostname", msg.Register.Hostname, "code", terr.Code, "msg", terr.Message)
		e.refuse(dc, ctrl, terr)
		return
	}
	t := &tunnelConn{
		dc: dc, hostname: reg.Hostname, tunnelID: reg.TunnelID, reg: *msg.Register, ctrl: ctrl,
		id: fmt.Sprintf("%s-%d", reg.TunnelID, e.connSeq.Add(1)),
	}
	err = tunnel.WriteMessage(ctrl, &tunnel.Message{Type: tunnel.TypeRegistered, Registered: &tunnel.Registered{
		ConnID: t.id, TunnelID: reg.TunnelID, Location: e.cfg.Location, URL: reg.URL, DNSRecord: reg.DNSRecord, CNAME: reg.CNAME,
	}})
	if err != nil {
		fail("tunnel registration answer failed", err)
		return
	}
	e.reg.add(t)
	m.registrations.Inc()
	e.logger.Info("tunnel connection registered", "hostname", reg.Hostname, "conn_id", t.id,
		"conn_index", msg.Register.ConnIndex, "connector", msg.Register.ConnectorID, "remote", nc.RemoteAddr().String())

	// The control stream stays open: Unregister from the connector ends
	// routing to this connection at once; its streams finish.
	for {
		msg, err := tunnel.ReadMessage(ctrl)
		if err != nil {
			break
		}
		if msg.Type == tunnel.TypeUnregister {
			t.leaving.Store(true)
			e.logger.Info("tunnel connection unregistered", "hostname", reg.Hostname, "conn_id", t.id)
			break
		}
	}
	t.leaving.Store(true)
	// End the edge's side of the control stream: the connector's side ends
	// when its handler returns, and the connection can then finish a
	// graceful shutdown (its last stream gone) instead of waiting it out.
	ctrl.CloseWrite()
	if e.reg.remove(t) {
		e.cfg.Registrar.Unregistered(reg)
	}
	<-dc.Done()
	t.ctrlMu.Lock()
	t.ctrl = nil
	t.ctrlMu.Unlock()
	e.logger.Info("tunnel connection closed", "hostname", reg.Hostname, "conn_id", t.id, "err", dc.Err())
}

// refuse answers a registration with err and closes the connection once the
// connector has had a moment to read it.
func (e *Edge) refuse(dc *dataplane.Conn, ctrl *dataplane.Stream, terr *tunnel.Error) {
	e.metrics.registerFailures.Inc()
	tunnel.WriteMessage(ctrl, &tunnel.Message{Type: tunnel.TypeError, Error: terr})
	ctrl.CloseWrite()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	dc.Shutdown(ctx)
	dc.Close()
}

// Shutdown stops accepting visitors and tunnels, asks every connector to
// move its connections elsewhere (Drain), lets in-flight requests finish
// until ctx ends, then closes every tunnel connection.
func (e *Edge) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	for ln := range e.listeners {
		ln.Close()
	}
	e.mu.Unlock()
	visitorsDone := make(chan error, 1)
	go func() { visitorsDone <- e.visitor.ShutdownWithContext(ctx) }()
	h2Done := make(chan struct{})
	go func() { e.shutdownH2Visitors(ctx); close(h2Done) }()
	for _, t := range e.reg.all() {
		t.leaving.Store(true)
		t.ctrlMu.Lock()
		if t.ctrl != nil {
			tunnel.WriteMessage(t.ctrl, &tunnel.Message{Type: tunnel.TypeDrain, Drain: &tunnel.Drain{Reason: "edge shutting down"}})
		}
		t.ctrlMu.Unlock()
	}
	err := <-visitorsDone
	<-h2Done
	e.h2workers.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil // the visitor listeners were closed above
	}
	for _, t := range e.reg.all() {
		t.dc.Shutdown(ctx)
		t.dc.Close()
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

// Connections returns the number of registered tunnel connections.
func (e *Edge) Connections() int { return len(e.reg.all()) }

// LiveConnections returns the number of registered connections of hostname.
func (e *Edge) LiveConnections(hostname string) int {
	return e.reg.count(culverttls.NormalizeHostname(hostname))
}
