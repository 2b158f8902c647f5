// Package browsertest drives pages in a throwaway headless Chromium for
// tests, through the DevTools protocol (github.com/chromedp/chromedp): the
// machine's chromium binary (Debian's chromium package; `make tools`
// installs it), with a fresh profile in the test's temp dir, killed when
// the test ends.
//
// It is for tests only. The browser accepts any TLS certificate
// (--ignore-certificate-errors), so that it can load pages served with a
// certificate from a test CA, runs without its sandbox, and is kept off
// the network apart from the URLs the test navigates to (no sync, no
// component updates, no first-run or background requests). It never
// downloads a browser: without the binary the test is skipped, or fails
// when CI=true, naming the package to install.
//
// Each action (Navigate, Fill, Click, ...) is bounded by Browser.Timeout;
// selectors are CSS selectors, and actions on an element wait until it is
// visible. Messages the page logs as errors are collected from the start
// and returned by ConsoleErrors, so a test can check that a page loads
// cleanly.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ErrNotInstalled is returned (wrapped) by Binary when no Chromium binary
// is found.
var ErrNotInstalled = errors.New("chromium not found in $CHROMIUM, PATH (chromium, chromium-browser) nor at /usr/bin/chromium: install it with `apt-get install -y chromium` (or `make tools`)")

// DefaultTimeout is the initial Browser.Timeout, and bounds how long Start
// waits for the browser to come up.
const DefaultTimeout = 20 * time.Second

