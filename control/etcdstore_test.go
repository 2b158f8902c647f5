package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/control/etcdtest"
	"github.com/culvert-tunnel/culvert/control/etcdv3"
)

// sharedEtcd is one etcd server for the package's tests, started by the
// first test that needs it; each test uses a prefix of its own.
var sharedEtcd struct {
	once sync.Once
	dir  string
	srv  *etcdtest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEtcd.srv != nil {
		sharedEtcd.srv.Stop()
	}
	if sharedEtcd.dir != "" {
		os.RemoveAll(sharedEtcd.dir)
	}
	os.Exit(code)
}

// etcdEndpoint is the shared server's endpoint (skipping or failing the
// test without etcd, see etcdtest.Unavailable).
func etcdEndpoint(t testing.TB) string {
	t.Helper()
	sharedEtcd.once.Do(func() {
		sharedEtcd.dir, sharedEtcd.err = os.MkdirTemp("", "culvert-etcd-")
		if sharedEtcd.err == nil {
			sharedEtcd.srv, sharedEtcd.err = etcdtest.Launch(sharedEtcd.dir)
		}
	})
	if sharedEtcd.err != nil {
		etcdtest.Unavailable(t, sharedEtcd.err)
	}
	return sharedEtcd.srv.Endpoint
}

var nonKeyChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// freshPrefix is a key prefix no other test uses.
func freshPrefix(t testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	return "/culvert-test/" + nonKeyChars.ReplaceAllString(t.Name(), "_") + "-" + hex.EncodeToString(b[:]) + "/"
}

