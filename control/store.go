package control

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors returned by every Store, wrapped with the context of the call;
// test them with errors.Is.
var (
	ErrNotFound = errors.New("control: not found")
	ErrExists   = errors.New("control: already exists")
	// ErrInUse means another process holds the lock on the state file:
	// two edges must not share one data dir (several edges share state
	// through etcd instead).
	ErrInUse = errors.New("control: data dir is in use by another culvert edge")
)

// SchemaVersion is the layout of the state this package reads and writes.
// OpenBolt refuses a file written with a newer one.
const SchemaVersion = 1

// DefaultTunnelLimit is the number of tunnels an account may have when its
// TunnelLimit is 0.
const DefaultTunnelLimit = 1000

// TokenPrefix starts every API token, so that a leaked one is recognisable
// by secret scanners and in logs.
const TokenPrefix = "cvt_"

// Account owns users, zones, certificates and tunnels.
type Account struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	TunnelLimit int       `json:"tunnel_limit,omitempty"` // 0 = DefaultTunnelLimit
	Created     time.Time `json:"created,omitzero"`
}

// MaxTunnels is the account's tunnel limit with the default applied.
func (a Account) MaxTunnels() int {
	if a.TunnelLimit <= 0 {
		return DefaultTunnelLimit
	}
	return a.TunnelLimit
}

// Role is what a user may do.
type Role string

const (
	RoleSuperAdmin Role = "super_admin" // the whole edge
	RoleAdmin      Role = "admin"       // one account
	RoleMember     Role = "member"      // one account, no user management
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleSuperAdmin, RoleAdmin, RoleMember:
		return true
	}
	return false
}

// User is a person or a service (a connector's identity) holding one API
// token. Only the token's hash is stored.
type User struct {
	ID         string    `json:"id"`
	AccountID  string    `json:"account_id"`
	Name       string    `json:"name"`
	Role       Role      `json:"role"`
	Service    bool      `json:"service,omitempty"`
	TokenHash  string    `json:"token_hash"` // hex SHA-256 of the API token
	KeyVersion int       `json:"key_version"`
	Created    time.Time `json:"created,omitzero"`
	// Email is the sign-in name of a person: lowercase, unique across
	// the store; empty for service users, who never sign in.
	Email string `json:"email,omitempty"`
	// PasswordHash is HashPassword's encoding; empty: cannot sign in.
	PasswordHash string `json:"password_hash,omitempty"`
	// Disabled users (removed from their account) do not authenticate.
	Disabled bool `json:"disabled,omitempty"`
	// ExtraTokens are hashes of further tokens of the same key: each
	// login writes one into a cert.pem. RollUserToken ends them all with
	// the main one; at most MaxExtraTokens are kept, oldest dropped.
	ExtraTokens []string `json:"extra_tokens,omitempty"`
}

// MaxExtraTokens bounds User.ExtraTokens.
const MaxExtraTokens = 64

// hasToken reports whether hash is one of the user's live token hashes.
func (u *User) hasToken(hash string) bool {
	if u.Disabled {
		return false
	}
	if u.TokenHash == hash {
		return true
	}
	for _, h := range u.ExtraTokens {
		if h == hash {
			return true
		}
	}
	return false
}

// rollTokens makes hash the only token of a new key version and returns
// the hashes that stop authenticating.
func (u *User) rollTokens(hash string) (dropped []string) {
	for _, h := range append([]string{u.TokenHash}, u.ExtraTokens...) {
		if h != "" {
			dropped = append(dropped, h)
		}
	}
	u.TokenHash, u.ExtraTokens = hash, nil
	u.KeyVersion++
	return dropped
}

// addExtraToken adds hash as a further token of the current key and
// returns the oldest ones dropped beyond MaxExtraTokens.
func (u *User) addExtraToken(hash string) (dropped []string) {
	u.ExtraTokens = append(u.ExtraTokens, hash)
	if n := len(u.ExtraTokens) - MaxExtraTokens; n > 0 {
		dropped = append(dropped, u.ExtraTokens[:n]...)
		u.ExtraTokens = u.ExtraTokens[n:]
	}
	return dropped
}

