package etcdv3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDialTimeout bounds the TCP connect and TLS handshake to one
// endpoint when Config.DialTimeout is 0.
const DefaultDialTimeout = 5 * time.Second

// MaxResponseBytes bounds the body of one response, and each message of a
// watch stream: a larger one is an error, not an allocation.
const MaxResponseBytes = 64 << 20

// Config says how to reach a cluster.
type Config struct {
	// Endpoints are the members' client addresses: "host:port" (http, or
	// https when TLS is set), "http://host:port" or "https://host:port".
	Endpoints []string
	// DialTimeout bounds the TCP connect and TLS handshake to one
	// endpoint (DefaultDialTimeout if 0); the call's context bounds the
	// rest.
	DialTimeout time.Duration
	// TLS, if set, is the TLS configuration (server CA, client
	// certificate) of the https endpoints.
	TLS *tls.Config
	// Username and Password, if Username is set, authenticate to a
	// cluster with auth enabled.
	Username, Password string
}

// Client is a connection to a cluster through its HTTP/JSON gateway. Its
// methods are safe for concurrent use.
type Client struct {
	endpoints []string // as configured
	urls      []string // "scheme://host:port", no trailing slash
	cur       atomic.Int32
	tr        *http.Transport
	hc        *http.Client

	user, password string
	// authSem (capacity 1) serialises authentication. token is the
	// current token if authed, which is false before the first
	// authentication and after a rejection; authed with an empty token
	// means that the cluster has auth disabled.
	authSem chan struct{}
	tokenMu sync.Mutex
	token   string
	authed  bool

	// closed is cancelled by Close: it ends in-flight calls and watches.
	closed context.Context
	close  context.CancelFunc
}

// New returns a client of the cluster. It does not connect: the first
// call does.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdv3: no endpoints")
	}
	c := &Client{
		endpoints: append([]string(nil), cfg.Endpoints...),
		user:      cfg.Username,
		password:  cfg.Password,
		authSem:   make(chan struct{}, 1),
	}
	for _, ep := range cfg.Endpoints {
		u, err := endpointURL(ep, cfg.TLS != nil)
		if err != nil {
			return nil, err
		}
		c.urls = append(c.urls, u)
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	d := &net.Dialer{
		Timeout: dialTimeout,
		// Find a dead connection within seconds, so that a watch on it
		// ends instead of waiting forever.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 3 * time.Second, Count: 3},
	}
	var tlsCfg *tls.Config
	if cfg.TLS != nil {
		tlsCfg = cfg.TLS.Clone()
	}
	c.tr = &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: dialTimeout,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	c.hc = &http.Client{
		Transport: c.tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	c.closed, c.close = context.WithCancel(context.Background())
	return c, nil
}

// endpointURL is the base URL of an endpoint.
func endpointURL(ep string, tlsSet bool) (string, error) {
	raw := ep
	if !strings.Contains(ep, "://") {
		scheme := "http://"
		if tlsSet {
			scheme = "https://"
		}
		raw = scheme + ep
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("etcdv3: endpoint %q: %w", ep, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("etcdv3: endpoint %q: want host:port, http://host:port or https://host:port", ep)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Endpoints returns the endpoints as configured.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close ends the calls and watches under way and closes the idle
// connections; later calls fail with ErrClosed.
func (c *Client) Close() error {
	c.close()
	c.tr.CloseIdleConnections()
	return nil
}

// join is ctx also ended by Close.
func (c *Client) join(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.closed, cancel)
	return ctx, func() { stop(); cancel() }
}

// ctxErr is the error of a call whose context ended.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if c.closed.Err() != nil {
		return ErrClosed
	}
	if e := ctx.Err(); e != nil && !errors.Is(err, e) {
		return fmt.Errorf("%w: %w", e, err)
	}
	return err
}

type leaderKey struct{}

// WithRequireLeader returns a context whose calls fail (and whose watches
// end) when the member answering has no leader, instead of waiting for
// one.
func WithRequireLeader(ctx context.Context) context.Context {
	return context.WithValue(ctx, leaderKey{}, true)
}

// call posts in as JSON to path and decodes the answer into out, with the
// token if the client authenticates. readOnly calls are tried on the next
// endpoint after any failure to get an answer; others only when the
// request was certainly not sent.
func (c *Client) call(ctx context.Context, path string, in, out any, readOnly bool) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("etcdv3: %s: %w", path, err)
	}
	ctx, cancel := c.join(ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		token, err := c.authToken(ctx)
		if err != nil {
			return err
		}
		resp, err := c.send(ctx, path, body, token, readOnly)
		if err != nil {
			return err
		}
		err = decodeBody(resp, path, out)
		if err != nil && attempt == 0 && c.rejected(token, err) {
			continue
		}
		if err != nil && ctx.Err() != nil {
			return c.ctxErr(ctx, err)
		}
		return err
	}
}

