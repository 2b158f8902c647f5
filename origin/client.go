package origin

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// maxAttempts bounds the attempts of one Do when pooled connections turn
// out to be stale (see Do).
const maxAttempts = 3

// maxInterim bounds the informational (1xx) heads skipped before the final one.
const maxInterim = 16

// Client is a pooled HTTP/1.1 client for one origin. It is safe for
// concurrent use. Create it with New; Close it when done.
type Client struct {
	// hc is the connection pool and the source of pooled bufio readers and
	// writers. Its Do is never called; see the package documentation.
	hc *fasthttp.HostClient

	target          target
	tls             *tls.Config // nil for plain HTTP
	dialer          net.Dialer
	hostHeader      string
	connectTimeout  time.Duration
	responseTimeout time.Duration // 0: none
	maxIdle         int           // 0: keep no idle connection

	exchanges sync.Pool // *exchange
	closed    atomic.Bool
}

// New checks cfg and returns a Client for its origin. It does not connect:
// an origin that is down shows up as ErrUnreachable from Do. Errors name
// the field at fault (a bad URL, an unreadable or empty CA pool file).
func New(cfg Config) (*Client, error) {
	t, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		target:          t,
		hostHeader:      cfg.HostHeader,
		connectTimeout:  orDefault(cfg.ConnectTimeout, DefaultConnectTimeout),
		responseTimeout: orDefault(cfg.ResponseTimeout, DefaultResponseTimeout),
		maxIdle:         cfg.KeepAliveConnections,
	}
	if cfg.ResponseTimeout < 0 {
		c.responseTimeout = 0
	}
	switch {
	case c.maxIdle == 0:
		c.maxIdle = DefaultKeepAliveConnections
	case c.maxIdle < 0:
		c.maxIdle = 0
	}
	if t.tls {
		if c.tls, err = tlsConfig(&cfg, t); err != nil {
			return nil, err
		}
	} else if cfg.CAPoolFile != "" {
		// Still refuse an unreadable file: the flag was given for a reason.
		if _, err := os.Stat(cfg.CAPoolFile); err != nil {
			return nil, fmt.Errorf("origin: CA pool: %w", err)
		}
	}
	maxConns := cfg.MaxConnsPerHost
	if maxConns <= 0 {
		maxConns = DefaultMaxConnsPerHost
	}
	c.hc = &fasthttp.HostClient{
		Addr:                     t.address,
		DialTimeout:              c.dialForPool,
		MaxConns:                 maxConns,
		MaxConnWaitTimeout:       c.connectTimeout,
		MaxIdleConnDuration:      orDefault(cfg.KeepAliveTimeout, DefaultKeepAliveTimeout),
		ConnPoolStrategy:         fasthttp.LIFO, // the most recently used connection is the least likely to be stale
		ReadBufferSize:           readBufferSize,
		WriteBufferSize:          writeBufferSize,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
	}
	c.exchanges.New = func() any { return &exchange{c: c} }
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Scheme is "https" for a TLS origin (https, unix+tls) and "http" otherwise.
func (c *Client) Scheme() string { return c.target.scheme }

// Close closes the idle connections and stops pooling: a connection busy
// at the time is closed when its exchange ends. Do and DialUpgrade fail
// after Close; exchanges in progress finish normally.
func (c *Client) Close() {
	c.closed.Store(true)
	c.hc.CloseIdleConnections()
}