// DNSRecord is a record the edge serves in a full zone for a tunnel
// hostname. Name is lowercase without a trailing dot; (Name, Type) is
// unique across the store.
type DNSRecord struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"` // "A", "AAAA" or "CNAME"
	Values    []string  `json:"values"`
	ZoneID    string    `json:"zone_id"`
	AccountID string    `json:"account_id"`
	TunnelID  string    `json:"tunnel_id,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	// DeleteAt is set when the tunnel's last connection ended: the record
	// goes at that time unless the tunnel registers again first.
	DeleteAt time.Time `json:"delete_at,omitzero"`
}

// Key is the record's unique key, "name/type".
func (r DNSRecord) Key() string { return r.Name + "/" + r.Type }

// ValidRecordType reports whether t is a record type the store keeps.
func ValidRecordType(t string) bool { return t == "A" || t == "AAAA" || t == "CNAME" }

// Zone is a DNS domain an account serves tunnels under. Name is lowercase,
// without a trailing dot, and unique across the store.
type Zone struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	AccountID string    `json:"account_id"`
	Partial   bool      `json:"partial,omitempty"`
	Created   time.Time `json:"created,omitzero"`
}

// CertRecord is an origin certificate the edge's CA issued. Serial is
// lowercase hex.
type CertRecord struct {
	Serial    string    `json:"serial"`
	ZoneID    string    `json:"zone_id"`
	AccountID string    `json:"account_id"`
	UserID    string    `json:"user_id"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	Issued    time.Time `json:"issued,omitzero"`
	Revoked   bool      `json:"revoked,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Tunnel is a hostname served by connectors. Hostname is lowercase and
// unique across the store.
type Tunnel struct {
	ID        string    `json:"id"`
	Hostname  string    `json:"hostname"`
	ZoneID    string    `json:"zone_id"`
	AccountID string    `json:"account_id"`
	LBPool    string    `json:"lb_pool,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	// DeleteAt is set when the tunnel's last connection ended: the tunnel
	// and its DNS records go at that time unless it registers again.
	DeleteAt time.Time `json:"delete_at,omitzero"`
}

// AuditEvent records one change made through the control path.
type AuditEvent struct {
	Seq       uint64    `json:"seq"`
	AccountID string    `json:"account_id"` // "" for edge-wide events
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Actor     string    `json:"actor"`
	Subject   string    `json:"subject"`
	Detail    string    `json:"detail,omitempty"`
}

// Store is the state of the control path. BoltStore keeps it in one file
// for a single edge; an etcd-backed Store shares it between edges with the
// same JSON encoding of the values.
//
// The store checks uniqueness and existence, not policy: whether an
// account may own a zone or a tunnel, or whether the referenced account
// exists, is the caller's business. Every List method taking an account ID
// lists all accounts for "".
type Store interface {
	// Secrets and settings of the edge itself (CA PEMs, admin token
	// hash, ...).
	GetMeta(key string) ([]byte, error) // ErrNotFound
	PutMeta(key string, val []byte) error
	// PutMetaIfAbsent stores val unless key is present and returns what
	// is stored: two racing first starts agree on one value.
	PutMetaIfAbsent(key string, val []byte) (stored []byte, err error)

	// CreateAccount generates the ID if empty (ErrExists if a given one
	// is taken) and sets Created if zero.
	CreateAccount(a Account) (Account, error)
	GetAccount(id string) (Account, error)
	ListAccounts() ([]Account, error)

	// CreateUser makes a user and returns its fresh API token; only the
	// token's hash is stored. KeyVersion starts at 1; an empty Role is
	// RoleMember.
	CreateUser(u User) (User, string, error)
	GetUser(id string) (User, error)
	UserByToken(token string) (User, error)
	// RollUserToken replaces the user's token: the old one stops working
	// at once and KeyVersion is incremented.
	RollUserToken(userID string) (string, error)
	ListUsers(accountID string) ([]User, error)
	// UpdateUser changes Name, Role, Service, AccountID, Email,
	// PasswordHash and Disabled of an existing user (ErrExists if the new
	// Email is taken); the tokens, KeyVersion and Created stay: rolling
	// the key on a change of permissions is the caller's decision.
	UpdateUser(u User) error
	// UserByEmail finds a user by sign-in name in any case.
	UserByEmail(email string) (User, error)
	// AddUserToken returns a further token of the user's current key;
	// RollUserToken ends it with the others.
	AddUserToken(userID string) (string, error)

	// CreateZone lowercases the name; ErrExists if it is taken.
	CreateZone(z Zone) (Zone, error)
	GetZone(id string) (Zone, error)
	ZoneByName(name string) (Zone, error)
	ListZones(accountID string) ([]Zone, error)

	// PutCert stores or replaces a certificate record. Revocation is
	// final: replacing a revoked record keeps it revoked.
	PutCert(c CertRecord) error
	GetCert(serial string) (CertRecord, error)
	// RevokeCert marks the certificate revoked at at (now if zero);
	// revoking it again keeps the first time.
	RevokeCert(serial string, at time.Time) error
	// IsRevoked is called on every tunnel TLS handshake; it answers from
	// memory. An unknown serial is not revoked.
	IsRevoked(serial string) (bool, error)
	ListCerts(accountID string) ([]CertRecord, error)

	// PutTunnel inserts or updates the tunnel by Hostname: an existing
	// one keeps its ID and Created.
	PutTunnel(t Tunnel) (Tunnel, error)
	TunnelByHostname(h string) (Tunnel, error)
	ListTunnels(accountID string) ([]Tunnel, error)
	DeleteTunnel(id string) error
	CountTunnels(accountID string) (int, error)

	// PutRecord inserts or replaces the record with the same Name and
	// Type (an existing one keeps Created).
	PutRecord(r DNSRecord) (DNSRecord, error)
	// RecordsByName returns the records at name (any type) in Type order.
	RecordsByName(name string) ([]DNSRecord, error)
	// ListRecords returns the account's records ("" = all) in Key order.
	ListRecords(accountID string) ([]DNSRecord, error)
	// DeleteRecord removes one record; ErrNotFound if absent.
	DeleteRecord(name, typ string) error

	// AppendAudit assigns Seq (monotonic per store) and sets Time if
	// zero.
	AppendAudit(e AuditEvent) (AuditEvent, error)
	// ListAudit returns the events after afterSeq in Seq order, at most
	// limit of them (no bound if limit <= 0).
	ListAudit(accountID string, afterSeq uint64, limit int) ([]AuditEvent, error)
	// RecentAudit returns the newest limit events (limit > 0), newest
	// first, reading only those: the dashboard's view of a long log.
	RecentAudit(accountID string, limit int) ([]AuditEvent, error)

	Close() error
}

