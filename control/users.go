package control

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Passwords are stored as "pbkdf2-sha256$ITERATIONS$SALT$HASH" (base64
// without padding): PBKDF2-HMAC-SHA256 from the standard library, at the
// iteration count OWASP recommends for it (about 80 ms on one core).
const (
	passwordScheme     = "pbkdf2-sha256"
	passwordIterations = 600_000
	minPasswordLen     = 10
	maxPasswordLen     = 1024
)

// ErrPermission is returned (wrapped) when a user may not do something.
var ErrPermission = errors.New("control: not allowed")

// ErrBadCredentials is the one answer to a wrong email or a wrong password,
// so that sign-in does not tell which users exist.
var ErrBadCredentials = errors.New("wrong email or password")

// HashPassword encodes a password for User.PasswordHash.
func HashPassword(password string) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, passwordIterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", passwordScheme, passwordIterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

func checkPassword(p string) error {
	if len(p) < minPasswordLen {
		return fmt.Errorf("control: a password needs at least %d characters", minPasswordLen)
	}
	if len(p) > maxPasswordLen {
		return fmt.Errorf("control: a password has at most %d bytes", maxPasswordLen)
	}
	return nil
}

// CheckPassword reports whether password matches encoded (HashPassword's
// output). A malformed or empty encoding matches nothing.
func CheckPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 || parts[0] != passwordScheme || len(password) > maxPasswordLen {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10*passwordIterations {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// NewPassword returns a random password for a first administrator.
func NewPassword() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Permissions. Roles are per account; the super administrators of the
// edge's default account (the operator's own) are the edge's operators
// and may act on every account.

// IsOperator reports whether u may administer the whole edge.
func (e *Edge) IsOperator(u User) bool {
	return !u.Disabled && !u.Service && u.Role == RoleSuperAdmin && u.AccountID == e.DefaultAccountID
}

// CanManageUsers reports whether u may add, change and remove the users of
// account.
func (e *Edge) CanManageUsers(u User, account string) bool {
	return e.IsOperator(u) || (!u.Disabled && u.Role == RoleSuperAdmin && u.AccountID == account)
}

// CanAdmin reports whether u may change account's zones, certificates,
// tunnels and DNS records.
func (e *Edge) CanAdmin(u User, account string) bool {
	if e.IsOperator(u) {
		return true
	}
	return !u.Disabled && u.AccountID == account && (u.Role == RoleSuperAdmin || u.Role == RoleAdmin)
}

// CanRead reports whether u may list account's state and audit log.
func (e *Edge) CanRead(u User, account string) bool {
	return e.IsOperator(u) || (!u.Disabled && u.AccountID == account)
}

// CanAuthorizeLogin reports whether u may authorize a connector login for
// a zone of account: only a super administrator of that account.
func CanAuthorizeLogin(u User, account string) bool {
	return !u.Disabled && !u.Service && u.Role == RoleSuperAdmin && u.AccountID == account
}

func denied(what string) error { return fmt.Errorf("%w: %s", ErrPermission, what) }

// CreateAccount makes an account (operators only).
func (e *Edge) CreateAccount(actor User, name string, tunnelLimit int) (Account, error) {
	if !e.IsOperator(actor) {
		return Account{}, denied("only an operator of the edge creates accounts")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return Account{}, errors.New("control: an account needs a name (at most 200 bytes)")
	}
	a, err := e.Store.CreateAccount(Account{Name: name, TunnelLimit: tunnelLimit})
	if err != nil {
		return Account{}, err
	}
	e.audit(a.ID, "AccountCreated", actor.ID, a.Name, "")
	return a, nil
}

// NewUser is what CreateUser needs.
type NewUser struct {
	AccountID string `json:"account_id"`
	Email     string `json:"email,omitempty"`    // people
	Name      string `json:"name,omitempty"`     // display name
	Password  string `json:"password,omitempty"` // people; empty: cannot sign in until set
	Role      Role   `json:"role"`
	Service   bool   `json:"service,omitempty"` // a service user: no email, no password, token only
}

// CreateUser adds a user to an account and returns it with its API token.
func (e *Edge) CreateUser(actor User, n NewUser) (User, string, error) {
	if n.AccountID == "" {
		n.AccountID = actor.AccountID
	}
	if !e.CanManageUsers(actor, n.AccountID) {
		return User{}, "", denied("only a super administrator of the account adds users")
	}
	if _, err := e.Store.GetAccount(n.AccountID); err != nil {
		return User{}, "", err
	}
	if n.Role == "" {
		n.Role = RoleMember
	}
	if !n.Role.Valid() {
		return User{}, "", fmt.Errorf("control: role %q: want super_admin, admin or member", n.Role)
	}
	u := User{AccountID: n.AccountID, Name: strings.TrimSpace(n.Name), Role: n.Role, Service: n.Service}
	if n.Service {
		if n.Email != "" || n.Password != "" {
			return User{}, "", errors.New("control: a service user has no email or password, only its token")
		}
		if u.Name == "" {
			u.Name = "service"
		}
	} else {
		u.Email = normEmail(n.Email)
		if !validEmail(u.Email) {
			return User{}, "", fmt.Errorf("control: %q is not an email address", n.Email)
		}
		if n.Password != "" {
			h, err := HashPassword(n.Password)
			if err != nil {
				return User{}, "", err
			}
			u.PasswordHash = h
		}
		if u.Name == "" {
			u.Name = u.Email
		}
	}
	u, token, err := e.Store.CreateUser(u)
	if err != nil {
		return User{}, "", err
	}
	e.audit(u.AccountID, "UserCreated", actor.ID, userLabel(u), string(u.Role))
	return u, token, nil
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n/") && len(s) <= 254
}

func userLabel(u User) string {
	if u.Email != "" {
		return u.Email
	}
	return u.Name + " (" + u.ID + ")"
}

// FindUser finds a user by email or ID.
func (e *Edge) FindUser(ref string) (User, error) {
	if strings.Contains(ref, "@") {
		return e.Store.UserByEmail(ref)
	}
	return e.Store.GetUser(ref)
}

// ChangeUser changes a user's role and account, or removes the user from
// its account (remove: the user is disabled). Any such change of
// permissions rolls the user's API key: every token of the old key (the
// one in cert.pem files made by `culvert login` included) stops working at
// once. It returns the user and the new token (empty on removal).
func (e *Edge) ChangeUser(actor User, userRef string, role Role, account string, remove bool) (User, string, error) {
	u, err := e.FindUser(userRef)
	if err != nil {
		return User{}, "", err
	}
	if !e.CanManageUsers(actor, u.AccountID) {
		return User{}, "", denied("only a super administrator of the user's account changes it")
	}
	if u.ID == e.AdminUserID && remove {
		return User{}, "", errors.New("control: the edge's first super administrator cannot be removed")
	}
	old := u
	switch {
	case remove:
		if u.Disabled {
			return u, "", nil
		}
		u.Disabled = true
	default:
		if account == "" {
			account = u.AccountID
		}
		if account != u.AccountID {
			if !e.CanManageUsers(actor, account) {
				return User{}, "", denied("only a super administrator of the target account moves users into it")
			}
			if _, err := e.Store.GetAccount(account); err != nil {
				return User{}, "", err
			}
		}
		if role == "" {
			role = u.Role
		}
		if !role.Valid() {
			return User{}, "", fmt.Errorf("control: role %q: want super_admin, admin or member", role)
		}
		if u.ID == e.AdminUserID && (role != RoleSuperAdmin || account != e.DefaultAccountID) {
			return User{}, "", errors.New("control: the edge's first super administrator keeps its role")
		}
		if role == u.Role && account == u.AccountID && !u.Disabled {
			return u, "", nil // nothing changes: no roll
		}
		u.Role, u.AccountID, u.Disabled = role, account, false
	}
	if err := e.Store.UpdateUser(u); err != nil {
		return User{}, "", err
	}
	token, err := e.Store.RollUserToken(u.ID)
	if err != nil {
		return User{}, "", fmt.Errorf("control: the user was changed but its key could not be rolled: %w", err)
	}
	u, _ = e.Store.GetUser(u.ID)
	detail := fmt.Sprintf("role %s -> %s", old.Role, u.Role)
	switch {
	case remove:
		detail = "removed from the account"
		token = ""
	case old.AccountID != u.AccountID:
		detail = fmt.Sprintf("moved to account %s as %s", u.AccountID, u.Role)
	}
	e.audit(old.AccountID, "UserChanged", actor.ID, userLabel(u), detail)
	e.audit(old.AccountID, "KeyRolled", actor.ID, userLabel(u), "permissions changed: "+detail)
	if old.AccountID != u.AccountID {
		e.audit(u.AccountID, "UserChanged", actor.ID, userLabel(u), detail)
	}
	return u, token, nil
}

// SignIn checks a person's email and password. The same ErrBadCredentials
// answers an unknown email, a wrong password, a service user and a removed
// user; a password check runs in every case so the answer takes as long.
func (e *Edge) SignIn(email, password string) (User, error) {
	email = normEmail(email)
	if e.failures.locked(email, time.Now()) {
		return User{}, ErrLockedOut
	}
	e.signInSem <- struct{}{}
	defer func() { <-e.signInSem }()
	u, err := e.signIn(email, password)
	if errors.Is(err, ErrBadCredentials) {
		e.failures.fail(email, time.Now())
	}
	return u, err
}

func (e *Edge) signIn(email, password string) (User, error) {
	u, err := e.Store.UserByEmail(email)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			return User{}, err
		}
		CheckPassword(e.dummyHash, password)
		return User{}, ErrBadCredentials
	}
	if !CheckPassword(u.PasswordHash, password) {
		if u.PasswordHash == "" {
			CheckPassword(e.dummyHash, password)
		}
		return User{}, ErrBadCredentials
	}
	if u.Disabled || u.Service {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// ErrLockedOut answers sign-ins to an email after too many wrong
// passwords.
var ErrLockedOut = errors.New("too many failed sign-ins for this email: try again in 15 minutes")

// Sign-in failures: after maxFailures wrong passwords for one email within
// failureWindow, its sign-ins are refused until the window has passed.
// The table is bounded; when full, expired entries go first, then the
// oldest.
const (
	maxFailures      = 10
	failureWindow    = 15 * time.Minute
	maxFailureEmails = 10_000
)

type failureTable struct {
	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n     int
	first time.Time
}

func (f *failureTable) locked(email string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.m[email]
	return r != nil && r.n >= maxFailures && now.Sub(r.first) < failureWindow
}

func (f *failureTable) fail(email string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]*failures{}
	}
	r := f.m[email]
	if r == nil || now.Sub(r.first) >= failureWindow {
		if r == nil && len(f.m) >= maxFailureEmails {
			f.evict(now)
		}
		r = &failures{first: now}
		f.m[email] = r
	}
	r.n++
}

func (f *failureTable) evict(now time.Time) {
	var oldest string
	var at time.Time
	for k, r := range f.m {
		if now.Sub(r.first) >= failureWindow {
			delete(f.m, k)
			continue
		}
		if oldest == "" || r.first.Before(at) {
			oldest, at = k, r.first
		}
	}
	if len(f.m) >= maxFailureEmails {
		delete(f.m, oldest)
	}
}

// SetupAdmin gives the first super administrator its email and password
// when it has none yet (first start). An empty password makes a random
// one, which is returned so the caller can print it once. It does nothing
// (returns "") when the administrator already has a password.
func (e *Edge) SetupAdmin(email, password string) (generated string, err error) {
	u, err := e.Store.GetUser(e.AdminUserID)
	if err != nil {
		return "", err
	}
	if u.PasswordHash != "" {
		return "", nil
	}
	if email == "" {
		email = "admin@" + e.Domain
	}
	if password == "" {
		if password, err = NewPassword(); err != nil {
			return "", err
		}
		generated = password
	}
	h, err := HashPassword(password)
	if err != nil {
		return "", err
	}
	u.Email, u.PasswordHash = normEmail(email), h
	if !validEmail(u.Email) {
		return "", fmt.Errorf("control: %q is not an email address", email)
	}
	if err := e.Store.UpdateUser(u); err != nil {
		return "", err
	}
	return generated, nil
}
