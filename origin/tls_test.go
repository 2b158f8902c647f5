package origin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// testPKI is a self-signed CA and a leaf for origin.test signed by it.
type testPKI struct {
	caPEM []byte
	leaf  tls.Certificate
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "culvert test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "origin.test"},
		DNSNames:     []string{"origin.test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}
}

func TestHTTPSOrigin(t *testing.T) {
	pki := newTestPKI(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	serveOn(t, tls.NewListener(cl, &tls.Config{Certificates: []tls.Certificate{pki.leaf}}), HelloWorld())
	url := "https://" + ln.Addr().String()

	t.Run("CA file and server name", func(t *testing.T) {
		c := newClient(t, Config{URL: url, CAPoolFile: caFile, ServerName: "origin.test"})
		if c.Scheme() != "https" {
			t.Fatalf("Scheme %q", c.Scheme())
		}
		for range 3 {
			if r := mustDo(t, c, "GET", "/hello"); string(r.body) != "hello world\n" {
				t.Fatalf("%q", r.body)
			}
		}
		if r := mustDo(t, c, "GET", "/bytes/300000"); len(r.body) != 300000 {
			t.Fatalf("%d bytes", len(r.body))
		}
		// Idle past the probe threshold: the probe must not mistake a
		// live TLS connection for a closed one.
		time.Sleep(idleProbeAfter + 50*time.Millisecond)
		before := cl.accepted.Load()
		mustDo(t, c, "GET", "/hello")
		if n := cl.accepted.Load() - before; n != 0 {
			t.Fatalf("%d new connections after an idle pause, want 0", n)
		}
	})
	t.Run("unknown authority is unreachable", func(t *testing.T) {
		// A TLS failure with the origin, a certificate it cannot verify
		// included, is classified ErrUnreachable (502), not a timeout.
		c := newClient(t, Config{URL: url, ServerName: "origin.test"})
		_, err := do(t, c, "GET", "/hello", nil, 0)
		if !errors.Is(err, ErrUnreachable) || Classify(err) != ErrUnreachable {
			t.Fatalf("got %v, want ErrUnreachable", err)
		}
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) {
			t.Fatalf("the x509 cause is not kept: %v", err)
		}
		t.Logf("%v", err)
	})
	t.Run("wrong server name is unreachable", func(t *testing.T) {
		c := newClient(t, Config{URL: url, CAPoolFile: caFile, ServerName: "other.test"})
		if _, err := do(t, c, "GET", "/hello", nil, 0); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("got %v, want ErrUnreachable", err)
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		// Reads (the turn holder) and writes (the batch writer) run at
		// once on one tls.Conn.
		c := newClient(t, Config{URL: url, CAPoolFile: caFile, ServerName: "origin.test", PipelineDepth: 8})
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					n := 3000*w + i // up to 45 KiB: bodies read whole and streamed
					r, err := do(t, c, "GET", fmt.Sprintf("/bytes/%d", n), nil, 0)
					if err != nil || len(r.body) != n {
						t.Errorf("GET /bytes/%d: %d bytes, %v", n, len(r.body), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if st := c.PipelineStats(); st.Requests < 320 || st.Writes >= st.Requests {
			t.Errorf("PipelineStats %+v: not pipelined", st)
		}
	})
	t.Run("NoTLSVerify", func(t *testing.T) {
		c := newClient(t, Config{URL: url, NoTLSVerify: true})
		if r := mustDo(t, c, "GET", "/hello"); string(r.body) != "hello world\n" {
			t.Fatalf("%q", r.body)
		}
	})
}

func TestUnixTLSOrigin(t *testing.T) {
	pki := newTestPKI(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tls.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pki.leaf}}), HelloWorld())
	c := newClient(t, Config{URL: "unix+tls:" + path, CAPoolFile: caFile, ServerName: "origin.test"})
	if c.Scheme() != "https" {
		t.Fatalf("Scheme %q", c.Scheme())
	}
	if r := mustDo(t, c, "GET", "/hello"); string(r.body) != "hello world\n" {
		t.Fatalf("%q", r.body)
	}
}