// Buckets of the bbolt file. Values are JSON; index values are IDs.
//
// Indices: users by token hash, zones by name, tunnels by hostname,
// tunnels, certificates and audit events by account (keys are account ID,
// a zero byte, then the entity key). Users and zones are listed by a scan
// of their bucket (few per edge).
var (
	bktVersion       = []byte("version") // "schema" -> decimal SchemaVersion
	bktMeta          = []byte("meta")
	bktAccounts      = []byte("accounts")
	bktUsers         = []byte("users")
	bktUsersByToken  = []byte("users_by_token") // token hash (hex) -> user ID
	bktZones         = []byte("zones")
	bktZonesByName   = []byte("zones_by_name") // name -> zone ID
	bktCerts         = []byte("certs")         // serial -> CertRecord
	bktCertsByAcct   = []byte("certs_by_account")
	bktTunnels       = []byte("tunnels")
	bktTunnelsByHost = []byte("tunnels_by_host") // hostname -> tunnel ID
	bktTunnelsByAcct = []byte("tunnels_by_account")
	bktAudit         = []byte("audit") // big-endian Seq -> AuditEvent
	bktAuditByAcct   = []byte("audit_by_account")
	bktUsersByEmail  = []byte("users_by_email") // email -> user ID
	bktRecords       = []byte("dns_records")    // "name/type" -> DNSRecord
	bktRecordsByAcct = []byte("dns_records_by_account")

	allBuckets = [][]byte{
		bktMeta, bktAccounts, bktUsers, bktUsersByToken, bktZones,
		bktZonesByName, bktCerts, bktCertsByAcct, bktTunnels,
		bktTunnelsByHost, bktTunnelsByAcct, bktAudit, bktAuditByAcct,
		bktUsersByEmail, bktRecords, bktRecordsByAcct,
	}

	keySchema = []byte("schema")
)

// BoltStore is the Store of a single edge, kept in one bbolt file. Every
// write is one bbolt transaction. It is safe for concurrent use.
type BoltStore struct {
	db   *bolt.DB
	path string

	// revoked is filled at open and after each committed revocation.
	revoked revokedSet
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens or creates the state file at path (mode 0600, parent
// directory 0700). It fails with ErrInUse if another process holds the file
// for more than a second, and refuses a file of a newer schema version.
func OpenBolt(path string) (*BoltStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control: state dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w (lock held on %s)", ErrInUse, path)
		}
		return nil, fmt.Errorf("control: open %s: %w", path, err)
	}
	s := &BoltStore{db: db, path: path}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("control: %s: %w", path, err)
	}
	if err := s.loadRevoked(); err != nil {
		db.Close()
		return nil, fmt.Errorf("control: %s: %w", path, err)
	}
	return s, nil
}

// initSchema checks the schema version before touching anything, then
// creates the missing buckets.
func initSchema(tx *bolt.Tx) error {
	vb, err := tx.CreateBucketIfNotExists(bktVersion)
	if err != nil {
		return err
	}
	if v := vb.Get(keySchema); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			return fmt.Errorf("bad schema version %q", v)
		}
		if n > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this culvert supports (%d); run a newer culvert", n, SchemaVersion)
		}
	} else if err := vb.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
		return err
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

