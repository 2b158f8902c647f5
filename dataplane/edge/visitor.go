package edge

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"github.com/valyala/fasthttp"
)

// ServeVisitors serves visitors over plain HTTP on ln until the edge shuts
// down: HTTP/1.1, and HTTP/2 for those that start with its preface (h2c
// with prior knowledge).
func (e *Edge) ServeVisitors(ln net.Listener) error {
	if !e.track(ln) {
		ln.Close()
		return errClosed
	}
	defer e.untrack(ln)
	sl := sniffH2C(ln, e.cfg.VisitorReadTimeout, func(c net.Conn) {
		e.wg.Add(1)
		defer e.wg.Done()
		e.serveH2Visitor(c, false)
	})
	err := e.visitor.Serve(sl)
	if e.isClosing() {
		return nil
	}
	return err
}

func (e *Edge) newVisitorServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       e.serveVisitor,
		ErrorHandler:                  e.visitorError,
		StreamRequestBody:             true,
		MaxRequestBodySize:            e.maxBody(),
		ReadBufferSize:                e.cfg.MaxHeaderBytes,
		IdleTimeout:                   e.cfg.VisitorIdleTimeout,
		ReadTimeout:                   e.cfg.VisitorReadTimeout,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 false, // fasthttp owns Date: the edge sets it
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        quietLogger{},
	}
}

// maxBody is the fasthttp limit: bodies above it are streamed, never
// buffered, so "unlimited" is the largest int.
func (e *Edge) maxBody() int {
	if e.cfg.MaxRequestBodySize > 0 {
		return e.cfg.MaxRequestBodySize
	}
	return int(^uint(0) >> 1)
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// visitorError answers a request fasthttp could not parse.
func (e *Edge) visitorError(ctx *fasthttp.RequestCtx, err error) {
	var sbe *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &sbe):
		e.metrics.errHeaderTooLarge.Inc()
		e.errorPage(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, tunnel.ErrorBadRequest, "request header too large")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e.metrics.errBodyTooLarge.Inc()
		e.errorPage(ctx, fasthttp.StatusRequestEntityTooLarge, tunnel.ErrorBadRequest, "request body too large")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			e.metrics.errVisitorTimeout.Inc()
			e.errorPage(ctx, fasthttp.StatusRequestTimeout, tunnel.ErrorBadRequest, "request not received in time")
			return
		}
		e.metrics.errBadRequest.Inc()
		e.errorPage(ctx, fasthttp.StatusBadRequest, tunnel.ErrorBadRequest, "malformed request")
	}
}

// errorPage writes one of the edge's own error responses: short text, the
// kind in tunnel.HeaderError.
func (e *Edge) errorPage(ctx *fasthttp.RequestCtx, status int, kind, text string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.Response.Header.Set(tunnel.HeaderError, kind)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("culvert: " + text + "\n")
	e.metrics.status(status)
}

