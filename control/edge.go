package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/control/dnsserver"
	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	culverttls "github.com/culvert-tunnel/culvert/tls"
)

// Meta keys of the edge's own secrets in the store.
const (
	metaEdgeCACert   = "ca/edge/cert"
	metaEdgeCAKey    = "ca/edge/key"
	metaOriginCACert = "ca/origin/cert"
	metaOriginCAKey  = "ca/origin/key"
	// The CA of the certificates the edge issues to visitors (HTTPS)
	// for the zones it serves.
	metaVisitorCACert = "ca/visitor/cert"
	metaVisitorCAKey  = "ca/visitor/key"
	metaVisitorCAPair = "ca/visitor/pair"
	metaAdminUser     = "admin/user"
	metaDefaultAcct   = "account/default"
	// The CA chosen at first start, certificate and key in one value
	// (caPair), before they are copied to their own keys: edges starting
	// together agree on it in one PutMetaIfAbsent.
	metaEdgeCAPair   = "ca/edge/pair"
	metaOriginCAPair = "ca/origin/pair"
)

// Files the edge writes into its data dir at first start.
const (
	// AdminTokenFile holds the first super administrator's API token (mode
	// 0600): the credential of the admin commands on this machine.
	AdminTokenFile = "admin.token"
	// EdgeCAFile is the public certificate of the edge CA: clients of the
	// control API and connectors trust the edge through it.
	EdgeCAFile = "edge-ca.pem"
	// VisitorCAFile is the public certificate of the CA that signs the
	// HTTPS certificates the edge makes for its zones; visitors' clients
	// trust it to reach tunnels over HTTPS (also at /ca.pem on the API).
	VisitorCAFile = "visitor-ca.pem"
	// StoreFile is the bbolt file.
	StoreFile = "culvert.db"
)

// caValidity is how long the edge's CAs live.
const caValidity = 20 * 365 * 24 * time.Hour

// Edge is the control path of one edge process: its store, its two CAs,
// and the registration policy the data plane asks (it implements
// edge.Registrar).
type Edge struct {
	Store     Store
	EdgeCA    *culverttls.CA
	OriginCA  *culverttls.CA
	VisitorCA *culverttls.CA
	// Domain is the edge's own DNS domain; the tunnel listener's server
	// name is "tunnel."+Domain.
	Domain string
	// DataDir holds the store and the admin files.
	DataDir string
	// AdminUserID is the first super administrator.
	AdminUserID string
	// DefaultAccountID is the account created at first start.
	DefaultAccountID string
	// Edges are the tunnel addresses written into new cert.pem tokens.
	Edges []string
	// TunnelLimit is the number of tunnels an account may run at once
	// when the account sets none; 0 means DefaultTunnelLimit.
	TunnelLimit int
	// PublicAddrs are the edge's public addresses: the AAAA (IPv6) and A
	// (IPv4) records of tunnel hostnames in full zones, and the answers
	// for the edge's own names. Empty: ::1 and 127.0.0.1.
	PublicAddrs []netip.Addr
	// Regions are the discovery regions published in the SRV record, and
	// TunnelPort the port in it.
	Regions    []dnsserver.Region
	TunnelPort uint16
	// RecordDeleteMin and RecordDeleteMax bound the random delay after
	// which an unregistered tunnel's DNS records are deleted (default
	// 24 h and 48 h).
	RecordDeleteMin, RecordDeleteMax time.Duration
	// OnDNSChange, if set, is called after DNS records change (the DNS
	// server reloads).
	OnDNSChange func()
	// API is the control API's URL written into cert.pem tokens.
	API string

	Logger *slog.Logger

	mu   sync.Mutex
	live map[string]map[string]bool // account -> live hostnames

	signInSem chan struct{} // bounds concurrent password checks
	failures  failureTable  // sign-in lockout
	dummyHash string        // checked for unknown users, so they take as long
	logins    *loginTable
	webKey    []byte // HMAC key of the dashboard's session cookies
}

// TunnelServerName is the server name of the tunnel listener's certificate.
func (e *Edge) TunnelServerName() string { return "tunnel." + e.Domain }

