package edge

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// Visitors over HTTP/2: on the TLS listener when ALPN picks h2, and on the
// plain listener with prior knowledge (h2c). The engine's server role runs
// the connection; each visitor stream becomes one tunnel stream, headers
// and bodies copied through, websockets by extended CONNECT (RFC 8441).

// ServeVisitorsTLS serves visitors over TLS on ln with cfg (whose
// NextProtos should offer "h2" and "http/1.1"): HTTP/2 when the visitor
// picks h2, HTTP/1.1 otherwise, until the edge shuts down.
func (e *Edge) ServeVisitorsTLS(ln net.Listener, cfg *tls.Config) error {
	return e.serve(ln, func(nc net.Conn) { e.serveTLSVisitor(nc, cfg) })
}

func (e *Edge) serveTLSVisitor(nc net.Conn, cfg *tls.Config) {
	tc := tls.Server(nc, cfg)
	tc.SetDeadline(time.Now().Add(e.cfg.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		e.metrics.visitorTLSFailures.Inc()
		nc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		e.serveH2Visitor(tc, true)
		return
	}
	e.visitor.ServeConn(tc)
}

// serveH2Visitor runs one HTTP/2 visitor connection until it ends.
func (e *Edge) serveH2Visitor(nc net.Conn, isTLS bool) {
	scheme := strHTTP
	if isTLS {
		scheme = "https"
	}
	h := &h2Handler{e: e, scheme: scheme, remote: nc.RemoteAddr()}
	dc := dataplane.NewServerConn(nc, &dataplane.Config{
		Handler:               h,
		Workers:               &e.h2workers,
		EnableConnectProtocol: true,
		MaxConcurrentStreams:  250,
		MaxHeaderListSize:     uint32(e.cfg.MaxHeaderBytes),
		IdleTimeout:           e.cfg.VisitorIdleTimeout,
		PingInterval:          -1, // visitors: the idle timeout is enough
		Logger:                e.logger,
	})
	h.dc = dc
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		dc.Close()
		return
	}
	e.h2conns[dc] = struct{}{}
	e.mu.Unlock()
	e.metrics.h2Conns.Inc()
	dc.Serve()
	e.metrics.h2Conns.Dec()
	e.mu.Lock()
	delete(e.h2conns, dc)
	e.mu.Unlock()
}

// shutdownH2Visitors sends GOAWAY to every HTTP/2 visitor and waits for
// their streams until ctx ends.
func (e *Edge) shutdownH2Visitors(ctx context.Context) {
	e.mu.Lock()
	conns := make([]*dataplane.Conn, 0, len(e.h2conns))
	for dc := range e.h2conns {
		conns = append(conns, dc)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, dc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dc.Shutdown(ctx)
			dc.Close()
		}()
	}
	wg.Wait()
}

type h2Handler struct {
	e      *Edge
	dc     *dataplane.Conn
	scheme string
	remote net.Addr
}

// respond writes one of the edge's own answers on a visitor stream.
func (h *h2Handler) respond(s *dataplane.Stream, status int, kind, text string) {
	body := "culvert: " + text + "\n"
	s.WriteHeaders([]hpack.HeaderField{
		{Name: []byte(":status"), Value: strconv.AppendInt(nil, int64(status), 10)},
		{Name: []byte(tunnel.HeaderError), Value: []byte(kind)},
		{Name: []byte("content-type"), Value: []byte("text/plain; charset=utf-8")},
		{Name: []byte("content-length"), Value: strconv.AppendInt(nil, int64(len(body)), 10)},
	}, false)
	io.WriteString(s, body)
	h.e.metrics.status(status)
}

var (
	strAuthority       = []byte(":authority")
	strCookie          = []byte("cookie")
	strContentEncoding = []byte("content-encoding")
	strVary            = []byte("vary")
	strGzip, strZstd   = []byte("gzip"), []byte("zstd")
)

func encodingValue(enc string) []byte {
	if enc == "zstd" {
		return strZstd
	}
	return strGzip
}

// proxied is one visitor request on its way through the tunnel: what the
// response half needs, on whichever goroutine it runs.
type proxied struct {
	h       *h2Handler
	vs, ts  *dataplane.Stream
	t       *tunnelConn
	rf      *reqFields
	fields  []hpack.HeaderField // the tunnel request (in rf)
	method  []byte              // in vs's headers
	host    []byte              // in hostBuf
	hasBody bool
	retries int
	up      *upload
	start   time.Time
	hostBuf [256]byte

	// p.onResponse and p.relayAndFinish as func values, made once per
	// pooled proxied instead of once per request.
	onResp, slow func()
}