func (s *BoltStore) loadRevoked() error {
	var set []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktCerts).ForEach(func(k, v []byte) error {
			var c CertRecord
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode cert %s: %w", k, err)
			}
			if c.Revoked {
				set = append(set, c.Serial)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.revoked.add(set...)
	return nil
}

// Path is the file the store keeps its state in.
func (s *BoltStore) Path() string { return s.path }

// Close closes the file. IsRevoked keeps answering from memory; every
// other method fails.
func (s *BoltStore) Close() error { return s.db.Close() }

// --- helpers ---

func now() time.Time { return time.Now().UTC() }

// newID returns 8 random bytes as 16 hex characters.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("control: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// newToken returns a fresh API token and its hash.
func newToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("control: random token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is the hex SHA-256 of an API token, as stored in
// User.TokenHash.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// checkKey rejects keys that cannot be stored or would break the account
// indices (whose keys use a zero byte as separator).
func checkKey(what, k string) error {
	if k == "" {
		return fmt.Errorf("control: %s: empty", what)
	}
	if strings.IndexByte(k, 0) >= 0 || len(k) > 1024 {
		return fmt.Errorf("control: %s %q: invalid", what, k)
	}
	return nil
}

// checkRef is checkKey for a reference that may be empty.
func checkRef(what, k string) error {
	if k == "" {
		return nil
	}
	return checkKey(what, k)
}

// freshID returns id if set and free in b, or a new free one.
func freshID(b *bolt.Bucket, what, id string) (string, error) {
	if id != "" {
		if err := checkKey(what+" id", id); err != nil {
			return "", err
		}
		if b.Get([]byte(id)) != nil {
			return "", fmt.Errorf("control: %s %q: %w", what, id, ErrExists)
		}
		return id, nil
	}
	for range 4 {
		id, err := newID()
		if err != nil {
			return "", err
		}
		if b.Get([]byte(id)) == nil {
			return id, nil
		}
	}
	return "", fmt.Errorf("control: %s: no free id", what)
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// getJSON decodes the value at key into v; ErrNotFound (wrapped with what
// and key) if absent.
func getJSON(b *bolt.Bucket, what, key string, v any) error {
	data := b.Get([]byte(key))
	if data == nil {
		return fmt.Errorf("control: %s %q: %w", what, key, ErrNotFound)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("control: decode %s %q: %w", what, key, err)
	}
	return nil
}

// acctKey is an index key: account ID, a zero byte, then k.
func acctKey(acct string, k []byte) []byte {
	key := make([]byte, 0, len(acct)+1+len(k))
	key = append(key, acct...)
	key = append(key, 0)
	return append(key, k...)
}

// scanAcct calls fn with the entity key of every index entry of acct.
func scanAcct(b *bolt.Bucket, acct string, from []byte, fn func(k []byte) (more bool, err error)) error {
	prefix := acctKey(acct, nil)
	c := b.Cursor()
	for k, _ := c.Seek(acctKey(acct, from)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		more, err := fn(k[len(prefix):])
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// listAll decodes every value of b.
func listAll[T any](b *bolt.Bucket, what string, keep func(*T) bool) ([]T, error) {
	var out []T
	err := b.ForEach(func(k, v []byte) error {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("control: decode %s %q: %w", what, k, err)
		}
		if keep == nil || keep(&x) {
			out = append(out, x)
		}
		return nil
	})
	return out, err
}

// listIndexed decodes the values of b named by the acct entries of idx.
func listIndexed[T any](b, idx *bolt.Bucket, what, acct string) ([]T, error) {
	var out []T
	err := scanAcct(idx, acct, nil, func(k []byte) (bool, error) {
		var x T
		if err := getJSON(b, what, string(k), &x); err != nil {
			return false, err
		}
		out = append(out, x)
		return true, nil
	})
	return out, err
}

// --- meta ---

func (s *BoltStore) GetMeta(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktMeta).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("control: meta %q: %w", key, ErrNotFound)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

func (s *BoltStore) PutMeta(key string, val []byte) error {
	if err := checkKey("meta key", key); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMeta).Put([]byte(key), bytes.Clone(val))
	})
}

func (s *BoltStore) PutMetaIfAbsent(key string, val []byte) ([]byte, error) {
	if err := checkKey("meta key", key); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktMeta)
		if v := b.Get([]byte(key)); v != nil {
			out = bytes.Clone(v)
			return nil
		}
		out = bytes.Clone(val)
		if out == nil {
			out = []byte{}
		}
		return b.Put([]byte(key), bytes.Clone(out))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- accounts ---

func (s *BoltStore) CreateAccount(a Account) (Account, error) {
	if a.TunnelLimit < 0 {
		return Account{}, fmt.Errorf("control: account tunnel limit %d: negative", a.TunnelLimit)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAccounts)
		id, err := freshID(b, "account", a.ID)
		if err != nil {
			return err
		}
		a.ID = id
		if a.Created.IsZero() {
			a.Created = now()
		}
		return putJSON(b, a.ID, a)
	})
	if err != nil {
		return Account{}, err
	}
	return a, nil
}

func (s *BoltStore) GetAccount(id string) (Account, error) {
	var a Account
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bktAccounts), "account", id, &a)
	})
	return a, err
}

// ListAccounts returns the accounts in ID order.
func (s *BoltStore) ListAccounts() ([]Account, error) {
	var out []Account
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = listAll[Account](tx.Bucket(bktAccounts), "account", nil)
		return err
	})
	return out, err
}

