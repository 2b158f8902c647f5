package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// TestStateSurvivesRestart closes the control path and reopens the same
// data dir in a new edge: the CAs, the zones, the certificates and their
// revocations are the same, and a connector still running with the old
// cert.pem registers again with the new edge and serves visitors.
func TestStateSurvivesRestart(t *testing.T) {
	logs := newLogBook(t)
	dir := t.TempDir()
	// The second edge's tunnel listener exists from the start, unserved: a
	// connector dialing it waits in its backlog until the second edge runs.
	ln2 := listen(t)
	first := startEdge(t, logs, edgeOptions{dataDir: dir})
	b := first.zoneBundle("example.test")
	revoked := first.zoneBundle("example.test")
	if err := first.ctl.RevokeCert(revoked.Cert.SerialNumber.Text(16)); err != nil {
		t.Fatalf("RevokeCert: %v", err)
	}
	originURL := startHelloOrigin(t)
	const hostname = "app.example.test"
	tc := startConnector(t, first, b, connOptions{
		hostname: hostname, originURL: originURL,
		edges: []string{first.tunnelAddr, ln2.Addr().String()},
	})
	waitRegistered(t, first, tc, hostname)
	fetchHello(t, visitorClient(t, first.visitorAddr), hostname)

	old := first.ctl
	oldTunnel, err := old.Store.TunnelByHostname(hostname)
	if err != nil {
		t.Fatalf("TunnelByHostname before the restart: %v", err)
	}
	stopStart := time.Now()
	first.stop() // Shutdown (the connector is asked to move), then Close of the control path
	if d := time.Since(stopStart); d > 4*time.Second {
		t.Errorf("the idle edge took %v to shut down (its limit is 10s, the connector's grace period 5s): the drained connection did not end", d)
	}
	waitFor(t, 10*time.Second, "the connector to notice the edge is gone", func() bool { return tc.c.Registered() == 0 })

	second := startEdge(t, logs, edgeOptions{dataDir: dir, tunnelLn: ln2})
	ctl := second.ctl
	if !ctl.OriginCA.Cert.Equal(old.OriginCA.Cert) {
		t.Error("the origin CA changed across the restart")
	}
	if !ctl.EdgeCA.Cert.Equal(old.EdgeCA.Cert) {
		t.Error("the edge CA changed across the restart")
	}
	if ctl.AdminUserID != old.AdminUserID || ctl.DefaultAccountID != old.DefaultAccountID {
		t.Errorf("admin %q account %q after the restart, were %q %q", ctl.AdminUserID, ctl.DefaultAccountID, old.AdminUserID, old.DefaultAccountID)
	}
	z, err := ctl.Store.ZoneByName("example.test")
	if err != nil || z.ID != b.Token.ZoneID {
		t.Errorf("zone after the restart: %+v, %v; want id %s", z, err, b.Token.ZoneID)
	}
	if rec, err := ctl.Store.GetCert(b.Cert.SerialNumber.Text(16)); err != nil || rec.ZoneID != b.Token.ZoneID || rec.Revoked {
		t.Errorf("the live certificate after the restart: %+v, %v", rec, err)
	}
	if r, err := ctl.Store.IsRevoked(revoked.Cert.SerialNumber.Text(16)); err != nil || !r {
		t.Errorf("the revoked certificate after the restart: revoked %v, %v", r, err)
	}
	if tun, err := ctl.Store.TunnelByHostname(hostname); err != nil || tun.ID != oldTunnel.ID {
		t.Errorf("the tunnel after the restart: %+v, %v; want id %s", tun, err, oldTunnel.ID)
	}
	if _, err := ctl.Store.UserByToken(b.Token.APIToken); err != nil {
		t.Errorf("the cert.pem's token after the restart: %v", err)
	}

	// The same connector, with the same cert.pem, registers again.
	waitRegistered(t, second, tc, hostname)
	fetchHello(t, visitorClient(t, second.visitorAddr), hostname)
	if got := second.scrape().get("culvert_edge_tunnel_registrations_total"); got != 1 {
		t.Errorf("the new edge registered %v connections, want 1", got)
	}
	if got := tc.scrape().get("culvert_connector_tunnel_connects_total"); got != 2 {
		t.Errorf("culvert_connector_tunnel_connects_total %v, want 2 (before and after the restart)", got)
	}

	// A new connector with the revoked cert.pem is still refused.
	failuresBefore := second.scrape().get("culvert_edge_tunnel_handshake_failures_total")
	tr := startConnector(t, second, revoked, connOptions{hostname: "other.example.test", originURL: originURL})
	expectCounterGrows(t, "edge", second.scrape, failuresBefore, 1, "culvert_edge_tunnel_handshake_failures_total")
	if tr.c.Registered() != 0 {
		t.Error("a connector with the revoked cert.pem registered after the restart")
	}
	tr.stop()
}

// fetchHello checks that /hello of hostname answers through client.
func fetchHello(t *testing.T, client *http.Client, hostname string) {
	t.Helper()
	resp, err := client.Get("http://" + hostname + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(body) != "hello world\n" {
		t.Fatalf("GET /hello: status %d, body %q, %v", resp.StatusCode, body, err)
	}
}
