package culverttls

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// visitorZoneOf serves example.test and other.test: the apex and names one
// label below.
func visitorZoneOf(host string) (string, bool) {
	for _, z := range []string{"example.test", "other.test"} {
		if host == z {
			return z, true
		}
		if label, ok := strings.CutSuffix(host, "."+z); ok && !strings.Contains(label, ".") {
			return z, true
		}
	}
	return "", false
}

func newVisitorTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("culvert visitor test CA", 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// visitorHandshake runs a TLS handshake over a loopback TCP connection
// between a server with cfg and a client asking for serverName ("" sends
// no SNI) that trusts roots (nil: it does not verify). It returns the
// certificate the client got and both ends' errors.
func visitorHandshake(t testing.TB, cfg *tls.Config, serverName string, roots *x509.CertPool) (leaf *x509.Certificate, srvErr, cliErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	srvDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		srvDone <- tls.Server(c, cfg).Handshake()
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(deadline)
	ccfg := &tls.Config{ServerName: serverName, RootCAs: roots, InsecureSkipVerify: roots == nil || serverName == ""}
	tc := tls.Client(raw, ccfg)
	cliErr = tc.Handshake()
	if cliErr == nil {
		leaf = tc.ConnectionState().PeerCertificates[0]
	}
	srvErr = <-srvDone
	return leaf, srvErr, cliErr
}

// writeVisitorCert writes a certificate for names signed by ca (valid
// until notAfter) and its key to dir, and returns the two paths.
func writeVisitorCert(t testing.TB, dir, base string, ca *CA, names []string, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: base},
		DNSNames:     names,
		NotBefore:    notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, base+".crt")
	keyFile = filepath.Join(dir, base+".key")
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestVisitorCertsPrecedence(t *testing.T) {
	edgeCA, opCA := newVisitorTestCA(t), newVisitorTestCA(t)
	v := NewVisitorCerts(VisitorCertsConfig{ZoneOf: visitorZoneOf, CA: edgeCA})
	dir := t.TempDir()
	future := time.Now().Add(30 * 24 * time.Hour)
	exactCert, exactKey := writeVisitorCert(t, dir, "exact", opCA, []string{"app.example.test"}, future)
	wildCert, wildKey := writeVisitorCert(t, dir, "wild", opCA, []string{"*.example.test"}, future)
	if err := v.AddFile(wildCert, wildKey); err != nil {
		t.Fatal(err)
	}
	if err := v.AddFile(exactCert, exactKey); err != nil {
		t.Fatal(err)
	}
	opPool, edgePool := opCA.Pool(), edgeCA.Pool()
	cfg := v.TLSConfig([]string{"h2", "http/1.1"})
	for _, tc := range []struct {
		sni, wantCN string
		pool        *x509.CertPool
	}{
		{"app.example.test", "exact", opPool},      // exact beats wildcard
		{"APP.example.test.", "exact", opPool},     // normalised
		{"web.example.test", "wild", opPool},       // wildcard beats issued
		{"example.test", "example.test", edgePool}, // wildcard does not cover the apex
		{"app.other.test", "other.test", edgePool}, // issued
	} {
		leaf, srvErr, cliErr := visitorHandshake(t, cfg, tc.sni, tc.pool)
		if srvErr != nil || cliErr != nil {
			t.Fatalf("%s: server %v, client %v", tc.sni, srvErr, cliErr)
		}
		if leaf.Subject.CommonName != tc.wantCN {
			t.Errorf("%s: got certificate %q, want %q", tc.sni, leaf.Subject.CommonName, tc.wantCN)
		}
	}

	// Names in the certificate are normalised too.
	upperCert, upperKey := writeVisitorCert(t, dir, "upper", opCA, []string{"WWW.Example.Test."}, future)
	if err := v.AddFile(upperCert, upperKey); err != nil {
		t.Fatal(err)
	}
	if c, err := v.GetCertificate(&tls.ClientHelloInfo{ServerName: "www.EXAMPLE.test."}); err != nil || c.Leaf.Subject.CommonName != "upper" {
		t.Errorf("normalised name: %v", err)
	}

	// A later file for the same name replaces the earlier one.
	exact2Cert, exact2Key := writeVisitorCert(t, dir, "exact2", opCA, []string{"app.example.test"}, future)
	if err := v.AddFile(exact2Cert, exact2Key); err != nil {
		t.Fatal(err)
	}
	leaf, srvErr, cliErr := visitorHandshake(t, cfg, "app.example.test", opPool)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("server %v, client %v", srvErr, cliErr)
	}
	if leaf.Subject.CommonName != "exact2" {
		t.Errorf("got %q after replacing, want exact2", leaf.Subject.CommonName)
	}
}

