package connector

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"github.com/culvert-tunnel/culvert/origin"
	"github.com/valyala/fasthttp"
)

// fieldScratch holds a response's header fields while they are built. The
// names are lower-cased into buf; fields alias buf and the fasthttp header's
// values, so they are valid until the response is released.
type fieldScratch struct {
	fields []hpack.HeaderField
	buf    []byte
	body   []byte // a small body read whole (wholeBodyMax)
}

// wholeBodyMax: an origin body announced with a Content-Length up to this
// is read whole before the response goes down the stream, so that its
// headers, body and end leave in one batch (and reach the edge in one
// read) instead of headers first.
const wholeBodyMax = 16 << 10

var scratchPool = sync.Pool{New: func() any { return &fieldScratch{buf: make([]byte, 0, 1024)} }}

var statusText [600][]byte

func init() {
	for i := range statusText {
		statusText[i] = []byte(strconv.Itoa(i))
	}
}

func statusBytes(code int) []byte {
	if code >= 0 && code < len(statusText) {
		return statusText[code]
	}
	return []byte(strconv.Itoa(code))
}

// serveHTTP forwards one request stream to the origin and streams the
// answer back. It owns req and resp until it returns.
//
// Its frame is on the goroutine's stack while the origin's answer is read
// and parsed, the deepest point of a request: the error answers and the
// relay of the response live in functions of their own, so that a fresh
// handler goroutine seldom has to grow its stack there, where growing
// means copying every frame below.
func (cn *conn) serveHTTP(s *dataplane.Stream) {
	m := cn.c.metrics
	start := time.Now()
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	m.requests.Inc()

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	var body *bodyReader
	defer func() {
		// Counted once the exchange is over (resp released below): the
		// upload may go on after Do returns, until the response body is
		// closed.
		if body != nil {
			m.bytesUp.Add(int(body.n))
		}
	}()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	if !buildOriginRequest(req, s.Headers()) {
		m.errBadRequest.Inc()
		writeGenerated(s, 400, tunnel.ErrorBadRequest, "culvert: malformed request on the tunnel\n")
		return
	}
	body = requestBody(s, req)
	if body != nil {
		body.s = s
	}
	resp.Header.SetNoDefaultContentType(true)
	if err := cn.c.origin.Do(req, resp); err != nil {
		cn.originFailed(s, req, body, err, start)
		return
	}
	cn.relayResponse(s, req, resp, start)
}

// originFailed answers a request whose round trip to the origin failed.
//
//go:noinline
func (cn *conn) originFailed(s *dataplane.Stream, req *fasthttp.Request, body *bodyReader, err error, start time.Time) {
	m := cn.c.metrics
	s.CloseRead()
	switch {
	case errors.Is(err, origin.ErrTimeout):
		m.errTimeout.Inc()
		writeGenerated(s, 504, tunnel.ErrorOriginTimeout, "culvert: the origin did not answer in time\n")
	case errors.Is(err, origin.ErrUnreachable):
		m.errUnreachable.Inc()
		writeGenerated(s, 502, tunnel.ErrorOriginUnreachable, "culvert: the origin is unreachable\n")
	default:
		if body != nil && body.err != nil {
			// The visitor's upload broke: nothing to answer.
			m.errVisitor.Inc()
			s.Reset(frames.ErrCodeCancel)
			return
		}
		m.errOrigin.Inc()
		writeGenerated(s, 502, tunnel.ErrorOrigin, "culvert: the origin broke the exchange\n")
	}
	cn.c.logger.Debug("origin request failed", "err", err, "path", string(req.RequestURI()))
	m.observe(start, 0)
}