// OpenEdge opens (or creates, at first start) the edge state in dataDir:
// the store, the CAs, a default account and its first super administrator,
// whose token is written to dataDir/admin.token with mode 0600. It is
// OpenEdgeStore with the bbolt store in dataDir.
func OpenEdge(dataDir, domain string, logger *slog.Logger) (*Edge, error) {
	return OpenEdgeStore("", dataDir, domain, logger)
}

// OpenEdgeStore is OpenEdge with the store named by spec (see OpenStore):
// "" for the bbolt file in dataDir, or an etcd cluster shared with other
// edges. Edges starting together on one etcd agree on one pair of CAs, one
// default account and one first super administrator; only the edge that
// created the administrator writes its token to dataDir/admin.token. Every
// edge writes the edge CA's certificate to dataDir/edge-ca.pem.
func OpenEdgeStore(spec, dataDir, domain string, logger *slog.Logger) (*Edge, error) {
	if logger == nil {
		logger = slog.Default()
	}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	if domain == "" {
		return nil, errors.New("control: the edge needs a domain")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("control: data dir: %w", err)
	}
	st, err := OpenStore(spec, dataDir)
	if err != nil {
		return nil, err
	}
	e := &Edge{Store: st, Domain: domain, DataDir: dataDir, Logger: logger, live: map[string]map[string]bool{},
		signInSem: make(chan struct{}, 4), logins: newLoginTable()}
	if err := e.bootstrap(); err != nil {
		st.Close()
		return nil, err
	}
	if e.dummyHash, err = HashPassword("not a password of anyone"); err != nil {
		st.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the store.
func (e *Edge) Close() error { return e.Store.Close() }

// bootstrap loads the edge's CAs, default account and first super
// administrator, creating those missing. Each is claimed with
// PutMetaIfAbsent before or as it is created, so that edges starting
// together on one shared store agree on it, and one that stopped half way
// is completed at the next start.
func (e *Edge) bootstrap() error {
	var err error
	if e.EdgeCA, err = e.loadOrCreateCA(metaEdgeCACert, metaEdgeCAKey, metaEdgeCAPair, "culvert edge CA"); err != nil {
		return err
	}
	if e.OriginCA, err = e.loadOrCreateCA(metaOriginCACert, metaOriginCAKey, metaOriginCAPair, "culvert origin CA"); err != nil {
		return err
	}
	if e.VisitorCA, err = e.loadOrCreateCA(metaVisitorCACert, metaVisitorCAKey, metaVisitorCAPair, "culvert visitor CA"); err != nil {
		return err
	}
	caPEM, _, err := e.EdgeCA.PEM()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(e.DataDir, EdgeCAFile), caPEM, 0o644); err != nil {
		return err
	}
	vcaPEM, _, err := e.VisitorCA.PEM()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(e.DataDir, VisitorCAFile), vcaPEM, 0o644); err != nil {
		return err
	}
	if err := e.loadOrCreateDefaultAccount(); err != nil {
		return err
	}
	if err := e.loadOrCreateWebKey(); err != nil {
		return err
	}
	return e.loadOrCreateAdmin()
}