func TestVisitorCertsIssuedVerifies(t *testing.T) {
	ca := newVisitorTestCA(t)
	v := NewVisitorCerts(VisitorCertsConfig{ZoneOf: visitorZoneOf, CA: ca})
	cfg := v.TLSConfig([]string{"h2", "http/1.1"})
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 2 || cfg.NextProtos[0] != "h2" {
		t.Fatalf("TLSConfig: min version %x, protos %q", cfg.MinVersion, cfg.NextProtos)
	}
	var serials []string
	for _, sni := range []string{"app.example.test", "example.test"} {
		leaf, srvErr, cliErr := visitorHandshake(t, cfg, sni, ca.Pool())
		if srvErr != nil || cliErr != nil {
			t.Fatalf("%s: server %v, client %v", sni, srvErr, cliErr)
		}
		if err := leaf.VerifyHostname(sni); err != nil {
			t.Error(err)
		}
		if got := strings.Join(leaf.DNSNames, ","); got != "example.test,*.example.test" {
			t.Errorf("%s: DNS names %s", sni, got)
		}
		if d := time.Until(leaf.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
			t.Errorf("%s: valid for another %v, want about 90 days", sni, d)
		}
		serials = append(serials, leaf.SerialNumber.String())
	}
	if serials[0] != serials[1] {
		t.Errorf("zone and subdomain got different certificates: %v", serials)
	}
}

func TestVisitorCertsRefused(t *testing.T) {
	ca := newVisitorTestCA(t)
	v := NewVisitorCerts(VisitorCertsConfig{ZoneOf: visitorZoneOf, CA: ca})
	cfg := v.TLSConfig(nil)
	for _, tc := range []struct{ sni, want string }{
		{"unknown.invalid", `"unknown.invalid"`},
		{"a.b.example.test", `"a.b.example.test"`}, // too deep: ZoneOf says no
		{"", "no server name"},
	} {
		_, srvErr, cliErr := visitorHandshake(t, cfg, tc.sni, ca.Pool())
		if srvErr == nil || cliErr == nil {
			t.Fatalf("%q: handshake not refused: server %v, client %v", tc.sni, srvErr, cliErr)
		}
		if !strings.Contains(srvErr.Error(), tc.want) {
			t.Errorf("%q: server error %q does not mention %s", tc.sni, srvErr, tc.want)
		}
	}

	// A ZoneOf that reports a deeper name is not trusted with it.
	deep := NewVisitorCerts(VisitorCertsConfig{CA: ca, ZoneOf: func(string) (string, bool) { return "example.test", true }})
	_, err := deep.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.b.example.test"})
	if err == nil || !strings.Contains(err.Error(), `"a.b.example.test"`) || !strings.Contains(err.Error(), "covers only") {
		t.Errorf("deep name: %v", err)
	}

	// Without a CA, only operator certificates.
	noCA := NewVisitorCerts(VisitorCertsConfig{ZoneOf: visitorZoneOf})
	_, err = noCA.GetCertificate(&tls.ClientHelloInfo{ServerName: "app.example.test"})
	if err == nil || !strings.Contains(err.Error(), `"app.example.test"`) {
		t.Errorf("no CA: %v", err)
	}
}

func TestVisitorCertsConcurrentIssuance(t *testing.T) {
	ca := newVisitorTestCA(t)
	v := NewVisitorCerts(VisitorCertsConfig{ZoneOf: visitorZoneOf, CA: ca})
	var issued atomic.Int32
	inner := v.issue
	v.issue = func(zone string) (*tls.Certificate, error) {
		issued.Add(1)
		time.Sleep(20 * time.Millisecond) // let the handshakes pile up
		return inner(zone)
	}
	cfg := v.TLSConfig(nil)
	const n = 50
	var wg sync.WaitGroup
	serials := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			sni := fmt.Sprintf("h%d.example.test", i)
			leaf, srvErr, cliErr := visitorHandshake(t, cfg, sni, ca.Pool())
			if srvErr != nil || cliErr != nil {
				errs[i] = fmt.Errorf("%s: server %v, client %v", sni, srvErr, cliErr)
				return
			}
			serials[i] = leaf.SerialNumber.String()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := issued.Load(); got != 1 {
		t.Errorf("%d issuances for one zone, want 1", got)
	}
	for i, s := range serials {
		if s != serials[0] {
			t.Fatalf("handshake %d got serial %s, handshake 0 got %s", i, s, serials[0])
		}
	}
}

