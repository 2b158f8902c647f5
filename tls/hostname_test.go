package culverttls

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckHostname(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		zone, host string
		want       error // nil: accepted
		detail     string
	}{
		{"example.test", "app.example.test", nil, ""},
		{"example.test", "a.example.test", nil, ""},
		{"example.test", "my-app-2.example.test", nil, ""},
		{"example.test", "0app.example.test", nil, ""},
		{"example.test", long63 + ".example.test", nil, ""},
		{"example.test", "APP.Example.TEST", nil, ""},  // uppercase normalised
		{"Example.Test", "app.example.test", nil, ""},  // zone too
		{"example.test", "app.example.test.", nil, ""}, // trailing dot
		{"example.test.", "app.example.test", nil, ""}, // on the zone too
		{"sub.example.test", "x.sub.example.test", nil, ""},

		{"example.test", "example.test", ErrApexHostname, "zone example.test itself"},
		{"example.test", "EXAMPLE.test.", ErrApexHostname, ""},

		{"example.test", "a.b.example.test", ErrTooDeep, "2 labels"},
		{"example.test", "x.y.z.example.test", ErrTooDeep, "3 labels"},

		{"example.test", "app.other.test", ErrOutsideZone, "not under the zone example.test"},
		{"example.test", "evilexample.test", ErrOutsideZone, ""}, // lookalike suffix
		{"example.test", "app.evilexample.test", ErrOutsideZone, ""},
		{"example.test", "example.test.evil.test", ErrOutsideZone, ""},
		{"example.test", "test", ErrOutsideZone, ""},
		{"sub.example.test", "app.example.test", ErrOutsideZone, ""},

		{"example.test", "", ErrBadHostname, "empty"},
		{"example.test", "ap_p.example.test", ErrBadHostname, "'_'"},
		{"example.test", "ap p.example.test", ErrBadHostname, ""},
		{"example.test", "*.example.test", ErrBadHostname, "'*'"},
		{"example.test", "-app.example.test", ErrBadHostname, "hyphen"},
		{"example.test", "app-.example.test", ErrBadHostname, "hyphen"},
		{"example.test", ".example.test", ErrBadHostname, "empty label"},
		{"example.test", "app..example.test", ErrBadHostname, "empty label"},
		{"example.test", "app.example.test..", ErrBadHostname, "empty label"},
		{"example.test", "app.example.test:443", ErrBadHostname, "':'"},
		{"example.test", "ä.example.test", ErrBadHostname, ""},
		{"example.test", "\u212aapp.example.test", ErrBadHostname, ""}, // Kelvin sign does not fold to k
		{"example.test", long63 + "a.example.test", ErrBadHostname, "more than 63"},
		{"example.test", "app.example.test\x00", ErrBadHostname, ""},
		{"example.test", "127.0.0.1", ErrBadHostname, "IP address"},
		{strings.Repeat("a.", 125) + "test", "x." + strings.Repeat("a.", 125) + "test", ErrBadHostname, "more than 253"},
		{"", "app.example.test", ErrBadHostname, "zone"},
		{"bad_zone.test", "app.bad_zone.test", ErrBadHostname, "zone"},
	}
	sentinels := []error{ErrApexHostname, ErrTooDeep, ErrOutsideZone, ErrBadHostname}
	for _, tt := range tests {
		err := CheckHostname(tt.zone, tt.host)
		if tt.want == nil {
			if err != nil {
				t.Errorf("CheckHostname(%q, %q) = %v, want nil", tt.zone, tt.host, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("CheckHostname(%q, %q) = %v, want %v", tt.zone, tt.host, err, tt.want)
			continue
		}
		for _, s := range sentinels {
			if s != tt.want && errors.Is(err, s) {
				t.Errorf("CheckHostname(%q, %q) = %v, also matches %v", tt.zone, tt.host, err, s)
			}
		}
		if !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("CheckHostname(%q, %q) = %q, want it to mention %q", tt.zone, tt.host, err, tt.detail)
		}
	}
}

func TestNormalizeHostname(t *testing.T) {
	for in, want := range map[string]string{
		"App.Example.Test":       "app.example.test",
		"app.example.test.":      "app.example.test",
		"app.example.test:443":   "app.example.test",
		"App.Example.Test.:8080": "app.example.test",
		"app.example.test:":      "app.example.test",
		"[::1]:443":              "::1",
		"::1":                    "::1",
		"":                       "",
		"\u212a.test":            "\u212a.test",
		"a.b..":                  "a.b.",
	} {
		if got := NormalizeHostname(in); got != want {
			t.Errorf("NormalizeHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestZoneOf(t *testing.T) {
	ca := newTestCA(t, "origin CA")
	key, _ := GenerateKey()
	issue := func(tmpl *x509.Certificate) *x509.Certificate {
		t.Helper()
		tmpl.SerialNumber = big.NewInt(1)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		return parseTestCert(t, der)
	}
	good := []struct {
		names []string
		zone  string
	}{
		{[]string{"example.test", "*.example.test"}, "example.test"},
		{[]string{"*.example.test", "example.test"}, "example.test"},
		{[]string{"Example.Test", "*.example.test"}, "example.test"},
	}
	for _, g := range good {
		z, err := ZoneOf(issue(&x509.Certificate{DNSNames: g.names}))
		if err != nil || z != g.zone {
			t.Errorf("ZoneOf(%q) = %q, %v; want %q", g.names, z, err, g.zone)
		}
	}
	u, _ := url.Parse("spiffe://x/y")
	bad := []*x509.Certificate{
		{Subject: pkix.Name{CommonName: "example.test"}},
		{DNSNames: []string{"example.test"}},
		{DNSNames: []string{"*.example.test"}},
		{DNSNames: []string{"example.test", "app.example.test"}},
		{DNSNames: []string{"example.test", "*.other.test"}},
		{DNSNames: []string{"example.test", "*.example.test", "*.*.example.test"}},
		{DNSNames: []string{"example.test", "*.example.test", "other.test", "*.other.test"}},
		{DNSNames: []string{"example.test", "*.example.test"}, IPAddresses: localhost},
		{DNSNames: []string{"example.test", "*.example.test"}, URIs: []*url.URL{u}},
		{DNSNames: []string{"a_b.test", "*.a_b.test"}},
	}
	for _, tmpl := range bad {
		names := tmpl.DNSNames
		if z, err := ZoneOf(issue(tmpl)); err == nil {
			t.Errorf("ZoneOf(%q) = %q, want an error", names, z)
		}
	}
	if _, err := ZoneOf(nil); err == nil {
		t.Error("ZoneOf(nil) succeeded")
	}
}
