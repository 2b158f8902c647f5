package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	culverttls "github.com/culvert-tunnel/culvert/tls"
)

const adminPassword = "correct horse battery"

// testEdge is an edge's control path with its API served over TLS.
type testEdge struct {
	*Edge
	srv *httptest.Server
}

func newTestEdge(t *testing.T) *testEdge {
	t.Helper()
	e, err := OpenEdge(t.TempDir(), "culvert.test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.SetupAdmin("admin@culvert.test", adminPassword); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer((&API{Edge: e}).Handler())
	t.Cleanup(srv.Close)
	e.API = srv.URL
	return &testEdge{Edge: e, srv: srv}
}

// browser is an HTTP client with cookies that does not follow redirects.
func (te *testEdge) browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := te.srv.Client()
	c.Jar = jar
	return c
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type startedLogin struct {
	ID, Secret, URL string
	key             any
}

func (te *testEdge) startLogin(t *testing.T) (startedLogin, *culverttls.Bundle) {
	t.Helper()
	key, err := culverttls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"csr": base64.StdEncoding.EncodeToString(csr)})
	resp, err := te.srv.Client().Post(te.srv.URL+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var sl startedLogin
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/login: %s %s", resp.Status, readAll(t, resp))
	}
	json.NewDecoder(resp.Body).Decode(&sl)
	resp.Body.Close()
	return sl, &culverttls.Bundle{Key: key}
}

