package control

import (
	"testing"
	"time"
)

func TestUserEmailsAndUpdate(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		u, tok := mustUser(t, s, User{AccountID: "a1", Name: "Ann", Email: " Ann@Example.TEST ", Role: RoleSuperAdmin, PasswordHash: "h1"})
		if u.Email != "ann@example.test" {
			t.Fatalf("email not normalised: %q", u.Email)
		}
		_, _, err := s.CreateUser(User{AccountID: "a2", Email: "ANN@example.test"})
		wantErr(t, err, ErrExists, "CreateUser with a taken email")
		// Service users have no email; any number of them.
		mustUser(t, s, User{AccountID: "a1", Service: true})
		mustUser(t, s, User{AccountID: "a1", Service: true})

		g := must[User](t)(s.UserByEmail("ann@EXAMPLE.test"))
		if g.ID != u.ID || g.PasswordHash != "h1" {
			t.Fatalf("UserByEmail = %+v", g)
		}
		_, err = s.UserByEmail("nobody@example.test")
		wantErr(t, err, ErrNotFound, "UserByEmail unknown")

		// UpdateUser moves the user, changes email, password, disables.
		b, _ := mustUser(t, s, User{AccountID: "a1", Email: "bob@example.test"})
		u.AccountID, u.Role, u.Email, u.PasswordHash = "a2", RoleAdmin, "ann2@example.test", "h2"
		if err := s.UpdateUser(u); err != nil {
			t.Fatal(err)
		}
		g = must[User](t)(s.UserByEmail("ann2@example.test"))
		if g.AccountID != "a2" || g.Role != RoleAdmin || g.PasswordHash != "h2" || g.KeyVersion != 1 {
			t.Fatalf("after update %+v", g)
		}
		_, err = s.UserByEmail("ann@example.test")
		wantErr(t, err, ErrNotFound, "old email after change")
		if got := must[User](t)(s.UserByToken(tok)); got.ID != u.ID {
			t.Fatal("UpdateUser changed the token")
		}
		g.Email = "bob@example.test"
		wantErr(t, s.UpdateUser(g), ErrExists, "UpdateUser to a taken email")
		// The freed email can be taken by someone else.
		mustUser(t, s, User{AccountID: "a3", Email: "ann@example.test"})
		if l := must[[]User](t)(s.ListUsers("a2")); len(l) != 1 || l[0].ID != u.ID {
			t.Fatalf("ListUsers(a2) = %+v", l)
		}

		b.Disabled = true
		if err := s.UpdateUser(b); err != nil {
			t.Fatal(err)
		}
		if g := must[User](t)(s.GetUser(b.ID)); !g.Disabled {
			t.Fatal("Disabled not stored")
		}
	})
}

func TestExtraTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		u, main := mustUser(t, s, User{AccountID: "a1", Email: "ann@example.test"})
		t1 := must[string](t)(s.AddUserToken(u.ID))
		t2 := must[string](t)(s.AddUserToken(u.ID))
		if t1 == t2 || t1 == main {
			t.Fatal("tokens not fresh")
		}
		for _, tok := range []string{main, t1, t2} {
			if g := must[User](t)(s.UserByToken(tok)); g.ID != u.ID {
				t.Fatalf("UserByToken = %+v", g)
			}
		}
		_, err := s.AddUserToken("nobody")
		wantErr(t, err, ErrNotFound, "AddUserToken unknown user")

		// Disabled: no token authenticates.
		u = must[User](t)(s.GetUser(u.ID))
		u.Disabled = true
		if err := s.UpdateUser(u); err != nil {
			t.Fatal(err)
		}
		_, err = s.UserByToken(t1)
		wantErr(t, err, ErrNotFound, "token of a disabled user")
		u.Disabled = false
		if err := s.UpdateUser(u); err != nil {
			t.Fatal(err)
		}

		// The roll ends every token of the key.
		fresh := must[string](t)(s.RollUserToken(u.ID))
		for _, tok := range []string{main, t1, t2} {
			_, err := s.UserByToken(tok)
			wantErr(t, err, ErrNotFound, "old token after roll")
		}
		if g := must[User](t)(s.UserByToken(fresh)); g.KeyVersion != 2 || len(g.ExtraTokens) != 0 {
			t.Fatalf("after roll %+v", g)
		}

		// At most MaxExtraTokens; the oldest goes.
		first := must[string](t)(s.AddUserToken(u.ID))
		for range MaxExtraTokens {
			must[string](t)(s.AddUserToken(u.ID))
		}
		_, err = s.UserByToken(first)
		wantErr(t, err, ErrNotFound, "oldest extra token beyond the bound")
		if g := must[User](t)(s.GetUser(u.ID)); len(g.ExtraTokens) != MaxExtraTokens {
			t.Fatalf("%d extra tokens kept", len(g.ExtraTokens))
		}
	})
}