// Do sends req to the origin and reads the response head into resp.
//
// The caller sets the request: method, request target (path and query, with
// req.SetRequestURI; Do does not parse it, so it reaches the origin byte for
// byte), headers and Host. Do applies Config.HostHeader, sets Host to the
// origin's address when the request has none, and adds nothing else (no
// User-Agent, no default Content-Type).
//
// Request body: either bytes (req.SetBody) or a stream,
// req.SetBodyStream(r, size): size >= 0 sends Content-Length and exactly
// that many bytes, size < 0 sends the body chunked. A stream is read by a
// goroutine of the Client and each Read goes to the origin at once (one
// write, no buffering of the body), concurrently with the wait for the
// response: the origin may answer, and stream its answer, before the upload
// ends. The stream is read until EOF (or exactly size bytes), an error, or
// the end of the exchange:
//
//   - When Do returns an error, or returns a response without a body
//     stream, the stream is no longer read: a still running upload was
//     aborted (and the connection closed) unless its last bytes were
//     already written, in which case Do waited for it.
//   - When Do returns a response with a body stream while the upload is
//     still running, the upload goes on until the response body stream is
//     closed; closing it before the upload has ended aborts the upload.
//
// At the end of the exchange the stream is closed if it is an io.Closer
// (req.CloseBodyStream). To abort an upload the stream is closed while a
// Read may be pending in the sender, which is what unblocks that Read: an
// io.Closer stream must allow Close concurrently with Read. A stream that is
// not an io.Closer delays the end of an aborted exchange until its pending
// Read returns.
//
// Response: when Do returns nil, resp holds the status and headers (names
// normalized by fasthttp, no default Content-Type added; trailers are
// dropped) and one of:
//
//   - resp.BodyStream() == nil: the body is resp.Body(), complete (empty
//     for HEAD, 1xx, 204 and 304, and when Content-Length is 0). The
//     connection is already back in the pool.
//   - resp.BodyStream() != nil: the body is streamed from the origin as it
//     arrives; Read it until io.EOF. The caller must then close it, with
//     resp.CloseBodyStream() (or by releasing or resetting resp), whether or
//     not it read it all: that ends the exchange and returns the connection
//     to the pool (if the body was read to its end and both sides allow
//     keep-alive) or closes it. Until then req must stay alive and
//     unchanged. The stream also implements fasthttp.ReadCloserWithError;
//     closing it with a non-nil error discards the connection.
//     CloseBodyStream may be called from another goroutine to abort a Read
//     blocked on the origin: the Read returns an error and every later Read
//     too. After it the reader returns io.ErrClosedPipe. No timeout applies
//     to reading the body.
//
// A 101 response to a request that asked for an upgrade is returned without
// a body and its connection closed: use DialUpgrade for upgrades.
//
// Errors wrap ErrUnreachable or ErrTimeout where they apply (see Classify).
// A streamed request body that fails is returned wrapped, as is. Stale
// connections: a pooled connection idle for idleProbeAfter or longer is
// checked before use, and a request that fails on a reused connection before
// any response byte arrived is retried on another one when it is safe to
// (nothing of it was written, or it is a GET, HEAD, OPTIONS or TRACE
// without a body stream), up to maxAttempts attempts.
func (c *Client) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	if c.closed.Load() {
		return errClosed
	}
	if c.hostHeader != "" {
		req.Header.SetHost(c.hostHeader)
	} else if len(req.Header.Host()) == 0 {
		req.Header.SetHost(c.target.defaultHost)
	}
	req.UseHostHeader = true
	req.Header.SetNoDefaultContentType(true)
	skipBody := resp.SkipBody
	replayable := !req.IsBodyStream() && isReplayable(&req.Header)
	for attempt := 1; ; attempt++ {
		resp.Reset()
		resp.SkipBody = skipBody
		resp.Header.SetNoDefaultContentType(true)
		r, err := c.roundTrip(req, resp)
		if err == nil {
			return nil
		}
		if attempt >= maxAttempts || !(r == retrySafe || r == retryIdempotent && replayable) {
			return err
		}
	}
}

func isReplayable(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsTrace()
}

// retry says whether a failed round trip may be tried again.
type retry uint8

const (
	retryNo         retry = iota
	retrySafe             // the origin cannot have acted on the request: any request may be retried
	retryIdempotent       // the origin may have seen the request: only replayable ones
)

// acquire takes a connection from the pool, dropping idle ones the origin
// has closed. reused reports a connection that served requests before.
func (c *Client) acquire() (h connHandle, oc *originConn, reused bool, err error) {
	for {
		cc, err := c.hc.AcquireConn(0, false)
		if err != nil {
			if errors.Is(err, fasthttp.ErrNoFreeConns) {
				return nil, nil, false, timedOut(fmt.Errorf("no free connection to the origin within %v (MaxConnsPerHost busy)", c.connectTimeout))
			}
			return nil, nil, false, err // from dial: classified
		}
		oc := cc.Conn().(*originConn)
		last := cc.LastUseTime()
		if last.IsZero() {
			return cc, oc, false, nil
		}
		if time.Since(last) < idleProbeAfter || oc.alive() {
			return cc, oc, true, nil
		}
		c.closeConn(cc)
	}
}

