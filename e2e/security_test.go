package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/connector"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	culverttls "github.com/culvert-tunnel/culvert/tls"
)

// expectRefusal runs a connector that the edge must refuse at registration
// and checks that Run returns, fast and without retrying, the edge's
// permanent *tunnel.Error with code; it returns that error.
func expectRefusal(t *testing.T, te *testEdge, b *culverttls.Bundle, hostname, code string) *tunnel.Error {
	t.Helper()
	failuresBefore := te.scrape().get("culvert_edge_tunnel_registration_failures_total")
	start := time.Now()
	tc := startConnector(t, te, b, connOptions{hostname: hostname, originURL: closedPortURL(t)})
	err, ok := tc.wait(10 * time.Second)
	if !ok {
		t.Fatalf("connector Run still running 10s after start: a refusal must end it")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v, want a prompt return", d)
	}
	var te2 *tunnel.Error
	if !errors.As(err, &te2) {
		t.Fatalf("Run returned %v (%T), want a *tunnel.Error", err, err)
	}
	if te2.Code != code || !te2.Permanent {
		t.Fatalf("refusal %+v, want code %s, permanent", te2, code)
	}
	m := tc.scrape()
	if got := m.get("culvert_connector_tunnel_reconnects_total"); got != 0 {
		t.Errorf("the connector retried %v times, want 0", got)
	}
	if got := m.get("culvert_connector_tunnel_connects_total"); got != 0 {
		t.Errorf("culvert_connector_tunnel_connects_total %v, want 0", got)
	}
	expectCounterMoves(t, "edge", te.scrape, failuresBefore, 1, "culvert_edge_tunnel_registration_failures_total")
	if n := te.e.LiveConnections(hostname); n != 0 {
		t.Errorf("the edge routes %s to %d connections, want 0", hostname, n)
	}
	return te2
}

// TestZoneCannotRegisterOtherZone: a cert.pem of zone A cannot register a
// hostname of zone B, even when the edge serves zone B.
func TestZoneCannotRegisterOtherZone(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	a := te.zoneBundle("zone-a.test")
	te.zoneBundle("zone-b.test")
	terr := expectRefusal(t, te, a, "app.zone-b.test", tunnel.CodeHostnameOutside)
	if !strings.Contains(terr.Message, "app.zone-b.test") {
		t.Errorf("message %q does not name the hostname", terr.Message)
	}
}

// TestHostnameApexRefused: the zone apex is not a tunnel hostname.
func TestHostnameApexRefused(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	terr := expectRefusal(t, te, b, "example.test", tunnel.CodeHostnameApex)
	if !strings.Contains(terr.Message, "apex") || !strings.Contains(terr.Message, `"example.test"`) {
		t.Errorf("message %q should name the hostname and say it is the zone apex", terr.Message)
	}
}

// TestHostnameTwoLevelsRefused: a hostname two labels under the zone is
// not covered by the origin certificate's wildcard.
func TestHostnameTwoLevelsRefused(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	terr := expectRefusal(t, te, b, "deep.app.example.test", tunnel.CodeHostnameTooDeep)
	if !strings.Contains(terr.Message, "more than one label") || !strings.Contains(terr.Message, "deep.app.example.test") {
		t.Errorf("message %q should name the hostname and say it is too deep", terr.Message)
	}
}

// TestRolledTokenRefused: after the bundle's service user's token is
// rolled, the old cert.pem gets bad_token, with the way out in the message.
func TestRolledTokenRefused(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	u, err := te.ctl.Store.UserByToken(b.Token.APIToken)
	if err != nil {
		t.Fatalf("UserByToken: %v", err)
	}
	if !u.Service {
		t.Errorf("the bundle's user %q is not a service user", u.Name)
	}
	if _, err := te.ctl.Store.RollUserToken(u.ID); err != nil {
		t.Fatalf("RollUserToken: %v", err)
	}
	terr := expectRefusal(t, te, b, "app.example.test", tunnel.CodeBadToken)
	if !strings.Contains(terr.Message, "culvert login") {
		t.Errorf("message %q does not say to run `culvert login` again", terr.Message)
	}
}

