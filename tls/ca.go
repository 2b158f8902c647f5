package culverttls

import (
	"crypto"
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
	"time"
)

// MinOriginValidity is the shortest validity IssueOrigin and SignOriginCSR
// accept: ten years, leap days included. An origin certificate is a
// long-lived credential that is revoked, not renewed.
const MinOriginValidity = 3653 * 24 * time.Hour

// backdate is how far before its issuance a certificate's NotBefore is set,
// so that a peer whose clock runs a little behind still accepts it.
const backdate = time.Hour

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemToken       = "CULVERT TUNNEL TOKEN"
)

// CA is a certificate authority of the edge: a self-signed certificate and
// its key. The edge has one for its own server certificates and one for
// origin certificates. Issuance does not cap a certificate's validity at the
// CA's: a certificate that outlives its CA stops verifying when the CA
// expires, so an origin CA should be valid for longer than
// MinOriginValidity.
type CA struct {
	// Cert is the CA's self-signed certificate.
	Cert *x509.Certificate
	// Key is the CA's private key; its public half is Cert's.
	Key crypto.Signer
}

// GenerateKey returns a new ECDSA P-256 private key, the only key type
// culvert generates.
func GenerateKey() (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// serialLimit bounds certificate serial numbers to 128 bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newSerial returns a random, positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// NewCA creates a self-signed CA with a new ECDSA P-256 key, valid from an
// hour ago (clock skew) until validity from now. The CA may sign leaf
// certificates only (path length zero).
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("new CA: empty common name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("new CA %q: validity %v is not positive", commonName, validity)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA from the PEM of its certificate (the first CERTIFICATE
// block) and of its key (a PKCS#8 "PRIVATE KEY" block, or a SEC 1 "EC
// PRIVATE KEY" block). It refuses a certificate that is not a CA and a key
// that does not match the certificate.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := firstCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: certificate: %w", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("load CA: certificate %q is not a CA certificate (basic constraints do not say CA)", cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load CA: certificate %q may not sign certificates (no certSign key usage)", cert.Subject.CommonName)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA: key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("load CA: key does not match the certificate %q", cert.Subject.CommonName)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// FirstCertificate parses the first CERTIFICATE block of PEM data (other
// blocks before it are skipped).
func FirstCertificate(data []byte) (*x509.Certificate, error) {
	return firstCertificate(data)
}

// firstCertificate parses the first CERTIFICATE block of data.
func firstCertificate(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no CERTIFICATE PEM block")
		}
		if block.Type != pemCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert, nil
	}
}

// parseKeyPEM parses the first private key block of data.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PRIVATE KEY PEM block")
		}
		switch block.Type {
		case pemPrivateKey:
			return parsePKCS8Signer(block.Bytes)
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			return k, nil
		}
	}
}

// parsePKCS8Signer parses a PKCS#8 private key that can sign.
func parsePKCS8Signer(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return s, nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && ae.Equal(b)
}

// PEM returns the CA's certificate as a "CERTIFICATE" block and its key as a
// PKCS#8 "PRIVATE KEY" block, the forms LoadCA reads.
func (ca *CA) PEM() (certPEM, keyPEM []byte, err error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, nil, errors.New("CA PEM: incomplete CA")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA PEM: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: ca.Cert.Raw})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// Pool returns a certificate pool holding only the CA's certificate, for
// verifying the certificates it issued.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// issue signs a leaf certificate for pub from tmpl, filling in the serial,
// the validity and the leaf constraints.
func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, errors.New("incomplete CA")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("validity %v is not positive", validity)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// IssueServer issues a certificate for a TLS server of the edge (the tunnel
// listener, the control API) with a new ECDSA P-256 key. The DNS names
// (a leading "*." label is allowed) and IP addresses become its subject
// alternative names; its extended key usage is server authentication. The
// returned certificate holds the leaf only: peers trust the CA directly.
func (ca *CA) IssueServer(dnsNames []string, ips []net.IP, validity time.Duration) (tls.Certificate, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return tls.Certificate{}, errors.New("issue server certificate: no DNS name and no IP address")
	}
	names := make([]string, 0, len(dnsNames))
	for _, n := range dnsNames {
		norm := asciiLower(n)
		if err := checkDNSName(trimWildcard(norm)); err != nil {
			return tls.Certificate{}, fmt.Errorf("issue server certificate: DNS name %q: %w", n, err)
		}
		names = append(names, norm)
	}
	for _, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return tls.Certificate{}, fmt.Errorf("issue server certificate: invalid IP address %v", ip)
		}
	}
	var cn string
	if len(names) > 0 {
		cn = names[0]
	} else {
		cn = ips[0].String()
	}
	key, err := GenerateKey()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate %q: %w", cn, err)
	}
	cert, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    names,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, key.Public(), validity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate %q: %w", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// trimWildcard removes a leading "*." label.
func trimWildcard(name string) string {
	if len(name) > 2 && name[0] == '*' && name[1] == '.' {
		return name[2:]
	}
	return name
}

// IssueOrigin issues the origin certificate of a zone for the public key
// pub (an ECDSA P-256 key). Its subject common name is the zone, its
// subject alternative names are exactly the zone and "*."+zone, its
// extended key usage is client authentication. The zone is lowercased and
// a trailing dot dropped. A validity shorter than MinOriginValidity is an
// error.
func (ca *CA) IssueOrigin(zone string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	z := normalizeName(zone)
	if err := checkZone(z); err != nil {
		return nil, fmt.Errorf("issue origin certificate: zone %q: %w", zone, err)
	}
	if validity < MinOriginValidity {
		return nil, fmt.Errorf("issue origin certificate for %s: validity %v is shorter than the minimum of %v (ten years)", z, validity, MinOriginValidity)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("issue origin certificate for %s: the key must be ECDSA P-256, not %s", z, keyKind(pub))
	}
	cert, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: z},
		DNSNames:    []string{z, "*." + z},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub, validity)
	if err != nil {
		return nil, fmt.Errorf("issue origin certificate for %s: %w", z, err)
	}
	return cert, nil
}

// keyKind describes a public key for an error message.
func keyKind(pub crypto.PublicKey) string {
	if ec, ok := pub.(*ecdsa.PublicKey); ok && ec.Curve != nil {
		return "ECDSA " + ec.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}

// NewCSR returns a DER certificate signing request for the origin
// certificate of zone, signed by key. It lets a connector keep its key and
// send only the request to the edge.
func NewCSR(key crypto.Signer, zone string) ([]byte, error) {
	z := normalizeName(zone)
	if err := checkZone(z); err != nil {
		return nil, fmt.Errorf("new CSR: zone %q: %w", zone, err)
	}
	if key == nil {
		return nil, errors.New("new CSR: no key")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: z},
		DNSNames: []string{z, "*." + z},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("new CSR for %s: %w", z, err)
	}
	return der, nil
}

// SignOriginCSR issues the origin certificate of zone for the key of a DER
// certificate signing request, as IssueOrigin does. The request's signature
// must verify (the requester holds the key); the names and any other
// attributes it asks for are ignored: the certificate covers zone.
func (ca *CA) SignOriginCSR(csrDER []byte, zone string, validity time.Duration) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("sign origin CSR: parse: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign origin CSR: bad signature (the requester does not hold the key): %w", err)
	}
	return ca.IssueOrigin(zone, csr.PublicKey, validity)
}