// send posts body to path on the current endpoint, moving on to the next
// ones as call says. The caller closes the response's body.
func (c *Client) send(ctx context.Context, path string, body []byte, token string, readOnly bool) (*http.Response, error) {
	n := int32(len(c.urls))
	start := c.cur.Load()
	var last error
	for i := range n {
		ep := (start + i) % n
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.urls[ep]+path, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("etcdv3: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		if v, _ := ctx.Value(leaderKey{}).(bool); v {
			req.Header.Set("Grpc-Metadata-Hasleader", "true")
		}
		resp, err := c.hc.Do(req)
		if err == nil {
			if i > 0 {
				c.cur.CompareAndSwap(start, ep)
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, c.ctxErr(ctx, err)
		}
		last = err
		if !readOnly && !notSent(err) {
			// Perhaps applied: say so rather than apply it twice, and
			// start the next call on another endpoint.
			c.cur.CompareAndSwap(start, (ep+1)%n)
			return nil, err
		}
	}
	return nil, last
}

// notSent tells whether err certainly came before the request left.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn)
}

// decodeBody reads a response: out on success, an *Error otherwise. It
// closes the body.
func decodeBody(resp *http.Response, path string, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("etcdv3: %s: read response: %w", path, err)
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("etcdv3: %s: response larger than %d bytes", path, MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(resp.StatusCode, path, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("etcdv3: %s: decode response: %w", path, err)
	}
	return nil
}

// statusError is the error of a response that is not 200 OK.
func statusError(status int, path string, data []byte) error {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Code    int    `json:"code"`
	}
	if json.Unmarshal(data, &e) == nil && (e.Message != "" || e.Error != "") {
		msg := e.Message
		if msg == "" {
			msg = e.Error
		}
		return &Error{Code: e.Code, Message: msg, HTTPStatus: status}
	}
	snippet := strings.TrimSpace(string(data[:min(len(data), 200)]))
	return &Error{Message: fmt.Sprintf("etcdv3: %s: HTTP %d: %q", path, status, snippet), HTTPStatus: status}
}

// authToken returns the token to send: "" without a username, else the
// current one, authenticating first if there is none.
func (c *Client) authToken(ctx context.Context) (string, error) {
	if c.user == "" {
		return "", nil
	}
	select {
	case c.authSem <- struct{}{}:
	case <-ctx.Done():
		return "", c.ctxErr(ctx, ctx.Err())
	}
	defer func() { <-c.authSem }()
	c.tokenMu.Lock()
	token, authed := c.token, c.authed
	c.tokenMu.Unlock()
	if authed {
		return token, nil
	}
	body, err := json.Marshal(struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}{c.user, c.password})
	if err != nil {
		return "", fmt.Errorf("etcdv3: authenticate: %w", err)
	}
	resp, err := c.send(ctx, "/v3/auth/authenticate", body, "", true)
	if err != nil {
		return "", err
	}
	var out struct {
		Token string `json:"token"`
	}
	err = decodeBody(resp, "/v3/auth/authenticate", &out)
	if errors.Is(err, ErrAuthNotEnabled) {
		// No token is needed (until auth is enabled, which makes the
		// cluster reject a call without one: see rejected).
		err, out.Token = nil, ""
	}
	if err != nil {
		return "", c.ctxErr(ctx, fmt.Errorf("etcdv3: authenticate as %q: %w", c.user, err))
	}
	c.tokenMu.Lock()
	c.token, c.authed = out.Token, true
	c.tokenMu.Unlock()
	return out.Token, nil
}

// rejected tells whether err says the cluster no longer accepts token (it
// expired, or the auth store changed); if so it forgets the token, so
// that the next call authenticates again.
func (c *Client) rejected(token string, err error) bool {
	if c.user == "" || !(errors.Is(err, ErrInvalidAuthToken) || errors.Is(err, ErrAuthOldRevision) || errors.Is(err, ErrUserEmpty)) {
		return false
	}
	c.tokenMu.Lock()
	if c.token == token {
		c.token, c.authed = "", false
	}
	c.tokenMu.Unlock()
	return true
}