func TestDNSRecords(t *testing.T) {
	eachStore(t, func(t *testing.T, s *testStore) {
		r := must[DNSRecord](t)(s.PutRecord(DNSRecord{Name: "App.Example.test.", Type: "AAAA", Values: []string{"::1"}, ZoneID: "z1", AccountID: "a1", TunnelID: "t1"}))
		if r.Name != "app.example.test" || r.Created.IsZero() || r.Key() != "app.example.test/AAAA" {
			t.Fatalf("record %+v", r)
		}
		must[DNSRecord](t)(s.PutRecord(DNSRecord{Name: "app.example.test", Type: "A", Values: []string{"127.0.0.1"}, ZoneID: "z1", AccountID: "a1"}))
		must[DNSRecord](t)(s.PutRecord(DNSRecord{Name: "app.example.testing", Type: "A", Values: []string{"127.0.0.2"}, AccountID: "a1"}))
		must[DNSRecord](t)(s.PutRecord(DNSRecord{Name: "web.example.net", Type: "CNAME", Values: []string{"pool.lb.culvert.test."}, AccountID: "a2"}))

		// Upsert keeps Created, replaces the rest.
		del := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
		r2 := must[DNSRecord](t)(s.PutRecord(DNSRecord{Name: "app.example.test", Type: "AAAA", Values: []string{"::2", "::3"}, AccountID: "a1", DeleteAt: del, Created: del}))
		if !r2.Created.Equal(r.Created) || len(r2.Values) != 2 || !r2.DeleteAt.Equal(del) {
			t.Fatalf("upsert %+v", r2)
		}

		at := must[[]DNSRecord](t)(s.RecordsByName("APP.example.test"))
		if len(at) != 2 || at[0].Type != "A" || at[1].Type != "AAAA" || !at[1].DeleteAt.Equal(del) {
			t.Fatalf("RecordsByName = %+v", at)
		}
		if l := must[[]DNSRecord](t)(s.RecordsByName("nothing.example.test")); len(l) != 0 {
			t.Fatalf("RecordsByName(none) = %+v", l)
		}
		count := func(acct string, want int) {
			t.Helper()
			if l := must[[]DNSRecord](t)(s.ListRecords(acct)); len(l) != want {
				t.Fatalf("ListRecords(%q) = %d records, want %d", acct, len(l), want)
			}
		}
		count("a1", 3)
		count("a2", 1)
		count("", 4)

		for _, bad := range []DNSRecord{
			{Name: "", Type: "A", Values: []string{"1.2.3.4"}},
			{Name: "x.example.test", Type: "MX", Values: []string{"mx"}},
			{Name: "x.example.test", Type: "A"},
			{Name: "x/y.example.test", Type: "A", Values: []string{"1.2.3.4"}},
		} {
			if _, err := s.PutRecord(bad); err == nil {
				t.Fatalf("bad record accepted: %+v", bad)
			}
		}

		// Moving to another account moves it in the index.
		must[DNSRecord](t)(s.PutRecord(DNSRecord{Name: "app.example.testing", Type: "A", Values: []string{"127.0.0.2"}, AccountID: "a2"}))
		count("a1", 2)
		count("a2", 2)

		if err := s.DeleteRecord("app.example.test", "AAAA"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteRecord("app.example.test", "AAAA"), ErrNotFound, "DeleteRecord twice")
		count("a1", 1)
		count("", 3)

		s2 := s.reopen(t)
		if l := must[[]DNSRecord](t)(s2.ListRecords("")); len(l) != 3 {
			t.Fatalf("after reopen %d records", len(l))
		}
	})
}
