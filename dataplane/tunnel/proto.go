// Package tunnel is culvert's tunnel wire protocol above HTTP/2: the stream
// kinds, the header names the edge and the connector agree on, and the
// control-stream messages (Register, Registered, Error, Unregister, Drain)
// with their length-prefixed encoding. docs/PROTOCOL.md describes the same
// protocol for other implementers.
//
// What it is not: the HTTP/2 engine (package dataplane) or either proxy
// (packages edge and connector). It does no I/O of its own beyond reading
// and writing one message on an io.Reader or io.Writer.
package tunnel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version this code speaks; it travels in the
// ALPN ("culvert/1") and in Register.Version as the software version.
const Version = 1

// Header names on tunnel streams. All lower case, as HTTP/2 requires.
const (
	// HeaderStream tells the stream kinds apart on the edge's requests.
	HeaderStream = "culvert-stream"
	// HeaderRequestID is the id the edge gives each visitor request.
	HeaderRequestID = "culvert-request-id"
	// HeaderConnectingIP is the visitor's address as the edge saw it.
	HeaderConnectingIP = "culvert-connecting-ip"
	// HeaderError marks a response the connector (or edge) made itself,
	// with the kind of failure: the edge tells an origin's own 502 from
	// "origin unreachable" by it.
	HeaderError = "culvert-error"
)

// Stream kinds (values of HeaderStream).
const (
	StreamControl   = "control"
	StreamHTTP      = "http"
	StreamWebsocket = "websocket"
)

// Values of HeaderError.
const (
	ErrorOriginUnreachable = "origin-unreachable"
	ErrorOriginTimeout     = "origin-timeout"
	ErrorOrigin            = "origin-error" // the origin broke the exchange (bad response, reset)
	ErrorUnknownHost       = "unknown-hostname"
	ErrorTunnelOffline     = "tunnel-offline"
	ErrorBadRequest        = "bad-request"
)

// Error codes of the control stream's Error message.
const (
	CodeBadToken         = "bad_token"         // the API token is unknown or was rolled: log in again
	CodeZoneMismatch     = "zone_mismatch"     // token, certificate and hostname are not of one zone
	CodeHostnameApex     = "hostname_apex"     // the zone apex cannot be a tunnel hostname
	CodeHostnameTooDeep  = "hostname_too_deep" // only one label under the zone
	CodeHostnameOutside  = "hostname_outside"  // the certificate does not cover the hostname
	CodeHostnameInvalid  = "hostname_invalid"  // not a valid DNS name
	CodeHostnameTaken    = "hostname_taken"    // another account's tunnel holds it
	CodeCertRevoked      = "cert_revoked"
	CodeTunnelLimit      = "tunnel_limit"     // the account runs its maximum of tunnels
	CodeLBPoolMismatch   = "lb_pool_mismatch" // replicas of a hostname name different pools
	CodeUnsupported      = "unsupported"      // version or feature the edge does not speak
	CodeBadMessage       = "bad_message"
	CodeInternal         = "internal"
	CodeShuttingDown     = "shutting_down"
	CodeRegisterTimeout  = "register_timeout"
	CodeAlreadyConnected = "already_registered"
)

// Message types.
const (
	TypeRegister   = "register"
	TypeRegistered = "registered"
	TypeError      = "error"
	TypeUnregister = "unregister"
	TypeDrain      = "drain"
)

// Register is the connector's first message on the control stream.
type Register struct {
	Token        string   `json:"token"`
	Hostname     string   `json:"hostname"`
	LBPool       string   `json:"lb_pool,omitempty"`
	ConnIndex    int      `json:"conn_index"`
	ConnectorID  string   `json:"connector_id"`
	Version      string   `json:"version"`
	Features     []string `json:"features,omitempty"`
	PrevAttempts int      `json:"prev_attempts"`
}

// Registered is the edge's answer to a successful Register.
type Registered struct {
	ConnID    string `json:"conn_id"`
	TunnelID  string `json:"tunnel_id"`
	Location  string `json:"location"`
	URL       string `json:"url"`
	DNSRecord string `json:"dns_record,omitempty"`
	// CNAME is set for a hostname in a partial zone: the record the user
	// must create at the zone's DNS provider, "name. CNAME target.".
	CNAME string `json:"cname,omitempty"`
}

// Error is the edge's answer to a refused Register (then the edge closes the
// connection), or a notice at any time after.
type Error struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds
	Permanent  bool   `json:"permanent"`             // retrying with the same credentials cannot succeed
}

func (e *Error) Error() string {
	return fmt.Sprintf("edge refused: %s (%s)", e.Message, e.Code)
}

// Drain is the edge telling the connector to move this connection elsewhere.
type Drain struct {
	Reason string `json:"reason,omitempty"`
}

// Message is one control-stream message: Type says which of the pointers
// is set.
type Message struct {
	Type       string      `json:"type"`
	Register   *Register   `json:"register,omitempty"`
	Registered *Registered `json:"registered,omitempty"`
	Error      *Error      `json:"error,omitempty"`
	Drain      *Drain      `json:"drain,omitempty"`
}

// MaxMessage bounds one control message (the length prefix is checked before
// anything is read or allocated).
const MaxMessage = 64 << 10

var errTooLarge = errors.New("tunnel: control message too large")

// WriteMessage writes m as a 4-byte big-endian length and its JSON.
func WriteMessage(w io.Writer, m *Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(body) > MaxMessage {
		return errTooLarge
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

// ReadMessage reads one message. It checks that the payload named by Type is
// present and returns a clear error for anything else.
func ReadMessage(r io.Reader) (*Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes", errTooLarge, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	m := new(Message)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("tunnel: bad control message: %w", err)
	}
	ok := false
	switch m.Type {
	case TypeRegister:
		ok = m.Register != nil
	case TypeRegistered:
		ok = m.Registered != nil
	case TypeError:
		ok = m.Error != nil
	case TypeUnregister:
		ok = true
	case TypeDrain:
		ok = true
		if m.Drain == nil {
			m.Drain = &Drain{}
		}
	default:
		return nil, fmt.Errorf("tunnel: unknown control message type %q", m.Type)
	}
	if !ok {
		return nil, fmt.Errorf("tunnel: control message %q without its body", m.Type)
	}
	return m, nil
}