// expectTLSFailure runs a connector that must fail its TLS handshake with
// the edge: it never registers, it keeps retrying (a TLS failure is not a
// refusal), and its logged error has want in it.
func expectTLSFailure(t *testing.T, te *testEdge, b *culverttls.Bundle, opts connOptions, edgeCounts bool, want ...string) {
	t.Helper()
	hsBefore := te.scrape().get("culvert_edge_tunnel_handshake_failures_total")
	opts.hostname = "app." + b.Token.Zone
	opts.originURL = closedPortURL(t)
	tc := startConnector(t, te, b, opts)
	if edgeCounts {
		// The edge refused the connector's certificate: retrying cannot
		// help, Run ends with a permanent error that says what to do.
		err, done := tc.wait(15 * time.Second)
		if !done {
			t.Fatal("connector Run did not return after the edge refused its certificate")
		}
		var terr *tunnel.Error
		if !errors.As(err, &terr) || !terr.Permanent || terr.Code != connector.CodeCertRefused ||
			!strings.Contains(terr.Message, "cert.pem") {
			t.Fatalf("Run returned %v, want a permanent %s error naming cert.pem", err, connector.CodeCertRefused)
		}
		expectCounterGrows(t, "edge", te.scrape, hsBefore, 1, "culvert_edge_tunnel_handshake_failures_total")
		waitFor(t, 10*time.Second, "the edge to log the handshake failure", func() bool {
			return len(te.logs.find("edge", "tunnel TLS handshake failed")) > 0
		})
		if n := te.scrape().get("culvert_edge_tunnel_registrations_total"); n != 0 {
			t.Errorf("culvert_edge_tunnel_registrations_total %v, want 0", n)
		}
		return
	}
	var rec logRecord
	waitFor(t, 15*time.Second, "the connector to log a failed connection", func() bool {
		recs := te.logs.find("connector", "tunnel connection ended; retrying")
		if len(recs) == 0 {
			return false
		}
		rec = recs[0]
		return true
	})
	t.Logf("connector: %s", rec.attrs["err"])
	msg := strings.ToLower(rec.attrs["err"])
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("the connector's error %q does not mention %q", rec.attrs["err"], w)
		}
	}
	if edgeCounts {
		expectCounterGrows(t, "edge", te.scrape, hsBefore, 1, "culvert_edge_tunnel_handshake_failures_total")
		waitFor(t, 10*time.Second, "the edge to log the handshake failure", func() bool {
			return len(te.logs.find("edge", "tunnel TLS handshake failed")) > 0
		})
	}
	if _, done := tc.wait(0); done {
		t.Errorf("connector Run returned %v: a TLS failure should be retried", tc.err)
	}
	if n := tc.c.Registered(); n != 0 {
		t.Errorf("connector registered %d connections, want 0", n)
	}
	m := te.scrape()
	if got := m.get("culvert_edge_tunnel_registrations_total"); got != 0 {
		t.Errorf("culvert_edge_tunnel_registrations_total %v, want 0", got)
	}
	if got := m.get("culvert_edge_tunnel_connections"); got != 0 {
		t.Errorf("culvert_edge_tunnel_connections %v, want 0", got)
	}
	tc.stop()
	if tc.err != nil {
		t.Errorf("Run returned %v after its context ended, want nil", tc.err)
	}
}

// foreignBundle is b with its origin certificate and key replaced by ones
// of another CA, for the same zone.
func foreignBundle(t *testing.T, b *culverttls.Bundle) *culverttls.Bundle {
	t.Helper()
	ca, err := culverttls.NewCA("foreign origin CA", 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := culverttls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueOrigin(b.Token.Zone, key.Public(), culverttls.MinOriginValidity+24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &culverttls.Bundle{Cert: cert, Key: key, Token: b.Token}
}

// TestUntrustedOriginCertRefused: an origin certificate from a CA the edge
// does not know is refused in the TLS handshake.
func TestUntrustedOriginCertRefused(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := foreignBundle(t, te.zoneBundle("example.test"))
	expectTLSFailure(t, te, b, connOptions{}, true, "tls", "certificate")
}

// TestRevokedCertRefused: an origin certificate revoked at the edge is
// refused in the TLS handshake, and the revocation is what the edge logs.
func TestRevokedCertRefused(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	if err := te.ctl.RevokeCert(b.Cert.SerialNumber.Text(16)); err != nil {
		t.Fatalf("RevokeCert: %v", err)
	}
	expectTLSFailure(t, te, b, connOptions{}, true, "tls", "certificate")
	recs := te.logs.find("edge", "tunnel TLS handshake failed")
	if len(recs) == 0 || !strings.Contains(recs[0].attrs["err"], "revoked") {
		t.Errorf("the edge's handshake failure %v does not say the certificate is revoked", recs)
	}
}

// TestConnectorRefusesForeignEdge: a connector that trusts another CA than
// the edge's refuses the edge's certificate and never registers.
func TestConnectorRefusesForeignEdge(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	other, err := culverttls.NewCA("another edge CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expectTLSFailure(t, te, b, connOptions{edgeCAs: func(*culverttls.Bundle) *x509.CertPool { return other.Pool() }},
		false, "tls", "certificate")
}

// TestConnectorRefusesWrongServerName: a connector expecting another
// server name than the edge's certificate has refuses it.
func TestConnectorRefusesWrongServerName(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	expectTLSFailure(t, te, b, connOptions{serverName: "tunnel.elsewhere.test"}, false,
		"tls", "certificate", "tunnel.elsewhere.test")
}

// TestVisitorCannotSpoofTunnelHeaders: the tunnel's own request headers
// (culvert-stream, culvert-connecting-ip, culvert-request-id) cannot be set
// by a visitor: the origin sees the edge's values. X-Forwarded-For gets the
// visitor's address appended, and hop-by-hop headers cross in neither
// direction.
func TestVisitorCannotSpoofTunnelHeaders(t *testing.T) {
	type seen struct {
		Host   string
		Header http.Header
	}
	originURL := startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin", "yes")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{Host: r.Host, Header: r.Header})
	}))
	tn := startTunnel(t, connOptions{originURL: originURL})
	req, err := http.NewRequest(http.MethodGet, tn.url("/spoof"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Culvert-Stream", "control")
	req.Header.Set("Culvert-Connecting-Ip", "192.0.2.1")
	req.Header.Set("Culvert-Request-Id", "forged")
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	req.Header.Set("X-Visitor", "kept")
	req.Header.Set("Proxy-Connection", "keep-alive")
	resp, err := tn.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	var got seen
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	h := got.Header
	want := map[string][]string{
		"Culvert-Connecting-Ip": {"127.0.0.1"},
		"X-Forwarded-For":       {"198.51.100.7, 127.0.0.1"},
		"X-Forwarded-Proto":     {"http"},
		"X-Visitor":             {"kept"},
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("the origin saw %s %q, want %q", k, h[k], v)
		}
	}
	if got.Host != tn.hostname {
		t.Errorf("the origin saw Host %q, want %q", got.Host, tn.hostname)
	}
	if id := h["Culvert-Request-Id"]; len(id) != 1 || id[0] == "forged" || len(id[0]) != 16 {
		t.Errorf("the origin saw Culvert-Request-Id %q, want one id of the edge's (16 hex digits)", id)
	}
	for _, k := range []string{"Culvert-Stream", "Proxy-Connection"} {
		if v, ok := h[k]; ok {
			t.Errorf("the origin saw %s %q, want none", k, v)
		}
	}
	if resp.Header.Get("X-Origin") != "yes" {
		t.Errorf("the visitor did not get the origin's X-Origin header: %v", resp.Header)
	}
	if v := resp.Header.Values("Keep-Alive"); len(v) > 0 {
		t.Errorf("the visitor got the origin's hop-by-hop Keep-Alive %q", v)
	}
}