// relayResponse sends the origin's answer down the stream: the head, then
// the body (bytes, or the origin's stream as it arrives).
//
//go:noinline
func (cn *conn) relayResponse(s *dataplane.Stream, req *fasthttp.Request, resp *fasthttp.Response, start time.Time) {
	m := cn.c.metrics
	status := resp.StatusCode()
	m.status(status)

	sc := scratchPool.Get().(*fieldScratch)
	defer scratchPool.Put(sc)
	sc.fields = append(sc.fields[:0], hpack.HeaderField{Name: []byte(":status"), Value: statusBytes(status)})
	sc.buf = sc.buf[:0]
	for k, v := range resp.Header.All() {
		if tunnel.HopByHop(k) {
			continue
		}
		off := len(sc.buf)
		sc.buf = tunnel.AppendLower(sc.buf, k)
		// Names are resliced after the loop: buf may grow.
		sc.fields = append(sc.fields, hpack.HeaderField{Name: sc.buf[off:len(sc.buf):len(sc.buf)], Value: v})
	}
	relinkNames(sc)

	bs := resp.BodyStream()
	noBody := req.Header.IsHead() || status == 204 || status == 304 || (bs == nil && len(resp.Body()) == 0)
	var body []byte
	if bs == nil {
		body = resp.Body()
	} else if cl := resp.Header.ContentLength(); !noBody && cl > 0 && cl <= wholeBodyMax {
		sc.body = slices.Grow(sc.body[:0], cl)[:cl]
		if _, err := io.ReadFull(bs, sc.body); err != nil {
			m.errOrigin.Inc()
			s.Reset(frames.ErrCodeInternal)
			return
		}
		body, bs = sc.body, nil
	}
	if bs == nil && !noBody {
		// The whole body is here: headers, body and end go out together.
		if err := s.WriteMessage(sc.fields, body); err != nil {
			m.errVisitor.Inc()
			return
		}
		sc.fields = sc.fields[:0]
		m.bytesDown.Add(len(body))
		m.observe(start, int64(len(body)))
		return
	}
	if err := s.WriteHeaders(sc.fields, noBody); err != nil {
		m.errVisitor.Inc()
		return
	}
	sc.fields = sc.fields[:0]
	if noBody {
		m.observe(start, 0)
		return
	}
	var n int64
	if bs == nil {
		k, err := s.Write(resp.Body())
		n = int64(k)
		if err != nil {
			m.errVisitor.Inc()
			m.bytesDown.Add(int(n))
			return
		}
	} else {
		var err error
		n, err = copyToStream(s, bs)
		if err != nil {
			m.bytesDown.Add(int(n))
			if errors.Is(err, errOriginRead) {
				m.errOrigin.Inc()
				s.Reset(frames.ErrCodeInternal)
			} else {
				m.errVisitor.Inc()
			}
			return
		}
	}
	m.bytesDown.Add(int(n))
	s.CloseWrite()
	m.observe(start, n)
}

// relinkNames points each field name at its final place in sc.buf (appends
// may have moved the buffer while the fields were built).
func relinkNames(sc *fieldScratch) {
	off := 0
	for i := 1; i < len(sc.fields); i++ {
		n := len(sc.fields[i].Name)
		sc.fields[i].Name = sc.buf[off : off+n : off+n]
		off += n
	}
}

var errOriginRead = errors.New("origin body read failed")

// copyToStream copies an origin body to the stream: each Read of the
// origin lands in a chunk that goes out as a DATA frame at once (a
// server-sent event is flushed as the origin sends it, and a bulk body is
// not copied again on the way); it blocks when the visitor's side of the
// tunnel is backed up. An error of the origin's side is errOriginRead.
func copyToStream(s *dataplane.Stream, r io.Reader) (int64, error) {
	n, readErr, streamErr := s.ReadFromSource(r)
	if readErr != nil {
		return n, errOriginRead
	}
	return n, streamErr
}

// buildOriginRequest turns the stream's request headers into req. It
// reports false for a request without :method or :path.
func buildOriginRequest(req *fasthttp.Request, h *dataplane.HeaderList) bool {
	var method, path bool
	for _, f := range h.Fields() {
		name := f.Name
		if len(name) > 0 && name[0] == ':' {
			switch string(name) {
			case ":method":
				req.Header.SetMethodBytes(f.Value)
				method = true
			case ":path":
				req.SetRequestURIBytes(f.Value)
				path = true
			case ":authority":
				req.Header.SetHostBytes(f.Value)
			}
			continue
		}
		if string(name) == tunnel.HeaderStream {
			continue
		}
		req.Header.AddBytesKV(name, f.Value)
	}
	return method && path
}

// bodyReader counts what the origin client reads of the visitor's body and
// remembers a failure of the visitor's side.
type bodyReader struct {
	s   *dataplane.Stream
	n   int64
	err error
}

