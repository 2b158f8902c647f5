package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/control/browsertest"
)

// needTool returns the path of a command-line tool the test drives; it is
// skipped without it, or fails under CI=true, naming the Debian package.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found: install it with `apt-get install -y " + pkg + "` (or `make tools`)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// culvert runs a culvert command to its end and returns its output.
func culvert(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(culvertBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("culvert %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// digShort asks the edge's DNS server.
func digShort(t *testing.T, dig, dnsAddr, name, typ string) string {
	t.Helper()
	host, port, _ := strings.Cut(dnsAddr, ":")
	out, err := exec.Command(dig, "@"+host, "-p", port, name, typ, "+short", "+time=2", "+tries=1").CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s %s: %v\n%s", name, typ, err, out)
	}
	return strings.TrimSpace(string(out))
}

var loginURL = regexp.MustCompile(`(https://\S+/login/[0-9a-f]+)`)

// TestControlPathStory is the whole control path on loopback: edge up →
// login through the real page in headless Chromium → cert.pem written →
// the tunnel finds the edge by DNS and registers → dig answers the AAAA →
// curl through the tunnel → audit shows Registered and CNAME add → the
// connector stops → Unregistered → the record is gone after the
// (shortened) delay. The dashboard renders without console errors.
func TestControlPathStory(t *testing.T) {
	dig := needTool(t, "dig", "dnsutils")
	curl := needTool(t, "curl", "curl")
	br := browsertest.Start(t)
	const password = "the admin's password"
	t.Setenv("CULVERT_ADMIN_PASSWORD", password)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "edge")
	dnsAddr := freePort(t)
	e := startEdgeProc(t, dataDir, "--dns-addr", dnsAddr, "--admin-email", "admin@example.test",
		"--dns-delete-min", "2s", "--dns-delete-max", "3s")
	culvert(t, "edge", "zone", "create", "example.test", "--no-cert", "--data-dir", dataDir, "--api", "https://"+e.apiAddr)

	// culvert login prints the URL and waits.
	certFile := filepath.Join(dir, "home", "cert.pem")
	login := start(t, "login", "--edge", "https://"+e.apiAddr, "--api-ca", filepath.Join(dataDir, "edge-ca.pem"),
		"--out", certFile, "--no-browser")
	u := login.waitFor(loginURL, 10*time.Second)[1]

	if err := br.Navigate(u); err != nil {
		t.Fatal(err)
	}
	must0(t, br.Fill("#email", "admin@example.test"))
	must0(t, br.Fill("#password", password))
	must0(t, br.Click("#signin"))
	must0(t, br.WaitVisible("#authorize"))
	if _, err := br.Screenshot("login"); err != nil {
		t.Fatal(err)
	}
	must0(t, br.Click("#authorize"))
	must0(t, br.WaitVisible("#done"))
	if err := login.wait(15 * time.Second); err != nil {
		t.Fatalf("culvert login: %v\n%s", err, login.output())
	}
	fi, err := os.Stat(certFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cert.pem: %v, mode %v", err, fi.Mode())
	}
	// Not overwritten without --force.
	out, err := exec.Command(culvertBin, "login", "--edge", "https://"+e.apiAddr, "--out", certFile, "--no-browser").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "use --force") {
		t.Fatalf("a second login over cert.pem: %v %s", err, out)
	}
	insp := culvert(t, "cert", "inspect", certFile)
	for _, want := range []string{"example.test, *.example.test", "Valid until:", "Zone:          example.test", "Control API:   https://" + e.apiAddr} {
		if !strings.Contains(insp, want) {
			t.Fatalf("cert inspect lacks %q:\n%s", want, insp)
		}
	}
	if !regexp.MustCompile(`\((1[0-9]|[2-9][0-9]) years`).MatchString(insp) {
		t.Fatalf("cert inspect: not valid for ten years:\n%s", insp)
	}

	// The tunnel: edges from the SRV record of the edge's DNS server.
	tun := start(t, "tunnel", "--origincert", certFile, "--hostname", "app.example.test", "--hello-world",
		"--discovery-dns", dnsAddr, "--metrics", freePort(t), "--log-format", "json", "--ha-connections", "2")
	tun.waitFor(regexp.MustCompile(`"msg":"edges found by DNS"`), 10*time.Second)
	tun.waitFor(regexp.MustCompile(`"msg":"tunnel connection registered"`), 15*time.Second)

	if got := digShort(t, dig, dnsAddr, "app.example.test", "AAAA"); got != "::1" {
		t.Fatalf("dig AAAA = %q", got)
	}
	if got := digShort(t, dig, dnsAddr, "app.example.test", "A"); got != "127.0.0.1" {
		t.Fatalf("dig A = %q", got)
	}
	if got := digShort(t, dig, dnsAddr, "_culvert._tcp.culvert.test", "SRV"); !strings.Contains(got, "region1.culvert.test.") {
		t.Fatalf("dig SRV = %q", got)
	}
	_, httpPort, _ := strings.Cut(e.httpAddr, ":")
	body, err := exec.Command(curl, "-sS", "--fail", "--max-time", "10", "--resolve", "app.example.test:"+httpPort+":127.0.0.1",
		"http://app.example.test:"+httpPort+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(body), "culvert") {
		t.Fatalf("curl through the tunnel: %v\n%s", err, body)
	}

	audit := culvert(t, "audit", "--origincert", certFile)
	for _, want := range []string{"Registered", "CNAME add", "Login", "CertIssued"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("audit lacks %s:\n%s", want, audit)
		}
	}
	// --last: the newest events only, oldest of them first (compared
	// field by field: the table's padding depends on its rows).
	rows := func(out string) (rs []string) {
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			rs = append(rs, strings.Join(strings.Fields(l), " "))
		}
		return rs
	}
	all := rows(audit)
	if got, want := rows(culvert(t, "audit", "--last", "2", "--origincert", certFile)), append(all[:1:1], all[len(all)-2:]...); !slices.Equal(got, want) {
		t.Fatalf("audit --last 2: %q, want %q", got, want)
	}
	if out, err := exec.Command(culvertBin, "audit", "--last", "2", "--after", "1", "--origincert", certFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "--last and --after") {
		t.Fatalf("audit --last with --after: %v\n%s", err, out)
	}
	if l := culvert(t, "dns", "list", "--origincert", certFile); !strings.Contains(l, "app.example.test") || !strings.Contains(l, "AAAA") {
		t.Fatalf("dns list:\n%s", l)
	}
	if l := culvert(t, "tunnel", "list", "--origincert", certFile); !strings.Contains(l, "app.example.test") || !strings.Contains(l, "connected") {
		t.Fatalf("tunnel list:\n%s", l)
	}

	// The dashboard, in the session the login opened.
	must0(t, br.Navigate("https://"+e.apiAddr+"/dashboard"))
	must0(t, br.WaitVisible("#tunnels"))
	for sel, want := range map[string]string{"#tunnels": "app.example.test", "#records": "AAAA", "#certs": "example.test", "#audit": "CNAME add"} {
		txt, err := br.Text(sel)
		if err != nil || !strings.Contains(txt, want) {
			t.Fatalf("dashboard %s: %q %v", sel, txt, err)
		}
	}
	if _, err := br.Screenshot("dashboard"); err != nil {
		t.Fatal(err)
	}
	if errs := br.ConsoleErrors(); len(errs) > 0 {
		t.Fatalf("console errors: %q", errs)
	}

	// The connector stops: Unregistered, then the records go after the
	// delay (2–3 s here).
	if err := tun.stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("tunnel exit: %v", err)
	}
	stopped := time.Now()
	waitTook(t, 5*time.Second, "Unregistered in the audit log", func() bool {
		return strings.Contains(culvert(t, "audit", "--origincert", certFile), "Unregistered")
	})
	if got := digShort(t, dig, dnsAddr, "app.example.test", "AAAA"); got != "::1" && time.Since(stopped) < 2*time.Second {
		t.Fatalf("the record went before the delay: %q", got)
	}
	waitTook(t, 10*time.Second, "the AAAA record gone", func() bool {
		return digShort(t, dig, dnsAddr, "app.example.test", "AAAA") == ""
	})
	took := time.Since(stopped)
	if took < 2*time.Second {
		t.Fatalf("the record went after %v, before the 2 s minimum", took)
	}
	t.Logf("record deleted %v after the connector stopped", took.Round(10*time.Millisecond))
	audit = culvert(t, "audit", "--origincert", certFile)
	if !strings.Contains(audit, "DNS record deleted") {
		t.Fatalf("audit lacks the deletion:\n%s", audit)
	}
	if l := culvert(t, "dns", "list", "--origincert", certFile); strings.Contains(l, "app.example.test") {
		t.Fatalf("dns list after the delay:\n%s", l)
	}

	// Certificates stay until revoked; a revoked one is refused at the
	// TLS handshake and the connector says so and exits.
	serial := regexp.MustCompile(`Serial:\s+([0-9a-f]+)`).FindStringSubmatch(insp)[1]
	if l := culvert(t, "cert", "list", "--origincert", certFile); !strings.Contains(l, serial) {
		t.Fatalf("cert list lacks %s:\n%s", serial, l)
	}
	culvert(t, "cert", "revoke", serial, "--origincert", certFile)
	again := start(t, "tunnel", "--origincert", certFile, "--hostname", "app.example.test", "--hello-world",
		"--discovery-dns", dnsAddr, "--metrics", freePort(t), "--ha-connections", "1")
	if err := again.wait(20 * time.Second); err == nil || !strings.Contains(again.output(), "certificate") {
		t.Fatalf("a tunnel with a revoked certificate: %v\n%s", err, again.output())
	}
	if !strings.Contains(culvert(t, "audit", "--origincert", certFile), "CertRevoked") {
		t.Fatal("audit lacks CertRevoked")
	}
}

