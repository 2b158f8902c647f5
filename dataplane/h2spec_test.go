package dataplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// h2specApp answers every request with a small body, as h2spec's
// flow-control tests need (at least 5 bytes of DATA to observe).
func h2specApp(s *Stream) {
	s.WriteHeaders(fields(":status", "200", "content-type", "text/plain"), false)
	s.Write([]byte("hello, h2spec\n"))
}

// h2specBinary finds h2spec (installed by `make tools`). Under CI=true a
// missing binary fails the test instead of skipping it.
func h2specBinary(t *testing.T) string {
	if p := os.Getenv("H2SPEC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		p := filepath.Join(gobin, "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "h2spec not installed: run `make tools` (go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// runH2spec runs h2spec against port and checks its summary: every test
// passed, none skipped.
func runH2spec(t *testing.T, bin string, want int, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	m := h2specSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("h2spec %v: no summary line (err %v):\n%s", args, err, out)
	}
	t.Logf("h2spec %v: %s", args, m[0])
	if n, _ := strconv.Atoi(string(m[1])); n != want || string(m[1]) != string(m[2]) {
		t.Fatalf("h2spec %v: %s, want %d of %d passed:\n%s", args, m[0], want, want, out)
	}
}

func TestH2Spec(t *testing.T) {
	bin := h2specBinary(t)
	cfg := &Config{Handler: HandlerFunc(h2specApp), MaxConcurrentStreams: 100}

	t.Run("h2c", func(t *testing.T) {
		addr, _ := startServer(t, cfg)
		_, port, _ := net.SplitHostPort(addr)
		runH2spec(t, bin, 145, "-h", "127.0.0.1", "-p", port)
		runH2spec(t, bin, 146, "--strict", "-h", "127.0.0.1", "-p", port)
	})
	t.Run("tls", func(t *testing.T) {
		port := startTLSServer(t, cfg)
		runH2spec(t, bin, 145, "-t", "-k", "-h", "127.0.0.1", "-p", port)
		runH2spec(t, bin, 146, "--strict", "-t", "-k", "-h", "127.0.0.1", "-p", port)
	})
}

// startTLSServer serves our server role over TLS with ALPN h2 and a
// throwaway self-signed certificate; it returns the port.
func startTLSServer(t *testing.T, cfg *Config) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	tcfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := nc.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					tc.Close()
					return
				}
				tc.SetDeadline(time.Time{})
				NewServerConn(tc, cfg).Serve()
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