// hostOf returns the visitor's Host without port, lower-cased in place.
func hostOf(h []byte) []byte {
	if i := lastColon(h); i >= 0 && (len(h) == 0 || h[0] != '[' || h[i-1] == ']') {
		h = h[:i]
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	for len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	for i, c := range h {
		if 'A' <= c && c <= 'Z' {
			h[i] = c + 'a' - 'A'
		}
	}
	return h
}

func lastColon(h []byte) int {
	for i := len(h) - 1; i >= 0; i-- {
		switch h[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}

// reqFields holds a request's header fields while it is opened: names and
// values copied into buf, fields resliced from it.
type reqFields struct {
	fields []hpack.HeaderField
	resp   []hpack.HeaderField // an HTTP/2 visitor's response fields
	buf    []byte
	spans  []int // name end, value end, per field
}

var reqFieldsPool = sync.Pool{New: func() any { return &reqFields{buf: make([]byte, 0, 2048)} }}

func (r *reqFields) reset() {
	clear(r.resp) // drop references to the last stream's headers
	r.resp = r.resp[:0]
	r.fields = r.fields[:0]
	r.buf = r.buf[:0]
	r.spans = r.spans[:0]
}

// add appends a field; lower lower-cases the name.
func (r *reqFields) add(name, value []byte, lower bool) {
	if lower {
		r.buf = tunnel.AppendLower(r.buf, name)
	} else {
		r.buf = append(r.buf, name...)
	}
	r.spans = append(r.spans, len(r.buf))
	r.buf = append(r.buf, value...)
	r.spans = append(r.spans, len(r.buf))
}

func (r *reqFields) addString(name, value string) {
	r.buf = append(r.buf, name...)
	r.spans = append(r.spans, len(r.buf))
	r.buf = append(r.buf, value...)
	r.spans = append(r.spans, len(r.buf))
}

// build slices the fields out of buf (after the last append).
func (r *reqFields) build() []hpack.HeaderField {
	start := 0
	for i := 0; i < len(r.spans); i += 2 {
		ne, ve := r.spans[i], r.spans[i+1]
		r.fields = append(r.fields, hpack.HeaderField{Name: r.buf[start:ne:ne], Value: r.buf[ne:ve:ve]})
		start = ve
	}
	return r.fields
}

var (
	strXFF         = []byte("x-forwarded-for")
	strHTTP        = "http"
	hdrWebsocket   = []byte("websocket")
	websocketGUID  = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	errNoLiveConns = errors.New("no live tunnel connection")
)

// streamCtx is the context of the engine calls a visitor request makes. It
// is not the fasthttp.RequestCtx: that one's Done channel is not a standard
// context's, so the engine's context.AfterFunc would start a goroutine per
// call to watch it. A stream ends with its tunnel connection, and the edge's
// shutdown closes those.
var streamCtx = context.Background()

// serveVisitor sends one visitor request down the tunnel.
func (e *Edge) serveVisitor(ctx *fasthttp.RequestCtx) {
	m := e.metrics
	m.requests.Inc()
	start := time.Now()
	host := hostOf(ctx.Request.Header.Host())
	t := e.reg.pick(host)
	if t == nil {
		status, kind, text := e.noRoute(host)
		e.errorPage(ctx, status, kind, text)
		return
	}
	ws := isWebsocket(&ctx.Request.Header)

	rf := reqFieldsPool.Get().(*reqFields)
	rf.reset()
	defer reqFieldsPool.Put(rf)
	e.requestFields(ctx, rf, ws)
	fields := rf.build()

	cl := ctx.Request.Header.ContentLength()
	hasBody := !ws && (cl > 0 || cl == -1)
	if max := e.cfg.MaxRequestBodySize; max > 0 && cl > max {
		m.errBodyTooLarge.Inc()
		e.errorPage(ctx, fasthttp.StatusRequestEntityTooLarge, tunnel.ErrorBadRequest,
			"request body too large (the limit is "+strconv.Itoa(max)+" bytes)")
		// Closing at once would reset the connection under a client still
		// sending, and it would lose the answer: a body of moderate size
		// is read and dropped, a larger one closes the connection.
		if cl > maxDiscard {
			ctx.SetConnectionClose()
		} else if n, err := io.CopyN(io.Discard, ctx.RequestBodyStream(), int64(cl)); err != nil || n != int64(cl) {
			ctx.SetConnectionClose()
		}
		return
	}
	retries := 0
open:
	t, s, err := e.openStream(host, t, fields, !hasBody && !ws)
	if err != nil {
		m.errTunnel.Inc()
		e.errorPage(ctx, 530, tunnel.ErrorTunnelOffline, "the tunnel connection failed")
		return
	}
	if ws {
		e.serveWebsocket(ctx, t, s, start)
		return
	}
	var up *upload
	if hasBody {
		var body io.Reader = ctx.RequestBodyStream()
		if max := e.cfg.MaxRequestBodySize; max > 0 && cl < 0 {
			// A chunked body has no length to check up front: it is cut
			// (the stream reset) once it passes the limit.
			body = &limitedBody{r: body, left: int64(max)}
		}
		up = startUpload(s, body, m)
	}
	hdrs, err := s.ReadHeaders(streamCtx)
	if err != nil {
		e.finishFailed(t, s, up)
		if t = e.retryOn(host, err, ctx.Request.Header.Method(), hasBody, &retries); t != nil {
			goto open
		}
		m.errTunnel.Inc()
		e.errorPage(ctx, fasthttp.StatusBadGateway, tunnel.ErrorOrigin, "the tunnel stream failed")
		return
	}
	status := e.copyResponseHeaders(ctx, hdrs)
	noBody := ctx.IsHead() || status == 204 || status == 304
	buffered, ended := s.BodyState()
	if noBody || (ended && buffered == 0) {
		if noBody {
			// A HEAD or 304 answer keeps the origin's Content-Length: it
			// tells the size of the body the visitor did not ask for.
			ctx.Response.SkipBody = true
			if v := hdrs.Get("content-length"); v != nil && status != 204 {
				if n, err := strconv.Atoi(string(v)); err == nil && n >= 0 {
					ctx.Response.Header.SetContentLength(n)
				}
			}
		}
		e.finish(t, s, up, start, 0)
		return
	}
	size := -1
	if v := hdrs.Get("content-length"); v != nil {
		if n, err := strconv.Atoi(string(v)); err == nil && n >= 0 {
			size = n
		}
	}
	rb := respBodyPool.Get().(*respBody)
	*rb = respBody{e: e, t: t, s: s, up: up, start: start}
	if enc := compressionFor(ctx.Request.Header.Peek("Accept-Encoding"), ctx.Method(), status, hdrs.Get); enc != "" {
		rh := &ctx.Response.Header
		rh.Set("Content-Encoding", enc)
		rh.SetBytesV("Vary", varyAcceptEncoding(rh.Peek("Vary")))
		if et := rh.Peek("ETag"); et != nil {
			rh.SetBytesV("ETag", weakETag(et))
		}
		m.compressed.Inc()
		ctx.Response.SetBodyStream(&compressedBody{cr: newCompressReader(enc, rb), rb: rb}, -1)
		return
	}
	ctx.Response.SetBodyStream(rb, size)
}

// compressedBody is a response body compressed on its way to the visitor.
type compressedBody struct {
	cr io.ReadCloser
	rb *respBody
}

func (c *compressedBody) Read(p []byte) (int, error) { return c.cr.Read(p) }

// CloseWithError releases the encoder and ends the request (see respBody).
func (c *compressedBody) CloseWithError(err error) error {
	c.cr.Close()
	return c.rb.CloseWithError(err)
}

// noRoute is the answer for a host with no live tunnel connection, for
// errorPage or its HTTP/2 twin: 530 if the hostname belongs to a tunnel,
// 404 otherwise (counted).
func (e *Edge) noRoute(host []byte) (status int, kind, text string) {
	if e.cfg.Registrar.Known(string(host)) {
		e.metrics.errTunnelOffline.Inc()
		return 530, tunnel.ErrorTunnelOffline, "the tunnel for " + string(host) + " has no live connection"
	}
	e.metrics.errUnknownHost.Inc()
	return fasthttp.StatusNotFound, tunnel.ErrorUnknownHost, "no tunnel is configured for " + string(host)
}

// retryOn decides, after a request's stream failed before the response
// headers, whether it goes to another connection of host: a request
// without a body whose stream was not processed (refused, or under a
// GOAWAY), or an idempotent one whose connection died. It returns that
// connection, or nil when the failure stands.
func (e *Edge) retryOn(host []byte, err error, method []byte, hasBody bool, retries *int) *tunnelConn {
	if hasBody || *retries >= maxRetries || !retryable(err, method) {
		return nil
	}
	*retries++
	e.metrics.retries.Inc()
	return e.reg.pick(host)
}

// maxDiscard is the largest request body the edge reads and drops to
// answer 413 cleanly on a connection that stays open.
const maxDiscard = 8 << 20

// maxRetries bounds how often one request moves to another tunnel
// connection.
const maxRetries = 2

// openStream opens a stream for a request on t, or on another connection of
// host if t fails before anything was sent. It returns the connection the
// stream is on, with the stream counted in its in-flight streams.
func (e *Edge) openStream(host []byte, t *tunnelConn, fields []hpack.HeaderField, endStream bool) (*tunnelConn, *dataplane.Stream, error) {
	for attempt := 0; ; attempt++ {
		t.inflight.Add(1)
		s, err := t.dc.OpenStream(streamCtx, fields, endStream)
		if err == nil {
			return t, s, nil
		}
		t.inflight.Add(-1)
		// Opening failed before anything was sent: another connection of
		// the same tunnel may take it.
		if errors.Is(err, dataplane.ErrNoNewStreams) || errors.Is(err, dataplane.ErrConnClosed) {
			t.leaving.Store(true)
		}
		if attempt >= maxRetries {
			return nil, nil, err
		}
		if t = e.reg.pick(host); t == nil {
			return nil, nil, errNoLiveConns
		}
	}
}

// retryable reports whether a request without a body whose stream failed
// with err before the response headers may be sent again: the peer refused
// the stream or it was above the peer's GOAWAY (never processed), or the
// connection died under an idempotent request (RFC 9110 §9.2.2).
func retryable(err error, method []byte) bool {
	if errors.Is(err, dataplane.ErrGoAway) {
		return true
	}
	var re dataplane.ResetError
	if errors.As(err, &re) && re.Remote && re.Code == frames.ErrCodeRefusedStream {
		return true
	}
	if errors.Is(err, dataplane.ErrConnClosed) {
		switch string(method) {
		case "GET", "HEAD", "OPTIONS", "TRACE":
			return true
		}
	}
	return false
}

// requestFields builds the request's HTTP/2 header list for the tunnel.
func (e *Edge) requestFields(ctx *fasthttp.RequestCtx, rf *reqFields, ws bool) {
	h := &ctx.Request.Header
	if ws {
		rf.addString(":method", "CONNECT")
		rf.addString(":protocol", "websocket")
	} else {
		rf.add([]byte(":method"), h.Method(), false)
	}
	rf.addString(":scheme", strHTTP)
	rf.add([]byte(":authority"), h.Host(), false)
	rf.add([]byte(":path"), h.RequestURI(), false)
	if ws {
		rf.addString(tunnel.HeaderStream, tunnel.StreamWebsocket)
	} else {
		rf.addString(tunnel.HeaderStream, tunnel.StreamHTTP)
	}
	var xff []byte
	for k, v := range h.All() {
		switch {
		case tunnel.HopByHop(k), tunnel.IsInternal(k), len(k) == 4 && eqFoldHost(k):
			continue
		case len(k) == len(strXFF) && eqLower(k, strXFF):
			xff = v
			continue
		}
		rf.add(k, v, true)
	}
	ip := ctx.RemoteIP()
	var ipb [64]byte
	ipStr, _ := ip.AppendText(ipb[:0])
	if len(xff) > 0 {
		v := append(append(append([]byte(nil), xff...), ", "...), ipStr...)
		rf.add(strXFF, v, false)
	} else {
		rf.add(strXFF, ipStr, false)
	}
	if ctx.IsTLS() {
		rf.addString("x-forwarded-proto", "https")
	} else {
		rf.addString("x-forwarded-proto", strHTTP)
	}
	rf.add([]byte(tunnel.HeaderConnectingIP), ipStr, false)
	var idb [16]byte
	rf.add([]byte(tunnel.HeaderRequestID), e.appendRequestID(idb[:0]), false)
}

func eqFoldHost(k []byte) bool {
	return (k[0]|0x20) == 'h' && (k[1]|0x20) == 'o' && (k[2]|0x20) == 's' && (k[3]|0x20) == 't'
}

func eqLower(k, lower []byte) bool {
	for i := range k {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendRequestID appends a 16-hex-digit request id: a random per-process
// prefix and a counter, unique without coordination.
func (e *Edge) appendRequestID(dst []byte) []byte {
	v := e.reqPrefix ^ e.reqSeq.Add(1)
	for i := 15; i >= 0; i-- {
		dst = append(dst, hexDigits[(v>>(uint(i)*4))&0xf])
	}
	return dst
}

// copyResponseHeaders sets the visitor's response from the tunnel's and
// returns the status.
func (e *Edge) copyResponseHeaders(ctx *fasthttp.RequestCtx, hdrs *dataplane.HeaderList) int {
	status := 502
	for _, f := range hdrs.Fields() {
		if len(f.Name) > 0 && f.Name[0] == ':' {
			if string(f.Name) == ":status" {
				if n, err := strconv.Atoi(string(f.Value)); err == nil {
					status = n
				}
			}
			continue
		}
		if string(f.Name) == "content-length" {
			continue // SetBodyStream sets the framing
		}
		if string(f.Name) == tunnel.HeaderError {
			e.metrics.connectorError(f.Value)
		}
		ctx.Response.Header.AddBytesKV(f.Name, f.Value)
	}
	ctx.Response.SetStatusCode(status)
	e.metrics.status(status)
	return status
}

// upload copies the visitor's request body into the stream.
type upload struct {
	done chan struct{}
	err  error
	n    int64
}

func startUpload(s *dataplane.Stream, body io.Reader, m *edgeMetrics) *upload {
	up := &upload{done: make(chan struct{})}
	go func() {
		defer close(up.done)
		n, readErr, streamErr := s.ReadFromSource(body)
		up.n = n
		switch {
		case readErr != nil:
			// The visitor's upload broke: the origin must not take a
			// truncated body for a whole one.
			up.err = readErr
			s.Reset(frames.ErrCodeCancel)
		case streamErr != nil:
			up.err = streamErr
		default:
			s.CloseWrite()
		}
		m.bytesUp.Add(int(up.n))
	}()
	return up
}

// limitedBody fails a chunked upload that passes the body limit.
type limitedBody struct {
	r    io.Reader
	left int64
}

var errBodyTooLarge = errors.New("request body over the limit")

func (l *limitedBody) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

// finish ends a request whose response is complete.
func (e *Edge) finish(t *tunnelConn, s *dataplane.Stream, up *upload, start time.Time, n int64) {
	if up != nil {
		select {
		case <-up.done:
		default:
			// The response is complete but the upload goes on: the origin
			// answered without reading it all. Stop it.
			s.Reset(frames.ErrCodeCancel)
			<-up.done
		}
	}
	s.Release()
	t.inflight.Add(-1)
	e.metrics.bytesDown.Add(int(n))
	e.metrics.observe(start)
}

// finishFailed ends a request whose stream failed.
func (e *Edge) finishFailed(t *tunnelConn, s *dataplane.Stream, up *upload) {
	s.Reset(frames.ErrCodeCancel)
	if up != nil {
		<-up.done
	}
	s.Release()
	t.inflight.Add(-1)
}

// respBody streams a response body from the tunnel to the visitor; fasthttp
// closes it (CloseWithError) when the body is written or the visitor has
// gone.
type respBody struct {
	e     *Edge
	t     *tunnelConn
	s     *dataplane.Stream
	up    *upload
	start time.Time
	n     int64
	err   error
}

var respBodyPool = sync.Pool{New: func() any { return new(respBody) }}

func (r *respBody) Read(p []byte) (int, error) {
	n, err := r.s.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// CloseWithError is called by fasthttp once the response is written, with
// the write error, if any. respBody has no Close method on purpose: fasthttp
// calls both Close and CloseWithError on a stream that has both, and the
// second call would come after the first put r back in the pool, where
// another request may already use it.
func (r *respBody) CloseWithError(werr error) error {
	if r.s == nil {
		return nil
	}
	if werr != nil || r.err != nil {
		if r.err != nil {
			r.e.metrics.errTunnel.Inc()
		} else {
			r.e.metrics.errVisitorGone.Inc()
		}
		r.s.Reset(frames.ErrCodeCancel)
	}
	r.e.finish(r.t, r.s, r.up, r.start, r.n)
	*r = respBody{}
	respBodyPool.Put(r)
	return nil
}

// isWebsocket reports whether the request asks for a websocket upgrade.
func isWebsocket(h *fasthttp.RequestHeader) bool {
	if !h.IsGet() {
		return false
	}
	up := h.Peek("Upgrade")
	return len(up) == len(hdrWebsocket) && eqLower(up, hdrWebsocket) && h.ConnectionUpgrade()
}

// serveWebsocket finishes a websocket request: the connector's answer on
// the CONNECT stream becomes the visitor's 101, then bytes flow both ways
// on the hijacked connection.
func (e *Edge) serveWebsocket(ctx *fasthttp.RequestCtx, t *tunnelConn, s *dataplane.Stream, start time.Time) {
	m := e.metrics
	m.websockets.Inc()
	hdrs, err := s.ReadHeaders(streamCtx)
	if err != nil {
		e.finishFailed(t, s, nil)
		m.errTunnel.Inc()
		e.errorPage(ctx, fasthttp.StatusBadGateway, tunnel.ErrorOrigin, "the tunnel stream failed")
		return
	}
	status := 502
	if v := hdrs.Get(":status"); v != nil {
		status, _ = strconv.Atoi(string(v))
	}
	if status != 200 {
		// The origin (or the connector) declined: relay the answer.
		e.copyResponseHeaders(ctx, hdrs)
		body, _ := io.ReadAll(io.LimitReader(s, 64<<10))
		ctx.Response.SetBody(body)
		e.finishFailed(t, s, nil)
		return
	}
	ctx.Response.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	m.status(101)
	ctx.Response.Header.Set("Upgrade", "websocket")
	ctx.Response.Header.Set("Connection", "Upgrade")
	accept := false
	for _, f := range hdrs.Fields() {
		if len(f.Name) == 0 || f.Name[0] == ':' {
			continue
		}
		if string(f.Name) == "sec-websocket-accept" {
			accept = true
		}
		ctx.Response.Header.AddBytesKV(f.Name, f.Value)
	}
	if !accept {
		ctx.Response.Header.Set("Sec-WebSocket-Accept", acceptKey(ctx.Request.Header.Peek("Sec-WebSocket-Key")))
	}
	ctx.Hijack(func(c net.Conn) {
		down, up := dataplane.Splice(s, c)
		c.Close()
		m.bytesUp.Add(int(up))
		e.finish(t, s, nil, start, down)
	})
}

// acceptKey computes Sec-WebSocket-Accept (RFC 6455 §4.2.2).
func acceptKey(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(websocketGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
