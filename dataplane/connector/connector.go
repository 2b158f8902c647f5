// Package connector is culvert's connector side: it dials the edge over
// TLS (the tunnel connection), runs the HTTP/2 engine's server role on it,
// registers a hostname on the control stream, and hands every request
// stream to the origin through package origin, streaming both ways.
//
// What it is not: the origin client itself (package origin), the TLS and
// cert.pem handling (package culverttls) or the command line (cmd/culvert).
package connector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"github.com/culvert-tunnel/culvert/origin"
)

// Config sets up a Connector.
type Config struct {
	Edges  []string    // edge tunnel addresses, host:port; connections spread over them
	TLS    *tls.Config // tunnel client config (culverttls.TunnelClientConfig)
	Origin *origin.Client

	Hostname    string
	LBPool      string
	Token       string
	ConnectorID string // random when empty
	Version     string

	// HAConnections is the number of tunnel connections kept up; default
	// 4. Connection i starts on Edges[i % len(Edges)], so with two edge
	// addresses (two regions) they alternate; a connection that fails or
	// is drained moves on to the next address.
	HAConnections int
	// PingInterval and PingMisses set the heartbeat; zero keeps 5 s and 5.
	PingInterval time.Duration
	PingMisses   int
	// GracePeriod bounds how long Run waits for in-flight requests after its
	// context ends; default 30 s.
	GracePeriod time.Duration
	// DialTimeout bounds the TCP connect and TLS handshake; default 15 s.
	DialTimeout time.Duration
	// RetryBase and RetryCap shape the reconnect backoff (full jitter);
	// defaults 1 s and 32 s.
	RetryBase, RetryCap time.Duration

	Logger  *slog.Logger
	Metrics *metrics.Set // where the connector's metrics go; a new set when nil
}

// Connector keeps tunnel connections to the edge up and serves them.
type Connector struct {
	cfg        Config
	logger     *slog.Logger
	origin     *origin.Client
	metrics    *connMetrics
	workers    dataplane.Workers // run the request handlers of every tunnel connection
	registered atomic.Int32
	cnameOnce  atomic.Bool

	mu    sync.Mutex
	conns map[*conn]struct{}
}

// registerTimeout bounds the wait for the edge's answer to Register.
const registerTimeout = 15 * time.Second

