package culverttls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// ALPN is the application protocol name of a tunnel connection, version 1
// of culvert's tunnel protocol. Both ends require it.
const ALPN = "culvert/1"

// TunnelServerConfig returns the edge's TLS configuration for the tunnel
// listener. It serves cert, speaks TLS 1.3 only and selects ALPN; a client
// that does not offer ALPN is refused at its ClientHello. The client must
// present an origin certificate (client authentication, a zone and its
// wildcard) that verifies against originCAs. If revoked is not nil, it is
// called during the handshake with the certificate's serial number; when it
// returns true the handshake fails with an error that says the certificate
// is revoked. (The client sees a bad_certificate alert: crypto/tls sends no
// other alert for a refusal in VerifyConnection.) Session tickets are off,
// so every connection is verified in full. revoked may be called from many
// goroutines at once.
func TunnelServerConfig(cert tls.Certificate, originCAs *x509.CertPool, revoked func(serial *big.Int) bool) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{ALPN},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              originCAs,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.Contains(hello.SupportedProtos, ALPN) {
				return nil, fmt.Errorf("culvert tunnel: client did not offer ALPN %q (offered %q)", ALPN, hello.SupportedProtos)
			}
			return nil, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != ALPN {
				return fmt.Errorf("culvert tunnel: client did not negotiate ALPN %q", ALPN)
			}
			leaf, err := verifiedLeaf(cs)
			if err != nil {
				return err
			}
			zone, err := ZoneOf(leaf)
			if err != nil {
				return fmt.Errorf("culvert tunnel: client certificate serial %x: %w", leaf.SerialNumber, err)
			}
			if revoked != nil && revoked(new(big.Int).Set(leaf.SerialNumber)) {
				return fmt.Errorf("culvert tunnel: origin certificate serial %x (zone %s) is revoked", leaf.SerialNumber, zone)
			}
			return nil
		},
	}
}

// verifiedLeaf returns the verified client certificate of cs.
func verifiedLeaf(cs tls.ConnectionState) (*x509.Certificate, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil, errors.New("culvert tunnel: no verified client certificate")
	}
	return cs.VerifiedChains[0][0], nil
}

// TunnelClientConfig returns the connector's TLS configuration for a tunnel
// connection: TLS 1.3 only, the edge's certificate verified against edgeCAs
// for serverName, the bundle's origin certificate presented to the edge
// (always, whatever CAs the edge says it accepts, so a refusal is logged
// at the edge with the certificate), and ALPN required: the handshake fails
// if the edge does not select it.
func TunnelClientConfig(b *Bundle, edgeCAs *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    edgeCAs,
		ServerName: serverName,
		NextProtos: []string{ALPN},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if b == nil || b.Cert == nil || b.Key == nil {
				return nil, errors.New("culvert tunnel: no origin certificate")
			}
			c := b.TLSCertificate()
			return &c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != ALPN {
				return fmt.Errorf("culvert tunnel: edge did not select ALPN %q", ALPN)
			}
			return nil
		},
	}
}

// PeerOriginCert returns the verified origin certificate the connector
// presented on an edge-side tunnel connection, from its state after the
// handshake. It is an error if the handshake is not complete or no client
// certificate was verified.
func PeerOriginCert(cs tls.ConnectionState) (*x509.Certificate, error) {
	if !cs.HandshakeComplete {
		return nil, errors.New("culvert tunnel: handshake not complete")
	}
	leaf, err := verifiedLeaf(cs)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return nil, errors.New("culvert tunnel: peer certificate is not an origin certificate (no client-authentication usage)")
	}
	return leaf, nil
}