// roundTrip is one attempt of Do.
func (c *Client) roundTrip(req *fasthttp.Request, resp *fasthttp.Response) (retry, error) {
	h, oc, reused, err := c.acquire()
	if err != nil {
		return retryNo, err
	}
	isHead := req.Header.IsHead()
	keep := !req.Header.ConnectionClose()
	src := req.BodyStream()
	srcLen := req.Header.ContentLength()

	// Write the request. A body stream goes through the exchange's sender;
	// anything else is written whole, here.
	var x *exchange
	if src != nil && srcLen != 0 {
		if srcLen < 0 {
			req.Header.SetContentLength(-1) // Transfer-Encoding: chunked
		}
		oc.writeIdle = c.responseTimeout
		if err := oc.SetReadDeadline(time.Time{}); err != nil {
			c.closeConn(h)
			return retryNo, err
		}
		bw := c.hc.AcquireWriter(oc)
		err := req.Header.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		c.hc.ReleaseWriter(bw)
		if err != nil {
			c.closeConn(h)
			return retryIfReused(reused, retrySafe), c.writeError(err)
		}
		x = c.getExchange(h, oc)
		x.startSender(req, src, srcLen)
	} else {
		oc.writeIdle = 0
		var deadline time.Time
		if c.responseTimeout > 0 {
			deadline = time.Now().Add(c.responseTimeout)
		}
		if err := oc.SetDeadline(deadline); err != nil {
			c.closeConn(h)
			return retryNo, err
		}
		bw := c.hc.AcquireWriter(oc)
		err := req.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		c.hc.ReleaseWriter(bw)
		if err != nil {
			c.closeConn(h)
			return retryIfReused(reused, retrySafe), c.writeError(err)
		}
	}

	// Read the head.
	br := c.hc.AcquireReader(oc)
	err = readHead(&resp.Header, br)
	var sendErr error
	if x != nil {
		sendErr = x.headRead()
	}
	if err != nil {
		c.hc.ReleaseReader(br)
		if x != nil {
			x.stopSender(true)
			x.finish(false)
		} else {
			c.closeConn(h)
		}
		switch {
		case sendErr != nil:
			return retryNo, sendErr
		case isTimeout(err):
			return retryNo, timedOut(fmt.Errorf("no response head from the origin within %v", c.responseTimeout))
		case err == io.EOF:
			return retryIfReused(reused, retryIdempotent), errors.New("origin: connection closed before the response head")
		}
		return retryNo, fmt.Errorf("origin: reading the response head: %w", err)
	}
	keep = keep && !resp.Header.ConnectionClose()

	// The body.
	status := resp.Header.StatusCode()
	cl := resp.Header.ContentLength()
	switch {
	case status == fasthttp.StatusSwitchingProtocols:
		keep = false
		cl = 0
	case resp.SkipBody || isHead || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified:
		resp.SkipBody = true
		cl = 0
	}
	if cl >= 0 && cl <= br.Buffered() {
		// The whole body came with the head.
		if cl > 0 {
			b, _ := br.Peek(cl)
			resp.SetBody(b)
			_, _ = br.Discard(cl)
		}
		keep = keep && br.Buffered() == 0
		c.hc.ReleaseReader(br)
		if x == nil {
			if keep {
				c.releaseConn(h)
			} else {
				c.closeConn(h)
			}
			return retryNo, nil
		}
		x.stopSender(!x.sendingEnded())
		x.finish(keep)
		return retryNo, nil
	}
	if x == nil {
		x = c.getExchange(h, oc)
	} else if !x.sendingEnded() {
		// The origin answers while the upload goes on: it continues until
		// the response body is closed.
	} else {
		x.stopSender(false)
	}
	if err := oc.SetReadDeadline(time.Time{}); err != nil {
		c.hc.ReleaseReader(br)
		x.stopSender(true)
		x.finish(false)
		return retryNo, err
	}
	x.startBody(br, cl, keep)
	resp.SetBodyStream(&responseBody{x: x}, cl)
	return retryNo, nil
}

func retryIfReused(reused bool, r retry) retry {
	if reused {
		return r
	}
	return retryNo
}

func (c *Client) writeError(err error) error {
	if isTimeout(err) {
		return timedOut(fmt.Errorf("the origin accepted no request bytes within %v", c.responseTimeout))
	}
	return fmt.Errorf("origin: writing the request: %w", err)
}

// readHead reads the final response head, skipping informational ones
// (100 Continue, 103 Early Hints) but not 101.
func readHead(h *fasthttp.ResponseHeader, br *bufio.Reader) error {
	for i := 0; ; i++ {
		if err := h.Read(br); err != nil {
			return err
		}
		s := h.StatusCode()
		if s < 100 || s > 199 || s == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if i == maxInterim {
			return errors.New("too many informational responses")
		}
	}
}

// connHandle is what this package uses of fasthttp's pooled connection
// handle, whose type is unexported.
type connHandle interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

// The pool's release and close methods as plain functions: they take
// fasthttp's handle type, which handleOf recovers from a connHandle.
var (
	hcRelease = (*fasthttp.HostClient).ReleaseConn
	hcClose   = (*fasthttp.HostClient).CloseConn
)

// handleOf returns h as the concrete handle type that fn takes.
func handleOf[H connHandle](_ func(*fasthttp.HostClient, H), h connHandle) H { return h.(H) }

// releaseConn returns a connection to the pool, or closes it when the pool
// already keeps maxIdle idle connections or the Client is closed.
func (c *Client) releaseConn(h connHandle) {
	if c.closed.Load() || c.hc.IdleConnsCount() >= c.maxIdle {
		c.closeConn(h)
		return
	}
	hcRelease(c.hc, handleOf(hcRelease, h))
	if c.closed.Load() {
		c.hc.CloseIdleConnections() // Close ran meanwhile
	}
}

func (c *Client) closeConn(h connHandle) { hcClose(c.hc, handleOf(hcClose, h)) }