// loadOrCreateDefaultAccount claims an account ID for the default account,
// then creates the account if it is missing (another edge may be creating
// it at the same time: ErrExists is its success).
func (e *Edge) loadOrCreateDefaultAccount() error {
	id, err := e.Store.GetMeta(metaDefaultAcct)
	if errors.Is(err, ErrNotFound) {
		fresh, err := newID()
		if err != nil {
			return err
		}
		if id, err = e.Store.PutMetaIfAbsent(metaDefaultAcct, []byte(fresh)); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	e.DefaultAccountID = string(id)
	if _, err := e.Store.GetAccount(e.DefaultAccountID); !errors.Is(err, ErrNotFound) {
		return err
	}
	if _, err := e.Store.CreateAccount(Account{ID: e.DefaultAccountID, Name: "default"}); err != nil && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}

// loadOrCreateAdmin claims a user ID for the first super administrator,
// then creates the user if it is missing. The edge whose CreateUser made
// it writes the token to DataDir/admin.token; the others only learn the
// ID.
func (e *Edge) loadOrCreateAdmin() error {
	id, err := e.Store.GetMeta(metaAdminUser)
	if errors.Is(err, ErrNotFound) {
		fresh, err := newID()
		if err != nil {
			return err
		}
		if id, err = e.Store.PutMetaIfAbsent(metaAdminUser, []byte(fresh)); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	e.AdminUserID = string(id)
	if _, err := e.Store.GetUser(e.AdminUserID); !errors.Is(err, ErrNotFound) {
		return err
	}
	_, token, err := e.Store.CreateUser(User{ID: e.AdminUserID, AccountID: e.DefaultAccountID, Name: "admin", Role: RoleSuperAdmin})
	if errors.Is(err, ErrExists) {
		return nil // another edge created it just now
	}
	if err != nil {
		return err
	}
	path := filepath.Join(e.DataDir, AdminTokenFile)
	if err := writeFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("control: the first super administrator was created but its token could not be saved: %w", err)
	}
	e.Logger.Info("edge initialised: first super administrator created", "token_file", path)
	return nil
}

// caPair is a CA's certificate and key, stored as one value while edges
// agree on the CA.
type caPair struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
}

