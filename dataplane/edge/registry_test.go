package edge

import "testing"

func TestRegistryPicksFewestInFlight(t *testing.T) {
	r := newRegistry()
	a := &tunnelConn{hostname: "app.example.test"}
	b := &tunnelConn{hostname: "app.example.test"}
	c := &tunnelConn{hostname: "other.example.test"}
	r.add(a)
	r.add(b)
	r.add(c)
	a.inflight.Store(3)
	b.inflight.Store(1)
	if got := r.pick([]byte("app.example.test")); got != b {
		t.Fatalf("picked %p, want the connection with fewer streams %p", got, b)
	}
	b.leaving.Store(true)
	if got := r.pick([]byte("app.example.test")); got != a {
		t.Fatalf("picked %p, want %p: a leaving connection gets no new streams", got, a)
	}
	if r.pick([]byte("nope.example.test")) != nil {
		t.Fatal("picked a connection for an unknown hostname")
	}
	if r.remove(a) {
		t.Fatal("removing one of two connections reported the last")
	}
	if !r.remove(b) {
		t.Fatal("removing the last connection did not report it")
	}
	if r.remove(b) {
		t.Fatal("removing twice reported the last again")
	}
	if r.pick([]byte("app.example.test")) != nil || r.count("app.example.test") != 0 {
		t.Fatal("a removed hostname still routes")
	}
	if r.count("other.example.test") != 1 || r.hostnames() != 1 || len(r.all()) != 1 {
		t.Fatal("the other hostname was disturbed")
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"App.Example.Test":      "app.example.test",
		"app.example.test:8080": "app.example.test",
		"app.example.test.":     "app.example.test",
		"[::1]:80":              "::1",
		"[::1]":                 "::1",
		"":                      "",
	} {
		if got := string(hostOf([]byte(in))); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkPick is the routing lookup every visitor request makes.
func BenchmarkPick(b *testing.B) {
	r := newRegistry()
	for i := 0; i < 4; i++ {
		r.add(&tunnelConn{hostname: "app.example.test"})
	}
	host := []byte("app.example.test")
	b.ReportAllocs()
	for b.Loop() {
		if r.pick(host) == nil {
			b.Fatal("no pick")
		}
	}
}
