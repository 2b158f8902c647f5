package culverttls

import (
	"crypto"
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// side is one end's outcome of a handshake.
type side struct {
	err   error
	state tls.ConnectionState
}

// handshake runs a TLS handshake over a real TCP connection on 127.0.0.1
// and reports both ends. In TLS 1.3 the client finishes before the server
// has checked its certificate, so the client also reads the server's first
// bytes: a refusal reaches it as the alert on that read.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (srv, cli side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan side, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		tc := tls.Server(c, serverCfg)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte("ok"))
		}
		done <- side{err: err, state: tc.ConnectionState()}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(deadline)
	tc := tls.Client(raw, clientCfg)
	err = tc.Handshake()
	if err == nil {
		buf := make([]byte, 2)
		if _, err = io.ReadFull(tc, buf); err == nil && string(buf) != "ok" {
			t.Fatalf("client read %q", buf)
		}
	}
	cli = side{err: err, state: tc.ConnectionState()}
	tc.Close()
	srv = <-done
	return srv, cli
}

// edge is a fixture plus the edge's tunnel certificate.
type edge struct {
	*fixture
	cert tls.Certificate
}

func newEdge(t *testing.T) *edge {
	t.Helper()
	f := newFixture(t)
	cert, err := f.edgeCA.IssueServer([]string{testServerName}, localhost, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &edge{fixture: f, cert: cert}
}

func (e *edge) serverConfig(revoked func(*big.Int) bool) *tls.Config {
	return TunnelServerConfig(e.cert, e.originCA.Pool(), revoked)
}

func (e *edge) clientConfig(t *testing.T) *tls.Config {
	t.Helper()
	pool, err := e.bundle.EdgeCAPool()
	if err != nil {
		t.Fatal(err)
	}
	return TunnelClientConfig(e.bundle, pool, e.bundle.Token.TunnelServerName)
}

// refused fails unless both ends failed and each error mentions its part.
func refused(t *testing.T, srv, cli side, srvWant, cliWant string) {
	t.Helper()
	t.Logf("server: %v\n\tclient: %v", srv.err, cli.err)
	if srv.err == nil || cli.err == nil {
		t.Fatalf("handshake not refused: server %v, client %v", srv.err, cli.err)
	}
	if !strings.Contains(srv.err.Error(), srvWant) {
		t.Errorf("server error %q does not mention %q", srv.err, srvWant)
	}
	if !strings.Contains(cli.err.Error(), cliWant) {
		t.Errorf("client error %q does not mention %q", cli.err, cliWant)
	}
	if _, err := PeerOriginCert(srv.state); err == nil {
		t.Error("PeerOriginCert succeeded on a refused connection")
	}
}

func TestTunnelHandshake(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	var mu sync.Mutex
	var asked []*big.Int
	revoked := func(serial *big.Int) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, serial)
		return serial.Cmp(big.NewInt(42)) == 0
	}
	srv, cli := handshake(t, e.serverConfig(revoked), e.clientConfig(t))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server %v, client %v", srv.err, cli.err)
	}
	for _, s := range []tls.ConnectionState{srv.state, cli.state} {
		if s.Version != tls.VersionTLS13 || s.NegotiatedProtocol != ALPN {
			t.Fatalf("version %x, ALPN %q", s.Version, s.NegotiatedProtocol)
		}
	}
	peer, err := PeerOriginCert(srv.state)
	if err != nil {
		t.Fatal(err)
	}
	if !peer.Equal(e.bundle.Cert) {
		t.Fatal("PeerOriginCert is not the connector's certificate")
	}
	if z, err := ZoneOf(peer); err != nil || z != testZone {
		t.Fatalf("ZoneOf = %q, %v", z, err)
	}
	mu.Lock()
	if len(asked) != 1 || asked[0].Cmp(e.bundle.Cert.SerialNumber) != 0 {
		t.Fatalf("revoked asked about %v", asked)
	}
	mu.Unlock()

	// On the connector's side the peer is the edge, not an origin.
	if _, err := PeerOriginCert(cli.state); err == nil {
		t.Fatal("PeerOriginCert accepted the edge's certificate")
	}
	if _, err := PeerOriginCert(tls.ConnectionState{}); err == nil {
		t.Fatal("PeerOriginCert accepted an empty state")
	}

	// revoked may be nil.
	srv, cli = handshake(t, e.serverConfig(nil), e.clientConfig(t))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("nil revoked: server %v, client %v", srv.err, cli.err)
	}
}

