package control

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	culverttls "github.com/culvert-tunnel/culvert/tls"
)

// Bounds of the pending connector logins (`culvert login`). They are kept
// in the memory of the edge that the CLI asked: the CLI polls that edge,
// and the browser opens the URL it printed, which names that edge.
const (
	loginTTL        = 15 * time.Minute
	maxPendingLogin = 256
	sessionTTL      = 12 * time.Hour
	metaWebKey      = "web/cookie-key"
)

// Login states.
const (
	LoginPending = "pending"
	LoginDone    = "done"
)

// LoginResult is what the CLI of a finished login receives: the origin
// certificate for its key and the token block of its cert.pem.
type LoginResult struct {
	CertPEM string           `json:"cert"`
	Token   culverttls.Token `json:"token"`
}

type login struct {
	id         string
	secretHash [32]byte
	csr        []byte
	expires    time.Time
	result     *LoginResult
}

type loginTable struct {
	mu sync.Mutex
	m  map[string]*login
}

func newLoginTable() *loginTable { return &loginTable{m: map[string]*login{}} }

// ErrLoginNotFound means the login is unknown, expired or already
// collected.
var ErrLoginNotFound = errors.New("this login is unknown or expired: run `culvert login` again")

// StartLogin begins a connector login for a DER certificate signing
// request made with the connector's own key (ECDSA P-256): the key never
// leaves the connector. It returns the login's ID, which names the page a
// super administrator opens, and the secret the CLI polls with.
func (e *Edge) StartLogin(csrDER []byte) (id, secret string, expires time.Time, err error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("the certificate signing request does not parse: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return "", "", time.Time{}, fmt.Errorf("the certificate signing request's signature is wrong: %w", err)
	}
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return "", "", time.Time{}, errors.New("the certificate signing request's key must be ECDSA P-256")
	}
	var idb, sb [16]byte
	rand.Read(idb[:])
	rand.Read(sb[:])
	id, secret = hex.EncodeToString(idb[:]), base64.RawURLEncoding.EncodeToString(sb[:])
	now := time.Now()
	l := &login{id: id, secretHash: sha256.Sum256([]byte(secret)), csr: csrDER, expires: now.Add(loginTTL)}
	t := e.logins
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.m {
		if now.After(v.expires) {
			delete(t.m, k)
		}
	}
	if len(t.m) >= maxPendingLogin {
		return "", "", time.Time{}, errors.New("too many logins are pending on this edge; try again in a few minutes")
	}
	t.m[id] = l
	return id, secret, l.expires, nil
}

// pendingLogin returns a login that is still waiting for authorization.
func (e *Edge) pendingLogin(id string) (*login, error) {
	t := e.logins
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[id]
	if l == nil || time.Now().After(l.expires) {
		return nil, ErrLoginNotFound
	}
	return l, nil
}

// PollLogin answers the CLI: LoginPending, or LoginDone with the result
// (once: the login is then forgotten).
func (e *Edge) PollLogin(id, secret string) (string, *LoginResult, error) {
	t := e.logins
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[id]
	if l == nil || time.Now().After(l.expires) {
		return "", nil, ErrLoginNotFound
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], l.secretHash[:]) != 1 {
		return "", nil, ErrLoginNotFound
	}
	if l.result == nil {
		return LoginPending, nil, nil
	}
	delete(t.m, id)
	return LoginDone, l.result, nil
}