// loadOrCreateCA returns the CA stored under certKey and keyKey. At first
// start it makes one and offers it under pairKey with PutMetaIfAbsent: the
// pair stored there (this edge's or one that came first) is then copied to
// keyKey and certKey, key first, so a stored certificate always has its
// key. Every edge copies the same pair, so the copies do not conflict, and
// an edge that stopped between them completes them at the next start.
func (e *Edge) loadOrCreateCA(certKey, keyKey, pairKey, name string) (*culverttls.CA, error) {
	certPEM, err := e.Store.GetMeta(certKey)
	if errors.Is(err, ErrNotFound) {
		ca, err := culverttls.NewCA(name, caValidity)
		if err != nil {
			return nil, err
		}
		c, k, err := ca.PEM()
		if err != nil {
			return nil, err
		}
		mine, err := json.Marshal(caPair{Cert: c, Key: k})
		if err != nil {
			return nil, err
		}
		stored, err := e.Store.PutMetaIfAbsent(pairKey, mine)
		if err != nil {
			return nil, err
		}
		var p caPair
		if err := json.Unmarshal(stored, &p); err != nil {
			return nil, fmt.Errorf("control: %s: %w", pairKey, err)
		}
		if err := e.Store.PutMeta(keyKey, p.Key); err != nil {
			return nil, err
		}
		if certPEM, err = e.Store.PutMetaIfAbsent(certKey, p.Cert); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	keyPEM, err := e.Store.GetMeta(keyKey)
	if err != nil {
		return nil, fmt.Errorf("control: %s: %w", keyKey, err)
	}
	return culverttls.LoadCA(certPEM, keyPEM)
}

// TunnelTLS returns the tunnel listener's TLS config: a fresh server
// certificate for TunnelServerName from the edge CA, mTLS against the origin
// CA, revocation from the store.
func (e *Edge) TunnelTLS() (*tls.Config, error) {
	cert, err := e.EdgeCA.IssueServer([]string{e.TunnelServerName()}, nil, 397*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return culverttls.TunnelServerConfig(cert, e.OriginCA.Pool(), e.isRevoked), nil
}

func (e *Edge) isRevoked(serial *big.Int) bool {
	r, err := e.Store.IsRevoked(serial.Text(16))
	return err != nil || r
}

// APITLS returns the control API's TLS config: a certificate from the edge
// CA for the API name and the loopback addresses, plus extra names.
func (e *Edge) APITLS(extraNames []string, extraIPs []net.IP) (*tls.Config, error) {
	names := append([]string{"api." + e.Domain, "localhost"}, extraNames...)
	ips := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, extraIPs...)
	cert, err := e.EdgeCA.IssueServer(names, ips, 397*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// admin is the first super administrator, the actor of the edge's own
// admin commands.
func (e *Edge) admin() User {
	u, err := e.Store.GetUser(e.AdminUserID)
	if err != nil {
		return User{ID: e.AdminUserID, AccountID: e.DefaultAccountID, Role: RoleSuperAdmin}
	}
	return u
}

// VisitorTLS returns the HTTPS visitor listener's TLS config: the
// operator's certificates (certKeyFiles: pairs of certificate and key
// files), else certificates the visitor CA issues for the zones the edge
// serves (zone and *.zone), chosen by SNI; ALPN offers h2 and http/1.1.
func (e *Edge) VisitorTLS(certKeyFiles [][2]string) (*tls.Config, error) {
	vc := culverttls.NewVisitorCerts(culverttls.VisitorCertsConfig{ZoneOf: e.zoneOf, CA: e.VisitorCA})
	for _, p := range certKeyFiles {
		if err := vc.AddFile(p[0], p[1]); err != nil {
			return nil, err
		}
	}
	return vc.TLSConfig([]string{"h2", "http/1.1"}), nil
}

// zoneOf returns the zone host belongs to: host itself or its parent, if
// the edge serves it.
func (e *Edge) zoneOf(host string) (string, bool) {
	host = culverttls.NormalizeHostname(host)
	if z, err := e.Store.ZoneByName(host); err == nil {
		return z.Name, true
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		if z, err := e.Store.ZoneByName(host[i+1:]); err == nil {
			return z.Name, true
		}
	}
	return "", false
}

// CreateZone creates a zone in the default account, as the first super
// administrator.
func (e *Edge) CreateZone(name string, partial bool) (Zone, error) {
	return e.CreateZoneAs(e.admin(), "", name, partial)
}

// CreateZoneAs creates a zone in account (actor's own if empty): full, or
// partial (CNAME setup: the user's DNS provider keeps the zone).
func (e *Edge) CreateZoneAs(actor User, account, name string, partial bool) (Zone, error) {
	if account == "" {
		account = actor.AccountID
	}
	if !e.CanAdmin(actor, account) {
		return Zone{}, denied("only an administrator of the account creates zones")
	}
	if _, err := e.Store.GetAccount(account); err != nil {
		return Zone{}, err
	}
	name = culverttls.NormalizeHostname(name)
	if name == "" || !strings.Contains(name, ".") || name == e.Domain || strings.HasSuffix(name, "."+e.Domain) || strings.HasSuffix(e.Domain, "."+name) {
		return Zone{}, fmt.Errorf("control: %q is not a zone name (like example.com) or overlaps the edge's own domain", name)
	}
	z, err := e.Store.CreateZone(Zone{Name: name, AccountID: account, Partial: partial})
	if err != nil {
		return Zone{}, err
	}
	kind := "full"
	if partial {
		kind = "partial"
	}
	e.audit(z.AccountID, "ZoneCreated", actor.ID, z.Name, kind)
	e.dnsChanged()
	return z, nil
}

// IssueBundle issues a cert.pem for zone as the first super administrator.
func (e *Edge) IssueBundle(zoneName string) ([]byte, error) {
	return e.IssueBundleAs(e.admin(), zoneName)
}

// IssueBundleAs issues a cert.pem for zone: a new origin certificate and
// key, and the API token of a service user made for the zone's tunnels
// (so the bundle carries no person's credential and survives their key
// rolls). The key is made here and travels in the answer; `culvert login`
// keeps its key on the connector instead.
func (e *Edge) IssueBundleAs(actor User, zoneName string) ([]byte, error) {
	z, err := e.Store.ZoneByName(zoneName)
	if err != nil {
		return nil, err
	}
	if !e.CanAdmin(actor, z.AccountID) {
		return nil, fmt.Errorf("control: no zone %q in your account: %w", zoneName, ErrNotFound)
	}
	key, err := culverttls.GenerateKey()
	if err != nil {
		return nil, err
	}
	cert, err := e.OriginCA.IssueOrigin(z.Name, key.Public(), culverttls.MinOriginValidity+24*time.Hour)
	if err != nil {
		return nil, err
	}
	u, token, err := e.Store.CreateUser(User{AccountID: z.AccountID, Name: "tunnel@" + z.Name, Role: RoleMember, Service: true})
	if err != nil {
		return nil, err
	}
	if err := e.Store.PutCert(CertRecord{
		Serial: cert.SerialNumber.Text(16), ZoneID: z.ID, AccountID: z.AccountID, UserID: u.ID,
		NotAfter: cert.NotAfter, Issued: time.Now().UTC(),
	}); err != nil {
		return nil, err
	}
	caPEM, _, err := e.EdgeCA.PEM()
	if err != nil {
		return nil, err
	}
	b := &culverttls.Bundle{Cert: cert, Key: key, Token: culverttls.Token{
		ZoneID: z.ID, AccountID: z.AccountID, APIToken: token, Zone: z.Name,
		EdgeCA: string(caPEM), TunnelServerName: e.TunnelServerName(), Edges: e.Edges, API: e.API,
	}}
	out, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	e.audit(z.AccountID, "UserCreated", actor.ID, userLabel(u), "service user for cert.pem of "+z.Name)
	e.audit(z.AccountID, "CertIssued", actor.ID, cert.SerialNumber.Text(16), "zone "+z.Name)
	return out, nil
}

// RevokeCert revokes an origin certificate as the first super
// administrator.
func (e *Edge) RevokeCert(serial string) error { return e.RevokeCertAs(e.admin(), serial) }

// RevokeCertAs revokes an origin certificate: the next TLS handshake with
// it fails, and live connections that used it are not touched.
func (e *Edge) RevokeCertAs(actor User, serial string) error {
	c, err := e.Store.GetCert(serial)
	if err != nil || !e.CanAdmin(actor, c.AccountID) {
		return fmt.Errorf("control: no certificate %q in your account: %w", serial, ErrNotFound)
	}
	if err := e.Store.RevokeCert(serial, time.Now().UTC()); err != nil {
		return err
	}
	e.audit(c.AccountID, "CertRevoked", actor.ID, c.Serial, "")
	return nil
}

func (e *Edge) audit(account, kind, actor, subject, detail string) {
	if _, err := e.Store.AppendAudit(AuditEvent{AccountID: account, Kind: kind, Actor: actor, Subject: subject, Detail: detail}); err != nil {
		e.Logger.Error("audit log write failed", "kind", kind, "err", err)
	}
}

var _ edge.Registrar = (*Edge)(nil)

func refuse(code, msg string, permanent bool) *tunnel.Error {
	return &tunnel.Error{Code: code, Message: msg, Permanent: permanent}
}

// Register decides a tunnel connection's registration (edge.Registrar).
func (e *Edge) Register(ctx context.Context, cert *x509.Certificate, r *tunnel.Register) (*edge.Registration, *tunnel.Error) {
	serial := cert.SerialNumber.Text(16)
	if revoked, err := e.Store.IsRevoked(serial); err != nil || revoked {
		return nil, refuse(tunnel.CodeCertRevoked, "the origin certificate in cert.pem is revoked: run `culvert login` for a new one", true)
	}
	certZone, err := culverttls.ZoneOf(cert)
	if err != nil {
		return nil, refuse(tunnel.CodeZoneMismatch, "the client certificate is not an origin certificate", true)
	}
	u, err := e.Store.UserByToken(r.Token)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, refuse(tunnel.CodeBadToken, "the API token in cert.pem is not valid (it may have been rolled): "+
				"run `culvert login` again, or use the token of a service user", true)
		}
		return nil, refuse(tunnel.CodeInternal, "the edge could not check the token", false)
	}
	z, err := e.Store.ZoneByName(certZone)
	if err != nil {
		return nil, refuse(tunnel.CodeZoneMismatch, fmt.Sprintf("the edge serves no zone %q", certZone), true)
	}
	if z.AccountID != u.AccountID {
		return nil, refuse(tunnel.CodeZoneMismatch, fmt.Sprintf("the token's account does not own zone %q", z.Name), true)
	}
	if rec, err := e.Store.GetCert(serial); err != nil || rec.ZoneID != z.ID {
		return nil, refuse(tunnel.CodeZoneMismatch, fmt.Sprintf("the origin certificate was not issued for zone %q", z.Name), true)
	}
	host := culverttls.NormalizeHostname(r.Hostname)
	if err := culverttls.CheckHostname(z.Name, host); err != nil {
		code := tunnel.CodeHostnameInvalid
		switch {
		case errors.Is(err, culverttls.ErrApexHostname):
			code = tunnel.CodeHostnameApex
		case errors.Is(err, culverttls.ErrTooDeep):
			code = tunnel.CodeHostnameTooDeep
		case errors.Is(err, culverttls.ErrOutsideZone):
			code = tunnel.CodeHostnameOutside
		}
		return nil, refuse(code, fmt.Sprintf("hostname %q cannot be registered with this cert.pem (zone %s): %v", r.Hostname, z.Name, err), true)
	}
	if t, err := e.Store.TunnelByHostname(host); err == nil && t.AccountID != z.AccountID {
		return nil, refuse(tunnel.CodeHostnameTaken, fmt.Sprintf("hostname %q belongs to another account", host), true)
	}
	acct, err := e.Store.GetAccount(z.AccountID)
	if err != nil {
		return nil, refuse(tunnel.CodeInternal, "the edge could not read the account", false)
	}
	e.mu.Lock()
	hosts := e.live[acct.ID]
	limit := acct.MaxTunnels()
	if acct.TunnelLimit <= 0 && e.TunnelLimit > 0 {
		limit = e.TunnelLimit
	}
	if !hosts[host] && len(hosts) >= limit {
		e.mu.Unlock()
		return nil, &tunnel.Error{Code: tunnel.CodeTunnelLimit, Permanent: true,
			Message: fmt.Sprintf("the account runs its maximum of %d tunnels: stop one of them, or ask the edge's "+
				"administrator to raise the account's limit, then start this connector again", limit)}
	}
	first := !hosts[host]
	if hosts == nil {
		hosts = map[string]bool{}
		e.live[acct.ID] = hosts
	}
	hosts[host] = true
	e.mu.Unlock()
	t, err := e.Store.PutTunnel(Tunnel{Hostname: host, ZoneID: z.ID, AccountID: z.AccountID, LBPool: r.LBPool, LastSeen: time.Now().UTC()})
	if err != nil {
		e.forget(acct.ID, host, first)
		return nil, refuse(tunnel.CodeInternal, "the edge could not record the tunnel", false)
	}
	reg := &edge.Registration{TunnelID: t.ID, AccountID: z.AccountID, Hostname: host, URL: "http://" + host}
	if z.Partial {
		reg.CNAME = host + ". CNAME " + e.CDNName(host) + "."
		reg.DNSRecord = "none: " + z.Name + " is a partial zone; create " + reg.CNAME + " at its DNS provider"
		if first {
			e.dnsChanged()
		}
	} else {
		if reg.DNSRecord, err = e.ensureRecords(t, u.ID); err != nil {
			e.Logger.Error("creating the tunnel's DNS records failed", "hostname", host, "err", err)
			e.forget(acct.ID, host, first)
			return nil, refuse(tunnel.CodeInternal, "the edge could not create the DNS records", false)
		}
	}
	if first {
		e.audit(z.AccountID, "Registered", u.ID, host, "connector "+r.ConnectorID)
	}
	return reg, nil
}

// forget undoes the live mark of a registration that failed after it.
func (e *Edge) forget(account, host string, first bool) {
	if !first {
		return
	}
	e.mu.Lock()
	delete(e.live[account], host)
	e.mu.Unlock()
}

// Unregistered notes that a tunnel's last connection is gone: its DNS
// records and the tunnel are deleted after the configured delay unless it
// registers again.
func (e *Edge) Unregistered(reg *edge.Registration) {
	e.mu.Lock()
	delete(e.live[reg.AccountID], reg.Hostname)
	e.mu.Unlock()
	e.audit(reg.AccountID, "Unregistered", "", reg.Hostname, "")
	e.scheduleDelete(reg.Hostname)
}

// Known reports whether hostname belongs to a tunnel the edge knows.
func (e *Edge) Known(hostname string) bool {
	_, err := e.Store.TunnelByHostname(hostname)
	return err == nil
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
