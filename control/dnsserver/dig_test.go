package dnsserver

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDig asks the server with the dig binary, a client that is not this
// package's DNS library.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig not found in PATH: install dnsutils (apt-get install -y dnsutils)")
		}
		t.Skip("dig not found in PATH; install dnsutils (apt-get install -y dnsutils) to run this test")
	}
	d := testData()
	d.Zones = []Zone{{Name: "example.test"}, {Name: "partial.test", Partial: true}}
	d.Records = []Record{
		{Name: "app.example.test", Type: "AAAA", Values: []string{"2001:db8::10"}},
		{Name: "www.example.test", Type: "CNAME", Values: []string{"app.example.test"}},
	}
	d.CDNNames = []string{"app.partial.test"}
	s := startServer(t, d)
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		args = append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
		out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.Fields(strings.TrimSpace(string(out)))
	}

	if got := run("app.example.test", "AAAA", "+short"); !slices.Equal(got, []string{"2001:db8::10"}) {
		t.Errorf("dig app.example.test AAAA: %q", got)
	}
	if got := run("www.example.test", "AAAA", "+short", "+tcp"); !slices.Equal(got, []string{"app.example.test.", "2001:db8::10"}) {
		t.Errorf("dig +tcp www.example.test AAAA: %q", got)
	}
	srv := run("_culvert._tcp.culvert.test", "SRV", "+short")
	slices.Sort(srv)
	want := []string{"1", "1", "1", "1", "7844", "7844", "region1.culvert.test.", "region2.culvert.test."}
	if !slices.Equal(srv, want) {
		t.Errorf("dig SRV: %q, want %q", srv, want)
	}
	if got := run("app.partial.test.cdn.culvert.test", "A", "+short"); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("dig cdn name: %q", got)
	}

	// Full output: flags, the glue, and the status of negative answers.
	full := strings.Join(run("_culvert._tcp.culvert.test", "SRV", "+norecurse"), " ")
	for _, want := range []string{"status: NOERROR", "flags: qr aa;", "ADDITIONAL SECTION:", "region1.culvert.test. 30 IN A 198.51.100.1"} {
		if !strings.Contains(full, want) {
			t.Errorf("dig SRV output lacks %q:\n%s", want, full)
		}
	}
	if full := strings.Join(run("nope.example.test", "A"), " "); !strings.Contains(full, "status: NXDOMAIN") || !strings.Contains(full, "AUTHORITY SECTION: example.test. 30 IN SOA ns1.culvert.test. hostmaster.culvert.test.") {
		t.Errorf("dig NXDOMAIN output:\n%s", full)
	}
	if full := strings.Join(run("app.partial.test", "A"), " "); !strings.Contains(full, "status: REFUSED") {
		t.Errorf("dig partial zone output:\n%s", full)
	}
}
