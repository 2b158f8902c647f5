package culverttls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
)

// The errors CheckHostname wraps; test for them with errors.Is.
var (
	// ErrApexHostname: the hostname is the zone itself. The apex cannot be
	// a tunnel hostname; use a name one label below it.
	ErrApexHostname = errors.New("hostname is the zone apex")
	// ErrTooDeep: the hostname is more than one label below the zone, which
	// the origin certificate's wildcard does not cover.
	ErrTooDeep = errors.New("hostname is more than one label below the zone")
	// ErrOutsideZone: the hostname is not under the zone.
	ErrOutsideZone = errors.New("hostname is outside the zone")
	// ErrBadHostname: the hostname (or the zone) is not a valid DNS name.
	ErrBadHostname = errors.New("invalid hostname")
)

// maxNameLen is the longest DNS name in text form, without the trailing dot.
const maxNameLen = 253

// NormalizeHostname returns h in the form culvert compares hostnames in:
// a port (":443", or "[::1]:443" for a bracketed address) is stripped,
// ASCII letters are lowercased and one trailing dot is removed. It does not
// validate; see CheckHostname.
func NormalizeHostname(h string) string {
	if strings.Contains(h, ":") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
	}
	return normalizeName(h)
}

// normalizeName lowercases ASCII letters and removes one trailing dot.
func normalizeName(s string) string {
	return strings.TrimSuffix(asciiLower(s), ".")
}

// asciiLower lowercases ASCII letters only, so that no non-ASCII rune can
// fold into an ASCII name.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// checkDNSName validates a lowercased name without a trailing dot: at most
// 253 bytes, labels of 1 to 63 letters, digits and hyphens that neither
// start nor end with a hyphen (RFC 1123), and not an IP address.
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name is %d bytes long, more than %d", len(name), maxNameLen)
	}
	if net.ParseIP(name) != nil {
		return errors.New("an IP address, not a DNS name")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q is %d bytes long, more than 63", label, len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("label %q has the character %q (only letters, digits and hyphens are allowed)", label, c)
			}
		}
	}
	return nil
}

// checkZone validates a normalized zone: a DNS name short enough that the
// wildcard under it is one too.
func checkZone(zone string) error {
	if err := checkDNSName(zone); err != nil {
		return err
	}
	if len(zone) > maxNameLen-2 {
		return fmt.Errorf("zone is %d bytes long: the wildcard under it would exceed %d", len(zone), maxNameLen)
	}
	return nil
}

// CheckHostname reports whether hostname may be a tunnel hostname in zone:
// exactly one DNS label under the zone ("app.example.test" in the zone
// "example.test"), since the origin certificate's wildcard covers one label.
// Both are compared case-insensitively and a trailing dot is tolerated; a
// port is not. The error wraps ErrBadHostname (invalid syntax: labels per
// RFC 1123, at most 253 bytes; an invalid zone too), ErrApexHostname,
// ErrTooDeep or ErrOutsideZone, with the detail.
func CheckHostname(zone, hostname string) error {
	z := normalizeName(zone)
	if err := checkZone(z); err != nil {
		return fmt.Errorf("%w: zone %q: %v", ErrBadHostname, zone, err)
	}
	h := normalizeName(hostname)
	if err := checkDNSName(h); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadHostname, hostname, err)
	}
	if h == z {
		return fmt.Errorf("%w: %q is the zone %s itself; use a name one label below it, like app.%s", ErrApexHostname, hostname, z, z)
	}
	label, ok := strings.CutSuffix(h, "."+z)
	if !ok {
		return fmt.Errorf("%w: %q is not under the zone %s", ErrOutsideZone, hostname, z)
	}
	if strings.Contains(label, ".") {
		return fmt.Errorf("%w: %q is %d labels below the zone %s; the origin certificate covers one (like %s.%s)",
			ErrTooDeep, hostname, strings.Count(label, ".")+1, z, label[strings.LastIndexByte(label, '.')+1:], z)
	}
	return nil
}

// ZoneOf returns the zone an origin certificate covers: the DNS name N for
// which "*."+N is also one of its names. An origin certificate has exactly
// these two names; a certificate with other names, with IP, email or URI
// names, or without such a pair is not one, and ZoneOf returns an error.
func ZoneOf(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no certificate")
	}
	if len(cert.IPAddresses) != 0 || len(cert.EmailAddresses) != 0 || len(cert.URIs) != 0 {
		return "", errors.New("not an origin certificate: it has IP, email or URI names")
	}
	if len(cert.DNSNames) != 2 {
		return "", fmt.Errorf("not an origin certificate: it has %d DNS names, not a zone and its wildcard", len(cert.DNSNames))
	}
	a, b := normalizeName(cert.DNSNames[0]), normalizeName(cert.DNSNames[1])
	var zone string
	switch {
	case b == "*."+a:
		zone = a
	case a == "*."+b:
		zone = b
	default:
		return "", fmt.Errorf("not an origin certificate: its names %q and %q are not a zone and its wildcard", cert.DNSNames[0], cert.DNSNames[1])
	}
	if err := checkZone(zone); err != nil {
		return "", fmt.Errorf("not an origin certificate: zone %q: %v", zone, err)
	}
	return zone, nil
}