// AuthorizeLogin issues the origin certificate of zone for the login's
// key and a token of u's API key: the cert.pem the CLI writes then carries
// u's credential. Only a super administrator of the zone's account may.
func (e *Edge) AuthorizeLogin(u User, id, zoneName string) error {
	l, err := e.pendingLogin(id)
	if err != nil {
		return err
	}
	z, err := e.Store.ZoneByName(zoneName)
	if err != nil || !e.CanRead(u, z.AccountID) {
		return fmt.Errorf("no zone %q in your account", zoneName)
	}
	if !CanAuthorizeLogin(u, z.AccountID) {
		return denied(notSuperAdminMsg)
	}
	cert, err := e.OriginCA.SignOriginCSR(l.csr, z.Name, culverttls.MinOriginValidity+24*time.Hour)
	if err != nil {
		return err
	}
	token, err := e.Store.AddUserToken(u.ID)
	if err != nil {
		return err
	}
	serial := cert.SerialNumber.Text(16)
	if err := e.Store.PutCert(CertRecord{Serial: serial, ZoneID: z.ID, AccountID: z.AccountID, UserID: u.ID,
		NotAfter: cert.NotAfter, Issued: time.Now().UTC()}); err != nil {
		return err
	}
	caPEM, _, err := e.EdgeCA.PEM()
	if err != nil {
		return err
	}
	res := &LoginResult{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		Token: culverttls.Token{ZoneID: z.ID, AccountID: z.AccountID, APIToken: token, Zone: z.Name,
			EdgeCA: string(caPEM), TunnelServerName: e.TunnelServerName(), Edges: e.Edges, API: e.API},
	}
	e.logins.mu.Lock()
	if cur := e.logins.m[id]; cur == l && l.result == nil {
		l.result = res
	} else {
		err = ErrLoginNotFound
	}
	e.logins.mu.Unlock()
	if err != nil {
		return err
	}
	e.audit(z.AccountID, "Login", u.ID, userLabel(u), "cert.pem for zone "+z.Name+" by culvert login")
	e.audit(z.AccountID, "CertIssued", u.ID, serial, "zone "+z.Name+" (login)")
	return nil
}

const notSuperAdminMsg = "only a super administrator of the zone's account may authorize a connector login: " +
	"ask one to sign in here, or have an administrator issue a cert.pem with a service user (`culvert edge cert issue ZONE`)"

// --- dashboard sessions: stateless signed cookies ---

// loadOrCreateWebKey loads the cookie key shared by the edges of a store.
func (e *Edge) loadOrCreateWebKey() error {
	k, err := e.Store.GetMeta(metaWebKey)
	if errors.Is(err, ErrNotFound) {
		fresh := make([]byte, 32)
		rand.Read(fresh)
		k, err = e.Store.PutMetaIfAbsent(metaWebKey, fresh)
	}
	if err != nil {
		return err
	}
	if len(k) < 32 {
		return fmt.Errorf("control: meta %s: short key", metaWebKey)
	}
	e.webKey = k
	return nil
}

func (e *Edge) mac(parts ...string) string {
	m := hmac.New(sha256.New, e.webKey)
	m.Write([]byte(strings.Join(parts, "|")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// SessionCookie returns a cookie value for u, valid for sessionTTL or
// until u's key is rolled.
func (e *Edge) SessionCookie(u User) string {
	exp := strconv.FormatInt(time.Now().Add(sessionTTL).Unix(), 10)
	kv := strconv.Itoa(u.KeyVersion)
	return u.ID + "." + kv + "." + exp + "." + e.mac("session", u.ID, kv, exp)
}

// SessionUser checks a cookie value.
func (e *Edge) SessionUser(v string) (User, error) {
	p := strings.Split(v, ".")
	if len(p) != 4 || !hmac.Equal([]byte(p[3]), []byte(e.mac("session", p[0], p[1], p[2]))) {
		return User{}, errors.New("bad session")
	}
	exp, err := strconv.ParseInt(p[2], 10, 64)
	if err != nil || time.Now().Unix() > exp {
		return User{}, errors.New("session expired")
	}
	u, err := e.Store.GetUser(p[0])
	if err != nil || u.Disabled || strconv.Itoa(u.KeyVersion) != p[1] {
		return User{}, errors.New("session ended")
	}
	return u, nil
}

// CSRFToken is the form token of a session cookie value.
func (e *Edge) CSRFToken(cookie string) string { return e.mac("csrf", cookie) }
