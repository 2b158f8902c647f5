package control

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t testing.TB) (*BoltStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "edge.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// testStore is a fresh, empty store under test with what the contract
// tests need beyond the interface.
type testStore struct {
	Store
	// reopen closes the store and opens the same state again.
	reopen func(t *testing.T) Store
	// raw returns every byte the store persisted, to search for secrets
	// (it may close the store).
	raw func(t *testing.T) []byte
}

// storeKinds are the Store implementations every contract test runs
// against.
var storeKinds = []struct {
	name string
	open func(t testing.TB) *testStore
}{
	{"bolt", openBoltTest},
	{"etcd", openEtcdTest},
}

// eachStore runs test as a subtest against a fresh store of every kind.
func eachStore(t *testing.T, test func(t *testing.T, s *testStore)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k.open(t)) })
	}
}

func openBoltTest(t testing.TB) *testStore {
	s, path := openTemp(t)
	return &testStore{
		Store: s,
		reopen: func(t *testing.T) Store {
			t.Helper()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s2, err := OpenBolt(path)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			t.Cleanup(func() { s2.Close() })
			return s2
		},
		raw: func(t *testing.T) []byte {
			t.Helper()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		},
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func TestOpenCreatesFileAndDir(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		t.Errorf("file mode %v, want 0600", m)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m&0o077 != 0 {
		t.Errorf("dir mode %v, want 0700", m)
	}
}

func TestMeta(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		_, err := s.GetMeta("ca")
		wantErr(t, err, ErrNotFound, "GetMeta absent")
		if err := s.PutMeta("ca", []byte("pem1")); err != nil {
			t.Fatal(err)
		}
		if v := must[[]byte](t)(s.GetMeta("ca")); string(v) != "pem1" {
			t.Fatalf("GetMeta = %q", v)
		}
		if err := s.PutMeta("ca", []byte("pem2")); err != nil {
			t.Fatal(err)
		}
		if v := must[[]byte](t)(s.GetMeta("ca")); string(v) != "pem2" {
			t.Fatalf("GetMeta after overwrite = %q", v)
		}
		if v := must[[]byte](t)(s.PutMetaIfAbsent("ca", []byte("pem3"))); string(v) != "pem2" {
			t.Fatalf("PutMetaIfAbsent present = %q, want existing", v)
		}
		if v := must[[]byte](t)(s.PutMetaIfAbsent("admin", []byte("h"))); string(v) != "h" {
			t.Fatalf("PutMetaIfAbsent absent = %q", v)
		}
		// An empty value is a value.
		if err := s.PutMeta("empty", nil); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetMeta("empty"); err != nil || len(v) != 0 {
			t.Fatalf("GetMeta empty = %q, %v", v, err)
		}
		if err := s.PutMeta("", []byte("x")); err == nil {
			t.Fatal("PutMeta with empty key succeeded")
		}
		// The returned slice is the caller's.
		v := must[[]byte](t)(s.GetMeta("admin"))
		v[0] = 'X'
		if v := must[[]byte](t)(s.GetMeta("admin")); string(v) != "h" {
			t.Fatalf("GetMeta after caller mutation = %q", v)
		}
		// Meta keys do not collide with the schema version.
		if err := s.PutMeta("schema", []byte("99")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPutMetaIfAbsentRace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		const n = 8
		var wg sync.WaitGroup
		got := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				got[i], errs[i] = s.PutMetaIfAbsent("ca", []byte(fmt.Sprintf("candidate-%d", i)))
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("goroutine %d: %v", i, errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("goroutine %d got %q, goroutine 0 got %q", i, got[i], got[0])
			}
		}
		if v := must[[]byte](t)(s.GetMeta("ca")); !bytes.Equal(v, got[0]) {
			t.Fatalf("stored %q, returned %q", v, got[0])
		}
	})
}