// --- users ---

func (s *BoltStore) CreateUser(u User) (User, string, error) {
	if u.Role == "" {
		u.Role = RoleMember
	}
	if !u.Role.Valid() {
		return User{}, "", fmt.Errorf("control: user role %q: invalid", u.Role)
	}
	if err := checkRef("account id", u.AccountID); err != nil {
		return User{}, "", err
	}
	u.Email = normEmail(u.Email)
	if err := checkRef("user email", u.Email); err != nil {
		return User{}, "", err
	}
	token, hash, err := newToken()
	if err != nil {
		return User{}, "", err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktUsers)
		id, err := freshID(b, "user", u.ID)
		if err != nil {
			return err
		}
		u.ID = id
		u.TokenHash = hash
		u.ExtraTokens = nil
		u.KeyVersion = 1
		if u.Created.IsZero() {
			u.Created = now()
		}
		if u.Email != "" {
			byEmail := tx.Bucket(bktUsersByEmail)
			if byEmail.Get([]byte(u.Email)) != nil {
				return fmt.Errorf("control: user email %q: %w", u.Email, ErrExists)
			}
			if err := byEmail.Put([]byte(u.Email), []byte(u.ID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bktUsersByToken).Put([]byte(hash), []byte(u.ID)); err != nil {
			return err
		}
		return putJSON(b, u.ID, u)
	})
	if err != nil {
		return User{}, "", err
	}
	return u, token, nil
}

func (s *BoltStore) GetUser(id string) (User, error) {
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bktUsers), "user", id, &u)
	})
	return u, err
}

// UserByToken finds the user by the hash of token; the token itself is
// neither stored nor compared.
func (s *BoltStore) UserByToken(token string) (User, error) {
	hash := HashToken(token)
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bktUsersByToken).Get([]byte(hash))
		if id == nil {
			return fmt.Errorf("control: user by token: %w", ErrNotFound)
		}
		if err := getJSON(tx.Bucket(bktUsers), "user", string(id), &u); err != nil {
			return err
		}
		if !u.hasToken(hash) { // a stale index entry never authenticates
			return fmt.Errorf("control: user by token: %w", ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *BoltStore) RollUserToken(userID string) (string, error) {
	return s.newUserToken(userID, (*User).rollTokens)
}

func (s *BoltStore) AddUserToken(userID string) (string, error) {
	return s.newUserToken(userID, (*User).addExtraToken)
}

// newUserToken makes a token, lets change put its hash into the user's
// token fields, and updates the token index: the hashes change drops go,
// the new one comes.
func (s *BoltStore) newUserToken(userID string, change func(u *User, hash string) (dropped []string)) (string, error) {
	token, hash, err := newToken()
	if err != nil {
		return "", err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bktUsers), tx.Bucket(bktUsersByToken)
		var u User
		if err := getJSON(b, "user", userID, &u); err != nil {
			return err
		}
		for _, h := range change(&u, hash) {
			if err := idx.Delete([]byte(h)); err != nil {
				return err
			}
		}
		if err := idx.Put([]byte(hash), []byte(u.ID)); err != nil {
			return err
		}
		return putJSON(b, u.ID, u)
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ListUsers returns the account's users ("" = all) in ID order.
func (s *BoltStore) ListUsers(accountID string) ([]User, error) {
	var out []User
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = listAll(tx.Bucket(bktUsers), "user", func(u *User) bool {
			return accountID == "" || u.AccountID == accountID
		})
		return err
	})
	return out, err
}

func (s *BoltStore) UpdateUser(u User) error {
	if !u.Role.Valid() {
		return fmt.Errorf("control: user role %q: invalid", u.Role)
	}
	if err := checkRef("account id", u.AccountID); err != nil {
		return err
	}
	if err := checkRef("user email", normEmail(u.Email)); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktUsers)
		var old User
		if err := getJSON(b, "user", u.ID, &old); err != nil {
			return err
		}
		email := normEmail(u.Email)
		if email != old.Email {
			byEmail := tx.Bucket(bktUsersByEmail)
			if email != "" {
				if id := byEmail.Get([]byte(email)); id != nil && string(id) != old.ID {
					return fmt.Errorf("control: user email %q: %w", email, ErrExists)
				}
				if err := byEmail.Put([]byte(email), []byte(old.ID)); err != nil {
					return err
				}
			}
			if old.Email != "" {
				if err := byEmail.Delete([]byte(old.Email)); err != nil {
					return err
				}
			}
		}
		old.Name, old.Role, old.Service = u.Name, u.Role, u.Service
		old.AccountID, old.Email, old.PasswordHash, old.Disabled = u.AccountID, email, u.PasswordHash, u.Disabled
		return putJSON(b, old.ID, old)
	})
}