var proxiedPool sync.Pool // *proxied

func getProxied() *proxied {
	if p, _ := proxiedPool.Get().(*proxied); p != nil {
		return p
	}
	p := new(proxied)
	p.onResp, p.slow = p.onResponse, p.relayAndFinish
	return p
}

func (p *proxied) free() {
	if p.rf != nil {
		reqFieldsPool.Put(p.rf)
	}
	onResp, slow := p.onResp, p.slow
	*p = proxied{onResp: onResp, slow: slow}
	proxiedPool.Put(p)
}

// inlineMaxBody: a response whose body is all in by the time its headers
// are read, and no bigger than this, is relayed by the tunnel
// connection's reader itself (see onResponse); it fits a fresh visitor
// stream's send queue, so relaying it never waits.
const inlineMaxBody = 64 << 10

// ServeStream proxies one visitor stream through the tunnel of its
// :authority. A request without a body is handed to the tunnel stream's
// OnResponse callback once sent, instead of waiting for the answer here:
// a small answer is then relayed without a goroutine switch, a bigger one
// by a worker.
func (h *h2Handler) ServeStream(vs *dataplane.Stream) {
	e := h.e
	m := e.metrics
	m.requests.Inc()
	m.h2Requests.Inc()
	p := getProxied()
	p.h, p.vs, p.start = h, vs, time.Now()
	req := vs.Headers()
	p.method = req.Get(":method")
	authority := req.Get(":authority")
	if authority == nil {
		authority = req.Get("host")
	}
	p.host = hostOf(append(p.hostBuf[:0], authority...))
	protocol := req.Get(":protocol")
	ws := string(p.method) == "CONNECT" && string(protocol) == "websocket"
	if string(p.method) == "CONNECT" && !ws {
		m.errBadRequest.Inc()
		h.respond(vs, 405, tunnel.ErrorBadRequest, "CONNECT is not supported here (only websockets, RFC 8441)")
		p.free()
		return
	}
	t := e.reg.pick(p.host)
	if t == nil {
		status, kind, text := e.noRoute(p.host)
		h.respond(vs, status, kind, text)
		p.free()
		return
	}

	p.rf = reqFieldsPool.Get().(*reqFields)
	p.rf.reset()
	h.requestFields(vs, p.rf, ws)
	p.fields = p.rf.build()

	buffered, ended := vs.BodyState()
	p.hasBody = !ws && !(ended && buffered == 0)
	if !p.open(t, !p.hasBody && !ws) {
		p.free()
		return
	}
	switch {
	case ws:
		h.serveWebsocket(vs, p.t, p.ts, p.start)
	case p.hasBody:
		p.up = startUpload(p.ts, vs, m)
		p.relay()
	default:
		vs.Detach()
		p.ts.OnResponse(p.onResp)
		return
	}
	p.free()
}

// open opens the tunnel stream on t (or another connection of the host),
// or answers 530.
func (p *proxied) open(t *tunnelConn, endStream bool) bool {
	e := p.h.e
	t, ts, err := e.openStream(p.host, t, p.fields, endStream)
	if err != nil {
		e.metrics.errTunnel.Inc()
		p.h.respond(p.vs, 530, tunnel.ErrorTunnelOffline, "the tunnel connection failed")
		return false
	}
	p.t, p.ts = t, ts
	return true
}

// onResponse runs on the tunnel connection's reader when the response
// headers are in or the stream failed (OnResponse): a complete, small,
// uncompressed answer is relayed at once; anything else goes to a worker,
// which waits as a handler would.
func (p *proxied) onResponse() {
	if hdrs, err := p.ts.ReadHeaders(doneCtx); err == nil {
		buffered, ended := p.ts.BodyState()
		if enc := p.encoding(hdrs); ended && buffered <= inlineMaxBody && enc == "" {
			p.respond(hdrs, enc)
			p.vs.Finish()
			p.free()
			return
		}
	}
	p.h.e.h2workers.Go(p.slow)
}

// relayAndFinish is onResponse's fallback, on a worker.
func (p *proxied) relayAndFinish() {
	p.relay()
	p.vs.Finish()
	p.free()
}

