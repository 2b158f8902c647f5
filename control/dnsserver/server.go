// Package dnsserver is the edge's authoritative DNS server. It answers,
// over UDP and TCP, for the edge's own domain and for the customer zones
// the edge hosts in full:
//
//   - every authority apex: SOA (one serial for all zones, bumped whenever
//     the data changes) and NS ns1.<Domain>, ns2.<Domain>;
//   - ns1, ns2, tunnel and api.<Domain>: the edge's addresses;
//   - <region>.<Domain>: that region's addresses, and the discovery SRV
//     record _culvert._tcp.<Domain> naming every region, with the targets'
//     addresses as additional records;
//   - <host>.cdn.<Domain> for tunnel hostnames in partial zones, and
//     <pool>.lb.<Domain> for load-balancer pools: the edge's addresses;
//   - the A, AAAA and CNAME records of full zones, CNAMEs chased while the
//     target stays inside our authorities.
//
// Partial zones (hosted by the customer's own DNS provider) and names
// outside every authority are REFUSED. Negative answers carry the SOA
// (NXDOMAIN for a name that does not exist, NODATA for one that does,
// empty non-terminals included). ANY gets every RRset at the name (the
// sets are few and small; RFC 8482 permits it). Over UDP an answer is cut
// to the client's EDNS0 size (512 without EDNS0, at most 4096) with TC set
// when answer or authority records had to go; additional records that do
// not fit are left out without TC.
//
// The data is an immutable snapshot (Data), compiled into maps and swapped
// atomically: the query path never reaches a store. A Load function is
// called at Start and then every Refresh (and on Reload); Set installs a
// snapshot directly.
//
// Bounds: TCP connections are capped (Config.MaxTCPConns; further ones
// wait in the listen backlog) and have read, write and idle timeouts, and
// a connection serves a bounded number of queries. The DNS library starts
// one goroutine per UDP query; the handler never blocks and holds no locks,
// so these end as fast as they start, but their number is not capped.
//
// What it is not: a resolver (no recursion, RA is never set), a DNSSEC
// signer, a primary for secondaries (no zone transfers: AXFR and IXFR are
// REFUSED, NOTIFY is NOTIMP), or a general DNS server (no wildcards, no
// record types beyond A, AAAA and CNAME in customer zones, class IN only).
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Config sets up a Server.
type Config struct {
	Addr   string       // listen address for both UDP and TCP; ":53" when empty; port 0 picks one free for both
	Logger *slog.Logger // slog.Default() when nil

	// Load returns the current data. Start calls it once (and fails if it
	// does); later failures keep the previous data. Nil: only Set supplies
	// data.
	Load func() (*Data, error)
	// Refresh is how often Load is called again (default 5s).
	Refresh time.Duration

	// MaxTCPConns caps the TCP connections served at once (default 256).
	MaxTCPConns int
}

// TCP limits.
const (
	tcpReadTimeout  = 2 * time.Second
	tcpWriteTimeout = 2 * time.Second
	tcpIdleTimeout  = 8 * time.Second // RFC 7766 suggests seconds, not minutes
	tcpMaxQueries   = 128             // per connection
	shutdownTimeout = 5 * time.Second
	listenAttempts  = 10
)

