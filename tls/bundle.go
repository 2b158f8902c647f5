package culverttls

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Token is the JSON content of the "CULVERT TUNNEL TOKEN" block of cert.pem:
// who the connector is to the edge and how to reach it.
type Token struct {
	// ZoneID identifies the zone at the edge. Required.
	ZoneID string `json:"zone_id"`
	// AccountID identifies the account that owns the zone.
	AccountID string `json:"account_id"`
	// APIToken authenticates the connector to the edge's API. Required.
	APIToken string `json:"api_token"`
	// Zone is the zone the origin certificate covers, e.g. "example.test".
	// ParseBundle fills it in from the certificate when it is empty and
	// refuses a token whose zone differs from the certificate's.
	Zone string `json:"zone"`
	// EdgeCA is the PEM of the CA that signs the edge's tunnel certificate.
	EdgeCA string `json:"edge_ca,omitempty"`
	// TunnelServerName is the name the edge's tunnel certificate is
	// verified against, e.g. "tunnel.culvert.test".
	TunnelServerName string `json:"tunnel_server_name,omitempty"`
	// Edges lists edge addresses as host:port.
	Edges []string `json:"edges,omitempty"`
	// API is the URL of the edge's control API (the CLI's `culvert tunnel
	// list`, `culvert dns list`... use it with APIToken).
	API string `json:"api,omitempty"`
}

// Bundle is the content of cert.pem: a connector's origin certificate, its
// key and its token.
type Bundle struct {
	// Cert is the origin certificate.
	Cert *x509.Certificate
	// Key is the origin certificate's private key.
	Key crypto.Signer
	// Token is the tunnel token.
	Token Token
}

