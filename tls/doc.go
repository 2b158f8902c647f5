// Package culverttls holds culvert's certificates and the TLS of the tunnel
// connection: the edge's certificate authorities, the issuance of origin
// certificates, the cert.pem bundle a connector logs in with, the hostname
// policy an origin certificate implies, and the tls.Configs of both ends of
// a tunnel connection.
//
// # Certificates
//
// An edge runs two authorities (CA): one signs the edge's own server
// certificates (the tunnel listener, the control API), the other signs
// origin certificates. Every key is ECDSA P-256. An origin certificate is a
// TLS client certificate for one zone: its only names are the zone and the
// wildcard under it ("example.test" and "*.example.test"), its extended key
// usage is client authentication, and it is valid for at least ten years
// (MinOriginValidity): it is a long-lived credential, revoked by serial
// number rather than left to expire.
//
// # cert.pem
//
// A connector's credential is one file, cert.pem, of exactly three PEM
// blocks: the origin certificate ("CERTIFICATE"), its PKCS#8 key ("PRIVATE
// KEY") and a JSON token ("CULVERT TUNNEL TOKEN") naming the zone, the
// account, the API token, and optionally the CA and server name of the
// edge's tunnel listener and the edge addresses. ParseBundle reads it
// strictly and says what is wrong with a broken one; WriteBundleFile writes
// it atomically with mode 0600.
//
// # Hostnames
//
// A tunnel hostname is exactly one DNS label under the zone of the origin
// certificate (CheckHostname): the wildcard in the certificate covers one
// label, so "app.example.test" is allowed for the zone "example.test" but the
// apex and deeper names are not.
//
// # Tunnel TLS
//
// Tunnel connections use TLS 1.3 only, with mutual authentication and the
// ALPN protocol "culvert/1". TunnelServerConfig (edge side) requires an
// origin certificate from the origin CAs and consults a revocation callback
// during the handshake; TunnelClientConfig (connector side) verifies the
// edge against the CA from the token and presents the bundle's certificate.
//
// # What it is not
//
// It is not a general PKI: there are no intermediate CAs, no name
// constraints beyond the zone rule, and culvert generates no key other than
// ECDSA P-256.
// VisitorCerts picks the edge's HTTPS certificate for a visitor by SNI:
// the operator's files, else one per zone (zone and *.zone) from the
// visitor CA; it is not an ACME client. It does not publish revocation: there is no OCSP
// responder and no CRL distribution; the edge checks serials against its
// own list through the callback given to TunnelServerConfig.
package culverttls