// normEmail lowercases and trims a sign-in name.
func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (s *BoltStore) UserByEmail(email string) (User, error) {
	email = normEmail(email)
	var u User
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bktUsersByEmail).Get([]byte(email))
		if id == nil {
			return fmt.Errorf("control: user %q: %w", email, ErrNotFound)
		}
		return getJSON(tx.Bucket(bktUsers), "user", string(id), &u)
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// --- zones ---

// normName lowercases a DNS name and drops a trailing dot.
func normName(n string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
}

func (s *BoltStore) CreateZone(z Zone) (Zone, error) {
	z.Name = normName(z.Name)
	if err := checkKey("zone name", z.Name); err != nil {
		return Zone{}, err
	}
	if err := checkRef("account id", z.AccountID); err != nil {
		return Zone{}, err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bktZones), tx.Bucket(bktZonesByName)
		if idx.Get([]byte(z.Name)) != nil {
			return fmt.Errorf("control: zone %q: %w", z.Name, ErrExists)
		}
		id, err := freshID(b, "zone", z.ID)
		if err != nil {
			return err
		}
		z.ID = id
		if z.Created.IsZero() {
			z.Created = now()
		}
		if err := idx.Put([]byte(z.Name), []byte(z.ID)); err != nil {
			return err
		}
		return putJSON(b, z.ID, z)
	})
	if err != nil {
		return Zone{}, err
	}
	return z, nil
}

func (s *BoltStore) GetZone(id string) (Zone, error) {
	var z Zone
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bktZones), "zone", id, &z)
	})
	return z, err
}

// ZoneByName finds a zone by its name in any case, with or without a
// trailing dot.
func (s *BoltStore) ZoneByName(name string) (Zone, error) {
	name = normName(name)
	var z Zone
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bktZonesByName).Get([]byte(name))
		if id == nil {
			return fmt.Errorf("control: zone %q: %w", name, ErrNotFound)
		}
		return getJSON(tx.Bucket(bktZones), "zone", string(id), &z)
	})
	if err != nil {
		return Zone{}, err
	}
	return z, nil
}

// ListZones returns the account's zones ("" = all) in ID order.
func (s *BoltStore) ListZones(accountID string) ([]Zone, error) {
	var out []Zone
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = listAll(tx.Bucket(bktZones), "zone", func(z *Zone) bool {
			return accountID == "" || z.AccountID == accountID
		})
		return err
	})
	return out, err
}

// --- certificates ---

// normSerial is the stored form of a serial: lowercase hex. ToLower does
// not allocate for a serial already lowercase.
func normSerial(s string) string { return strings.ToLower(s) }

func (s *BoltStore) PutCert(c CertRecord) error {
	c.Serial = normSerial(c.Serial)
	if err := checkKey("cert serial", c.Serial); err != nil {
		return err
	}
	if err := checkRef("account id", c.AccountID); err != nil {
		return err
	}
	if c.Issued.IsZero() {
		c.Issued = now()
	}
	if c.Revoked && c.RevokedAt.IsZero() {
		c.RevokedAt = now()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, idx := tx.Bucket(bktCerts), tx.Bucket(bktCertsByAcct)
		var old CertRecord
		switch err := getJSON(b, "cert", c.Serial, &old); {
		case err == nil:
			if old.Revoked {
				c.Revoked, c.RevokedAt = true, old.RevokedAt
			}
			if old.AccountID != c.AccountID {
				if err := idx.Delete(acctKey(old.AccountID, []byte(c.Serial))); err != nil {
					return err
				}
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if err := idx.Put(acctKey(c.AccountID, []byte(c.Serial)), nil); err != nil {
			return err
		}
		return putJSON(b, c.Serial, c)
	})
	if err != nil {
		return err
	}
	if c.Revoked {
		s.revoked.add(c.Serial)
	}
	return nil
}

func (s *BoltStore) GetCert(serial string) (CertRecord, error) {
	serial = normSerial(serial)
	var c CertRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bktCerts), "cert", serial, &c)
	})
	return c, err
}

func (s *BoltStore) RevokeCert(serial string, at time.Time) error {
	serial = normSerial(serial)
	if at.IsZero() {
		at = now()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktCerts)
		var c CertRecord
		if err := getJSON(b, "cert", serial, &c); err != nil {
			return err
		}
		if c.Revoked {
			return nil
		}
		c.Revoked, c.RevokedAt = true, at
		return putJSON(b, serial, c)
	})
	if err != nil {
		return err
	}
	s.revoked.add(serial)
	return nil
}

// IsRevoked answers from the in-memory set of revoked serials: no lock, no
// allocation, no disk access. It never fails; the error is for Stores that
// may have to ask a remote.
func (s *BoltStore) IsRevoked(serial string) (bool, error) {
	return s.revoked.has(normSerial(serial)), nil
}