func must0(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStoreSurvivesKill9: after kill -9 of the edge and a restart, its
// zones, tokens, DNS records and audit entries are all there.
func TestStoreSurvivesKill9(t *testing.T) {
	dig := needTool(t, "dig", "dnsutils")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "edge")
	dnsAddr := freePort(t)
	e := startEdgeProc(t, dataDir, "--dns-addr", dnsAddr)
	certFile := e.certFor("example.test", dir)
	tun := start(t, "tunnel", "--origincert", certFile, "--hostname", "app.example.test", "--hello-world",
		"--edge", e.tunnelAddr, "--metrics", freePort(t), "--log-format", "json", "--ha-connections", "1")
	tun.waitFor(regexp.MustCompile(`"msg":"tunnel connection registered"`), 15*time.Second)
	before := culvert(t, "audit", "--origincert", certFile, "--api", "https://"+e.apiAddr)

	e.proc.cmd.Process.Signal(syscall.SIGKILL)
	e.proc.wait(10 * time.Second)
	e.restart()

	if got := digShort(t, dig, dnsAddr, "app.example.test", "AAAA"); got != "::1" {
		t.Fatalf("dig after restart = %q", got)
	}
	// The token in cert.pem still authenticates; the zone, the record and
	// every audit entry from before are there.
	after := culvert(t, "audit", "--origincert", certFile, "--api", "https://"+e.apiAddr)
	for _, line := range strings.Split(strings.TrimSpace(before), "\n")[1:] {
		if !strings.Contains(after, line) {
			t.Fatalf("audit line lost: %q\nafter:\n%s", line, after)
		}
	}
	if l := culvert(t, "dns", "list", "--origincert", certFile, "--api", "https://"+e.apiAddr); !strings.Contains(l, "app.example.test") {
		t.Fatalf("dns list after restart:\n%s", l)
	}
	out, err := exec.Command(culvertBin, "edge", "zone", "create", "example.test", "--no-cert", "--data-dir", dataDir, "--api", "https://"+e.apiAddr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exists") {
		t.Fatalf("the zone was lost: zone create again: %v %s", err, out)
	}
	// The admin token (the edge's own credential) works too.
	culvert(t, "edge", "cert", "list", "--data-dir", dataDir, "--api", "https://"+e.apiAddr)
	tun.waitFor(regexp.MustCompile(`(?s)registered.*registered`), 20*time.Second)
}

