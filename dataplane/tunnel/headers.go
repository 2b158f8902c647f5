package tunnel

// HopByHop reports whether an HTTP/1.1 header is connection-specific
// (RFC 9110 §7.6.1) and so must not cross the tunnel: HTTP/2 forbids these
// fields (RFC 9113 §8.2.2) and each side's HTTP/1.1 framing makes its own.
// The name is compared case-insensitively. "te" is dropped too: only
// "trailers" would be allowed, and neither origin nor visitor side needs it.
func HopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return eqFold(name, "te")
	case 7:
		return eqFold(name, "upgrade")
	case 10:
		return eqFold(name, "connection") || eqFold(name, "keep-alive")
	case 16:
		return eqFold(name, "proxy-connection")
	case 17:
		return eqFold(name, "transfer-encoding")
	}
	return false
}

// IsInternal reports whether name is one of the tunnel's own request
// headers that a visitor must not be able to set (HeaderStream,
// HeaderConnectingIP, HeaderRequestID): the edge drops the visitor's and
// sets its own.
func IsInternal(name []byte) bool {
	switch len(name) {
	case len(HeaderStream):
		return eqFold(name, HeaderStream)
	case len(HeaderConnectingIP):
		return eqFold(name, HeaderConnectingIP)
	case len(HeaderRequestID):
		return eqFold(name, HeaderRequestID)
	}
	return false
}

// AppendLower appends name in lower case to dst (HTTP/2 field names are
// lower case; HTTP/1.1 libraries canonicalise to Title-Case).
func AppendLower(dst, name []byte) []byte {
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// eqFold compares b with the lower-case ASCII string s, ignoring b's case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