func TestAccounts(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		a := must[Account](t)(s.CreateAccount(Account{Name: "acme"}))
		if len(a.ID) != 16 || strings.Trim(a.ID, "0123456789abcdef") != "" {
			t.Fatalf("generated id %q, want 16 hex chars", a.ID)
		}
		if a.Created.IsZero() {
			t.Fatal("Created not set")
		}
		if a.MaxTunnels() != DefaultTunnelLimit {
			t.Fatalf("MaxTunnels = %d", a.MaxTunnels())
		}
		b := must[Account](t)(s.CreateAccount(Account{ID: "fixed", Name: "other", TunnelLimit: 5}))
		if b.ID != "fixed" || b.MaxTunnels() != 5 {
			t.Fatalf("account %+v", b)
		}
		_, err := s.CreateAccount(Account{ID: "fixed"})
		wantErr(t, err, ErrExists, "CreateAccount duplicate id")
		if _, err := s.CreateAccount(Account{TunnelLimit: -1}); err == nil {
			t.Fatal("negative limit accepted")
		}

		g := must[Account](t)(s.GetAccount(a.ID))
		if g.Name != "acme" || !g.Created.Equal(a.Created) {
			t.Fatalf("GetAccount = %+v, want %+v", g, a)
		}
		_, err = s.GetAccount("nope")
		wantErr(t, err, ErrNotFound, "GetAccount")

		list := must[[]Account](t)(s.ListAccounts())
		if len(list) != 2 {
			t.Fatalf("ListAccounts = %d accounts", len(list))
		}
	})
}

func TestUsersAndTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		u, tok := mustUser(t, s, User{AccountID: "a1", Name: "alice", Role: RoleAdmin})
		if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+43 {
			t.Fatalf("token %q: want cvt_ + 43 base64url chars", tok)
		}
		if u.TokenHash != HashToken(tok) || u.KeyVersion != 1 || u.Created.IsZero() || u.ID == "" {
			t.Fatalf("user %+v", u)
		}
		svc, svcTok := mustUser(t, s, User{AccountID: "a1", Name: "connector", Service: true})
		if svc.Role != RoleMember {
			t.Fatalf("default role %q", svc.Role)
		}
		root, _ := mustUser(t, s, User{Name: "root", Role: RoleSuperAdmin})
		if _, _, err := s.CreateUser(User{Name: "x", Role: "god"}); err == nil {
			t.Fatal("unknown role accepted")
		}
		_, _, err := s.CreateUser(User{ID: u.ID})
		wantErr(t, err, ErrExists, "CreateUser duplicate id")

		if g := must[User](t)(s.GetUser(u.ID)); g.Name != "alice" || g.Role != RoleAdmin || g.TokenHash != u.TokenHash {
			t.Fatalf("GetUser = %+v", g)
		}
		_, err = s.GetUser("nope")
		wantErr(t, err, ErrNotFound, "GetUser")

		// Token lookup: the right user for each token, nobody for others.
		if g := must[User](t)(s.UserByToken(tok)); g.ID != u.ID {
			t.Fatalf("UserByToken = %s, want %s", g.ID, u.ID)
		}
		if g := must[User](t)(s.UserByToken(svcTok)); g.ID != svc.ID {
			t.Fatalf("UserByToken(svc) = %s, want %s", g.ID, svc.ID)
		}
		for _, bad := range []string{"", "cvt_", tok + "x", tok[:len(tok)-1], u.TokenHash} {
			_, err := s.UserByToken(bad)
			wantErr(t, err, ErrNotFound, fmt.Sprintf("UserByToken(%q)", bad))
		}

		// Roll: old token dies at once, new one works, KeyVersion++.
		tok2 := must[string](t)(s.RollUserToken(u.ID))
		if tok2 == tok {
			t.Fatal("rolled token unchanged")
		}
		_, err = s.UserByToken(tok)
		wantErr(t, err, ErrNotFound, "old token after roll")
		g := must[User](t)(s.UserByToken(tok2))
		if g.ID != u.ID || g.KeyVersion != 2 || g.TokenHash != HashToken(tok2) {
			t.Fatalf("after roll %+v", g)
		}
		_, err = s.RollUserToken("nope")
		wantErr(t, err, ErrNotFound, "RollUserToken")

		// Update changes name, role, service and account; not the key.
		upd := g
		upd.Name, upd.Role, upd.Service = "alice2", RoleMember, true
		upd.TokenHash, upd.KeyVersion, upd.AccountID = "forged", 99, "other"
		if err := s.UpdateUser(upd); err != nil {
			t.Fatal(err)
		}
		g = must[User](t)(s.GetUser(u.ID))
		if g.Name != "alice2" || g.Role != RoleMember || !g.Service || g.TokenHash != HashToken(tok2) || g.KeyVersion != 2 || g.AccountID != "other" {
			t.Fatalf("after update %+v", g)
		}
		if _, err := s.UserByToken(tok2); err != nil {
			t.Fatalf("token after update: %v", err)
		}
		wantErr(t, s.UpdateUser(User{ID: "nope", Role: RoleMember}), ErrNotFound, "UpdateUser")
		if err := s.UpdateUser(User{ID: u.ID, Role: "god"}); err == nil {
			t.Fatal("UpdateUser accepted unknown role")
		}

		if l := must[[]User](t)(s.ListUsers("a1")); len(l) != 1 { // one moved to "other"
			t.Fatalf("ListUsers(a1) = %d", len(l))
		}
		if l := must[[]User](t)(s.ListUsers("")); len(l) != 3 {
			t.Fatalf("ListUsers(all) = %d", len(l))
		}
		if l := must[[]User](t)(s.ListUsers("none")); len(l) != 0 {
			t.Fatalf("ListUsers(none) = %d", len(l))
		}
		_ = root

		// No token ever reaches the stored data.
		raw := s.raw(t)
		for _, tk := range []string{tok, tok2, svcTok} {
			if bytes.Contains(raw, []byte(tk)) || bytes.Contains(raw, []byte(strings.TrimPrefix(tk, TokenPrefix))) {
				t.Fatalf("token %q found in the stored data", tk)
			}
		}
		if !bytes.Contains(raw, []byte(HashToken(tok2))) {
			t.Fatal("token hash not found in the stored data: the search is not looking at the data")
		}
	})
}