// doneCtx is a context that has ended: ReadHeaders with it does not wait.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// relay waits for the response headers (moving a request that failed
// before them to another tunnel connection when that is safe) and relays
// the response.
func (p *proxied) relay() {
	e := p.h.e
	for {
		hdrs, err := p.ts.ReadHeaders(streamCtx)
		if err == nil {
			p.respond(hdrs, p.encoding(hdrs))
			return
		}
		e.finishFailed(p.t, p.ts, p.up)
		p.up = nil
		t := e.retryOn(p.host, err, p.method, p.hasBody, &p.retries)
		if t == nil {
			e.metrics.errTunnel.Inc()
			p.h.respond(p.vs, 502, tunnel.ErrorOrigin, "the tunnel stream failed")
			return
		}
		if !p.open(t, !p.hasBody) {
			return
		}
	}
}

// encoding is the compression the edge applies to the response ("" for
// none).
func (p *proxied) encoding(hdrs *dataplane.HeaderList) string {
	status := statusOf(hdrs)
	if string(p.method) == "HEAD" || status == 204 || status == 304 {
		return ""
	}
	return compressionFor(p.vs.Headers().Get("accept-encoding"), p.method, status, hdrs.Get)
}

// respond relays the response whose headers are hdrs to the visitor,
// compressed with enc (p.encoding), and ends the request. It waits only
// for body bytes still to come.
func (p *proxied) respond(hdrs *dataplane.HeaderList, enc string) {
	e, vs, ts := p.h.e, p.vs, p.ts
	m := e.metrics
	status := statusOf(hdrs)
	m.status(status)
	noBody := string(p.method) == "HEAD" || status == 204 || status == 304
	p.rf.resp = responseFields(p.rf.resp[:0], hdrs, enc)
	out := p.rf.resp
	tsBuffered, tsEnded := ts.BodyState()
	if noBody || (tsEnded && tsBuffered == 0 && enc == "") {
		err := vs.WriteHeaders(out, len(ts.Trailers().Fields()) == 0)
		if err == nil && len(ts.Trailers().Fields()) > 0 {
			err = vs.WriteTrailers(trailerFields(ts.Trailers()))
		}
		if err != nil {
			m.errVisitorGone.Inc()
		}
		e.finish(p.t, ts, p.up, p.start, 0)
		return
	}
	if err := vs.WriteHeaders(out, false); err != nil {
		m.errVisitorGone.Inc()
		e.finishFailed(p.t, ts, p.up)
		return
	}
	var body io.Reader = ts
	var cr io.ReadCloser
	if enc != "" {
		cr = newCompressReader(enc, ts)
		body = cr
		m.compressed.Inc()
	}
	n, readErr, writeErr := vs.ReadFromSource(body)
	if cr != nil {
		cr.Close()
	}
	switch {
	case readErr != nil:
		m.errTunnel.Inc()
		vs.Reset(frames.ErrCodeInternal)
		e.finishFailed(p.t, ts, p.up)
		return
	case writeErr != nil:
		m.errVisitorGone.Inc()
		e.finishFailed(p.t, ts, p.up)
		return
	}
	if tr := ts.Trailers(); len(tr.Fields()) > 0 {
		vs.WriteTrailers(trailerFields(tr))
	}
	e.finish(p.t, ts, p.up, p.start, n)
}

// requestFields builds the tunnel request from a visitor's HTTP/2 request:
// the pseudo-header fields, the regular fields without connection-specific
// ones, cookies joined into one field (RFC 9113 §8.2.3: the origin speaks
// HTTP/1.1), and the forwarding fields.
func (h *h2Handler) requestFields(vs *dataplane.Stream, rf *reqFields, ws bool) {
	req := vs.Headers()
	if ws {
		rf.addString(":method", "CONNECT")
		rf.addString(":protocol", "websocket")
	} else {
		rf.add([]byte(":method"), req.Get(":method"), false)
	}
	rf.addString(":scheme", strHTTP)
	if a := req.Get(":authority"); a != nil {
		rf.add(strAuthority, a, false)
	} else {
		rf.add(strAuthority, req.Get("host"), false)
	}
	rf.add([]byte(":path"), req.Get(":path"), false)
	if ws {
		rf.addString(tunnel.HeaderStream, tunnel.StreamWebsocket)
	} else {
		rf.addString(tunnel.HeaderStream, tunnel.StreamHTTP)
	}
	var xff []byte
	var cookie []byte
	cookies := 0
	for _, f := range req.Fields() {
		k := f.Name
		switch {
		case len(k) == 0 || k[0] == ':':
			continue
		case tunnel.HopByHop(k), tunnel.IsInternal(k), len(k) == 4 && eqFoldHost(k):
			continue
		case string(k) == "x-forwarded-for":
			xff = f.Value
			continue
		case string(k) == "cookie":
			if cookies > 0 {
				cookie = append(cookie, "; "...)
			}
			cookie = append(cookie, f.Value...)
			cookies++
			continue
		}
		rf.add(k, f.Value, false)
	}
	if cookies > 0 {
		rf.add(strCookie, cookie, false)
	}
	var ipb [64]byte
	var ipStr []byte
	if ta, ok := h.remote.(*net.TCPAddr); ok {
		ipStr = ta.AddrPort().Addr().Unmap().AppendTo(ipb[:0])
	}
	if len(xff) > 0 {
		v := append(append(append([]byte(nil), xff...), ", "...), ipStr...)
		rf.add(strXFF, v, false)
	} else {
		rf.add(strXFF, ipStr, false)
	}
	rf.addString("x-forwarded-proto", h.scheme)
	rf.add([]byte(tunnel.HeaderConnectingIP), ipStr, false)
	var idb [16]byte
	rf.add([]byte(tunnel.HeaderRequestID), h.e.appendRequestID(idb[:0]), false)
}

