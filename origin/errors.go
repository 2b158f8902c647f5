package origin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	"github.com/valyala/fasthttp"
)

var (
	// ErrUnreachable means no connection to the origin could be made: the
	// dial was refused, the host name does not resolve, the unix socket is
	// missing, or the TLS handshake with the origin failed (a certificate the
	// origin's CA pool does not trust included). The proxy answers 502.
	ErrUnreachable = errors.New("origin unreachable")

	// ErrTimeout means the origin did not answer in time: the connection (TCP
	// and TLS handshake) took longer than Config.ConnectTimeout, no pooled
	// connection came free within it, the origin accepted no request bytes
	// for Config.ResponseTimeout, or the response head did not arrive within
	// Config.ResponseTimeout. The proxy answers 504.
	ErrTimeout = errors.New("origin timeout")

	// errClosed is returned by Do and DialUpgrade after Close.
	errClosed = errors.New("origin: client closed")
)

// classifiedError is an error of one of the two kinds above. errors.Is
// matches both the kind and the cause; Error reads "<kind>: <cause>".
type classifiedError struct {
	kind  error
	cause error
}

func (e *classifiedError) Error() string   { return e.kind.Error() + ": " + e.cause.Error() }
func (e *classifiedError) Unwrap() []error { return []error{e.kind, e.cause} }

func unreachable(err error) error { return &classifiedError{kind: ErrUnreachable, cause: err} }
func timedOut(err error) error    { return &classifiedError{kind: ErrTimeout, cause: err} }

// Classify maps err to ErrUnreachable or ErrTimeout when it is one of those
// kinds and returns err itself otherwise (nil for nil). Errors from Do and
// DialUpgrade are already wrapped, so errors.Is(err, ErrTimeout) works on
// them directly; Classify also recognizes the raw errors underneath (dial
// and TLS errors, net timeouts, fasthttp.ErrTimeout, deadline exceeded).
func Classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnreachable):
		return ErrUnreachable
	case errors.Is(err, ErrTimeout):
		return ErrTimeout
	case isTimeout(err):
		return ErrTimeout
	case isUnreachable(err):
		return ErrUnreachable
	}
	return err
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isUnreachable(err error) bool {
	var (
		op   *net.OpError
		dns  *net.DNSError
		cve  *tls.CertificateVerificationError
		rhe  tls.RecordHeaderError
		ae   tls.AlertError
		uae  x509.UnknownAuthorityError
		hne  x509.HostnameError
		cie  x509.CertificateInvalidError
		echo *tls.ECHRejectionError
	)
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.As(err, &dns), errors.As(err, &cve), errors.As(err, &rhe), errors.As(err, &ae),
		errors.As(err, &uae), errors.As(err, &hne), errors.As(err, &cie), errors.As(err, &echo):
		return true
	}
	return false
}

// dialError classifies a failed dial or TLS handshake: a deadline is a
// timeout, anything else makes the origin unreachable.
func dialError(err error) error {
	if isTimeout(err) {
		return timedOut(err)
	}
	return unreachable(err)
}