func mustUser(t *testing.T, s Store, u User) (User, string) {
	t.Helper()
	u, tok, err := s.CreateUser(u)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u, tok
}

func TestZones(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		z := must[Zone](t)(s.CreateZone(Zone{Name: "Example.COM.", AccountID: "a1"}))
		if z.Name != "example.com" || z.ID == "" || z.Created.IsZero() {
			t.Fatalf("zone %+v", z)
		}
		_, err := s.CreateZone(Zone{Name: "EXAMPLE.com", AccountID: "a2"})
		wantErr(t, err, ErrExists, "CreateZone duplicate name")
		if !strings.Contains(err.Error(), `"example.com"`) {
			t.Errorf("error lacks the name: %v", err)
		}
		_, err = s.CreateZone(Zone{ID: z.ID, Name: "other.com"})
		wantErr(t, err, ErrExists, "CreateZone duplicate id")
		if _, err := s.CreateZone(Zone{Name: ""}); err == nil {
			t.Fatal("empty zone name accepted")
		}
		must[Zone](t)(s.CreateZone(Zone{Name: "b.example.net", AccountID: "a2", Partial: true}))

		if g := must[Zone](t)(s.GetZone(z.ID)); g.Name != z.Name || g.AccountID != "a1" {
			t.Fatalf("GetZone = %+v", g)
		}
		_, err = s.GetZone("nope")
		wantErr(t, err, ErrNotFound, "GetZone")
		if g := must[Zone](t)(s.ZoneByName("eXample.com")); g.ID != z.ID {
			t.Fatalf("ZoneByName = %+v", g)
		}
		_, err = s.ZoneByName("example.org")
		wantErr(t, err, ErrNotFound, "ZoneByName")

		if l := must[[]Zone](t)(s.ListZones("")); len(l) != 2 {
			t.Fatalf("ListZones(all) = %d", len(l))
		}
		l := must[[]Zone](t)(s.ListZones("a2"))
		if len(l) != 1 || l[0].Name != "b.example.net" || !l[0].Partial {
			t.Fatalf("ListZones(a2) = %+v", l)
		}
	})
}