// ListCerts returns the account's certificates ("" = all) in serial order.
func (s *BoltStore) ListCerts(accountID string) ([]CertRecord, error) {
	var out []CertRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if accountID == "" {
			out, err = listAll[CertRecord](tx.Bucket(bktCerts), "cert", nil)
		} else {
			out, err = listIndexed[CertRecord](tx.Bucket(bktCerts), tx.Bucket(bktCertsByAcct), "cert", accountID)
		}
		return err
	})
	return out, err
}

// --- tunnels ---

func (s *BoltStore) PutTunnel(t Tunnel) (Tunnel, error) {
	t.Hostname = normName(t.Hostname)
	if err := checkKey("tunnel hostname", t.Hostname); err != nil {
		return Tunnel{}, err
	}
	if err := checkRef("account id", t.AccountID); err != nil {
		return Tunnel{}, err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktTunnels)
		byHost, byAcct := tx.Bucket(bktTunnelsByHost), tx.Bucket(bktTunnelsByAcct)
		if id := byHost.Get([]byte(t.Hostname)); id != nil {
			var old Tunnel
			if err := getJSON(b, "tunnel", string(id), &old); err != nil {
				return err
			}
			t.ID, t.Created = old.ID, old.Created
			if old.AccountID != t.AccountID {
				if err := byAcct.Delete(acctKey(old.AccountID, []byte(t.ID))); err != nil {
					return err
				}
			}
		} else {
			id, err := freshID(b, "tunnel", t.ID)
			if err != nil {
				return err
			}
			t.ID = id
			if t.Created.IsZero() {
				t.Created = now()
			}
			if err := byHost.Put([]byte(t.Hostname), []byte(t.ID)); err != nil {
				return err
			}
		}
		if err := byAcct.Put(acctKey(t.AccountID, []byte(t.ID)), nil); err != nil {
			return err
		}
		return putJSON(b, t.ID, t)
	})
	if err != nil {
		return Tunnel{}, err
	}
	return t, nil
}

// TunnelByHostname finds a tunnel by its hostname in any case.
func (s *BoltStore) TunnelByHostname(h string) (Tunnel, error) {
	h = normName(h)
	var t Tunnel
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bktTunnelsByHost).Get([]byte(h))
		if id == nil {
			return fmt.Errorf("control: tunnel %q: %w", h, ErrNotFound)
		}
		return getJSON(tx.Bucket(bktTunnels), "tunnel", string(id), &t)
	})
	if err != nil {
		return Tunnel{}, err
	}
	return t, nil
}

// ListTunnels returns the account's tunnels ("" = all) in ID order.
func (s *BoltStore) ListTunnels(accountID string) ([]Tunnel, error) {
	var out []Tunnel
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if accountID == "" {
			out, err = listAll[Tunnel](tx.Bucket(bktTunnels), "tunnel", nil)
		} else {
			out, err = listIndexed[Tunnel](tx.Bucket(bktTunnels), tx.Bucket(bktTunnelsByAcct), "tunnel", accountID)
		}
		return err
	})
	return out, err
}

func (s *BoltStore) DeleteTunnel(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktTunnels)
		var t Tunnel
		if err := getJSON(b, "tunnel", id, &t); err != nil {
			return err
		}
		if err := tx.Bucket(bktTunnelsByHost).Delete([]byte(t.Hostname)); err != nil {
			return err
		}
		if err := tx.Bucket(bktTunnelsByAcct).Delete(acctKey(t.AccountID, []byte(t.ID))); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
}

// CountTunnels counts the account's tunnels ("" = all) from the index,
// without decoding them.
func (s *BoltStore) CountTunnels(accountID string) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if accountID == "" {
			n = tx.Bucket(bktTunnels).Stats().KeyN
			return nil
		}
		return scanAcct(tx.Bucket(bktTunnelsByAcct), accountID, nil, func([]byte) (bool, error) {
			n++
			return true, nil
		})
	})
	return n, err
}

// --- DNS records ---

func checkRecord(r *DNSRecord) error {
	r.Name = normName(r.Name)
	if err := checkKey("record name", r.Name); err != nil {
		return err
	}
	if strings.ContainsAny(r.Name, "/ ") {
		return fmt.Errorf("control: record name %q: invalid", r.Name)
	}
	if !ValidRecordType(r.Type) {
		return fmt.Errorf("control: record type %q: want A, AAAA or CNAME", r.Type)
	}
	if len(r.Values) == 0 {
		return fmt.Errorf("control: record %s: no values", r.Key())
	}
	return checkRef("account id", r.AccountID)
}

func (s *BoltStore) PutRecord(r DNSRecord) (DNSRecord, error) {
	if err := checkRecord(&r); err != nil {
		return DNSRecord{}, err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, byAcct := tx.Bucket(bktRecords), tx.Bucket(bktRecordsByAcct)
		key := r.Key()
		var old DNSRecord
		if err := getJSON(b, "record", key, &old); err == nil {
			r.Created = old.Created
			if old.AccountID != r.AccountID {
				if err := byAcct.Delete(acctKey(old.AccountID, []byte(key))); err != nil {
					return err
				}
			}
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if r.Created.IsZero() {
			r.Created = now()
		}
		if err := byAcct.Put(acctKey(r.AccountID, []byte(key)), nil); err != nil {
			return err
		}
		return putJSON(b, key, r)
	})
	if err != nil {
		return DNSRecord{}, err
	}
	return r, nil
}