// Server is an authoritative DNS server. Its methods are safe for
// concurrent use.
type Server struct {
	cfg    Config
	logger *slog.Logger

	snap atomic.Pointer[snapshot]

	setMu      sync.Mutex // serialises installs (serial bookkeeping)
	lastHash   uint64
	lastSerial uint32

	reload chan struct{}

	mu      sync.Mutex // guards the fields below
	started bool
	closed  bool
	addr    string
	udp     *dns.Server
	tcp     *dns.Server
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New returns a Server that has not started; it refuses every query until
// it has data.
func New(cfg Config) *Server {
	if cfg.Addr == "" {
		cfg.Addr = ":53"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 256
	}
	s := &Server{
		cfg:    cfg,
		logger: cfg.Logger,
		reload: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	s.snap.Store(emptySnapshot())
	return s
}

// Set swaps in d. A nil or invalid d (no valid Domain) leaves the server
// refusing every query; entries of d it cannot serve are logged and left
// out.
func (s *Server) Set(d *Data) {
	if d == nil {
		s.install(emptySnapshot())
		return
	}
	snap, err := compile(d)
	if err != nil {
		s.logger.Error("dns data not usable; refusing all queries", "err", err)
		snap = emptySnapshot()
	}
	s.install(snap)
}

// install publishes snap, giving it a serial: the previous one when
// nothing changed, else the current time (or the previous serial + 1 if
// that is not larger).
func (s *Server) install(snap *snapshot) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if snap.hash != s.lastHash || s.lastSerial == 0 {
		serial := uint32(time.Now().Unix())
		if serial <= s.lastSerial {
			serial = s.lastSerial + 1
		}
		s.lastHash, s.lastSerial = snap.hash, serial
		for _, msg := range snap.skipped {
			s.logger.Warn("dns data entry left out", "why", msg)
		}
	}
	snap.setSerial(s.lastSerial)
	s.snap.Store(snap)
}

// load calls cfg.Load and installs what it returns.
func (s *Server) load() error {
	if s.cfg.Load == nil {
		return nil
	}
	d, err := s.cfg.Load()
	if err != nil {
		return err
	}
	snap, err := compile(d)
	if err != nil {
		return err
	}
	s.install(snap)
	return nil
}

// Start loads the data once, binds UDP and TCP on the same port and serves
// them in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dnsserver: closed")
	}
	if s.started {
		return errors.New("dnsserver: already started")
	}
	if err := s.load(); err != nil {
		return fmt.Errorf("dnsserver: load: %w", err)
	}
	pc, ln, err := listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	handler := dns.HandlerFunc(s.serveDNS)
	s.udp = &dns.Server{
		PacketConn:     pc,
		Handler:        handler,
		UDPSize:        ourUDPSize,
		MsgAcceptFunc:  acceptMsg,
		MsgInvalidFunc: func([]byte, error) {},
	}
	s.tcp = &dns.Server{
		Listener:       netutil.LimitListener(ln, s.cfg.MaxTCPConns),
		Handler:        handler,
		ReadTimeout:    tcpReadTimeout,
		WriteTimeout:   tcpWriteTimeout,
		IdleTimeout:    func() time.Duration { return tcpIdleTimeout },
		MaxTCPQueries:  tcpMaxQueries,
		MsgAcceptFunc:  acceptMsg,
		MsgInvalidFunc: func([]byte, error) {},
	}
	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		ready := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ready) }
		s.wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		})
		select {
		case <-ready:
		case err := <-errc:
			s.shutdown()
			return fmt.Errorf("dnsserver: serve: %w", err)
		}
	}
	s.addr = pc.LocalAddr().String()
	s.started = true
	s.wg.Go(s.refreshLoop)
	s.logger.Info("dns server listening", "addr", s.addr)
	return nil
}

// listen binds UDP and TCP on addr; with port 0 it looks for a port free
// for both.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsserver: listen address %q: %w", addr, err)
	}
	if port != "0" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsserver: %w", err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			return nil, nil, fmt.Errorf("dnsserver: %w", err)
		}
		return pc, ln, nil
	}
	var lastErr error
	for range listenAttempts {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("dnsserver: %w", err)
		}
		ua := pc.LocalAddr().(*net.UDPAddr)
		tcpHost := host
		if ua.IP != nil && !ua.IP.IsUnspecified() {
			tcpHost = ua.IP.String() // a name like "localhost": bind what UDP bound
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(tcpHost, strconv.Itoa(ua.Port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dnsserver: no port free for both udp and tcp on %q after %d attempts: %w", host, listenAttempts, lastErr)
}

func (s *Server) refreshLoop() {
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.reload:
		}
		if err := s.load(); err != nil {
			s.logger.Warn("dns data reload failed; serving the previous data", "err", err)
		}
	}
}

// Addr returns the bound "ip:port" ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Reload asks for a Load now without waiting for it; requests made while
// one is pending are merged into it.
func (s *Server) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

// Close stops serving and waits for the listeners and the refresh loop to
// end. It may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	return s.shutdown()
}

// shutdown stops the dns servers that run and waits for every goroutine.
// Called with mu held.
func (s *Server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv == nil {
			continue
		}
		if err := srv.ShutdownContext(ctx); err != nil && !isNotStarted(err) {
			errs = append(errs, err)
		}
	}
	if !s.started {
		// A failed Start: close what never got served.
		if s.udp != nil && s.udp.PacketConn != nil {
			s.udp.PacketConn.Close()
		}
		if s.tcp != nil && s.tcp.Listener != nil {
			s.tcp.Listener.Close()
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

func isNotStarted(err error) bool {
	return err != nil && err.Error() == "dns: server not started"
}