func TestCerts(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		na := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
		c := CertRecord{Serial: "0A1B", ZoneID: "z1", AccountID: "a1", UserID: "u1", NotAfter: na}
		if err := s.PutCert(c); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCert(CertRecord{Serial: "02", AccountID: "a2"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCert(CertRecord{Serial: "03", AccountID: "a1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCert(CertRecord{}); err == nil {
			t.Fatal("empty serial accepted")
		}
		g := must[CertRecord](t)(s.GetCert("0a1b"))
		if g.Serial != "0a1b" || g.ZoneID != "z1" || g.UserID != "u1" || !g.NotAfter.Equal(na) || g.Issued.IsZero() || g.Revoked {
			t.Fatalf("GetCert = %+v", g)
		}
		_, err := s.GetCert("ff")
		wantErr(t, err, ErrNotFound, "GetCert")

		if r := must[bool](t)(s.IsRevoked("0a1b")); r {
			t.Fatal("revoked before RevokeCert")
		}
		at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := s.RevokeCert("0A1B", at); err != nil {
			t.Fatal(err)
		}
		for _, sn := range []string{"0a1b", "0A1B"} {
			if r := must[bool](t)(s.IsRevoked(sn)); !r {
				t.Fatalf("IsRevoked(%s) false after RevokeCert", sn)
			}
		}
		if r := must[bool](t)(s.IsRevoked("02")); r {
			t.Fatal("other cert revoked")
		}
		if r := must[bool](t)(s.IsRevoked("unknown")); r {
			t.Fatal("unknown serial revoked")
		}
		g = must[CertRecord](t)(s.GetCert("0a1b"))
		if !g.Revoked || !g.RevokedAt.Equal(at) {
			t.Fatalf("after revoke %+v", g)
		}
		// Revoking again keeps the first time; re-putting does not unrevoke.
		if err := s.RevokeCert("0a1b", at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCert(c); err != nil {
			t.Fatal(err)
		}
		g = must[CertRecord](t)(s.GetCert("0a1b"))
		if !g.Revoked || !g.RevokedAt.Equal(at) {
			t.Fatalf("after re-revoke and re-put %+v", g)
		}
		wantErr(t, s.RevokeCert("ff", time.Time{}), ErrNotFound, "RevokeCert")
		if r := must[bool](t)(s.IsRevoked("ff")); r {
			t.Fatal("failed revocation marked the serial")
		}
		// PutCert with Revoked set revokes too.
		if err := s.PutCert(CertRecord{Serial: "04", AccountID: "a2", Revoked: true}); err != nil {
			t.Fatal(err)
		}
		if r := must[bool](t)(s.IsRevoked("04")); !r {
			t.Fatal("PutCert(Revoked) not revoked")
		}

		if l := must[[]CertRecord](t)(s.ListCerts("")); len(l) != 4 {
			t.Fatalf("ListCerts(all) = %d", len(l))
		}
		l := must[[]CertRecord](t)(s.ListCerts("a1"))
		if len(l) != 2 || l[0].Serial != "03" || l[1].Serial != "0a1b" {
			t.Fatalf("ListCerts(a1) = %+v", l)
		}
		// Moving a cert to another account moves its index entry.
		if err := s.PutCert(CertRecord{Serial: "03", AccountID: "a2"}); err != nil {
			t.Fatal(err)
		}
		if l := must[[]CertRecord](t)(s.ListCerts("a1")); len(l) != 1 {
			t.Fatalf("ListCerts(a1) after move = %d", len(l))
		}
		if l := must[[]CertRecord](t)(s.ListCerts("a2")); len(l) != 3 {
			t.Fatalf("ListCerts(a2) after move = %d", len(l))
		}
	})
}

func TestTunnels(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		t1 := must[Tunnel](t)(s.PutTunnel(Tunnel{Hostname: "App.Example.com", ZoneID: "z1", AccountID: "a1"}))
		if t1.ID == "" || t1.Hostname != "app.example.com" || t1.Created.IsZero() {
			t.Fatalf("tunnel %+v", t1)
		}
		seen := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
		t1b := must[Tunnel](t)(s.PutTunnel(Tunnel{ID: "ignored", Hostname: "app.example.com", ZoneID: "z1", AccountID: "a1", LBPool: "p", LastSeen: seen, Created: seen}))
		if t1b.ID != t1.ID || !t1b.Created.Equal(t1.Created) || t1b.LBPool != "p" || !t1b.LastSeen.Equal(seen) {
			t.Fatalf("upsert %+v, first %+v", t1b, t1)
		}
		t2 := must[Tunnel](t)(s.PutTunnel(Tunnel{ID: "t2", Hostname: "api.example.com", AccountID: "a1"}))
		if t2.ID != "t2" {
			t.Fatalf("given id not kept: %+v", t2)
		}
		_, err := s.PutTunnel(Tunnel{ID: "t2", Hostname: "other.example.com", AccountID: "a1"})
		wantErr(t, err, ErrExists, "PutTunnel id taken by another hostname")
		must[Tunnel](t)(s.PutTunnel(Tunnel{Hostname: "x.example.net", AccountID: "a2"}))
		if _, err := s.PutTunnel(Tunnel{AccountID: "a1"}); err == nil {
			t.Fatal("empty hostname accepted")
		}

		g := must[Tunnel](t)(s.TunnelByHostname("APP.example.com"))
		if g.ID != t1.ID || g.LBPool != "p" {
			t.Fatalf("TunnelByHostname = %+v", g)
		}
		_, err = s.TunnelByHostname("none.example.com")
		wantErr(t, err, ErrNotFound, "TunnelByHostname")

		count := func(acct string, want int) {
			t.Helper()
			if n := must[int](t)(s.CountTunnels(acct)); n != want {
				t.Fatalf("CountTunnels(%q) = %d, want %d", acct, n, want)
			}
			if l := must[[]Tunnel](t)(s.ListTunnels(acct)); len(l) != want {
				t.Fatalf("ListTunnels(%q) = %d, want %d", acct, len(l), want)
			}
		}
		count("a1", 2)
		count("a2", 1)
		count("", 3)
		count("none", 0)

		// A hostname moving to another account moves in the account index.
		must[Tunnel](t)(s.PutTunnel(Tunnel{Hostname: "api.example.com", AccountID: "a2"}))
		count("a1", 1)
		count("a2", 2)

		if err := s.DeleteTunnel(t1.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteTunnel(t1.ID), ErrNotFound, "DeleteTunnel twice")
		_, err = s.TunnelByHostname("app.example.com")
		wantErr(t, err, ErrNotFound, "TunnelByHostname after delete")
		count("a1", 0)
		count("", 2)
		// The hostname is free again, under a new ID.
		t3 := must[Tunnel](t)(s.PutTunnel(Tunnel{Hostname: "app.example.com", AccountID: "a1"}))
		if t3.ID == t1.ID {
			t.Fatal("deleted tunnel's id reused")
		}
		count("a1", 1)
	})
}

