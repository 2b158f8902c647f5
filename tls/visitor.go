package culverttls

import (
	"container/list"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of VisitorCertsConfig.
const (
	defaultVisitorValidity  = 90 * 24 * time.Hour
	defaultVisitorMaxCached = 10000
)

// VisitorCerts picks the certificate for a visitor's TLS handshake by SNI:
// the operator's own certificates first (exact name, then a one-level
// wildcard), else one issued by the edge's CA for the zone the name belongs
// to.
//
// An issued certificate covers a zone and the wildcard under it ("zone" and
// "*.zone"), so it covers the apex and names one label below it, never
// deeper ones: "a.b.example.test" is not covered by "*.example.test". Which
// names get one is up to ZoneOf, which should report only the apex and
// one-label names of the zones the edge serves; a deeper name it reports
// anyway is refused rather than served a certificate that cannot verify.
//
// A VisitorCerts is safe for concurrent use.
type VisitorCerts struct {
	cfg VisitorCertsConfig
	// issue issues the certificate of a zone; tests wrap it.
	issue func(zone string) (*tls.Certificate, error)

	// Operator certificates by exact name, and by zone for "*.zone".
	opMu  sync.RWMutex
	exact map[string]*tls.Certificate
	wild  map[string]*tls.Certificate

	// Issued certificates by zone, most recently used at the front of lru,
	// and the issuances under way.
	mu      sync.Mutex
	issued  map[string]*list.Element // of *issuedCert
	lru     *list.List
	flights map[string]*issueFlight
}

// VisitorCertsConfig configures NewVisitorCerts.
type VisitorCertsConfig struct {
	// ZoneOf returns the zone a hostname belongs to (the apex or a
	// one-label subdomain of a zone the edge serves), or false.
	ZoneOf func(host string) (zone string, ok bool)
	// CA issues certificates for zone and *.zone when the operator gave
	// none (nil: only operator certificates).
	CA *CA
	// Validity of issued certificates; default 90 days. A certificate is
	// reissued on its next use once less than a third of it is left.
	Validity time.Duration
	// MaxCached bounds the zones whose issued certificate is cached; the
	// least recently used is dropped first. Default 10000.
	MaxCached int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// issuedCert is a cached issued certificate.
type issuedCert struct {
	zone    string
	cert    *tls.Certificate
	expires time.Time // by the configured clock
}

// issueFlight is one issuance under way, shared by the handshakes that
// wait for it.
type issueFlight struct {
	done    chan struct{}
	cert    *tls.Certificate
	expires time.Time
	err     error
}

// NewVisitorCerts returns a VisitorCerts without operator certificates.
func NewVisitorCerts(cfg VisitorCertsConfig) *VisitorCerts {
	if cfg.Validity <= 0 {
		cfg.Validity = defaultVisitorValidity
	}
	if cfg.MaxCached <= 0 {
		cfg.MaxCached = defaultVisitorMaxCached
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &VisitorCerts{
		cfg:     cfg,
		exact:   map[string]*tls.Certificate{},
		wild:    map[string]*tls.Certificate{},
		issued:  map[string]*list.Element{},
		lru:     list.New(),
		flights: map[string]*issueFlight{},
	}
	v.issue = v.issueFromCA
	return v
}

// AddFile loads an operator certificate: certFile holds the PEM chain, leaf
// first, and keyFile its private key (PKCS#8, SEC 1 EC or PKCS#1 RSA). The
// names it serves are its DNS subject alternative names, each exact or
// "*.zone" (one label below zone); the common name is ignored. A later file
// for the same name replaces the earlier one for that name. It refuses a
// file without a certificate, a key that does not match, a certificate
// that has expired and one without a usable DNS name.
func (v *VisitorCerts) AddFile(certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("visitor certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("visitor certificate %s: key: %w", certFile, err)
	}
	var chain [][]byte
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == pemCertificate {
			chain = append(chain, block.Bytes)
		}
	}
	if len(chain) == 0 {
		return fmt.Errorf("visitor certificate %s: no CERTIFICATE PEM block in the file", certFile)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("visitor certificate %s: first certificate: %w", certFile, err)
	}
	for i, der := range chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("visitor certificate %s: certificate %d of the chain: %w", certFile, i+2, err)
		}
	}
	key, err := parseVisitorKey(keyPEM)
	if err != nil {
		return fmt.Errorf("visitor certificate %s: key %s: %w", certFile, keyFile, err)
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return fmt.Errorf("visitor certificate %s: the key in %s does not match the certificate (the first one in the file)", certFile, keyFile)
	}
	if now := v.cfg.Now(); now.After(leaf.NotAfter) {
		return fmt.Errorf("visitor certificate %s: expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	var exact, wild []string
	for _, n := range leaf.DNSNames {
		n = normalizeName(n)
		if zone, ok := strings.CutPrefix(n, "*."); ok {
			if checkDNSName(zone) == nil {
				wild = append(wild, zone)
			}
			continue
		}
		if n != "" && !strings.Contains(n, "*") {
			exact = append(exact, n)
		}
	}
	if len(exact) == 0 && len(wild) == 0 {
		return fmt.Errorf("visitor certificate %s: no usable DNS name among its subject alternative names %q (the certificate is chosen by them, not by its common name)", certFile, leaf.DNSNames)
	}
	cert := &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}
	v.opMu.Lock()
	defer v.opMu.Unlock()
	for _, n := range exact {
		v.exact[n] = cert
	}
	for _, z := range wild {
		v.wild[z] = cert
	}
	return nil
}

// parseVisitorKey parses the first private key block of data: PKCS#8, SEC 1
// EC or PKCS#1 RSA.
func parseVisitorKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PRIVATE KEY PEM block")
		}
		var (
			k   crypto.Signer
			err error
		)
		switch block.Type {
		case pemPrivateKey:
			k, err = parsePKCS8Signer(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", block.Type, err)
		}
		return k, nil
	}
}