func (te *testEdge) poll(t *testing.T, sl startedLogin) (int, LoginResult) {
	t.Helper()
	req, _ := http.NewRequest("GET", te.srv.URL+"/v1/login/"+sl.ID, nil)
	req.Header.Set("Authorization", "Login "+sl.Secret)
	resp, err := te.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res LoginResult
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	return resp.StatusCode, res
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func signInForm(t *testing.T, c *http.Client, pageURL, email, password string) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(pageURL, url.Values{"action": {"signin"}, "email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	return resp, readAll(t, resp)
}

func TestLoginFlow(t *testing.T) {
	te := newTestEdge(t)
	admin := te.admin()
	z, err := te.CreateZone("example.test", false)
	if err != nil {
		t.Fatal(err)
	}
	ann, _, err := te.CreateUser(admin, NewUser{Email: "ann@example.test", Password: "ann's password!", Role: RoleSuperAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := te.CreateUser(admin, NewUser{Email: "max@example.test", Password: "max's password!", Role: RoleMember}); err != nil {
		t.Fatal(err)
	}

	sl, b := te.startLogin(t)
	if !strings.HasPrefix(sl.URL, "https://") || !strings.HasSuffix(sl.URL, "/login/"+sl.ID) {
		t.Fatalf("login URL %q", sl.URL)
	}
	if code, _ := te.poll(t, sl); code != http.StatusAccepted {
		t.Fatalf("poll before authorization: %d", code)
	}
	wrong := sl
	wrong.Secret = "nope"
	if code, _ := te.poll(t, wrong); code != http.StatusNotFound {
		t.Fatalf("poll with a wrong secret: %d", code)
	}

	c := te.browser(t)
	resp, err := c.Get(sl.URL)
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(page, `id="signin-form"`) {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}

	// Wrong password, unknown user: one message.
	for _, cred := range [][2]string{{"ann@example.test", "not her password"}, {"nobody@example.test", "whatever password"}} {
		resp, page := signInForm(t, c, sl.URL, cred[0], cred[1])
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Wrong email or password.") {
			t.Fatalf("sign-in %s: %d %s", cred[0], resp.StatusCode, page)
		}
	}

	// A member signs in: the page says only a super administrator may.
	resp, page := signInForm(t, c, sl.URL, "max@example.test", "max's password!")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "only a super administrator of the zone&#39;s account may authorize") {
		t.Fatalf("member's authorize page: %d %s", resp.StatusCode, page)
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no csrf token on the page")
	}
	resp, err = c.PostForm(sl.URL, url.Values{"action": {"authorize"}, "zone": {"example.test"}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "only a super administrator") {
		t.Fatalf("member's authorize: %d %s", resp.StatusCode, page)
	}

	// Ann, a super administrator, authorizes; a forged CSRF token fails.
	c = te.browser(t)
	resp, page = signInForm(t, c, sl.URL, "ann@example.test", "ann's password!")
	if resp.StatusCode != 200 || !strings.Contains(page, `value="example.test"`) {
		t.Fatalf("ann's authorize page: %d %s", resp.StatusCode, page)
	}
	resp, _ = c.PostForm(sl.URL, url.Values{"action": {"authorize"}, "zone": {"example.test"}, "csrf": {"forged"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged csrf: %d", resp.StatusCode)
	}
	m = csrfRE.FindStringSubmatch(page)
	resp, err = c.PostForm(sl.URL, url.Values{"action": {"authorize"}, "zone": {"example.test"}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(page, `id="done"`) {
		t.Fatalf("authorize: %d %s", resp.StatusCode, page)
	}

	code, res := te.poll(t, sl)
	if code != 200 || res.Token.ZoneID != z.ID || res.Token.API != te.srv.URL || res.Token.APIToken == "" {
		t.Fatalf("poll after authorization: %d %+v", code, res)
	}
	if code, _ := te.poll(t, sl); code != http.StatusNotFound {
		t.Fatalf("second collection: %d", code)
	}
	b.Cert, err = culverttls.FirstCertificate([]byte(res.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	b.Token = res.Token
	pemData, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := culverttls.ParseBundle(pemData); err != nil {
		t.Fatalf("the login's cert.pem does not parse: %v", err)
	}
	if got, err := te.Store.UserByToken(res.Token.APIToken); err != nil || got.ID != ann.ID {
		t.Fatalf("the token is not ann's: %+v %v", got, err)
	}
	if !b.Cert.NotAfter.After(time.Now().Add(culverttls.MinOriginValidity)) {
		t.Fatalf("certificate valid until %v only", b.Cert.NotAfter)
	}

	// Registration works with it; after ann is made an administrator of
	// another account, her key is rolled and the same cert.pem is refused
	// with a message saying what to do.
	reg := &tunnel.Register{Token: res.Token.APIToken, Hostname: "app.example.test"}
	if _, terr := te.Register(context.Background(), b.Cert, reg); terr != nil {
		t.Fatalf("register: %v", terr)
	}
	other, err := te.CreateAccount(admin, "other", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := te.ChangeUser(admin, "ann@example.test", RoleAdmin, other.ID, false); err != nil {
		t.Fatal(err)
	}
	_, terr := te.Register(context.Background(), b.Cert, reg)
	if terr == nil || terr.Code != tunnel.CodeBadToken || !strings.Contains(terr.Message, "culvert login") || !strings.Contains(terr.Message, "service user") {
		t.Fatalf("register after the key roll: %+v", terr)
	}
	// Her dashboard session ended with the roll too.
	resp, err = c.Get(te.srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(t, resp); !strings.Contains(page, `id="signin-form"`) {
		t.Fatalf("dashboard after the key roll still open: %s", page)
	}
	kinds := auditKinds(t, te.Edge, z.AccountID)
	for _, k := range []string{"Login", "CertIssued", "KeyRolled", "Registered", AuditCNAMEAdd} {
		if !kinds[k] {
			t.Errorf("audit has no %s event: %v", k, kinds)
		}
	}
}

func auditKinds(t *testing.T, e *Edge, acct string) map[string]bool {
	es, err := e.Store.ListAudit(acct, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range es {
		out[e.Kind] = true
	}
	return out
}

func TestLoginExpiredOrUnknown(t *testing.T) {
	te := newTestEdge(t)
	resp, err := te.srv.Client().Get(te.srv.URL + "/login/0123")
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(t, resp); resp.StatusCode != 404 || !strings.Contains(page, "run `culvert login` again") {
		t.Fatalf("unknown login: %d %s", resp.StatusCode, page)
	}
	// A CSR whose signature does not verify is refused at once.
	body, _ := json.Marshal(map[string]string{"csr": base64.StdEncoding.EncodeToString([]byte("junk"))})
	resp, err = te.srv.Client().Post(te.srv.URL+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(t, resp); resp.StatusCode != 400 || !strings.Contains(page, "does not parse") {
		t.Fatalf("junk CSR: %d %s", resp.StatusCode, page)
	}
}

func TestPermissions(t *testing.T) {
	te := newTestEdge(t)
	admin := te.admin()
	acct, err := te.CreateAccount(admin, "acme", 5)
	if err != nil {
		t.Fatal(err)
	}
	boss, _, err := te.CreateUser(admin, NewUser{AccountID: acct.ID, Email: "boss@acme.test", Password: "boss password!", Role: RoleSuperAdmin})
	if err != nil {
		t.Fatal(err)
	}
	adm, _, _ := te.CreateUser(boss, NewUser{Email: "adm@acme.test", Role: RoleAdmin})
	mem, _, _ := te.CreateUser(boss, NewUser{Email: "mem@acme.test", Role: RoleMember})
	svc, tok, err := te.CreateUser(boss, NewUser{Service: true, Name: "ci"})
	if err != nil || svc.Email != "" || tok == "" {
		t.Fatalf("service user %+v %v", svc, err)
	}
	if _, err := te.CreateAccount(boss, "mine", 0); err == nil {
		t.Fatal("an account's super administrator created an account")
	}
	if _, _, err := te.CreateUser(adm, NewUser{Email: "x@acme.test"}); err == nil {
		t.Fatal("an administrator added a user")
	}
	if _, err := te.CreateZoneAs(mem, "", "acme.test", false); err == nil {
		t.Fatal("a member created a zone")
	}
	if _, err := te.CreateZoneAs(adm, "", "acme.test", false); err != nil {
		t.Fatal(err)
	}
	if _, err := te.CreateZoneAs(adm, te.DefaultAccountID, "other.test", false); err == nil {
		t.Fatal("an administrator created a zone in another account")
	}
	if _, err := te.CreateZoneAs(admin, "", "culvert.test", false); err == nil {
		t.Fatal("the edge's own domain accepted as a zone")
	}
	if _, _, err := te.ChangeUser(boss, te.AdminUserID, RoleMember, "", false); err == nil {
		t.Fatal("another account's super administrator changed the operator")
	}
	// A role change rolls the key; no change does not.
	before, _ := te.Store.GetUser(mem.ID)
	if _, _, err := te.ChangeUser(boss, "mem@acme.test", RoleMember, "", false); err != nil {
		t.Fatal(err)
	}
	if u, _ := te.Store.GetUser(mem.ID); u.KeyVersion != before.KeyVersion {
		t.Fatal("a no-op change rolled the key")
	}
	u, tok2, err := te.ChangeUser(boss, "mem@acme.test", RoleAdmin, "", false)
	if err != nil || u.KeyVersion != before.KeyVersion+1 || tok2 == "" {
		t.Fatalf("role change: %+v %v", u, err)
	}
	u, _, err = te.ChangeUser(boss, "mem@acme.test", "", "", true)
	if err != nil || !u.Disabled {
		t.Fatalf("remove: %+v %v", u, err)
	}
	if _, err := te.Store.UserByToken(tok2); err == nil {
		t.Fatal("a removed user's token still works")
	}
	if _, err := te.SignIn("boss@acme.test", "boss password!"); err != nil {
		t.Fatal(err)
	}
	if _, err := te.SignIn("mem@acme.test", "anything at all"); err != ErrBadCredentials {
		t.Fatalf("removed user's sign-in: %v", err)
	}
}

func TestSignInLockout(t *testing.T) {
	te := newTestEdge(t)
	for i := range maxFailures {
		if _, err := te.SignIn("admin@culvert.test", "wrong password"); err != ErrBadCredentials {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Now even the right password is refused, with its own message.
	if _, err := te.SignIn("ADMIN@culvert.test", adminPassword); err != ErrLockedOut {
		t.Fatalf("after %d failures: %v", maxFailures, err)
	}
	c := te.browser(t)
	resp, page := signInForm(t, c, te.srv.URL+"/signin", "admin@culvert.test", adminPassword)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Too many failed sign-ins") {
		t.Fatalf("sign-in page when locked: %d %s", resp.StatusCode, page)
	}
	// Others are not affected; the window passes.
	if _, err := te.SignIn("nobody@culvert.test", "whatever it is"); err != ErrBadCredentials {
		t.Fatal(err)
	}
	if te.failures.locked("admin@culvert.test", time.Now().Add(failureWindow)) {
		t.Fatal("still locked after the window")
	}
	// The table is bounded.
	var f failureTable
	now := time.Now()
	for i := range maxFailureEmails + 10 {
		f.fail(fmt.Sprintf("u%d@x.test", i), now.Add(time.Duration(i)))
	}
	if len(f.m) > maxFailureEmails {
		t.Fatalf("%d entries", len(f.m))
	}
}