func TestAudit(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		var last uint64
		for i := range 10 {
			acct := "a1"
			if i%2 == 1 {
				acct = "a2"
			}
			e := must[AuditEvent](t)(s.AppendAudit(AuditEvent{AccountID: acct, Kind: "k", Actor: "u", Subject: fmt.Sprint(i)}))
			if e.Seq <= last {
				t.Fatalf("seq %d after %d", e.Seq, last)
			}
			if e.Time.IsZero() {
				t.Fatal("Time not set")
			}
			last = e.Seq
		}
		fixed := time.Date(2029, 5, 6, 7, 8, 9, 0, time.UTC)
		e := must[AuditEvent](t)(s.AppendAudit(AuditEvent{Kind: "edge", Time: fixed}))
		if !e.Time.Equal(fixed) {
			t.Fatalf("given Time replaced: %v", e.Time)
		}

		all := must[[]AuditEvent](t)(s.ListAudit("", 0, 0))
		if len(all) != 11 {
			t.Fatalf("ListAudit all = %d", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq {
				t.Fatalf("not in seq order: %d then %d", all[i-1].Seq, all[i].Seq)
			}
		}
		a1 := must[[]AuditEvent](t)(s.ListAudit("a1", 0, 0))
		if len(a1) != 5 {
			t.Fatalf("ListAudit(a1) = %d", len(a1))
		}
		for _, e := range a1 {
			if e.AccountID != "a1" {
				t.Fatalf("ListAudit(a1) has %+v", e)
			}
		}
		after := must[[]AuditEvent](t)(s.ListAudit("a1", a1[1].Seq, 0))
		if len(after) != 3 || after[0].Seq != a1[2].Seq {
			t.Fatalf("ListAudit(a1, after %d) = %+v", a1[1].Seq, after)
		}
		lim := must[[]AuditEvent](t)(s.ListAudit("a1", a1[0].Seq, 2))
		if len(lim) != 2 || lim[0].Seq != a1[1].Seq || lim[1].Seq != a1[2].Seq {
			t.Fatalf("ListAudit(a1, after, 2) = %+v", lim)
		}
		lim = must[[]AuditEvent](t)(s.ListAudit("", all[3].Seq, 4))
		if len(lim) != 4 || lim[0].Seq != all[4].Seq {
			t.Fatalf("ListAudit(all, after, 4) = %+v", lim)
		}
		if l := must[[]AuditEvent](t)(s.ListAudit("", last+100, 0)); len(l) != 0 {
			t.Fatalf("ListAudit past the end = %d", len(l))
		}
		if l := must[[]AuditEvent](t)(s.ListAudit("", ^uint64(0), 0)); len(l) != 0 {
			t.Fatalf("ListAudit after max = %d", len(l))
		}
		if l := must[[]AuditEvent](t)(s.ListAudit("none", 0, 0)); len(l) != 0 {
			t.Fatalf("ListAudit(none) = %d", len(l))
		}

		// RecentAudit: the newest first, at most limit.
		seqs := func(es []AuditEvent) (out []uint64) {
			for _, e := range es {
				out = append(out, e.Seq)
			}
			return out
		}
		want := func(es []AuditEvent, n int) []uint64 {
			var out []uint64
			for i := len(es) - 1; i >= 0 && len(out) < n; i-- {
				out = append(out, es[i].Seq)
			}
			return out
		}
		a2 := must[[]AuditEvent](t)(s.ListAudit("a2", 0, 0))
		for _, tc := range []struct {
			acct  string
			limit int
			want  []uint64
		}{
			{"", 3, want(all, 3)},
			{"", 100, want(all, 100)},
			{"a1", 2, want(a1, 2)},
			{"a2", 100, want(a2, 100)},
			{"a", 5, nil}, // a prefix of a1 and a2, with no events of its own
			{"none", 5, nil},
		} {
			got := seqs(must[[]AuditEvent](t)(s.RecentAudit(tc.acct, tc.limit)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("RecentAudit(%q, %d) = seqs %v, want %v", tc.acct, tc.limit, got, tc.want)
			}
		}
		if _, err := s.RecentAudit("", 0); err == nil {
			t.Error("RecentAudit without a limit: no error")
		}
	})
}