// Marshal encodes the bundle as cert.pem: the "CERTIFICATE" block, the
// PKCS#8 "PRIVATE KEY" block and the "CULVERT TUNNEL TOKEN" block, in this
// order. It refuses a bundle ParseBundle would refuse.
func (b *Bundle) Marshal() ([]byte, error) {
	if b == nil || b.Cert == nil {
		return nil, errors.New("marshal cert.pem: no certificate")
	}
	if b.Key == nil {
		return nil, errors.New("marshal cert.pem: no private key")
	}
	tok := b.Token
	if err := checkBundle(b.Cert, b.Key, &tok); err != nil {
		return nil, fmt.Errorf("marshal cert.pem: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(b.Key)
	if err != nil {
		return nil, fmt.Errorf("marshal cert.pem: private key: %w", err)
	}
	tokJSON, err := json.Marshal(tok)
	if err != nil {
		return nil, fmt.Errorf("marshal cert.pem: token: %w", err)
	}
	var buf bytes.Buffer
	for _, blk := range []*pem.Block{
		{Type: pemCertificate, Bytes: b.Cert.Raw},
		{Type: pemPrivateKey, Bytes: keyDER},
		{Type: pemToken, Bytes: tokJSON},
	} {
		if err := pem.Encode(&buf, blk); err != nil {
			return nil, fmt.Errorf("marshal cert.pem: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// ParseBundle parses cert.pem. It needs exactly one "CERTIFICATE", one
// "PRIVATE KEY" (PKCS#8) and one "CULVERT TUNNEL TOKEN" block, in any
// order; text outside the blocks is ignored. The certificate must be an
// origin certificate (client authentication, a zone and its wildcard), the
// key must match it, and the token must be valid JSON with a zone_id and an
// api_token. Each error says which of these is wrong.
func ParseBundle(data []byte) (*Bundle, error) {
	b, err := parseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("cert.pem: %w", err)
	}
	return b, nil
}

func parseBundle(data []byte) (*Bundle, error) {
	blocks := map[string]*pem.Block{}
	n := 0
	for rest := data; ; n++ {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case pemCertificate, pemPrivateKey, pemToken:
		default:
			return nil, fmt.Errorf("unknown block type %q (expected %s, %s and %s)", blk.Type, pemCertificate, pemPrivateKey, pemToken)
		}
		if blocks[blk.Type] != nil {
			return nil, fmt.Errorf("duplicate %s block", blk.Type)
		}
		if len(blk.Headers) != 0 {
			return nil, fmt.Errorf("%s block has PEM headers (an encrypted key is not supported)", blk.Type)
		}
		blocks[blk.Type] = blk
	}
	// pem.Decode skips what it cannot decode: a BEGIN line no block was
	// read from is a broken block.
	if bytes.Count(data, []byte("-----BEGIN ")) > n {
		return nil, errors.New("malformed PEM block (bad base64 or no matching END line)")
	}
	if n == 0 {
		return nil, errors.New("no PEM blocks: not a cert.pem")
	}
	for _, t := range []string{pemCertificate, pemPrivateKey, pemToken} {
		if blocks[t] == nil {
			return nil, fmt.Errorf("missing %s block", t)
		}
	}

	cert, err := x509.ParseCertificate(blocks[pemCertificate].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s block: %w", pemCertificate, err)
	}
	key, err := parsePKCS8Signer(blocks[pemPrivateKey].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s block (PKCS#8): %w", pemPrivateKey, err)
	}
	var tok Token
	if err := json.Unmarshal(blocks[pemToken].Bytes, &tok); err != nil {
		return nil, fmt.Errorf("%s block: token JSON invalid: %w", pemToken, err)
	}
	if err := checkBundle(cert, key, &tok); err != nil {
		return nil, err
	}
	return &Bundle{Cert: cert, Key: key, Token: tok}, nil
}

// checkBundle checks that cert is an origin certificate, that key is its key
// and that tok is complete. It canonicalises tok: the zone is filled in from
// the certificate and an empty edge list is nil.
func checkBundle(cert *x509.Certificate, key crypto.Signer, tok *Token) error {
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return errors.New("not an origin certificate: no client-authentication extended key usage")
	}
	zone, err := ZoneOf(cert)
	if err != nil {
		return err
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return errors.New("private key does not match the certificate")
	}
	var missing []string
	if tok.ZoneID == "" {
		missing = append(missing, "zone_id")
	}
	if tok.APIToken == "" {
		missing = append(missing, "api_token")
	}
	if len(missing) > 0 {
		return fmt.Errorf("token has no %s", joinAnd(missing))
	}
	if tok.Zone == "" {
		tok.Zone = zone
	} else if z := normalizeName(tok.Zone); z != zone {
		return fmt.Errorf("token zone %q is not the certificate's zone %q", tok.Zone, zone)
	} else {
		tok.Zone = z
	}
	if len(tok.Edges) == 0 {
		tok.Edges = nil
	}
	return nil
}

// joinAnd joins words as "a", "a and b".
func joinAnd(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	s := words[0]
	for _, w := range words[1 : len(words)-1] {
		s += ", " + w
	}
	return s + " and " + words[len(words)-1]
}

// EdgeCAPool returns a pool of the certificates in Token.EdgeCA, for
// verifying the edge's tunnel certificate. An empty EdgeCA, one without
// a certificate, or one with a block that does not parse is an error.
func (b *Bundle) EdgeCAPool() (*x509.CertPool, error) {
	if b.Token.EdgeCA == "" {
		return nil, errors.New("cert.pem: the token has no edge_ca")
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := []byte(b.Token.EdgeCA); ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != pemCertificate {
			return nil, fmt.Errorf("cert.pem: token edge_ca: unexpected %q block", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cert.pem: token edge_ca: %w", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("cert.pem: token edge_ca holds no PEM certificate")
	}
	return pool, nil
}

// TLSCertificate returns the origin certificate and key as a
// tls.Certificate, for the connector's side of the tunnel handshake.
func (b *Bundle) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{b.Cert.Raw}, PrivateKey: b.Key, Leaf: b.Cert}
}

// writeAndSync writes data to f and flushes it to stable storage. Tests
// replace it to make a write fail.
var writeAndSync = func(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// WriteBundleFile writes data (a marshalled bundle) to path atomically: to a
// temporary file in the same directory, flushed to disk, then renamed into
// place, so a failed write leaves any previous file intact. The file has
// mode 0600; a missing parent directory is created with mode 0700. Without
// force, an existing file is not replaced: the error wraps os.ErrExist and
// says to use --force.
func WriteBundleFile(path string, data []byte, force bool) error {
	exists := func() error {
		return fmt.Errorf("%s already exists; use --force to overwrite it: %w", path, os.ErrExist)
	}
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return exists()
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		os.Remove(tmpName) // after a rename it is gone; after a link, it is the second name
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := writeAndSync(tmp, data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = tmp.Close()
	tmp = nil // closed, even if with an error
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if force {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	} else {
		// A hard link does not replace an existing file, so a file created
		// since the check above is not overwritten either.
		if err := os.Link(tmpName, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return exists()
			}
			// No hard links on this file system: check, then rename.
			if _, err := os.Lstat(path); err == nil {
				return exists()
			}
			if err := os.Rename(tmpName, path); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
		}
	}
	syncDir(dir)
	return nil
}

// syncDir flushes a directory entry change to disk, where the system allows.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// ReadBundleFile reads and parses the cert.pem at path. Its errors name the
// path.
func ReadBundleFile(path string) (*Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cert.pem: %w", err)
	}
	b, err := parseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