// New checks cfg and returns a Connector; Run starts it.
func New(cfg Config) (*Connector, error) {
	if len(cfg.Edges) == 0 {
		return nil, errors.New("connector: no edge address")
	}
	if cfg.TLS == nil || cfg.Origin == nil {
		return nil, errors.New("connector: TLS config and origin are required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("connector: no hostname")
	}
	if cfg.HAConnections <= 0 {
		cfg.HAConnections = 4
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = 30 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryCap <= 0 {
		cfg.RetryCap = 32 * time.Second
	}
	if cfg.ConnectorID == "" {
		cfg.ConnectorID = fmt.Sprintf("%016x", rand.Uint64())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	c := &Connector{cfg: cfg, logger: cfg.Logger, origin: cfg.Origin, conns: map[*conn]struct{}{}}
	c.metrics = newConnMetrics(cfg.Metrics, c)
	return c, nil
}

// Registered returns the number of tunnel connections registered now.
func (c *Connector) Registered() int { return int(c.registered.Load()) }

// Run keeps HAConnections tunnel connections up until ctx ends, then
// unregisters every one at once and lets in-flight requests finish within
// GracePeriod. Connection 0 registers first: the others start once its
// first attempt has ended, so a first registration (which may create the
// tunnel's DNS record) is not raced by its siblings. Run returns nil after
// a shutdown, or the edge's refusal when it is permanent (a bad token, a
// revoked certificate, the account's tunnel limit): retrying cannot help,
// the error says what to do.
func (c *Connector) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	perm := make(chan error, c.cfg.HAConnections)
	first := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < c.cfg.HAConnections; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				select {
				case <-first:
				case <-runCtx.Done():
					return
				}
			}
			var firstOnce func()
			if i == 0 {
				firstOnce = sync.OnceFunc(func() { close(first) })
				defer firstOnce()
			}
			if err := c.keepConn(runCtx, i, firstOnce); err != nil {
				perm <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-perm:
	}
	cancel()
	wg.Wait()
	c.workers.Close()
	return err
}

// keepConn keeps connection index up: dial, register, serve, and redial
// with full-jitter exponential backoff. It returns only when ctx ends (nil)
// or the edge refused permanently. attempted, if not nil, is called once
// the first attempt has registered or failed.
func (c *Connector) keepConn(ctx context.Context, index int, attempted func()) error {
	failures := 0
	next := index
	for {
		addr := c.cfg.Edges[next%len(c.cfg.Edges)]
		registered, err := c.connectOnce(ctx, index, addr, failures, attempted)
		if ctx.Err() != nil {
			return nil
		}
		if certRefused(err) {
			err = &tunnel.Error{Code: CodeCertRefused, Permanent: true, Message: "the edge refused the origin " +
				"certificate in cert.pem (revoked, or not issued by this edge): get a new cert.pem (culvert login) " +
				"or check --edge"}
		}
		var te *tunnel.Error
		if errors.As(err, &te) && te.Permanent {
			c.logger.Error("edge refused the tunnel", "code", te.Code, "msg", te.Message)
			return te
		}
		if registered {
			failures = 0
			c.countLost(err)
		}
		next++
		if errors.Is(err, errDrained) {
			c.metrics.reconnects.Inc()
			continue
		}
		failures++
		wait := c.backoff(failures)
		if te != nil && te.RetryAfter > 0 {
			wait = max(wait, time.Duration(te.RetryAfter)*time.Second)
		}
		c.logger.Warn("tunnel connection ended; retrying", "conn", index, "edge", addr, "err", err, "in", wait.Round(time.Millisecond))
		c.metrics.reconnects.Inc()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// countLost counts a registered connection that ended with err.
func (c *Connector) countLost(err error) {
	var ce dataplane.ConnError
	switch {
	case errors.Is(err, errDrained):
		c.metrics.lostDrain.Inc()
	case errors.As(err, &ce) && ce.Reason == dataplane.ReasonHeartbeat:
		c.metrics.lostHeartbeat.Inc()
	default:
		c.metrics.lostOther.Inc()
	}
}

// backoff returns a full-jitter wait for the n-th failure in a row.
func (c *Connector) backoff(n int) time.Duration {
	d := c.cfg.RetryCap
	if n < 30 {
		d = min(c.cfg.RetryCap, c.cfg.RetryBase<<(n-1))
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// CodeCertRefused is the code of the permanent error Run returns when the
// edge refused the connector's certificate in the TLS handshake.
const CodeCertRefused = "cert_refused"

// certRefused reports whether err is the edge's TLS alert refusing our
// client certificate. In TLS 1.3 the alert arrives after the connector's
// side of the handshake completed, so it may surface from the first read of
// the connection. Retrying cannot help: the same certificate is refused again.
func certRefused(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, alert := range refusalAlerts {
		if strings.Contains(msg, alert) {
			return true
		}
	}
	return false
}

// refusalAlerts are the TLS alerts (as crypto/tls words them) by which a
// server refuses a client certificate.
var refusalAlerts = []string{
	"remote error: tls: bad certificate",
	"remote error: tls: unknown certificate authority",
	"remote error: tls: expired certificate",
	"remote error: tls: revoked certificate",
	"remote error: tls: certificate required",
}

var errDrained = errors.New("connector: the edge asked this connection to move")

// connectOnce runs one tunnel connection to addr until it ends. It reports
// whether the connection registered.
func (c *Connector) connectOnce(ctx context.Context, index int, addr string, attempts int, attempted func()) (bool, error) {
	if attempted != nil {
		defer attempted()
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	tc := tls.Client(raw, c.cfg.TLS)
	if err := tc.HandshakeContext(dctx); err != nil {
		raw.Close()
		return false, fmt.Errorf("TLS handshake with edge %s: %w", addr, err)
	}
	cn := &conn{c: c, index: index, attempts: attempts, regCh: make(chan regResult, 1), drained: make(chan struct{})}
	ecfg := tunnel.EngineConfig(c.cfg.PingInterval, c.cfg.PingMisses)
	ecfg.Handler = cn
	ecfg.Workers = &c.workers
	ecfg.Logger = c.logger
	dc := dataplane.NewServerConn(tc, &ecfg)
	cn.dc = dc
	go dc.Serve()

	timer := time.NewTimer(registerTimeout)
	defer timer.Stop()
	select {
	case r := <-cn.regCh:
		if r.err != nil {
			dc.Close()
			return false, r.err
		}
		c.logger.Info("tunnel connection registered", "conn", index, "edge", addr,
			"conn_id", r.reg.ConnID, "location", r.reg.Location, "url", r.reg.URL, "dns", r.reg.DNSRecord)
		if r.reg.CNAME != "" && c.cnameOnce.CompareAndSwap(false, true) {
			c.logger.Warn("the zone is a partial zone: create this record at its DNS provider so visitors reach the edge", "record", r.reg.CNAME)
		}
	case <-dc.Done():
		// A refusal comes just before the edge closes the connection: the
		// control stream's handler may still be reading it, and it is the
		// error to return (a permanent one ends Run).
		if cn.controlTaken.Load() {
			select {
			case r := <-cn.regCh:
				var te *tunnel.Error
				if errors.As(r.err, &te) {
					return false, r.err
				}
			case <-timer.C:
			}
		}
		return false, fmt.Errorf("edge %s closed the connection before registering: %w", addr, connErr(dc))
	case <-timer.C:
		dc.Close()
		return false, fmt.Errorf("edge %s did not answer the registration in %v", addr, registerTimeout)
	case <-ctx.Done():
		dc.Close()
		return false, ctx.Err()
	}

	c.registered.Add(1)
	if attempted != nil {
		attempted() // once: the deferred call is then a no-op
	}
	c.mu.Lock()
	c.conns[cn] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.conns, cn)
		c.mu.Unlock()
	}()
	c.metrics.connects.Inc()

	select {
	case <-dc.Done():
		c.registered.Add(-1)
		return true, connErr(dc)
	case <-cn.drained:
		// Move at once: a new connection is dialed while this one finishes
		// its streams in the background. Unregister ends the control
		// stream, so the shutdown ends with the last request.
		c.registered.Add(-1)
		cn.unregister()
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), c.cfg.GracePeriod)
			defer cancel()
			dc.Shutdown(sctx)
		}()
		return true, errDrained
	case <-ctx.Done():
		c.registered.Add(-1)
		cn.unregister()
		sctx, cancel := context.WithTimeout(context.Background(), c.cfg.GracePeriod)
		defer cancel()
		dc.Shutdown(sctx)
		return true, nil
	}
}

func connErr(dc *dataplane.Conn) error {
	if err := dc.Err(); err != nil {
		return err
	}
	return dataplane.ErrConnClosed
}

type regResult struct {
	reg *tunnel.Registered
	err error
}

// conn is one tunnel connection; it is the engine's Handler for it.
type conn struct {
	c        *Connector
	dc       *dataplane.Conn
	index    int
	attempts int
	regCh    chan regResult

	controlTaken atomic.Bool
	drainOnce    sync.Once
	drained      chan struct{}

	mu   sync.Mutex
	ctrl *dataplane.Stream // the control stream while its handler runs
}

// ServeStream dispatches a stream the edge opened by its kind.
func (cn *conn) ServeStream(s *dataplane.Stream) {
	kind := s.Headers().Get(tunnel.HeaderStream)
	switch string(kind) {
	case tunnel.StreamHTTP, "":
		cn.serveHTTP(s)
	case tunnel.StreamWebsocket:
		cn.serveWebsocket(s)
	case tunnel.StreamControl:
		cn.serveControl(s)
	default:
		writeGenerated(s, 400, tunnel.ErrorBadRequest, "culvert: unknown stream kind\n")
	}
}

var status200 = []hpack.HeaderField{{Name: []byte(":status"), Value: []byte("200")}}

// serveControl runs the control stream: Register, the edge's answer, then
// notices until the connection ends.
func (cn *conn) serveControl(s *dataplane.Stream) {
	if !cn.controlTaken.CompareAndSwap(false, true) {
		s.Reset(frames.ErrCodeRefusedStream)
		return
	}
	c := cn.c
	fail := func(err error) {
		select {
		case cn.regCh <- regResult{err: err}:
		default:
		}
	}
	if err := s.WriteHeaders(status200, false); err != nil {
		fail(err)
		return
	}
	reg := &tunnel.Register{
		Token: c.cfg.Token, Hostname: c.cfg.Hostname, LBPool: c.cfg.LBPool,
		ConnIndex: cn.index, ConnectorID: c.cfg.ConnectorID, Version: c.cfg.Version,
		PrevAttempts: cn.attempts,
	}
	if err := tunnel.WriteMessage(s, &tunnel.Message{Type: tunnel.TypeRegister, Register: reg}); err != nil {
		fail(err)
		return
	}
	m, err := tunnel.ReadMessage(s)
	if err != nil {
		fail(fmt.Errorf("reading the registration answer: %w", err))
		return
	}
	switch m.Type {
	case tunnel.TypeRegistered:
		cn.mu.Lock()
		cn.ctrl = s
		cn.mu.Unlock()
		defer func() {
			cn.mu.Lock()
			cn.ctrl = nil
			cn.mu.Unlock()
		}()
		cn.regCh <- regResult{reg: m.Registered}
	case tunnel.TypeError:
		fail(m.Error)
		return
	default:
		fail(fmt.Errorf("edge answered Register with %q", m.Type))
		return
	}
	for {
		m, err := tunnel.ReadMessage(s)
		if err != nil {
			return
		}
		switch m.Type {
		case tunnel.TypeDrain:
			c.logger.Info("edge asks this connection to move", "conn", cn.index, "reason", m.Drain.Reason)
			cn.drainOnce.Do(func() { close(cn.drained) })
		case tunnel.TypeError:
			c.logger.Warn("edge notice", "code", m.Error.Code, "msg", m.Error.Message)
		}
	}
}

// unregister tells the edge to send no new streams on this connection.
func (cn *conn) unregister() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.ctrl != nil {
		tunnel.WriteMessage(cn.ctrl, &tunnel.Message{Type: tunnel.TypeUnregister})
	}
}
