package culverttls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	before := time.Now()
	ca := newTestCA(t, "culvert test CA")
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Fatal("not a CA certificate")
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("key usage %v", c.KeyUsage)
	}
	if c.Subject.CommonName != "culvert test CA" {
		t.Fatalf("common name %q", c.Subject.CommonName)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Fatalf("serial %x is not a positive 128-bit number", c.SerialNumber)
	}
	if d := before.Add(-time.Hour).Sub(c.NotBefore); d > 2*time.Second || d < -2*time.Second {
		t.Fatalf("NotBefore %v, want about an hour before %v", c.NotBefore, before)
	}
	if c.NotAfter.Before(before.Add(caValidity - time.Minute)) {
		t.Fatalf("NotAfter %v too early", c.NotAfter)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key %T is not ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
	other := newTestCA(t, "culvert test CA")
	if other.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Fatal("two CAs share a serial number")
	}

	_, err := NewCA("", time.Hour)
	wantErr(t, err, "common name")
	_, err = NewCA("x", 0)
	wantErr(t, err, "validity")
}

func TestLoadCA(t *testing.T) {
	ca := newTestCA(t, "culvert test CA")
	certPEM, keyPEM, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(certPEM, []byte("-----BEGIN CERTIFICATE-----")) || !bytes.Contains(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("unexpected PEM block types:\n%s%s", certPEM, keyPEM)
	}
	loaded, err := LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !publicKeysEqual(loaded.Key.Public(), ca.Key.Public()) {
		t.Fatal("loaded CA differs")
	}
	// The loaded CA issues certificates that verify against the original.
	srv, err := loaded.IssueServer([]string{"api.culvert.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "api.culvert.test"}); err != nil {
		t.Fatal(err)
	}

	// SEC 1 keys are read too.
	sec1, err := x509.MarshalECPrivateKey(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(certPEM, pemBlock("EC PRIVATE KEY", sec1)); err != nil {
		t.Fatal(err)
	}

	other := newTestCA(t, "other")
	_, otherKey, _ := other.PEM()
	_, err = LoadCA(certPEM, otherKey)
	wantErr(t, err, "key does not match")

	leafPEM := pemBlock("CERTIFICATE", srv.Leaf.Raw)
	leafKey, _ := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	_, err = LoadCA(leafPEM, pemBlock("PRIVATE KEY", leafKey))
	wantErr(t, err, "not a CA")

	_, err = LoadCA([]byte("junk"), keyPEM)
	wantErr(t, err, "no CERTIFICATE")
	_, err = LoadCA(certPEM, []byte("junk"))
	wantErr(t, err, "no PRIVATE KEY")
	_, err = LoadCA(certPEM, pemBlock("PRIVATE KEY", []byte("junk")))
	wantErr(t, err, "key")
}

func TestIssueServer(t *testing.T) {
	ca := newTestCA(t, "edge CA")
	c, err := ca.IssueServer([]string{"Tunnel.Culvert.Test", "*.api.culvert.test"}, localhost, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if !slices.Equal(leaf.DNSNames, []string{"tunnel.culvert.test", "*.api.culvert.test"}) {
		t.Fatalf("DNS names %q", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(localhost[0]) {
		t.Fatalf("IPs %v", leaf.IPAddresses)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Fatalf("EKU %v, IsCA %v", leaf.ExtKeyUsage, leaf.IsCA)
	}
	for _, name := range []string{"tunnel.culvert.test", "x.api.culvert.test", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(c.Certificate) != 1 || !bytes.Equal(c.Certificate[0], leaf.Raw) {
		t.Fatal("chain is not the leaf alone")
	}

	_, err = ca.IssueServer(nil, nil, time.Hour)
	wantErr(t, err, "no DNS name")
	_, err = ca.IssueServer([]string{"bad_name.test"}, nil, time.Hour)
	wantErr(t, err, "bad_name.test")
	_, err = ca.IssueServer([]string{"ok.test"}, []net.IP{{1, 2, 3}}, time.Hour)
	wantErr(t, err, "invalid IP")
	_, err = ca.IssueServer([]string{"ok.test"}, nil, 0)
	wantErr(t, err, "validity")
}

func TestIssueOrigin(t *testing.T) {
	ca := newTestCA(t, "origin CA")
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := ca.IssueOrigin("Example.Test.", key.Public(), MinOriginValidity)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.DNSNames, []string{"example.test", "*.example.test"}) {
		t.Fatalf("DNS names %q", c.DNSNames)
	}
	if len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs) != 0 {
		t.Fatal("unexpected non-DNS names")
	}
	if c.Subject.CommonName != "example.test" {
		t.Fatalf("common name %q", c.Subject.CommonName)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("EKU %v", c.ExtKeyUsage)
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatalf("IsCA %v, key usage %v", c.IsCA, c.KeyUsage)
	}
	if c.NotAfter.Sub(start) < MinOriginValidity-time.Minute {
		t.Fatalf("valid until %v, less than ten years", c.NotAfter)
	}
	if c.NotAfter.Before(start.AddDate(10, 0, 0).Add(-time.Minute)) {
		t.Fatalf("valid until %v, before ten calendar years", c.NotAfter)
	}
	if !publicKeysEqual(c.PublicKey, key.Public()) {
		t.Fatal("certificate is not for the key")
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if z, err := ZoneOf(c); err != nil || z != "example.test" {
		t.Fatalf("ZoneOf = %q, %v", z, err)
	}
	longer, err := ca.IssueOrigin("example.test", key.Public(), 15*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if longer.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Fatal("serial reused")
	}

	_, err = ca.IssueOrigin("example.test", key.Public(), MinOriginValidity-time.Second)
	wantErr(t, err, "shorter than the minimum")
	_, err = ca.IssueOrigin("example.test", key.Public(), 365*24*time.Hour)
	wantErr(t, err, "ten years")
	for _, zone := range []string{"", "bad_zone.test", "*.example.test", "127.0.0.1", "example..test", strings.Repeat("a.", 126) + "b"} {
		_, err = ca.IssueOrigin(zone, key.Public(), MinOriginValidity)
		wantErr(t, err, "zone")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ca.IssueOrigin("example.test", p384.Public(), MinOriginValidity)
	wantErr(t, err, "ECDSA P-256", "P-384")
	_, err = ca.IssueOrigin("example.test", nil, MinOriginValidity)
	wantErr(t, err, "ECDSA P-256")
}

func TestSignOriginCSR(t *testing.T) {
	ca := newTestCA(t, "origin CA")
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.SignOriginCSR(csr, "example.test", MinOriginValidity)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(c.PublicKey, key.Public()) {
		t.Fatal("certificate is not for the CSR's key")
	}
	if !slices.Equal(c.DNSNames, []string{"example.test", "*.example.test"}) {
		t.Fatalf("DNS names %q", c.DNSNames)
	}

	// Names requested in the CSR are ignored: the zone given wins.
	greedy, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "bank.test"},
		DNSNames:    []string{"bank.test", "*.bank.test", "*.test"},
		IPAddresses: localhost,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err = ca.SignOriginCSR(greedy, "example.test", MinOriginValidity)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.DNSNames, []string{"example.test", "*.example.test"}) || len(c.IPAddresses) != 0 || c.Subject.CommonName != "example.test" {
		t.Fatalf("CSR names leaked into the certificate: %q %v %q", c.DNSNames, c.IPAddresses, c.Subject.CommonName)
	}

	// A CSR whose signature does not verify is refused.
	bad := bytes.Clone(csr)
	bad[len(bad)-1] ^= 0x01
	_, err = ca.SignOriginCSR(bad, "example.test", MinOriginValidity)
	wantErr(t, err, "bad signature")

	// A well-formed CSR for one key carrying the signature made by another.
	other, _ := GenerateKey()
	otherCSR, err := NewCSR(other, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	swapped := spliceSignature(t, otherCSR, csr)
	_, err = ca.SignOriginCSR(swapped, "example.test", MinOriginValidity)
	wantErr(t, err, "bad signature")

	_, err = ca.SignOriginCSR([]byte("junk"), "example.test", MinOriginValidity)
	wantErr(t, err, "parse")
	_, err = ca.SignOriginCSR(csr, "example.test", time.Hour)
	wantErr(t, err, "shorter than the minimum")
	_, err = NewCSR(key, "not a zone")
	wantErr(t, err, "zone")
}

// spliceSignature returns the CSR body of a with the signature of b: a
// well-formed request whose signature does not match its key.
func spliceSignature(t *testing.T, a, b []byte) []byte {
	t.Helper()
	ra, err := x509.ParseCertificateRequest(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := x509.ParseCertificateRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	// Bodies of equal length can be swapped without re-encoding the
	// outer SEQUENCE; two P-256 requests for one zone have equal bodies.
	if len(ra.RawTBSCertificateRequest) != len(rb.RawTBSCertificateRequest) {
		t.Fatal("request bodies differ in length")
	}
	return bytes.Replace(b, rb.RawTBSCertificateRequest, ra.RawTBSCertificateRequest, 1)
}