// openEtcdAt opens a store on endpoint and prefix, closed when the test
// ends.
func openEtcdAt(t testing.TB, endpoint, prefix string, timeout time.Duration) *EtcdStore {
	t.Helper()
	s, err := OpenEtcd(EtcdConfig{Endpoints: []string{endpoint}, Prefix: prefix, DialTimeout: timeout, RequestTimeout: timeout})
	if err != nil {
		t.Fatalf("OpenEtcd: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openEtcdTest(t testing.TB) *testStore {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	s := openEtcdAt(t, ep, prefix, 0)
	return &testStore{
		Store: s,
		reopen: func(t *testing.T) Store {
			t.Helper()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openEtcdAt(t, ep, prefix, 0)
		},
		raw: func(t *testing.T) []byte {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := s.cli.Get(ctx, prefix, etcdv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			var raw []byte
			for _, kv := range resp.Kvs {
				raw = append(append(append(raw, kv.Key...), 0), kv.Value...)
			}
			return raw
		},
	}
}

// eventually polls cond until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEtcdInstancesShareState(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	a := openEtcdAt(t, ep, prefix, 0)
	b := openEtcdAt(t, ep, prefix, 0)
	other := openEtcdAt(t, ep, freshPrefix(t), 0)

	acct := must[Account](t)(a.CreateAccount(Account{Name: "acme"}))
	if g := must[Account](t)(b.GetAccount(acct.ID)); g.Name != "acme" {
		t.Fatalf("b.GetAccount = %+v", g)
	}
	_, tok := mustUser(t, a, User{AccountID: acct.ID, Name: "alice"})
	if g := must[User](t)(b.UserByToken(tok)); g.Name != "alice" {
		t.Fatalf("b.UserByToken = %+v", g)
	}
	z := must[Zone](t)(b.CreateZone(Zone{Name: "example.com", AccountID: acct.ID}))
	_, err := a.CreateZone(Zone{Name: "EXAMPLE.com."})
	wantErr(t, err, ErrExists, "a.CreateZone of b's zone")
	t1 := must[Tunnel](t)(a.PutTunnel(Tunnel{Hostname: "app.example.com", ZoneID: z.ID, AccountID: acct.ID}))
	t2 := must[Tunnel](t)(b.PutTunnel(Tunnel{Hostname: "APP.example.com", ZoneID: z.ID, AccountID: acct.ID, LBPool: "p"}))
	if t2.ID != t1.ID || !t2.Created.Equal(t1.Created) {
		t.Fatalf("b's upsert %+v, a's tunnel %+v", t2, t1)
	}
	if n := must[int](t)(a.CountTunnels(acct.ID)); n != 1 {
		t.Fatalf("a.CountTunnels = %d", n)
	}
	e1 := must[AuditEvent](t)(a.AppendAudit(AuditEvent{AccountID: acct.ID, Kind: "k"}))
	e2 := must[AuditEvent](t)(b.AppendAudit(AuditEvent{AccountID: acct.ID, Kind: "k"}))
	e3 := must[AuditEvent](t)(a.AppendAudit(AuditEvent{AccountID: acct.ID, Kind: "k"}))
	if e2.Seq <= e1.Seq || e3.Seq <= e2.Seq {
		t.Fatalf("seqs %d, %d, %d", e1.Seq, e2.Seq, e3.Seq)
	}
	if l := must[[]AuditEvent](t)(b.ListAudit(acct.ID, 0, 0)); len(l) != 3 {
		t.Fatalf("b.ListAudit = %d", len(l))
	}

	// Another prefix is another state.
	if _, err := other.GetAccount(acct.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other prefix GetAccount: %v", err)
	}
	if l := must[[]Zone](t)(other.ListZones("")); len(l) != 0 {
		t.Fatalf("other prefix zones: %+v", l)
	}
}

func TestEtcdRevocationReachesOtherInstance(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	a := openEtcdAt(t, ep, prefix, 0)
	if err := a.PutCert(CertRecord{Serial: "0AB1", AccountID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutCert(CertRecord{Serial: "0ab2", AccountID: "a", Revoked: true}); err != nil {
		t.Fatal(err)
	}
	b := openEtcdAt(t, ep, prefix, 0)
	// Loaded at open.
	if r := must[bool](t)(b.IsRevoked("0AB2")); !r {
		t.Fatal("revocation made before open not loaded")
	}
	if r := must[bool](t)(b.IsRevoked("0ab1")); r {
		t.Fatal("0ab1 revoked before RevokeCert")
	}
	// Through the watch.
	start := time.Now()
	if err := a.RevokeCert("0ab1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b sees a's RevokeCert", func() bool { r, _ := b.IsRevoked("0AB1"); return r })
	t.Logf("revocation seen after %v", time.Since(start))
	if err := b.PutCert(CertRecord{Serial: "0ab3", AccountID: "a", Revoked: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "a sees b's PutCert(Revoked)", func() bool { r, _ := a.IsRevoked("0ab3"); return r })

	// A broken watch is set up again.
	if err := a.PutCert(CertRecord{Serial: "0ab4", AccountID: "a"}); err != nil {
		t.Fatal(err)
	}
	b.breakWatch()
	if err := a.RevokeCert("0ab4", time.Time{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b sees a revocation after its watch broke", func() bool { r, _ := b.IsRevoked("0ab4"); return r })
	if err := a.PutCert(CertRecord{Serial: "0ab5", AccountID: "a", Revoked: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "b sees a later revocation", func() bool { r, _ := b.IsRevoked("0ab5"); return r })
	if r := must[bool](t)(b.IsRevoked("unknown")); r {
		t.Fatal("unknown serial revoked")
	}
}

func TestEtcdCreateZoneRace(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	stores := []*EtcdStore{openEtcdAt(t, ep, prefix, 0), openEtcdAt(t, ep, prefix, 0)}
	const rounds, perStore = 10, 3
	for r := range rounds {
		name := fmt.Sprintf("zone%d.example", r)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []Zone
		var lost int
		start := make(chan struct{})
		for i := range len(stores) * perStore {
			s := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				z, err := s.CreateZone(Zone{Name: name, AccountID: fmt.Sprint("acct", i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, z)
				case errors.Is(err, ErrExists):
					lost++
				default:
					t.Errorf("CreateZone: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 || lost != len(stores)*perStore-1 {
			t.Fatalf("round %d: %d won, %d lost", r, len(won), lost)
		}
		for _, s := range stores {
			if g := must[Zone](t)(s.ZoneByName(name)); g != won[0] {
				t.Fatalf("round %d: ZoneByName = %+v, winner %+v", r, g, won[0])
			}
		}
	}
	if l := must[[]Zone](t)(stores[1].ListZones("")); len(l) != rounds {
		t.Fatalf("%d zones stored, want %d", len(l), rounds)
	}
}

// TestEtcdUserEmailRace: creations of users with one email, and an update
// of another user to it, race through two instances; exactly one gets it
// and the email index holds one entry per email.
func TestEtcdUserEmailRace(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	stores := []*EtcdStore{openEtcdAt(t, ep, prefix, 0), openEtcdAt(t, ep, prefix, 0)}
	const rounds, perStore = 10, 3
	for r := range rounds {
		email := fmt.Sprintf("user%d@example.test", r)
		other, _ := mustUser(t, stores[0], User{AccountID: "a1"})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []string // user IDs
		var lost int
		record := func(id string, err error, what string) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, id)
			case errors.Is(err, ErrExists):
				lost++
			default:
				t.Errorf("%s: %v", what, err)
			}
		}
		start := make(chan struct{})
		for i := range len(stores) * perStore {
			s := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				// Cases differ: the store normalises.
				e := email
				if i%2 == 1 {
					e = strings.ToUpper(email)
				}
				u, _, err := s.CreateUser(User{AccountID: fmt.Sprint("acct", i), Email: e})
				record(u.ID, err, "CreateUser")
			})
		}
		wg.Go(func() {
			<-start
			u := other
			u.Email = email
			record(u.ID, stores[1].UpdateUser(u), "UpdateUser")
		})
		close(start)
		wg.Wait()
		if len(won) != 1 || lost != len(stores)*perStore {
			t.Fatalf("round %d: %d won, %d lost", r, len(won), lost)
		}
		for _, s := range stores {
			if g := must[User](t)(s.UserByEmail(email)); g.ID != won[0] || g.Email != email {
				t.Fatalf("round %d: UserByEmail = %+v, winner %s", r, g, won[0])
			}
		}
	}
	resp, err := stores[0].cli.Get(context.Background(), prefix+ekUsersByEmail, etcdv3.WithPrefix(), etcdv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != rounds {
		t.Fatalf("%d email index entries, want %d", resp.Count, rounds)
	}
	withEmail := 0
	for _, u := range must[[]User](t)(stores[1].ListUsers("")) {
		if u.Email != "" {
			withEmail++
		}
	}
	if withEmail != rounds {
		t.Fatalf("%d users with an email, want %d", withEmail, rounds)
	}
}

// TestEtcdAddUserTokenRace: tokens added at once through two instances
// are all kept; none is lost to a concurrent write of the user.
func TestEtcdAddUserTokenRace(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	stores := []*EtcdStore{openEtcdAt(t, ep, prefix, 0), openEtcdAt(t, ep, prefix, 0)}
	u, _ := mustUser(t, stores[0], User{AccountID: "a1", Email: "ann@example.test"})
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var tokens []string
	start := make(chan struct{})
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			tok, err := s.AddUserToken(u.ID)
			if err != nil {
				t.Errorf("AddUserToken: %v", err)
				return
			}
			mu.Lock()
			tokens = append(tokens, tok)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if g := must[User](t)(stores[1].GetUser(u.ID)); len(g.ExtraTokens) != n || len(tokens) != n {
		t.Fatalf("%d extra tokens stored, %d returned, want %d", len(g.ExtraTokens), len(tokens), n)
	}
	for _, tok := range tokens {
		if g := must[User](t)(stores[1].UserByToken(tok)); g.ID != u.ID {
			t.Fatalf("UserByToken = %+v", g)
		}
	}
	// The roll removes every index entry, the extra ones included.
	must[string](t)(stores[0].RollUserToken(u.ID))
	resp, err := stores[0].cli.Get(context.Background(), prefix+ekUsersByToken, etcdv3.WithPrefix(), etcdv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 1 {
		t.Fatalf("%d token index entries after roll, want 1", resp.Count)
	}
}

func TestEtcdAppendAuditRace(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	stores := []*EtcdStore{openEtcdAt(t, ep, prefix, 0), openEtcdAt(t, ep, prefix, 0)}
	const writers, each = 4, 15 // writers per store
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seqs []uint64
	start := make(chan struct{})
	for i := range len(stores) * writers {
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			var last uint64
			for j := range each {
				e, err := s.AppendAudit(AuditEvent{AccountID: fmt.Sprint("a", i%3), Kind: "k", Subject: fmt.Sprint(i, "/", j)})
				if err != nil {
					t.Error(err)
					return
				}
				if e.Seq <= last {
					t.Errorf("writer %d: seq %d after %d", i, e.Seq, last)
				}
				last = e.Seq
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	total := len(stores) * writers * each
	slices.Sort(seqs)
	if len(slices.Compact(slices.Clone(seqs))) != total {
		t.Fatalf("%d distinct seqs, want %d", len(slices.Compact(seqs)), total)
	}
	all := must[[]AuditEvent](t)(stores[0].ListAudit("", 0, 0))
	if len(all) != total {
		t.Fatalf("ListAudit = %d events, want %d", len(all), total)
	}
	for i, e := range all {
		if e.Seq != seqs[i] {
			t.Fatalf("ListAudit[%d].Seq = %d, want %d", i, e.Seq, seqs[i])
		}
	}
	n := 0
	for a := range 3 {
		n += len(must[[]AuditEvent](t)(stores[1].ListAudit(fmt.Sprint("a", a), 0, 0)))
	}
	if n != total {
		t.Fatalf("per-account ListAudit = %d events, want %d", n, total)
	}
}

func TestEtcdListPages(t *testing.T) {
	// More records than one range request returns.
	s := openEtcdAt(t, etcdEndpoint(t), freshPrefix(t), 0)
	const n = etcdPage + etcdTxnOps + 7
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ops := make([]etcdv3.Op, 0, etcdTxnOps)
	flush := func() {
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		c := CertRecord{Serial: fmt.Sprintf("%04x", i), AccountID: "a", Revoked: i%100 == 7}
		put, err := putJSONOp(s.key(ekCerts, c.Serial), c)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, put, etcdv3.OpPut(s.acctIdx(ekCertsByAcct, "a", c.Serial), ""))
		if len(ops) >= etcdTxnOps-1 {
			flush()
		}
	}
	flush()
	for _, acct := range []string{"", "a"} {
		l := must[[]CertRecord](t)(s.ListCerts(acct))
		if len(l) != n {
			t.Fatalf("ListCerts(%q) = %d, want %d", acct, len(l), n)
		}
		for i, c := range l {
			if c.Serial != fmt.Sprintf("%04x", i) {
				t.Fatalf("ListCerts(%q)[%d] = %s", acct, i, c.Serial)
			}
		}
	}
	s2 := openEtcdAt(t, s.cli.Endpoints()[0], s.prefix, 0)
	if r := must[bool](t)(s2.IsRevoked(fmt.Sprintf("%04x", 507))); !r {
		t.Fatal("revocation on a later page not loaded")
	}
}

func TestEtcdNewerSchema(t *testing.T) {
	ep, prefix := etcdEndpoint(t), freshPrefix(t)
	s := openEtcdAt(t, ep, prefix, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cli.Put(ctx, prefix+"schema", "2"); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenEtcd(EtcdConfig{Endpoints: []string{ep}, Prefix: prefix})
	if err == nil {
		s2.Close()
		t.Fatal("OpenEtcd accepted a newer schema")
	}
	if !strings.Contains(err.Error(), "schema version 2") {
		t.Fatalf("unclear error: %v", err)
	}
}

func TestEtcdStoppedServerFailsFast(t *testing.T) {
	srv := etcdtest.StartServer(t)
	prefix := freshPrefix(t)
	const timeout = 500 * time.Millisecond
	s := openEtcdAt(t, srv.Endpoint, prefix, timeout)
	other := openEtcdAt(t, srv.Endpoint, prefix, timeout)
	if err := s.PutCert(CertRecord{Serial: "01", AccountID: "a", Revoked: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCert(CertRecord{Serial: "02", AccountID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	calls := map[string]func() error{
		"GetAccount": func() error { _, err := s.GetAccount("x"); return err },
		"CreateZone": func() error { _, err := s.CreateZone(Zone{Name: "example.com"}); return err },
		"PutTunnel":  func() error { _, err := s.PutTunnel(Tunnel{Hostname: "a.example.com"}); return err },
		"AppendAudit": func() error {
			_, err := s.AppendAudit(AuditEvent{Kind: "k"})
			return err
		},
		"ListAudit": func() error { _, err := s.ListAudit("", 0, 0); return err },
		"RevokeCert": func() error {
			return s.RevokeCert("02", time.Time{})
		},
	}
	// Concurrently: each must fail within the timeout on its own.
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			start := time.Now()
			err := call()
			d := time.Since(start)
			if err == nil {
				t.Errorf("%s succeeded with etcd stopped", name)
				return
			}
			if d > timeout+2*time.Second {
				t.Errorf("%s took %v to fail (timeout %v)", name, d, timeout)
			}
			// A timeout, or the connection's failure for a write that
			// was under way.
			if !strings.Contains(err.Error(), "etcd (") {
				t.Errorf("%s: unclear error: %v", name, err)
			}
			t.Logf("%s: %v after %v", name, err, d)
		})
	}
	wg.Wait()
	start := time.Now()
	if s2, err := OpenEtcd(EtcdConfig{Endpoints: []string{srv.Endpoint}, Prefix: prefix, DialTimeout: timeout, RequestTimeout: timeout}); err == nil {
		s2.Close()
		t.Fatal("OpenEtcd succeeded with etcd stopped")
	} else if d := time.Since(start); d > 2*timeout+2*time.Second {
		t.Fatalf("OpenEtcd took %v to fail", d)
	}
	// IsRevoked answers from memory meanwhile.
	if r, err := s.IsRevoked("01"); err != nil || !r {
		t.Fatalf("IsRevoked(01) with etcd stopped = %v, %v", r, err)
	}
	if r, err := s.IsRevoked("02"); err != nil || r {
		t.Fatalf("IsRevoked(02) with etcd stopped = %v, %v", r, err)
	}

	// Back up: the stores work again and the watch resumes.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted after %v", time.Since(start))
	eventually(t, 15*time.Second, "RevokeCert after restart", func() bool {
		return other.RevokeCert("02", time.Time{}) == nil
	})
	eventually(t, 15*time.Second, "watch resumed after restart", func() bool { r, _ := s.IsRevoked("02"); return r })
	t.Logf("revocation seen after %v", time.Since(start))
	if _, err := s.GetCert("01"); err != nil {
		t.Fatalf("GetCert after restart: %v", err)
	}
}

func TestEtcdCloseStopsWatch(t *testing.T) {
	s, err := OpenEtcd(EtcdConfig{Endpoints: []string{etcdEndpoint(t)}, Prefix: freshPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCert(CertRecord{Serial: "01", AccountID: "a", Revoked: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	select {
	case <-s.done:
	default:
		t.Fatal("watch goroutine still running after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.GetCert("01"); err == nil {
		t.Fatal("GetCert after Close succeeded")
	}
	if r, _ := s.IsRevoked("01"); !r {
		t.Fatal("IsRevoked after Close forgot the revocation")
	}
}

func TestOpenStoreSpec(t *testing.T) {
	dir := t.TempDir()
	for _, spec := range []string{"", "bolt"} {
		st, err := OpenStore(spec, filepath.Join(dir, spec+"x"))
		if err != nil {
			t.Fatalf("OpenStore(%q): %v", spec, err)
		}
		b, ok := st.(*BoltStore)
		if !ok || b.Path() != filepath.Join(dir, spec+"x", StoreFile) {
			t.Fatalf("OpenStore(%q) = %T %v", spec, st, st)
		}
		st.Close()
	}
	good := []struct {
		spec, prefix string
		eps          []string
	}{
		{"etcd://127.0.0.1:2379", DefaultEtcdPrefix, []string{"127.0.0.1:2379"}},
		{"etcd://127.0.0.1:2379/", DefaultEtcdPrefix, []string{"127.0.0.1:2379"}},
		{"etcd://127.0.0.1:2379/culvert/", "/culvert/", []string{"127.0.0.1:2379"}},
		{"etcd://a:1,b:2,[::1]:3/prod/edges", "/prod/edges/", []string{"a:1", "b:2", "[::1]:3"}},
	}
	for _, g := range good {
		cfg, err := parseEtcdSpec(g.spec)
		if err != nil {
			t.Fatalf("parseEtcdSpec(%q): %v", g.spec, err)
		}
		if cfg.Prefix != g.prefix || !slices.Equal(cfg.Endpoints, g.eps) {
			t.Fatalf("parseEtcdSpec(%q) = %+v", g.spec, cfg)
		}
	}
	for _, bad := range []string{"etcd://", "etcd:///x", "etcd://host", "etcd://a:1,/x", "etcd://a:x", "etcd://u:p@a:1", "etcd://a:1?x=1"} {
		if _, err := parseEtcdSpec(bad); err == nil {
			t.Fatalf("parseEtcdSpec(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"redis://a:1", "etcd", "/var/lib/culvert.db"} {
		if _, err := OpenStore(bad, dir); err == nil || !strings.Contains(err.Error(), "etcd://") {
			t.Fatalf("OpenStore(%q): %v", bad, err)
		}
	}
	// A real etcd through the spec.
	ep := etcdEndpoint(t)
	prefix := freshPrefix(t)
	st, err := OpenStore("etcd://"+ep+prefix, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if e, ok := st.(*EtcdStore); !ok || e.Prefix() != prefix {
		t.Fatalf("OpenStore(etcd) = %T", st)
	}
}

// edgeAdminFiles returns the admin.token contents of the data dirs that
// have one.
func edgeAdminFiles(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, AdminTokenFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[d] = strings.TrimSpace(string(b))
	}
	return out
}

func sameCA(t *testing.T, a, b *Edge) {
	t.Helper()
	if !a.EdgeCA.Cert.Equal(b.EdgeCA.Cert) || !a.OriginCA.Cert.Equal(b.OriginCA.Cert) {
		t.Fatal("the edges have different CAs")
	}
	pa, _, _ := a.EdgeCA.PEM()
	pb, _, _ := b.EdgeCA.PEM()
	if !bytes.Equal(pa, pb) {
		t.Fatal("the edges' edge CA PEMs differ")
	}
}

func TestOpenEdgeStoreEtcdRace(t *testing.T) {
	ep := etcdEndpoint(t)
	for round := range 3 {
		spec := "etcd://" + ep + freshPrefix(t)
		dirs := []string{t.TempDir(), t.TempDir()}
		edges := make([]*Edge, len(dirs))
		errs := make([]error, len(dirs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, d := range dirs {
			wg.Go(func() {
				<-start
				edges[i], errs[i] = OpenEdgeStore(spec, d, "culvert.test", quiet)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: edge %d: %v", round, i, err)
			}
			t.Cleanup(func() { edges[i].Close() })
		}
		a, b := edges[0], edges[1]
		sameCA(t, a, b)
		if a.AdminUserID != b.AdminUserID || a.DefaultAccountID != b.DefaultAccountID {
			t.Fatalf("round %d: admin %s / %s, account %s / %s", round, a.AdminUserID, b.AdminUserID, a.DefaultAccountID, b.DefaultAccountID)
		}
		tokens := edgeAdminFiles(t, dirs...)
		if len(tokens) != 1 {
			t.Fatalf("round %d: %d admin.token files, want 1", round, len(tokens))
		}
		for _, tok := range tokens {
			u, err := b.Store.UserByToken(tok)
			if err != nil || u.ID != a.AdminUserID || u.Role != RoleSuperAdmin || u.AccountID != a.DefaultAccountID {
				t.Fatalf("round %d: admin.token is %+v, %v", round, u, err)
			}
		}
		if l := must[[]User](t)(a.Store.ListUsers("")); len(l) != 1 {
			t.Fatalf("round %d: %d users, want the one administrator", round, len(l))
		}
		if l := must[[]Account](t)(a.Store.ListAccounts()); len(l) != 1 || l[0].ID != a.DefaultAccountID {
			t.Fatalf("round %d: accounts %+v", round, l)
		}
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, EdgeCAFile)); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if _, err := os.Stat(filepath.Join(d, StoreFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("round %d: an etcd edge made a bbolt file: %v", round, err)
			}
		}

		// A third edge joining later agrees and writes no token.
		d3 := t.TempDir()
		c, err := OpenEdgeStore(spec, d3, "culvert.test", quiet)
		if err != nil {
			t.Fatal(err)
		}
		sameCA(t, a, c)
		if c.AdminUserID != a.AdminUserID || c.DefaultAccountID != a.DefaultAccountID {
			t.Fatalf("round %d: the late edge disagrees", round)
		}
		if len(edgeAdminFiles(t, d3)) != 0 {
			t.Fatalf("round %d: the late edge wrote admin.token", round)
		}
		// A zone made through one edge issues a bundle on another.
		if _, err := a.CreateZone("example.com", false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IssueBundle("example.com"); err != nil {
			t.Fatalf("round %d: IssueBundle on another edge: %v", round, err)
		}
		c.Close()
	}
}

func TestOpenEdgeReopen(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenEdge(dir, "culvert.test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	tok := edgeAdminFiles(t, dir)[dir]
	if tok == "" {
		t.Fatal("no admin.token at first start")
	}
	u, err := a.Store.UserByToken(tok)
	if err != nil || u.ID != a.AdminUserID || u.Role != RoleSuperAdmin {
		t.Fatalf("admin.token user %+v, %v", u, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := OpenEdge(dir, "culvert.test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sameCA(t, a, b)
	if b.AdminUserID != a.AdminUserID || b.DefaultAccountID != a.DefaultAccountID {
		t.Fatal("reopened edge has another admin or account")
	}
	if tok2 := edgeAdminFiles(t, dir)[dir]; tok2 != tok {
		t.Fatal("admin.token rewritten at the second start")
	}
	if l := must[[]User](t)(b.Store.ListUsers("")); len(l) != 1 {
		t.Fatalf("%d users after reopen", len(l))
	}
}

// TestOpenEdgeCompletesHalfDoneStart: a first start that stopped after
// claiming the IDs and the CA pair is completed by the next one.
func TestOpenEdgeCompletesHalfDoneStart(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenBolt(filepath.Join(dir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{metaDefaultAcct, "acct0001"}, {metaAdminUser, "user0001"}} {
		if err := st.PutMeta(kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	// An edge CA key left from an interrupted start, without its
	// certificate.
	if err := st.PutMeta(metaEdgeCAKey, []byte("stale")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	e, err := OpenEdge(dir, "culvert.test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.DefaultAccountID != "acct0001" || e.AdminUserID != "user0001" {
		t.Fatalf("account %s, admin %s", e.DefaultAccountID, e.AdminUserID)
	}
	if _, err := e.Store.GetAccount("acct0001"); err != nil {
		t.Fatal(err)
	}
	tok := edgeAdminFiles(t, dir)[dir]
	if u, err := e.Store.UserByToken(tok); err != nil || u.ID != "user0001" {
		t.Fatalf("admin.token user %+v, %v", u, err)
	}
}

var quiet = slog.New(slog.DiscardHandler)