// Binary returns the path of the Chromium binary: $CHROMIUM if set (a
// path, or a name looked up in PATH), else chromium or chromium-browser in
// PATH, else /usr/bin/chromium. A $CHROMIUM that names no executable is an
// error, but not ErrNotInstalled: a test asking for a given browser fails
// rather than skips.
func Binary() (string, error) {
	if env := os.Getenv("CHROMIUM"); env != "" {
		p, err := exec.LookPath(env)
		if err != nil {
			return "", fmt.Errorf("browsertest: $CHROMIUM=%q: %w", env, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	const deb = "/usr/bin/chromium"
	if fi, err := os.Stat(deb); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return deb, nil
	}
	return "", ErrNotInstalled
}

// Unavailable ends the test for an error finding or starting the browser:
// skipped if Chromium is not installed (failed when CI=true, where it must
// be), failed otherwise.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

// Browser is one headless Chromium with one tab, which the methods drive.
// Its methods may be called from one goroutine at a time; ConsoleErrors
// may be called at any time.
type Browser struct {
	// Timeout bounds each action. It is DefaultTimeout after Start; set it
	// before use, not concurrently with an action.
	Timeout time.Duration

	t   testing.TB
	ctx context.Context // the tab's chromedp context

	mu     sync.Mutex
	errs   []string
	closed bool
}

// Start launches a browser for the test, with a blank tab. It skips or
// fails the test when Chromium is missing (see Unavailable), fails it when
// the browser does not come up within DefaultTimeout, and kills the
// browser, with all its processes, when the test ends. Extra command-line
// flags ("--name=value" or "--name") come after the default ones, e.g.
// "--host-resolver-rules=MAP app.example.test 127.0.0.1" to reach a test
// server by name.
func Start(t testing.TB, extraFlags ...string) *Browser {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		Unavailable(t, err)
	}
	// Made before the cleanup below is registered, so removed after it,
	// once the browser is dead.
	profile := t.TempDir()

	var cmd *exec.Cmd
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.WSURLReadTimeout(DefaultTimeout),
		chromedp.ModifyCmdFunc(func(c *exec.Cmd) {
			cmd = c
			setProcAttr(c)
		}),
	}
	for _, f := range append(flags[:len(flags):len(flags)], extraFlags...) {
		name, value, ok := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if ok {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}

	b := &Browser{Timeout: DefaultTimeout, t: t}
	logf := func(format string, args ...any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.closed {
			t.Logf("browsertest: chromedp: "+format, args...)
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithErrorf(logf), chromedp.WithLogf(logf))
	b.ctx = tabCtx
	chromedp.ListenTarget(tabCtx, b.collect)

	stop := func() {
		// The profile is throwaway: no graceful close, kill the whole
		// process group (renderers, GPU and utility processes too) so
		// that nothing writes to it while it is removed.
		if cmd != nil {
			killProcs(cmd)
		}
		cancelTab()
		cancelAlloc()
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
	}

	// The first Run starts the browser and attaches to its tab. Its
	// context must be the tab's own (the process lives as long as it), so
	// bound it with a timer instead.
	timer := time.AfterFunc(DefaultTimeout, cancelTab)
	err = chromedp.Run(tabCtx)
	if !timer.Stop() && err == nil {
		err = context.DeadlineExceeded
	}
	if err != nil {
		stop()
		t.Fatalf("browsertest: start %s (within %v): %v", bin, DefaultTimeout, err)
	}
	t.Cleanup(stop)
	return b
}

// flags are the Chromium command-line flags Start uses, besides
// --user-data-dir (a fresh t.TempDir per browser), and
// --remote-debugging-port=0 and the about:blank first page, which
// chromedp adds.
var flags = []string{
	"--headless",
	"--no-sandbox", // tests run as root in containers
	"--disable-gpu",
	"--disable-dev-shm-usage", // containers have a small /dev/shm
	"--ignore-certificate-errors",
	"--window-size=1280,800",
	"--hide-scrollbars",
	"--mute-audio",
	// No network but the test's own: no first-run, sync, update,
	// metrics or safe-browsing requests, no QUIC probing.
	"--disable-quic",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-default-apps",
	"--disable-extensions",
	"--disable-breakpad",
	"--disable-client-side-phishing-detection",
	"--disable-domain-reliability",
	"--safebrowsing-disable-auto-update",
	"--metrics-recording-only",
	"--no-pings",
	"--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
	// No keyring, no popups, no throttling of a tab nobody sees.
	"--password-store=basic",
	"--use-mock-keychain",
	"--disable-popup-blocking",
	"--disable-prompt-on-repost",
	"--disable-hang-monitor",
	"--disable-background-timer-throttling",
	"--disable-backgrounding-occluded-windows",
	"--disable-renderer-backgrounding",
}

// Run runs chromedp actions on the tab, bounded by Timeout: the way to do
// what the other methods do not.
func (b *Browser) Run(actions ...chromedp.Action) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

// Navigate loads url and waits for its load event. An HTTP error status
// is not an error here (the page shows); a failed load is.
func (b *Browser) Navigate(url string) error {
	if err := b.Run(chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("browsertest: navigate to %s: %w", url, err)
	}
	return nil
}

// Fill waits for the first element matching selector to be visible,
// clears its value and types text into it, key by key (so the page sees
// input events).
func (b *Browser) Fill(selector, text string) error {
	// Not chromedp.SetValue(selector, ""): chromedp drops the empty
	// string argument and the field ends up holding "undefined".
	sel, err := json.Marshal(selector)
	if err != nil {
		return fmt.Errorf("browsertest: fill %q: %w", selector, err)
	}
	var cleared bool
	err = b.Run(
		chromedp.WaitVisible(selector, chromedp.ByQuery),
		chromedp.Evaluate(`((e) => {
			if (!e || !("value" in e)) return false;
			e.value = "";
			e.dispatchEvent(new Event("input", {bubbles: true}));
			return true;
		})(document.querySelector(`+string(sel)+`))`, &cleared),
		chromedp.ActionFunc(func(context.Context) error {
			if !cleared {
				return errors.New("element has no value to fill")
			}
			return nil
		}),
		chromedp.SendKeys(selector, text, chromedp.ByQuery),
	)
	if err != nil {
		return fmt.Errorf("browsertest: fill %q: %w", selector, err)
	}
	return nil
}

// Click waits for the first element matching selector to be visible and
// clicks it with the mouse. It does not wait for a navigation the click
// starts: wait for an element of the next page with WaitVisible.
func (b *Browser) Click(selector string) error {
	if err := b.Run(chromedp.Click(selector, chromedp.ByQuery)); err != nil {
		return fmt.Errorf("browsertest: click %q: %w", selector, err)
	}
	return nil
}

// Submit submits the form of the first element matching selector (the
// form itself or an element in it), as form.submit() does: without a
// submit event or validation. Like Click, it does not wait for the next
// page.
func (b *Browser) Submit(selector string) error {
	if err := b.Run(chromedp.Submit(selector, chromedp.ByQuery)); err != nil {
		return fmt.Errorf("browsertest: submit %q: %w", selector, err)
	}
	return nil
}

// WaitVisible waits until an element matching selector is visible.
func (b *Browser) WaitVisible(selector string) error {
	if err := b.Run(chromedp.WaitVisible(selector, chromedp.ByQuery)); err != nil {
		return fmt.Errorf("browsertest: wait for %q: %w", selector, err)
	}
	return nil
}

// Text waits for an element matching selector to be visible and returns
// the visible text (innerText) of the first one.
func (b *Browser) Text(selector string) (string, error) {
	var s string
	err := b.Run(
		chromedp.WaitVisible(selector, chromedp.ByQuery),
		chromedp.Text(selector, &s, chromedp.ByQuery),
	)
	if err != nil {
		return "", fmt.Errorf("browsertest: text of %q: %w", selector, err)
	}
	return s, nil
}

// Location returns the URL of the page shown.
func (b *Browser) Location() (string, error) {
	var s string
	if err := b.Run(chromedp.Location(&s)); err != nil {
		return "", fmt.Errorf("browsertest: location: %w", err)
	}
	return s, nil
}

// Screenshot saves a PNG of the whole page (not just the window) as
// ArtifactDir(t)/<test name>-<name>.png and returns its path.
func (b *Browser) Screenshot(name string) (string, error) {
	var png []byte
	if err := b.Run(chromedp.FullScreenshot(&png, 100)); err != nil {
		return "", fmt.Errorf("browsertest: screenshot: %w", err)
	}
	path := filepath.Join(ArtifactDir(b.t), fileName(b.t.Name()+"-"+name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", fmt.Errorf("browsertest: screenshot: %w", err)
	}
	return path, nil
}

// ConsoleErrors returns the errors the pages reported since Start, in
// order: console.error calls and failed console.assert, uncaught
// exceptions and unhandled rejections, and browser log entries of level
// error, which include resources that failed to load (a 404 for
// /favicon.ico among them: give test pages an icon, e.g.
// <link rel="icon" href="data:,">). Errors that come after a page's load
// event (late scripts, the favicon) may not be there yet when Navigate
// returns.
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// collect is the tab's event listener. It runs on chromedp's event
// goroutine, so it must not block.
func (b *Browser) collect(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.APITypeError && ev.Type != runtime.APITypeAssert {
			return
		}
		msg = "console." + string(ev.Type) + ": " + formatArgs(ev.Args) + stackLocation(ev.StackTrace)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d == nil {
			return
		}
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		} else if d.Exception != nil {
			text += " " + formatArgs([]*runtime.RemoteObject{d.Exception})
		}
		msg = "exception: " + text
		if d.URL != "" {
			msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil || e.Level != log.LevelError {
			return
		}
		msg = string(e.Source) + ": " + e.Text
		if e.URL != "" {
			msg += " (" + e.URL + ")"
		}
	default:
		return
	}
	b.mu.Lock()
	b.errs = append(b.errs, msg)
	b.mu.Unlock()
}

// formatArgs renders console arguments roughly as the console does.
func formatArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case a.Type == runtime.TypeString && len(a.Value) > 0:
			s, err := strconv.Unquote(string(a.Value))
			if err != nil {
				s = string(a.Value)
			}
			parts = append(parts, s)
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// stackLocation is " (url:line)" for the top frame of st, if any.
func stackLocation(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
}

// ArtifactDir is where tests leave files to look at after a run
// (screenshots): $CULVERT_TEST_ARTIFACTS if set, else test-artifacts in the
// module root (the nearest directory with a go.mod above the test's
// working directory, which is its package's). It is created if missing.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CULVERT_TEST_ARTIFACTS")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatalf("browsertest: artifact dir: %v (set CULVERT_TEST_ARTIFACTS)", err)
		}
		dir = filepath.Join(root, "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: artifact dir: %v", err)
	}
	return dir
}

// moduleRoot walks up from the working directory to a directory holding
// go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s nor above", wd)
		}
		dir = parent
	}
}

// fileName makes s (a test name, with / for subtests) safe as a file
// name.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