func (s *BoltStore) RecordsByName(name string) ([]DNSRecord, error) {
	prefix := []byte(normName(name) + "/")
	var out []DNSRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktRecords).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r DNSRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("control: decode record %q: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func (s *BoltStore) ListRecords(accountID string) ([]DNSRecord, error) {
	var out []DNSRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if accountID == "" {
			out, err = listAll[DNSRecord](tx.Bucket(bktRecords), "record", nil)
		} else {
			out, err = listIndexed[DNSRecord](tx.Bucket(bktRecords), tx.Bucket(bktRecordsByAcct), "record", accountID)
		}
		return err
	})
	return out, err
}

func (s *BoltStore) DeleteRecord(name, typ string) error {
	key := normName(name) + "/" + typ
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktRecords)
		var r DNSRecord
		if err := getJSON(b, "record", key, &r); err != nil {
			return err
		}
		if err := tx.Bucket(bktRecordsByAcct).Delete(acctKey(r.AccountID, []byte(key))); err != nil {
			return err
		}
		return b.Delete([]byte(key))
	})
}

// --- audit ---

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func (s *BoltStore) AppendAudit(e AuditEvent) (AuditEvent, error) {
	if err := checkRef("account id", e.AccountID); err != nil {
		return AuditEvent{}, err
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bktAuditByAcct).Put(acctKey(e.AccountID, seqKey(seq)), nil); err != nil {
			return err
		}
		return b.Put(seqKey(seq), data)
	})
	if err != nil {
		return AuditEvent{}, err
	}
	return e, nil
}

// errAuditLimit: RecentAudit reads a bounded number of events.
var errAuditLimit = errors.New("control: RecentAudit needs a limit above 0")

// decodeAudit decodes the audit event stored under key: a bbolt Seq key
// (seqKey) or an etcd key, as the error names it.
func decodeAudit(key, v []byte, boltKey bool) (AuditEvent, error) {
	var e AuditEvent
	if err := json.Unmarshal(v, &e); err != nil {
		name := string(key)
		if boltKey && len(key) == 8 {
			name = strconv.FormatUint(binary.BigEndian.Uint64(key), 10)
		}
		return e, fmt.Errorf("control: decode audit %s: %w", name, err)
	}
	return e, nil
}

// RecentAudit returns the newest limit events of the account ("" = all
// accounts), newest first, walking the log backwards from its end.
func (s *BoltStore) RecentAudit(accountID string, limit int) ([]AuditEvent, error) {
	if limit <= 0 {
		return nil, errAuditLimit
	}
	var out []AuditEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAudit)
		if accountID == "" {
			c := b.Cursor()
			for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
				e, err := decodeAudit(k, v, true)
				if err != nil {
					return err
				}
				out = append(out, e)
			}
			return nil
		}
		// The account's index entries are acct 0x00 seq: start before the
		// first key above them (acct 0x01) and walk back.
		prefix := acctKey(accountID, nil)
		end := append([]byte(accountID), 1)
		c := tx.Bucket(bktAuditByAcct).Cursor()
		k, _ := c.Seek(end)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			seq := k[len(prefix):]
			v := b.Get(seq)
			if v == nil {
				return fmt.Errorf("control: audit %x: %w", seq, ErrNotFound)
			}
			e, err := decodeAudit(seq, v, true)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// ListAudit returns the events of the account ("" = all accounts) with Seq
// above afterSeq, oldest first, at most limit (no bound if limit <= 0).
func (s *BoltStore) ListAudit(accountID string, afterSeq uint64, limit int) ([]AuditEvent, error) {
	if afterSeq == ^uint64(0) {
		return nil, nil
	}
	from := seqKey(afterSeq + 1)
	var out []AuditEvent
	full := func() bool { return limit > 0 && len(out) >= limit }
	decode := func(k, v []byte) error {
		e, err := decodeAudit(k, v, true)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAudit)
		if accountID == "" {
			c := b.Cursor()
			for k, v := c.Seek(from); k != nil && !full(); k, v = c.Next() {
				if err := decode(k, v); err != nil {
					return err
				}
			}
			return nil
		}
		return scanAcct(tx.Bucket(bktAuditByAcct), accountID, from, func(k []byte) (bool, error) {
			v := b.Get(k)
			if v == nil {
				return false, fmt.Errorf("control: audit %x: %w", k, ErrNotFound)
			}
			if err := decode(k, v); err != nil {
				return false, err
			}
			return !full(), nil
		})
	})
	return out, err
}
