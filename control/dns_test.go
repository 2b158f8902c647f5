package control

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	culverttls "github.com/culvert-tunnel/culvert/tls"
)

// bundleFor issues a service-user cert.pem for zone and returns its
// certificate and token.
func bundleFor(t *testing.T, e *Edge, zone string) (*x509.Certificate, string) {
	t.Helper()
	pem, err := e.IssueBundle(zone)
	if err != nil {
		t.Fatal(err)
	}
	b, err := culverttls.ParseBundle(pem)
	if err != nil {
		t.Fatal(err)
	}
	return b.Cert, b.Token.APIToken
}

func register(t *testing.T, e *Edge, cert *x509.Certificate, token, host, pool string) *edge.Registration {
	t.Helper()
	reg, terr := e.Register(context.Background(), cert, &tunnel.Register{Token: token, Hostname: host, LBPool: pool})
	if terr != nil {
		t.Fatalf("register %s: %v", host, terr)
	}
	return reg
}

func records(t *testing.T, e *Edge, name string) map[string]string {
	t.Helper()
	rs, err := e.Store.RecordsByName(name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rs {
		out[r.Type] = strings.Join(r.Values, ",")
	}
	return out
}

func TestRegistrationDNS(t *testing.T) {
	te := newTestEdge(t)
	e := te.Edge
	reloads := 0
	e.OnDNSChange = func() { reloads++ }
	e.RecordDeleteMin, e.RecordDeleteMax = time.Hour, 2*time.Hour
	if _, err := e.CreateZone("example.test", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateZone("partial.test", true); err != nil {
		t.Fatal(err)
	}
	cert, tok := bundleFor(t, e, "example.test")

	// Full zone: AAAA and A to the edge's addresses.
	reg := register(t, e, cert, tok, "app.example.test", "")
	if got := records(t, e, "app.example.test"); got["AAAA"] != "::1" || got["A"] != "127.0.0.1" || len(got) != 2 {
		t.Fatalf("records %v", got)
	}
	if !strings.Contains(reg.DNSRecord, "AAAA ::1") || reg.CNAME != "" {
		t.Fatalf("registration %+v", reg)
	}
	if reloads == 0 {
		t.Fatal("the DNS server was not told")
	}
	// A pool: the AAAA and A give way to a CNAME to the pool's name.
	register(t, e, cert, tok, "web.example.test", "blue")
	if got := records(t, e, "web.example.test"); got["CNAME"] != "blue.lb.culvert.test." || len(got) != 1 {
		t.Fatalf("pool records %v", got)
	}
	kinds := auditKinds(t, e, e.DefaultAccountID)
	if !kinds[AuditCNAMEAdd] || !kinds["Registered"] {
		t.Fatalf("audit %v", kinds)
	}

	// Partial zone: no record, the CNAME to create is told.
	pcert, ptok := bundleFor(t, e, "partial.test")
	preg := register(t, e, pcert, ptok, "app.partial.test", "")
	if got := records(t, e, "app.partial.test"); len(got) != 0 {
		t.Fatalf("partial zone records %v", got)
	}
	if preg.CNAME != "app.partial.test. CNAME app.partial.test.cdn.culvert.test." {
		t.Fatalf("partial registration %+v", preg)
	}
	d, err := e.DNSData()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.CDNNames) != 1 || d.CDNNames[0] != "app.partial.test" || len(d.Pools) != 1 || len(d.Records) != 3 {
		t.Fatalf("DNS data %+v", d)
	}

	// Unregistration schedules the deletion in [1 h, 2 h]; nothing goes
	// before, everything after.
	now := time.Now().UTC()
	e.Unregistered(reg)
	rs, _ := e.Store.RecordsByName("app.example.test")
	for _, r := range rs {
		if d := r.DeleteAt.Sub(now); d < time.Hour || d > 2*time.Hour+time.Minute {
			t.Fatalf("deletion in %v", d)
		}
	}
	if err := e.Sweep(now.Add(59 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(records(t, e, "app.example.test")) != 2 {
		t.Fatal("records deleted too early")
	}
	// Registering again cancels it.
	reg = register(t, e, cert, tok, "app.example.test", "")
	if err := e.Sweep(now.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(records(t, e, "app.example.test")) != 2 {
		t.Fatal("a re-registered tunnel's records were deleted")
	}
	e.Unregistered(reg)
	if err := e.Sweep(now.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := records(t, e, "app.example.test"); len(got) != 0 {
		t.Fatalf("records left after the delay: %v", got)
	}
	if _, err := e.Store.TunnelByHostname("app.example.test"); err == nil {
		t.Fatal("tunnel left after the delay")
	}
	if !auditKinds(t, e, e.DefaultAccountID)[AuditRecordDeleted] {
		t.Fatal("no audit of the deletion")
	}
	// Certificates stay.
	if cs, _ := e.Store.ListCerts(""); len(cs) != 2 {
		t.Fatalf("%d certificates", len(cs))
	}

	// By hand: a live tunnel cannot be deleted; its records can.
	admin := e.admin()
	if err := e.DeleteTunnel(admin, "web.example.test"); err == nil || !strings.Contains(err.Error(), "connected") {
		t.Fatalf("deleting a live tunnel: %v", err)
	}
	if n, err := e.DeleteRecords(admin, "web.example.test"); err != nil || n != 1 {
		t.Fatalf("DeleteRecords: %d %v", n, err)
	}
}
