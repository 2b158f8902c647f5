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

// lastWriteGrace bounds how long Do waits for an upload that was writing
// its last bytes when the response head came, before it returns the
// response with the upload still going (its last write may be stuck behind
// a response the origin cannot finish sending until it is read).
const lastWriteGrace = 250 * time.Millisecond

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

	pipe      *pipeline // nil unless Config.PipelineDepth > 1
	exchanges sync.Pool // *exchange
	closed    atomic.Bool
	trimming  atomic.Bool // a trim of the idle pool is scheduled
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
	if cfg.PipelineDepth > 1 {
		c.pipe = newPipeline(c, cfg.PipelineDepth)
	}
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
// # The request
//
// The caller sets method, request target (path and query, with
// req.SetRequestURI), headers and Host. Do writes the head as it is: the
// target is not parsed or normalized, it reaches the origin byte for byte.
// Do applies Config.HostHeader, sets Host to the origin's address when the
// request has none, and adds nothing (no User-Agent, no default
// Content-Type; Content-Length or Transfer-Encoding as the body needs).
//
// The body is either bytes (req.SetBody) or a stream,
// req.SetBodyStream(r, size): size >= 0 sends Content-Length and exactly
// size bytes of r, size < 0 sends r chunked. A stream is not buffered: a
// goroutine of the Client reads it (up to 32 KiB at a time) and writes each
// Read to the origin at once, while Do waits for the response head (full
// duplex), so the origin may answer, and stream its answer, before the
// upload ends. The stream is read until EOF (or size bytes), an error, or
// the end of the exchange:
//
//   - When Do returns an error, or a response without a body stream, the
//     stream is not read any more: an upload still running was aborted
//     (its connection closed); on a response, one that was writing its
//     last bytes was first given up to 250ms to finish.
//   - When Do returns a response with a body stream, the upload has
//     usually finished (the same 250ms apply); if the origin answered
//     before the upload's end, it goes on while the caller reads the
//     response, until the response body stream is closed, which aborts it
//     if it still runs (again, 250ms for its last bytes).
//
// At the end of the exchange Do closes the stream if it is an io.Closer
// (req.CloseBodyStream, as fasthttp does after sending a stream). Aborting
// an upload closes the stream while the sender may be blocked in its Read,
// to unblock it: an io.Closer stream must allow Close concurrently with
// Read. For a stream that is not an io.Closer, an abort waits for its
// pending Read to return.
//
// # The response
//
// When Do returns nil, resp holds the status and the headers (names
// normalized by fasthttp, no default Content-Type added; 1xx heads other
// than 101 are skipped, trailers dropped), and either
//
//   - resp.BodyStream() == nil: the body is resp.Body(), complete (empty for
//     HEAD, 204, 304 and Content-Length: 0). The exchange is over and the
//     connection back in the pool; or
//   - resp.BodyStream() != nil: the body comes from the origin as it
//     arrives (no timeout applies to it). Read it until io.EOF (a Read may
//     return the last bytes together with io.EOF).
//
// # What the caller must do
//
// With a body stream, the caller must close it, read to the end or not,
// with resp.CloseBodyStream() (ReleaseResponse and resp.Reset do it too).
// That ends the exchange: the connection goes back to the pool if the body
// was read to its end (or its unread rest is already buffered) and both
// sides allow keep-alive, and is closed otherwise. Until then req, and its
// body stream, must stay alive and unchanged, and resp must not be given to
// another Do. So release resp before req. The stream also implements
// fasthttp.ReadCloserWithError: closing it with a non-nil error discards
// the connection. CloseBodyStream may be called from another goroutine to
// abort a Read blocked on the origin; that Read returns an error, and any
// Read after the close returns io.ErrClosedPipe.
//
// A 101 answer is returned without a body and its connection closed: use
// DialUpgrade for upgrades.
//
// # Errors and retries
//
// Errors wrap ErrUnreachable or ErrTimeout where they apply (see Classify);
// a failing request body stream's error is returned wrapped (errors.Is
// finds it). A pooled connection idle for 100ms or more is checked before
// use (on Linux) and dropped if the origin closed it. A request that fails
// on a reused connection before any answer byte is retried on another
// connection, up to 3 attempts, when that is safe: nothing of it was
// written, or it is a GET, HEAD, OPTIONS or TRACE without a body stream.
//
// # Pipelining
//
// With Config.PipelineDepth above 1, a GET or HEAD without a body (and
// without Connection: close or Upgrade) may be written on a connection that
// still has answers to come (HTTP/1.1 pipelining), up to PipelineDepth in
// flight on one connection; everything above holds for it, and in
// addition a pipelined request whose connection breaks, closes or stalls
// behind a streamed answer before its own answer starts is sent again on
// another connection (up to the same 3 attempts). See Config.PipelineDepth.
func (c *Client) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	if c.closed.Load() {
		return errClosed
	}
	if c.hostHeader != "" {
		req.Header.SetHost(c.hostHeader)
	} else if len(req.Header.Host()) == 0 {
		req.Header.SetHost(c.target.defaultHost)
	}
	req.Header.SetNoDefaultContentType(true)
	skipBody := resp.SkipBody
	replayable := !req.IsBodyStream() && isReplayable(&req.Header)
	pipelined := c.pipe != nil && pipelinable(req)
	for attempt := 1; ; attempt++ {
		resp.Reset()
		resp.SkipBody = skipBody
		resp.Header.SetNoDefaultContentType(true)
		var (
			r   retry
			err error
		)
		if pipelined {
			r, err = c.pipe.roundTrip(req, resp)
		} else {
			r, err = c.roundTrip(req, resp)
		}
		if err == nil {
			return nil
		}
		if attempt >= maxAttempts || !(r == retrySafe || r == retryIdempotent && replayable) {
			return err
		}
		// Sent again on a connection of its own: never twice behind
		// another answer.
		if pipelined {
			c.pipe.resent.Add(1)
			pipelined = false
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

	// Write the request: the head and a body of bytes here; a body stream
	// is sent by the exchange's sender.
	streamed := src != nil && srcLen != 0
	var deadline time.Time
	if streamed {
		if srcLen < 0 {
			req.Header.SetContentLength(-1) // Transfer-Encoding: chunked
		}
		// No deadline on the head until the body is sent; each write of
		// the request gets ResponseTimeout.
		oc.writeIdle = c.responseTimeout
	} else {
		oc.writeIdle = 0
		if c.responseTimeout > 0 {
			deadline = time.Now().Add(c.responseTimeout)
		}
	}
	if err := oc.SetDeadline(deadline); err != nil {
		c.closeConn(h)
		return retryNo, err
	}
	bw := c.hc.AcquireWriter(oc)
	err = writeRequest(bw, req)
	c.hc.ReleaseWriter(bw)
	if err != nil {
		c.closeConn(h)
		// A write that failed on a reused connection is the mark of a stale
		// one; a write that timed out is an origin not reading.
		return retryIfReused(reused && !isTimeout(err), retrySafe), c.writeError(err)
	}
	var x *exchange
	switch {
	case streamed:
		x = c.getExchange(h, oc)
		x.startSender(req, src, srcLen)
	case src != nil:
		_ = req.CloseBodyStream() // an empty body stream, done with
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
	// The body.
	cl, reusable := bodyFraming(resp, isHead)
	keep = keep && reusable
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
	switch {
	case x == nil:
		x = c.getExchange(h, oc)
	case x.sendingEnded() && x.waitSent(lastWriteGrace):
		// The upload was ending: wait for it so that the caller gets the
		// request back (the usual case, an origin that reads the whole
		// body before answering).
		x.stopSender(false)
	default:
		// The origin answers while the upload goes on: it continues until
		// the response body is closed.
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

// writeRequest writes req's head as it is (Request.Write is not used: it
// would rebuild the target from a parsed URI) and, unless req has a body
// stream, its body bytes with their Content-Length, and flushes.
func writeRequest(bw *bufio.Writer, req *fasthttp.Request) error {
	var body []byte
	if !req.IsBodyStream() {
		body = req.Body()
		if len(body) > 0 || !(req.Header.IsGet() || req.Header.IsHead()) {
			req.Header.SetContentLength(len(body))
		}
	}
	if err := req.Header.Write(bw); err != nil {
		return err
	}
	if len(body) > 0 {
		if _, err := bw.Write(body); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// bodyFraming returns the length of the body that follows resp's head: its
// Content-Length, -1 for chunked, -2 for a body delimited by the close, 0
// when the answer has none (HEAD, 1xx, 204, 304, or resp.SkipBody, which it
// then sets). reusable is false when the connection cannot carry another
// exchange after it (Connection: close, or a 101).
func bodyFraming(resp *fasthttp.Response, isHead bool) (cl int, reusable bool) {
	reusable = !resp.Header.ConnectionClose()
	status := resp.Header.StatusCode()
	cl = resp.Header.ContentLength()
	switch {
	case status == fasthttp.StatusSwitchingProtocols:
		return 0, false
	case resp.SkipBody || isHead || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified:
		resp.SkipBody = true
		return 0, reusable
	}
	return cl, reusable
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

// releaseConn returns a connection to the pool (or closes it when the
// Client is closed or keeps no idle connection). A pool left with more than
// maxIdle idle connections is trimmed trimAfter later, not at once: under
// more concurrent requests than maxIdle, connections come back and are
// taken again within microseconds, and closing each one that finds the idle
// pool full would make every such request dial a new connection (the origin
// then spends more on accepting and closing than on answering).
func (c *Client) releaseConn(h connHandle) {
	if c.closed.Load() || c.maxIdle == 0 {
		c.closeConn(h)
		return
	}
	hcRelease(c.hc, handleOf(hcRelease, h))
	if c.closed.Load() {
		c.hc.CloseIdleConnections() // Close ran meanwhile
		return
	}
	c.scheduleTrim()
}

// scheduleTrim arranges a trim trimAfter from now when the idle pool is
// above maxIdle and none is scheduled yet.
func (c *Client) scheduleTrim() {
	if !c.closed.Load() && c.hc.IdleConnsCount() > c.maxIdle && c.trimming.CompareAndSwap(false, true) {
		time.AfterFunc(trimAfter, c.trim)
	}
}

// trimAfter is how long the idle pool may stay above maxIdle.
const trimAfter = time.Second

// trim closes idle connections beyond maxIdle.
func (c *Client) trim() {
	for !c.closed.Load() && c.hc.IdleConnsCount() > c.maxIdle {
		cc, err := c.hc.AcquireConn(0, false)
		if err != nil {
			break
		}
		if cc.LastUseTime().IsZero() {
			// Taken by others meanwhile: this one was dialed for us.
			hcRelease(c.hc, cc)
			break
		}
		hcClose(c.hc, cc)
	}
	c.trimming.Store(false)
	c.scheduleTrim() // released again meanwhile
}

func (c *Client) closeConn(h connHandle) { hcClose(c.hc, handleOf(hcClose, h)) }