func TestReopenPersists(t *testing.T) {
	eachStore(t, func(t *testing.T, ts *testStore) {
		var s Store = ts
		if err := s.PutMeta("ca", []byte("pem")); err != nil {
			t.Fatal(err)
		}
		a := must[Account](t)(s.CreateAccount(Account{Name: "acme", TunnelLimit: 7}))
		u, tok := mustUser(t, s, User{AccountID: a.ID, Name: "alice", Role: RoleAdmin})
		tok = must[string](t)(s.RollUserToken(u.ID))
		z := must[Zone](t)(s.CreateZone(Zone{Name: "example.com", AccountID: a.ID}))
		for _, sn := range []string{"01", "02"} {
			if err := s.PutCert(CertRecord{Serial: sn, ZoneID: z.ID, AccountID: a.ID, UserID: u.ID}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RevokeCert("02", time.Time{}); err != nil {
			t.Fatal(err)
		}
		tn := must[Tunnel](t)(s.PutTunnel(Tunnel{Hostname: "app.example.com", ZoneID: z.ID, AccountID: a.ID}))
		ev := must[AuditEvent](t)(s.AppendAudit(AuditEvent{AccountID: a.ID, Kind: "zone.create", Actor: u.ID, Subject: z.ID}))

		s = ts.reopen(t)

		if v := must[[]byte](t)(s.GetMeta("ca")); string(v) != "pem" {
			t.Fatalf("meta = %q", v)
		}
		if g := must[Account](t)(s.GetAccount(a.ID)); g.Name != "acme" || g.TunnelLimit != 7 || !g.Created.Equal(a.Created) {
			t.Fatalf("account %+v", g)
		}
		if g := must[User](t)(s.UserByToken(tok)); g.ID != u.ID || g.KeyVersion != 2 || g.Role != RoleAdmin {
			t.Fatalf("user %+v", g)
		}
		if g := must[Zone](t)(s.ZoneByName("example.com")); g.ID != z.ID {
			t.Fatalf("zone %+v", g)
		}
		if r := must[bool](t)(s.IsRevoked("02")); !r {
			t.Fatal("revocation lost on reopen")
		}
		if r := must[bool](t)(s.IsRevoked("01")); r {
			t.Fatal("01 revoked after reopen")
		}
		if l := must[[]CertRecord](t)(s.ListCerts(a.ID)); len(l) != 2 {
			t.Fatalf("certs %d", len(l))
		}
		if g := must[Tunnel](t)(s.TunnelByHostname("app.example.com")); g.ID != tn.ID || !g.Created.Equal(tn.Created) {
			t.Fatalf("tunnel %+v", g)
		}
		if n := must[int](t)(s.CountTunnels(a.ID)); n != 1 {
			t.Fatalf("CountTunnels = %d", n)
		}
		l := must[[]AuditEvent](t)(s.ListAudit(a.ID, 0, 0))
		if len(l) != 1 || l[0].Seq != ev.Seq || l[0].Kind != "zone.create" || !l[0].Time.Equal(ev.Time) {
			t.Fatalf("audit %+v", l)
		}
		// Seq keeps growing across reopens.
		ev2 := must[AuditEvent](t)(s.AppendAudit(AuditEvent{Kind: "k"}))
		if ev2.Seq <= ev.Seq {
			t.Fatalf("seq %d after reopen, was %d", ev2.Seq, ev.Seq)
		}
	})
}

func TestOpenInUse(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	s2, err := OpenBolt(path)
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("second OpenBolt took %v", d)
	}
	wantErr(t, err, ErrInUse, "second OpenBolt")
	if !strings.Contains(err.Error(), "data dir is in use by another culvert edge") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q lacks the message or the path", err)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktVersion).Put(keySchema, []byte("2"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := OpenBolt(path)
	if err == nil {
		s2.Close()
		t.Fatal("OpenBolt accepted a newer schema")
	}
	if !strings.Contains(err.Error(), "schema version 2") {
		t.Fatalf("unclear error: %v", err)
	}
}

func TestIsRevokedNoAlloc(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		if err := s.PutCert(CertRecord{Serial: "abcdef", AccountID: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeCert("abcdef", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(1000, func() { s.IsRevoked("abcdef") }); a != 0 {
			t.Errorf("IsRevoked: %v allocs/op, want 0", a)
		}
	})
}

func TestConcurrentRevokeAndRead(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		const n = 32
		for i := range n {
			if err := s.PutCert(CertRecord{Serial: fmt.Sprintf("%02x", i), AccountID: "a"}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := s.RevokeCert(fmt.Sprintf("%02x", i), time.Time{}); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() { s.IsRevoked(fmt.Sprintf("%02x", i)) })
		}
		wg.Wait()
		for i := range n {
			if r, _ := s.IsRevoked(fmt.Sprintf("%02x", i)); !r {
				t.Fatalf("serial %02x lost from the revoked set", i)
			}
		}
	})
}

func BenchmarkIsRevoked(b *testing.B) {
	s, _ := openTemp(b)
	for i := range 200 {
		sn := fmt.Sprintf("%032x", i)
		if err := s.PutCert(CertRecord{Serial: sn, AccountID: "a", Revoked: i%10 == 0}); err != nil {
			b.Fatal(err)
		}
	}
	serials := []string{fmt.Sprintf("%032x", 10), fmt.Sprintf("%032x", 11)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.IsRevoked(serials[i&1]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