// Close stops a Read blocked on the stream: the origin client closes the
// body when it aborts an upload (the origin answered and the exchange
// ended) or when the upload is done.
func (b *bodyReader) Close() error {
	b.s.CloseRead()
	return nil
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.s.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// requestBody sets up req's body from the stream: none when END_STREAM came
// with the headers, the known length when the visitor sent one, chunked to
// the origin otherwise.
func requestBody(s *dataplane.Stream, req *fasthttp.Request) *bodyReader {
	buffered, ended := s.BodyState()
	if ended && buffered == 0 {
		return nil
	}
	size := req.Header.ContentLength()
	if len(req.Header.Peek(fasthttp.HeaderContentLength)) == 0 {
		// No Content-Length: the visitor sent the body chunked (an HTTP/2
		// request carries no Transfer-Encoding), and ContentLength reads 0.
		size = -1
	}
	if size < 0 {
		if ended {
			size = buffered
		} else {
			size = -1
		}
	}
	br := &bodyReader{s: s}
	req.SetBodyStream(br, size)
	return br
}

// writeGenerated answers a request with a response the connector made
// itself, marked with tunnel.HeaderError.
func writeGenerated(s *dataplane.Stream, status int, kind, text string) {
	fields := []hpack.HeaderField{
		{Name: []byte(":status"), Value: statusBytes(status)},
		{Name: []byte("content-type"), Value: []byte("text/plain; charset=utf-8")},
		{Name: []byte("content-length"), Value: []byte(strconv.Itoa(len(text)))},
		{Name: []byte(tunnel.HeaderError), Value: []byte(kind)},
	}
	if s.WriteHeaders(fields, false) != nil {
		return
	}
	s.Write([]byte(text))
	s.CloseWrite()
}

// wsResponseHeaders are the origin's 101 headers a websocket stream carries
// back to the edge.
var wsResponseHeaders = map[string]bool{
	"sec-websocket-accept":     true,
	"sec-websocket-protocol":   true,
	"sec-websocket-extensions": true,
	"set-cookie":               true,
}

// serveWebsocket does the HTTP/1.1 upgrade to the origin for an extended
// CONNECT stream (RFC 8441) and then copies bytes both ways.
func (cn *conn) serveWebsocket(s *dataplane.Stream) {
	m := cn.c.metrics
	m.requests.Inc()
	m.websockets.Inc()
	start := time.Now()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	h := s.Headers()
	if !buildOriginRequest(req, h) {
		m.errBadRequest.Inc()
		writeGenerated(s, 400, tunnel.ErrorBadRequest, "culvert: malformed websocket request\n")
		return
	}
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Del(":protocol")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if len(req.Header.Peek("Sec-WebSocket-Key")) == 0 {
		var k [16]byte
		rand.Read(k[:])
		req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(k[:]))
	}
	if len(req.Header.Peek("Sec-WebSocket-Version")) == 0 {
		req.Header.Set("Sec-WebSocket-Version", "13")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	oc, ur, err := cn.c.origin.DialUpgrade(ctx, req)
	if err != nil {
		if errors.Is(err, origin.ErrTimeout) {
			m.errTimeout.Inc()
			writeGenerated(s, 504, tunnel.ErrorOriginTimeout, "culvert: the origin did not answer in time\n")
		} else {
			m.errUnreachable.Inc()
			writeGenerated(s, 502, tunnel.ErrorOriginUnreachable, "culvert: the origin is unreachable\n")
		}
		return
	}
	if oc == nil {
		// The origin declined the upgrade: relay its answer.
		m.status(ur.Status)
		fields := []hpack.HeaderField{{Name: []byte(":status"), Value: statusBytes(ur.Status)}}
		for _, kv := range ur.Header {
			name := tunnel.AppendLower(nil, []byte(kv[0]))
			if tunnel.HopByHop(name) || string(name) == "content-length" {
				continue
			}
			fields = append(fields, hpack.HeaderField{Name: name, Value: []byte(kv[1])})
		}
		fields = append(fields, hpack.HeaderField{Name: []byte("content-length"), Value: []byte(strconv.Itoa(len(ur.Body)))})
		if s.WriteHeaders(fields, len(ur.Body) == 0) == nil && len(ur.Body) > 0 {
			s.Write(ur.Body)
			s.CloseWrite()
		}
		return
	}
	defer oc.Close()
	m.status(101)
	fields := []hpack.HeaderField{{Name: []byte(":status"), Value: statusBytes(200)}}
	for _, kv := range ur.Header {
		name := tunnel.AppendLower(nil, []byte(kv[0]))
		if wsResponseHeaders[string(name)] {
			fields = append(fields, hpack.HeaderField{Name: name, Value: []byte(kv[1])})
		}
	}
	if err := s.WriteHeaders(fields, false); err != nil {
		return
	}
	up, down := dataplane.Splice(s, oc)
	m.bytesUp.Add(int(up))
	m.bytesDown.Add(int(down))
	m.observe(start, down)
}