func TestTunnelHandshakeRevoked(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	serial := new(big.Int).Set(e.bundle.Cert.SerialNumber)
	revoked := func(s *big.Int) bool {
		ok := s.Cmp(serial) == 0
		s.SetInt64(0) // the callback gets a copy; scribbling on it is harmless
		return ok
	}
	srv, cli := handshake(t, e.serverConfig(revoked), e.clientConfig(t))
	// crypto/tls answers a refusal in VerifyConnection with the
	// bad_certificate alert; the edge's own error names the revocation.
	refused(t, srv, cli, "revoked", "bad certificate")
	if e.bundle.Cert.SerialNumber.Cmp(serial) != 0 {
		t.Fatal("the callback changed the certificate's serial")
	}
}

func TestTunnelHandshakeConnectorFromOtherCA(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	rogue := newTestCA(t, "culvert origin CA") // same name, other key
	e.bundle = newTestBundle(t, rogue, e.edgeCA, testZone)
	srv, cli := handshake(t, e.serverConfig(nil), e.clientConfig(t))
	refused(t, srv, cli, "unknown authority", "unknown certificate authority")
}

func TestTunnelHandshakeConnectorNotOrigin(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	// A server certificate from the origin CA, even for the zone's names,
	// is not a client certificate.
	srvCert, err := e.originCA.IssueServer([]string{testZone, "*." + testZone}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.bundle.Cert, e.bundle.Key = srvCert.Leaf, srvCert.PrivateKey.(crypto.Signer)
	srv, cli := handshake(t, e.serverConfig(nil), e.clientConfig(t))
	refused(t, srv, cli, "incompatible key usage", "bad certificate")
}

func TestTunnelHandshakeUnknownEdgeCA(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	other := newTestCA(t, "culvert edge CA")
	cfg := TunnelClientConfig(e.bundle, other.Pool(), testServerName)
	srv, cli := handshake(t, e.serverConfig(nil), cfg)
	refused(t, srv, cli, "bad certificate", "unknown authority")
}

func TestTunnelHandshakeWrongServerName(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	pool, _ := e.bundle.EdgeCAPool()
	cfg := TunnelClientConfig(e.bundle, pool, "wrong.culvert.test")
	srv, cli := handshake(t, e.serverConfig(nil), cfg)
	refused(t, srv, cli, "bad certificate", "not wrong.culvert.test")
}

func TestTunnelHandshakeClientWithoutALPN(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	cfg := e.clientConfig(t)
	cfg.NextProtos = nil
	cfg.VerifyConnection = nil
	srv, cli := handshake(t, e.serverConfig(nil), cfg)
	refused(t, srv, cli, `did not offer ALPN "culvert/1"`, "internal error")

	cfg.NextProtos = []string{"h2", "http/1.1"}
	srv, cli = handshake(t, e.serverConfig(nil), cfg)
	refused(t, srv, cli, `did not offer ALPN "culvert/1"`, "internal error")
}

func TestTunnelHandshakeTLS12Client(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	cfg := e.clientConfig(t)
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	srv, cli := handshake(t, e.serverConfig(nil), cfg)
	refused(t, srv, cli, "unsupported versions", "protocol version")
}

func TestTunnelHandshakeEdgeWithoutALPN(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	plain := &tls.Config{Certificates: []tls.Certificate{e.cert}, MinVersion: tls.VersionTLS13}
	srv, cli := handshake(t, plain, e.clientConfig(t))
	refused(t, srv, cli, "bad certificate", `edge did not select ALPN "culvert/1"`)

	other := plain.Clone()
	other.NextProtos = []string{"h2"}
	srv, cli = handshake(t, other, e.clientConfig(t))
	refused(t, srv, cli, "unsupported application protocols", "no application protocol")
}

func TestTunnelClientConfigWithoutBundle(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	pool, _ := e.bundle.EdgeCAPool()
	srv, cli := handshake(t, e.serverConfig(nil), TunnelClientConfig(nil, pool, testServerName))
	if cli.err == nil || srv.err == nil {
		t.Fatalf("server %v, client %v", srv.err, cli.err)
	}
	wantErr(t, cli.err, "no origin certificate")
}
