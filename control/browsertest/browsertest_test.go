package browsertest

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// page is a minimal HTML page with body inside; its data: icon keeps the
// browser from requesting /favicon.ico.
func page(title, body string) string {
	return `<!doctype html><html><head><meta charset="utf-8"><title>` + title +
		`</title><link rel="icon" href="data:,"></head><body>` + body + `</body></html>`
}

// newServer serves the pages the tests drive, over TLS with httptest's own
// certificate, which the browser does not trust.
func newServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page("Login", `<h1>Sign in</h1>
<form method="post" action="/welcome">
<input id="name" name="name" type="text" value="placeholder">
<button id="go" type="submit">Go</button>
</form>`))
	})
	mux.HandleFunc("POST /welcome", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page("Welcome", `<p id="greeting">Hello, `+html.EscapeString(r.FormValue("name"))+`!</p>`))
	})
	mux.HandleFunc("GET /clean", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page("Clean", `<p id="ok">fine</p><script>console.log("just a log"); console.warn("a warning")</script>`))
	})
	mux.HandleFunc("GET /console-error", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page("Console", `<p id="ok">loaded</p><script>console.error("boom")</script>`))
	})
	mux.HandleFunc("GET /exception", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page("Exception", `<p id="ok">loaded</p><script>throw new Error("kaboom")</script>`))
	})
	mux.HandleFunc("GET /missing-image", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page("Image", `<p id="ok">loaded</p><img src="/no-such.png" alt="">`))
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestFormFlow(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	b := Start(t)

	if err := b.Navigate(srv.URL + "/login"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Text("h1"); err != nil || got != "Sign in" {
		t.Fatalf("h1 = %q, %v; want Sign in", got, err)
	}
	// Fill replaces the value the field had.
	if err := b.Fill("#name", "Ada <3"); err != nil {
		t.Fatal(err)
	}
	if err := b.Click("#go"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitVisible("#greeting"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Text("#greeting"); err != nil || got != "Hello, Ada <3!" {
		t.Fatalf("greeting = %q, %v; want %q", got, err, "Hello, Ada <3!")
	}
	if got, err := b.Location(); err != nil || got != srv.URL+"/welcome" {
		t.Fatalf("location = %q, %v; want %s/welcome", got, err, srv.URL)
	}

	// Submit, the other way to send the form.
	if err := b.Navigate(srv.URL + "/login"); err != nil {
		t.Fatal(err)
	}
	if err := b.Fill("#name", "Grace"); err != nil {
		t.Fatal(err)
	}
	if err := b.Submit("#name"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Text("#greeting"); err != nil || got != "Hello, Grace!" {
		t.Fatalf("greeting = %q, %v; want Hello, Grace!", got, err)
	}

	path, err := b.Screenshot("welcome")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	if want := filepath.Join(ArtifactDir(t), "TestFormFlow-welcome.png"); path != want {
		t.Errorf("screenshot path = %s, want %s", path, want)
	}
	png, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 100 {
		t.Errorf("screenshot is not a PNG: %d bytes, starting %q", len(png), png[:min(len(png), 8)])
	}

	if errs := b.ConsoleErrors(); len(errs) != 0 {
		t.Errorf("console errors: %q", errs)
	}
}

func TestConsoleErrors(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	b := Start(t)

	for _, tc := range []struct {
		path string
		want string // in the one new error; "" for none
	}{
		{"/clean", ""},
		{"/console-error", "console.error: boom"},
		{"/exception", "kaboom"},
		{"/clean", ""},
		{"/missing-image", "404"},
	} {
		before := len(b.ConsoleErrors())
		if err := b.Navigate(srv.URL + tc.path); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitVisible("#ok"); err != nil {
			t.Fatal(err)
		}
		got := b.ConsoleErrors()[before:]
		t.Logf("%s: %q", tc.path, got)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: console errors %q, want none", tc.path, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: console errors %q, want one with %q", tc.path, got, tc.want)
		}
	}
}

// A page without an icon has the browser ask for /favicon.ico after the
// load; its 404 is reported.
func TestFavicon404(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `<!doctype html><title>No icon</title><p id="ok">hi</p>`)
	}))
	t.Cleanup(srv.Close)
	b := Start(t)
	if err := b.Navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		errs := b.ConsoleErrors()
		if slices.ContainsFunc(errs, func(s string) bool { return strings.Contains(s, "404") && strings.Contains(s, "favicon.ico") }) {
			t.Logf("reported: %q", errs)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no favicon 404 among %q", errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestArtifactDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CULVERT_TEST_ARTIFACTS", filepath.Join(dir, "a", "b"))
	if got := ArtifactDir(t); got != filepath.Join(dir, "a", "b") {
		t.Errorf("ArtifactDir = %s", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil || !fi.IsDir() {
		t.Errorf("not created: %v", err)
	}

	t.Setenv("CULVERT_TEST_ARTIFACTS", "")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.Abs("../.."); root != want {
		t.Errorf("module root = %s, want %s", root, want)
	}
}

func TestFileName(t *testing.T) {
	if got := fileName("TestX/sub case#1-a.b"); got != "TestX_sub_case_1-a.b" {
		t.Errorf("fileName = %q", got)
	}
}

// An action that cannot succeed gives up after Timeout, and the browser
// still works afterwards.
func TestTimeout(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	b := Start(t)
	if err := b.Navigate(srv.URL + "/clean"); err != nil {
		t.Fatal(err)
	}
	b.Timeout = 300 * time.Millisecond
	start := time.Now()
	if err := b.WaitVisible("#no-such-element"); err == nil {
		t.Fatal("WaitVisible of a missing element succeeded")
	} else if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("WaitVisible gave up after %v, Timeout is %v", d, b.Timeout)
	}
	if err := b.Fill("#no-such-element", "x"); err == nil {
		t.Fatal("Fill of a missing element succeeded")
	}
	b.Timeout = DefaultTimeout
	if got, err := b.Text("#ok"); err != nil || got != "fine" {
		t.Fatalf("after a timeout: text = %q, %v", got, err)
	}
}