// TestTunnelLimit: the account's tunnel limit (here 2) refuses the next
// hostname with a permanent error that says what to do; more connections
// and replicas of a running hostname do not count; once a tunnel stops,
// another may start.
func TestTunnelLimit(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	te.ctl.TunnelLimit = 2
	b := te.zoneBundle("example.test")
	origin := startHelloOrigin(t)
	one := startConnector(t, te, b, connOptions{hostname: "one.example.test", originURL: origin})
	waitRegistered(t, te, one, "one.example.test")
	two := startConnector(t, te, b, connOptions{hostname: "two.example.test", originURL: origin})
	waitRegistered(t, te, two, "two.example.test")
	replica := startConnector(t, te, b, connOptions{hostname: "two.example.test", originURL: origin,
		config: func(c *connector.Config) { c.HAConnections = 2 }})
	waitFor(t, 15*time.Second, "a replica of a running tunnel", func() bool { return replica.c.Registered() == 2 })

	terr := expectRefusal(t, te, b, "three.example.test", tunnel.CodeTunnelLimit)
	if !strings.Contains(terr.Message, "maximum of 2 tunnels") || !strings.Contains(terr.Message, "stop one") {
		t.Fatalf("tunnel limit message: %q", terr.Message)
	}
	one.stop()
	three := startConnector(t, te, b, connOptions{hostname: "three.example.test", originURL: origin})
	waitRegistered(t, te, three, "three.example.test")
}

// TestTamperedCertPEMRefused: a cert.pem edited by hand is refused. A
// certificate whose bytes were changed (here its signature) fails the TLS
// handshake; a token changed fails the registration with a message that
// says to log in again.
func TestTamperedCertPEMRefused(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")

	der := bytes.Clone(b.Cert.Raw)
	der[len(der)-5] ^= 0x55 // inside the signature
	forged, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("the tampered certificate does not even parse: %v", err)
	}
	expectTLSFailure(t, te, &culverttls.Bundle{Cert: forged, Key: b.Key, Token: b.Token}, connOptions{}, true, "tls", "certificate")
	recs := te.logs.find("edge", "tunnel TLS handshake failed")
	if len(recs) == 0 || !strings.Contains(recs[0].attrs["err"], "verif") {
		t.Errorf("the edge's handshake failure %v does not say the certificate failed verification", recs)
	}

	tok := b.Token
	tok.APIToken = tok.APIToken[:len(tok.APIToken)-2] + "xx"
	terr := expectRefusal(t, te, &culverttls.Bundle{Cert: b.Cert, Key: b.Key, Token: tok}, "app.example.test", tunnel.CodeBadToken)
	if !strings.Contains(terr.Message, "not valid") || !strings.Contains(terr.Message, "culvert login") {
		t.Fatalf("tampered token message: %q", terr.Message)
	}
}
