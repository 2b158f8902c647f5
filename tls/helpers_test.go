package culverttls

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"
)

const (
	testZone       = "example.test"
	testServerName = "tunnel.culvert.test"
	caValidity     = 20 * 365 * 24 * time.Hour
)

// fixture is an edge with its two CAs, its tunnel certificate, and a
// connector bundle for testZone.
type fixture struct {
	edgeCA, originCA *CA
	bundle           *Bundle
}

func newTestCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := NewCA(cn, caValidity)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		edgeCA:   newTestCA(t, "culvert edge CA"),
		originCA: newTestCA(t, "culvert origin CA"),
	}
	f.bundle = newTestBundle(t, f.originCA, f.edgeCA, testZone)
	return f
}

// newTestBundle issues an origin certificate for zone from originCA and
// wraps it in a bundle whose token trusts edgeCA.
func newTestBundle(t testing.TB, originCA, edgeCA *CA, zone string) *Bundle {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := originCA.IssueOrigin(zone, key.Public(), MinOriginValidity)
	if err != nil {
		t.Fatal(err)
	}
	edgePEM, _, err := edgeCA.PEM()
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{Cert: cert, Key: key, Token: Token{
		ZoneID:           "zone-1",
		AccountID:        "acct-1",
		APIToken:         "secret-token",
		Zone:             zone,
		EdgeCA:           string(edgePEM),
		TunnelServerName: testServerName,
		Edges:            []string{"127.0.0.1:7844"},
	}}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func mustMarshal(t testing.TB, b *Bundle) []byte {
	t.Helper()
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseTestCert(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantErr fails unless err is non-nil and its message contains every part.
func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

var localhost = []net.IP{net.IPv4(127, 0, 0, 1)}