// TestAdminCommands drives the edge's admin commands: accounts, users of
// every kind and role, a partial zone, a role change and a removal (each
// rolls the user's key).
func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "edge")
	e := startEdgeProc(t, dataDir)
	adm := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(culvertBin, append(args, "--data-dir", dataDir, "--api", "https://"+e.apiAddr)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("culvert %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := adm(nil, "edge", "account", "create", "acme", "--tunnel-limit", "5")
	m := regexp.MustCompile(`account acme created: id ([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("account create: %s", out)
	}
	acct := m[1]
	if l := adm(nil, "edge", "account", "list"); !strings.Contains(l, acct) || !regexp.MustCompile(acct+`\s+5\s+acme`).MatchString(l) {
		t.Fatalf("account list:\n%s", l)
	}
	adm([]string{"CULVERT_PASSWORD=ann's long password"}, "edge", "user", "create", "ann@acme.test", "--account", acct, "--role", "super_admin")
	out = adm(nil, "edge", "user", "create", "--service", "--name", "ci", "--account", acct)
	if !regexp.MustCompile(`API token \(shown once\): cvt_\S+`).MatchString(out) {
		t.Fatalf("service user create: %s", out)
	}
	// A password is required for a person; a bad role is refused.
	if o, err := exec.Command(culvertBin, "edge", "user", "create", "bob@acme.test", "--account", acct, "--data-dir", dataDir, "--api", "https://"+e.apiAddr).CombinedOutput(); err == nil || !strings.Contains(string(o), "CULVERT_PASSWORD") {
		t.Fatalf("user create without a password: %v %s", err, o)
	}
	cmd := exec.Command(culvertBin, "edge", "user", "create", "bob@acme.test", "--role", "boss", "--account", acct, "--data-dir", dataDir, "--api", "https://"+e.apiAddr)
	cmd.Env = append(os.Environ(), "CULVERT_PASSWORD=bob's long password")
	if o, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(o), "role") {
		t.Fatalf("user create with a bad role: %v %s", err, o)
	}
	adm(nil, "edge", "zone", "create", "acme.test", "--account", acct, "--partial", "--no-cert")
	l := adm(nil, "edge", "user", "list", "--account", acct)
	if !regexp.MustCompile(`super_admin\s+person\s+ann@acme.test`).MatchString(l) || !regexp.MustCompile(`member\s+service\s+ci`).MatchString(l) {
		t.Fatalf("user list:\n%s", l)
	}
	if o := adm(nil, "edge", "user", "set", "ann@acme.test", "--role", "admin"); !strings.Contains(o, "rolled") {
		t.Fatalf("user set: %s", o)
	}
	adm(nil, "edge", "user", "remove", "ann@acme.test")
	if l := adm(nil, "edge", "user", "list", "--account", acct); !regexp.MustCompile(`admin\s+removed\s+ann@acme.test`).MatchString(l) {
		t.Fatalf("user list after remove:\n%s", l)
	}
}