func statusOf(hdrs *dataplane.HeaderList) int {
	if v := hdrs.Get(":status"); v != nil {
		if n, err := strconv.Atoi(string(v)); err == nil && n >= 100 && n <= 999 {
			return n
		}
	}
	return 502
}

// responseFields appends to out the visitor's response header list from
// the tunnel's: connection-specific fields dropped, and for a compressed
// body the content-encoding set, content-length dropped, Vary extended and
// a strong ETag weakened. The fields alias hdrs (and new values for Vary
// and ETag): they live until the stream writes them (WriteHeaders copies).
func responseFields(out []hpack.HeaderField, hdrs *dataplane.HeaderList, enc string) []hpack.HeaderField {
	src := hdrs.Fields()
	var vary []byte
	for _, f := range src {
		k := f.Name
		switch {
		case len(k) > 0 && k[0] == ':' && string(k) != ":status":
			continue
		case tunnel.HopByHop(k):
			continue
		case string(k) == tunnel.HeaderError:
			// kept for the visitor, as on HTTP/1.1
		}
		if enc != "" {
			switch string(k) {
			case "content-length":
				continue
			case "vary":
				vary = f.Value
				continue
			case "etag":
				out = append(out, hpack.HeaderField{Name: k, Value: weakETag(f.Value)})
				continue
			}
		}
		out = append(out, f)
	}
	if enc != "" {
		out = append(out,
			hpack.HeaderField{Name: strContentEncoding, Value: encodingValue(enc)},
			hpack.HeaderField{Name: strVary, Value: varyAcceptEncoding(vary)})
	}
	return out
}

func trailerFields(tr *dataplane.HeaderList) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(tr.Fields()))
	for _, f := range tr.Fields() {
		if len(f.Name) > 0 && f.Name[0] != ':' {
			out = append(out, f)
		}
	}
	return out
}

// serveWebsocket relays a websocket opened by extended CONNECT: the
// connector's answer becomes the visitor's, then bytes flow both ways.
func (h *h2Handler) serveWebsocket(vs *dataplane.Stream, t *tunnelConn, ts *dataplane.Stream, start time.Time) {
	e := h.e
	m := e.metrics
	m.websockets.Inc()
	hdrs, err := ts.ReadHeaders(streamCtx)
	if err != nil {
		e.finishFailed(t, ts, nil)
		m.errTunnel.Inc()
		h.respond(vs, 502, tunnel.ErrorOrigin, "the tunnel stream failed")
		return
	}
	status := statusOf(hdrs)
	m.status(status)
	if err := vs.WriteHeaders(responseFields(nil, hdrs, ""), false); err != nil || status != 200 {
		if status != 200 {
			io.Copy(vs, io.LimitReader(ts, 64<<10))
		}
		e.finishFailed(t, ts, nil)
		return
	}
	var wg sync.WaitGroup
	var up int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, rerr, werr := ts.ReadFromSource(vs)
		up = n
		if rerr != nil || werr != nil {
			ts.Reset(frames.ErrCodeCancel)
			return
		}
		ts.CloseWrite()
	}()
	down, rerr, werr := vs.ReadFromSource(ts)
	if rerr != nil || werr != nil {
		vs.Reset(frames.ErrCodeCancel)
		ts.Reset(frames.ErrCodeCancel)
	}
	wg.Wait()
	m.bytesUp.Add(int(up))
	e.finish(t, ts, nil, start, down)
}