// GetCertificate is tls.Config.GetCertificate. The server name is
// lowercased and a trailing dot dropped; the operator's certificate for
// it, else the operator's wildcard for its parent, else the certificate
// issued for its zone is returned. A handshake without a server name, or
// with one nothing covers, fails with an error naming it.
func (v *VisitorCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := normalizeName(hello.ServerName)
	if name == "" {
		return nil, errors.New("visitor TLS: the client sent no server name (SNI); visitor certificates are chosen by it")
	}
	if c := v.operatorCert(name); c != nil {
		return c, nil
	}
	if v.cfg.CA == nil || v.cfg.ZoneOf == nil {
		return nil, fmt.Errorf("visitor TLS: no certificate for %q", name)
	}
	if err := checkDNSName(name); err != nil {
		return nil, fmt.Errorf("visitor TLS: no certificate for %q: invalid name: %v", name, err)
	}
	zone, ok := v.cfg.ZoneOf(name)
	if !ok {
		return nil, fmt.Errorf("visitor TLS: no certificate for %q: not in a zone the edge serves", name)
	}
	zone = normalizeName(zone)
	if err := checkZone(zone); err != nil {
		return nil, fmt.Errorf("visitor TLS: no certificate for %q: zone %q: %v", name, zone, err)
	}
	if name != zone {
		label, ok := strings.CutSuffix(name, "."+zone)
		if !ok || strings.Contains(label, ".") {
			return nil, fmt.Errorf("visitor TLS: no certificate for %q: the certificate of the zone %s covers only %s and *.%s", name, zone, zone, zone)
		}
	}
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := v.zoneCert(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("visitor TLS: certificate for %q: %w", name, err)
	}
	return c, nil
}

// operatorCert returns the operator's certificate for name: exact, else
// the wildcard one label above it; or nil.
func (v *VisitorCerts) operatorCert(name string) *tls.Certificate {
	v.opMu.RLock()
	defer v.opMu.RUnlock()
	if c := v.exact[name]; c != nil {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok && parent != "" {
		return v.wild[parent]
	}
	return nil
}

// zoneCert returns the issued certificate of zone: the cached one while
// more than a third of its validity is left, else a new one. Concurrent
// callers for the same zone share one issuance. If a reissue fails, the
// cached certificate is served while it is still valid. Expiry is reckoned
// by the configured clock from the time of issuance (the certificate's
// NotAfter under the real clock).
func (v *VisitorCerts) zoneCert(ctx context.Context, zone string) (*tls.Certificate, error) {
	now := v.cfg.Now()
	v.mu.Lock()
	var stale *issuedCert
	if el, ok := v.issued[zone]; ok {
		ic := el.Value.(*issuedCert)
		if ic.expires.Sub(now) >= v.cfg.Validity/3 {
			v.lru.MoveToFront(el)
			v.mu.Unlock()
			return ic.cert, nil
		}
		stale = &issuedCert{cert: ic.cert, expires: ic.expires}
	}
	f, ok := v.flights[zone]
	if !ok {
		f = &issueFlight{done: make(chan struct{})}
		v.flights[zone] = f
		v.mu.Unlock()
		f.expires = now.Add(v.cfg.Validity)
		f.cert, f.err = v.issue(zone)
		v.mu.Lock()
		delete(v.flights, zone)
		if f.err == nil {
			v.store(zone, f.cert, f.expires)
		}
		close(f.done)
	}
	v.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the certificate of %s: %w", zone, ctx.Err())
	}
	if f.err != nil {
		if stale != nil && now.Before(stale.expires) {
			return stale.cert, nil
		}
		return nil, f.err
	}
	return f.cert, nil
}

// store caches the certificate of zone, dropping the least recently used
// ones beyond MaxCached. v.mu is held.
func (v *VisitorCerts) store(zone string, c *tls.Certificate, expires time.Time) {
	if el, ok := v.issued[zone]; ok {
		ic := el.Value.(*issuedCert)
		ic.cert, ic.expires = c, expires
		v.lru.MoveToFront(el)
		return
	}
	v.issued[zone] = v.lru.PushFront(&issuedCert{zone: zone, cert: c, expires: expires})
	for v.lru.Len() > v.cfg.MaxCached {
		old := v.lru.Remove(v.lru.Back()).(*issuedCert)
		delete(v.issued, old.zone)
	}
}

// issueFromCA issues the certificate of zone, for zone and *.zone, from
// the configured CA.
func (v *VisitorCerts) issueFromCA(zone string) (*tls.Certificate, error) {
	c, err := v.cfg.CA.IssueServer([]string{zone, "*." + zone}, nil, v.cfg.Validity)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// TLSConfig returns a server config for the visitor listener: TLS 1.2 or
// later, certificates from GetCertificate, and the ALPN protocols
// nextProtos in order of preference (for example "h2", "http/1.1").
func (v *VisitorCerts) TLSConfig(nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: v.GetCertificate,
		NextProtos:     slices.Clone(nextProtos),
	}
}