func TestVisitorCertsReissueNearExpiry(t *testing.T) {
	ca := newVisitorTestCA(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v := NewVisitorCerts(VisitorCertsConfig{ZoneOf: visitorZoneOf, CA: ca, Validity: 30 * 24 * time.Hour, Now: clock})
	serial := func() *big.Int {
		t.Helper()
		c, err := v.GetCertificate(&tls.ClientHelloInfo{ServerName: "app.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber
	}
	first := serial()
	advance(19 * 24 * time.Hour) // 11 of 30 days left: more than a third
	if s := serial(); s.Cmp(first) != 0 {
		t.Fatalf("reissued with 11 of 30 days left")
	}
	advance(2 * 24 * time.Hour) // 9 days left: less than a third
	second := serial()
	if second.Cmp(first) == 0 {
		t.Fatalf("not reissued with 9 of 30 days left")
	}
	if s := serial(); s.Cmp(second) != 0 {
		t.Fatalf("reissued again right after reissuing")
	}

	// A failed reissue serves the old certificate while it is valid.
	v.issue = func(string) (*tls.Certificate, error) { return nil, fmt.Errorf("CA offline") }
	advance(25 * 24 * time.Hour)
	if s := serial(); s.Cmp(second) != 0 {
		t.Fatalf("failed reissue: got serial %v, want the old one", s)
	}
	advance(10 * 24 * time.Hour) // expired
	if _, err := v.GetCertificate(&tls.ClientHelloInfo{ServerName: "app.example.test"}); err == nil || !strings.Contains(err.Error(), "CA offline") {
		t.Fatalf("expired and reissue failing: %v", err)
	}
}

func TestVisitorCertsCacheBound(t *testing.T) {
	ca := newVisitorTestCA(t)
	var issued atomic.Int32
	zoneOf := func(host string) (string, bool) {
		_, z, ok := strings.Cut(host, ".")
		return z, ok
	}
	v := NewVisitorCerts(VisitorCertsConfig{ZoneOf: zoneOf, CA: ca, MaxCached: 3})
	inner := v.issue
	v.issue = func(zone string) (*tls.Certificate, error) { issued.Add(1); return inner(zone) }
	get := func(zone string) {
		t.Helper()
		if _, err := v.GetCertificate(&tls.ClientHelloInfo{ServerName: "www." + zone}); err != nil {
			t.Fatal(err)
		}
	}
	for _, z := range []string{"a.test", "b.test", "c.test", "a.test", "d.test"} {
		get(z) // d evicts b, the least recently used
	}
	if got := issued.Load(); got != 4 {
		t.Fatalf("%d issuances, want 4", got)
	}
	v.mu.Lock()
	n, hasB := v.lru.Len(), v.issued["b.test"] != nil
	v.mu.Unlock()
	if n != 3 || hasB {
		t.Fatalf("cache holds %d zones (b.test cached: %v), want 3 without b.test", n, hasB)
	}
	get("a.test")
	get("c.test")
	get("d.test")
	if got := issued.Load(); got != 4 {
		t.Fatalf("cached zones reissued: %d issuances", got)
	}
	get("b.test")
	if got := issued.Load(); got != 5 {
		t.Fatalf("evicted zone not reissued: %d issuances", got)
	}
}

func TestVisitorCertsAddFileErrors(t *testing.T) {
	ca := newVisitorTestCA(t)
	v := NewVisitorCerts(VisitorCertsConfig{})
	dir := t.TempDir()
	future := time.Now().Add(24 * time.Hour)
	certA, keyA := writeVisitorCert(t, dir, "a", ca, []string{"a.example.test"}, future)
	_, keyB := writeVisitorCert(t, dir, "b", ca, []string{"b.example.test"}, future)
	expCert, expKey := writeVisitorCert(t, dir, "expired", ca, []string{"old.example.test"}, time.Now().Add(-time.Hour))
	noNameCert, noNameKey := writeVisitorCert(t, dir, "noname", ca, nil, future)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name, cert, key string
		want            []string
	}{
		{"missing cert", missing, keyA, []string{missing, "no such file"}},
		{"missing key", certA, missing, []string{certA, missing, "no such file"}},
		{"garbage cert", garbage, keyA, []string{garbage, "no CERTIFICATE"}},
		{"garbage key", certA, garbage, []string{certA, garbage, "no PRIVATE KEY"}},
		{"key mismatch", certA, keyB, []string{certA, keyB, "does not match"}},
		{"expired", expCert, expKey, []string{expCert, "expired"}},
		{"no DNS name", noNameCert, noNameKey, []string{noNameCert, "no usable DNS name"}},
	} {
		err := v.AddFile(tc.cert, tc.key)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	if len(v.exact) != 0 || len(v.wild) != 0 {
		t.Errorf("a refused file was added: %d exact, %d wildcard", len(v.exact), len(v.wild))
	}
}

func TestVisitorCertsAddFileRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "rsa"},
		DNSNames:     []string{"rsa.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "rsa.crt"), filepath.Join(dir, "rsa.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	v := NewVisitorCerts(VisitorCertsConfig{})
	if err := v.AddFile(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parseTestCertDER(t, der))
	leaf, srvErr, cliErr := visitorHandshake(t, v.TLSConfig(nil), "rsa.example.test", pool)
	if srvErr != nil || cliErr != nil {
		t.Fatalf("server %v, client %v", srvErr, cliErr)
	}
	if leaf.Subject.CommonName != "rsa" {
		t.Errorf("got %q", leaf.Subject.CommonName)
	}
}

func parseTestCertDER(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
