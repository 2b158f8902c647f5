package edge

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Response compression: the edge compresses a response on its way to the
// visitor when the visitor accepts zstd or gzip and the response is one
// that compresses well and may be transformed. compressionFor decides,
// newCompressReader compresses the body as a stream, varyAcceptEncoding and
// weakETag give the response header values that change with it.

// minCompressSize is the smallest body, by its Content-Length, that the edge
// compresses: below it the coding's framing and the CPU cost outweigh the
// saving. A body of unknown length (streamed) is compressed.
const minCompressSize = 1024

// compressChunk is the most a compressReader takes from its source in one
// Read: the unit it compresses and flushes.
const compressChunk = 32 << 10

// gzipLevel is the level of the edge's gzip encoders (klauspost's flate,
// whose levels 1 to 6 are its fast matchers). Measured on 256 KiB of HTML
// and of JSON, flushed every 16 KiB: level 5 is within 1.5% of level 6's
// output size and about 10-15% faster; level 7 is 30-50% slower for 1.5-3.5%
// less, level 1 makes output 10-13% larger. An encoder holds about 1 MiB.
const gzipLevel = 5

// zstdOptions configure the edge's zstd encoders. Synchronous: no
// goroutines of its own. SpeedFastest: on the same corpora it comes within
// 2% of gzip level 5's output size at 1.7 times its speed, while
// SpeedDefault is 1-4% smaller, 13-25% slower and holds more than twice
// the memory. A 256 KiB window with lower memory use holds an encoder to
// about 0.8 MiB (a 1 MiB window with default memory use: 2.7 MiB, and not
// measurably smaller output). An encoder stays with its response for as
// long as that lasts, which for an event stream may be hours, so its size
// counts. Zero frames on: an empty body still becomes one valid frame, as
// RFC 8878 §3 wants zstd data to be one or more frames.
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderConcurrency(1),
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithWindowSize(256 << 10),
	zstd.WithLowerEncoderMem(true),
	zstd.WithZeroFrames(true),
	zstd.WithEncoderCRC(true),
}

// compressionFor decides whether the edge compresses one response and with
// what: "zstd", "gzip" or "". acceptEncoding: the request's Accept-Encoding
// header values joined (may be nil); method: the request method; status:
// the response status; header(name) returns the response header value for
// a lowercase name, or nil.
//
// It compresses only when all of these hold: the visitor accepts the
// coding (zstd preferred at an equal weight); the method is not HEAD; the
// status is 200, 201, 202 or 203; the response has no content coding other
// than identity, no Content-Range, and no Cache-Control no-transform; its
// Content-Type is a compressible one (see compressibleType); and its
// Content-Length is absent or at least minCompressSize (a malformed one
// means no).
func compressionFor(acceptEncoding, method []byte, status int, header func(name string) []byte) string {
	switch status {
	case 200, 201, 202, 203:
	default:
		// 206 and Content-Range bodies are byte ranges of the identity
		// representation, 204 and 304 have no body, 1xx are interim, and
		// errors and redirects are left as the origin made them.
		return ""
	}
	if string(method) == "HEAD" {
		return ""
	}
	enc := acceptedCoding(acceptEncoding)
	if enc == "" {
		return ""
	}
	if ce := header("content-encoding"); ce != nil && !isIdentity(ce) {
		return ""
	}
	if header("content-range") != nil {
		return ""
	}
	if cc := header("cache-control"); cc != nil && hasNoTransform(cc) {
		return ""
	}
	if !compressibleType(header("content-type")) {
		return ""
	}
	if cl := header("content-length"); cl != nil {
		n, ok := parseContentLength(cl)
		if !ok || n < minCompressSize {
			return ""
		}
	}
	return enc
}

// Weights of Accept-Encoding are kept in thousandths: qvalue has at most
// three decimals (RFC 9110 §12.4.2).
const (
	qUnset = -1
	qMax   = 1000
)

// acceptedCoding parses an Accept-Encoding value (RFC 9110 §12.5.3) and
// returns the coding the edge should use: "zstd" when its weight is
// positive and not below gzip's, else "gzip" when its weight is positive,
// else "". A coding not listed takes the weight of "*" if that is listed,
// and is not acceptable otherwise; "x-gzip" is gzip (RFC 9110 §8.4.1.3); a
// coding listed twice takes its lowest weight, so a refusal stands; an
// element with a malformed weight is ignored. An absent or empty field asks
// for no coding.
func acceptedCoding(ae []byte) string {
	qz, qg, qstar := qUnset, qUnset, qUnset
	for len(ae) > 0 {
		var elem []byte
		if i := bytes.IndexByte(ae, ','); i >= 0 {
			elem, ae = ae[:i], ae[i+1:]
		} else {
			elem, ae = ae, nil
		}
		name, params := elem, []byte(nil)
		if i := bytes.IndexByte(elem, ';'); i >= 0 {
			name, params = elem[:i], elem[i+1:]
		}
		name = trimOWS(name)
		if len(name) == 0 {
			continue
		}
		q, ok := weightOf(params)
		if !ok {
			continue
		}
		switch {
		case equalFold(name, "zstd"):
			qz = lowerWeight(qz, q)
		case equalFold(name, "gzip"), equalFold(name, "x-gzip"):
			qg = lowerWeight(qg, q)
		case len(name) == 1 && name[0] == '*':
			qstar = lowerWeight(qstar, q)
		}
	}
	if qz == qUnset {
		qz = max(qstar, 0)
	}
	if qg == qUnset {
		qg = max(qstar, 0)
	}
	switch {
	case qz > 0 && qz >= qg:
		return "zstd"
	case qg > 0:
		return "gzip"
	}
	return ""
}

func lowerWeight(old, q int) int {
	if old == qUnset {
		return q
	}
	return min(old, q)
}

// weightOf returns the weight in an Accept-Encoding element's parameters
// (what follows the coding's ";"): qMax without a q parameter, false if the
// q parameter is malformed. Other parameters are ignored.
func weightOf(params []byte) (int, bool) {
	q := qMax
	for len(params) > 0 {
		var p []byte
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, nil
		}
		eq := bytes.IndexByte(p, '=')
		if eq < 0 {
			continue
		}
		if k := trimOWS(p[:eq]); len(k) != 1 || k[0]|0x20 != 'q' {
			continue
		}
		v, ok := parseQValue(trimOWS(p[eq+1:]))
		if !ok {
			return 0, false
		}
		q = v
	}
	return q, true
}

// parseQValue parses a qvalue (RFC 9110 §12.4.2): "0" to "1" with at most
// three decimals, into thousandths.
func parseQValue(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * qMax
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' {
		return 0, false
	}
	scale := qMax / 10
	for _, c := range v[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > qMax {
		return 0, false
	}
	return q, true
}

// isIdentity reports whether a Content-Encoding value names no coding:
// "identity" or empty.
func isIdentity(ce []byte) bool {
	ce = trimOWS(ce)
	return len(ce) == 0 || equalFold(ce, "identity")
}

// hasNoTransform reports whether a Cache-Control value has the
// no-transform directive (RFC 9111 §5.2), which forbids changing the
// content coding.
func hasNoTransform(cc []byte) bool {
	for len(cc) > 0 {
		var d []byte
		if i := bytes.IndexByte(cc, ','); i >= 0 {
			d, cc = cc[:i], cc[i+1:]
		} else {
			d, cc = cc, nil
		}
		if i := bytes.IndexByte(d, '='); i >= 0 {
			d = d[:i]
		}
		if equalFold(trimOWS(d), "no-transform") {
			return true
		}
	}
	return false
}

// compressibleTypes are the media types, besides text/* and the +json and
// +xml structured syntaxes of application/*, that the edge compresses:
// textual formats, and binary ones that are not compressed already (wasm,
// uncompressed fonts, icons and bitmaps).
var compressibleTypes = map[string]bool{
	"application/json":              true,
	"application/x-ndjson":          true,
	"application/javascript":        true,
	"application/x-javascript":      true,
	"application/ecmascript":        true,
	"application/xml":               true,
	"application/wasm":              true,
	"application/graphql":           true,
	"application/yaml":              true,
	"application/x-yaml":            true,
	"application/toml":              true,
	"application/rtf":               true,
	"application/x-sh":              true,
	"application/vnd.ms-fontobject": true,
	"application/x-font-ttf":        true,
	"application/x-font-otf":        true,
	"font/ttf":                      true,
	"font/otf":                      true,
	"font/collection":               true,
	"image/svg+xml":                 true,
	"image/x-icon":                  true,
	"image/vnd.microsoft.icon":      true,
	"image/bmp":                     true,
}

// compressibleType reports whether a Content-Type value names a media type
// the edge compresses: text/* (text/event-stream included: the compressor
// flushes every chunk it reads, so events are not held back),
// application/*+json, application/*+xml, and compressibleTypes. Parameters
// are ignored, case is not significant; no Content-Type means no.
func compressibleType(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = trimOWS(ct)
	var buf [128]byte
	if len(ct) == 0 || len(ct) > len(buf) {
		return false
	}
	mt := buf[:len(ct)]
	for i, c := range ct {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		mt[i] = c
	}
	slash := bytes.IndexByte(mt, '/')
	if slash <= 0 || slash == len(mt)-1 {
		return false
	}
	typ, sub := mt[:slash], mt[slash+1:]
	switch string(typ) {
	case "text":
		return true
	case "application":
		if bytes.HasSuffix(sub, []byte("+json")) || bytes.HasSuffix(sub, []byte("+xml")) {
			return true
		}
	}
	return compressibleTypes[string(mt)]
}

// parseContentLength parses a Content-Length value: digits only, with
// optional surrounding whitespace. A value beyond int64 is taken as very
// large rather than malformed.
func parseContentLength(v []byte) (int64, bool) {
	v = trimOWS(v)
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<58 {
			n = n*10 + int64(c-'0')
		}
	}
	return n, true
}

// varyAcceptEncoding returns the Vary value to set given the existing one
// (nil if none): adds "Accept-Encoding" unless present (case-insensitive,
// comma lists, or "*"). When it adds, the result is a new slice, never
// existing's array; when existing already covers it, existing is returned.
func varyAcceptEncoding(existing []byte) []byte {
	const ae = "Accept-Encoding"
	if len(trimOWS(existing)) == 0 {
		return []byte(ae)
	}
	for rest := existing; len(rest) > 0; {
		var f []byte
		if i := bytes.IndexByte(rest, ','); i >= 0 {
			f, rest = rest[:i], rest[i+1:]
		} else {
			f, rest = rest, nil
		}
		f = trimOWS(f)
		if (len(f) == 1 && f[0] == '*') || equalFold(f, ae) {
			return existing
		}
	}
	v := trimOWS(existing)
	for len(v) > 0 && v[len(v)-1] == ',' {
		v = trimOWS(v[:len(v)-1])
	}
	out := make([]byte, 0, len(v)+2+len(ae))
	out = append(out, v...)
	if len(v) > 0 {
		out = append(out, ", "...)
	}
	return append(out, ae...)
}

// weakETag turns a strong ETag into a weak one (W/"..."), keeps weak ones;
// nil stays nil. A compressed representation is not byte-identical to the
// origin's, so it may not keep the strong validator (RFC 9110 §8.8.3). An
// unquoted (malformed) tag is quoted. A new slice is returned when the tag
// changes; a weak or empty one is returned as is.
func weakETag(etag []byte) []byte {
	t := trimOWS(etag)
	if len(t) == 0 || (len(t) >= 2 && t[0] == 'W' && t[1] == '/') {
		return etag
	}
	quoted := len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"'
	out := make([]byte, 0, len(t)+4)
	out = append(out, 'W', '/')
	if !quoted {
		out = append(out, '"')
	}
	out = append(out, t...)
	if !quoted {
		out = append(out, '"')
	}
	return out
}

// Pools of encoders and of the buffers of a compressReader. Each encoder is
// Reset onto its reader's buffers when taken.
var (
	gzipPool = sync.Pool{New: func() any {
		w, err := gzip.NewWriterLevel(nil, gzipLevel)
		if err != nil {
			panic(err)
		}
		return w
	}}
	zstdPool = sync.Pool{New: func() any {
		w, err := zstd.NewWriter(nil, zstdOptions...)
		if err != nil {
			panic(err)
		}
		return w
	}}
	compressBufPool = sync.Pool{New: func() any {
		return &compressBufs{
			in:  make([]byte, compressChunk),
			out: make([]byte, 0, compressChunk+compressChunk/8),
		}
	}}
)

// compressBufs are a compressReader's buffers: in for a chunk of the
// source, out for the encoder's output not yet read (the encoder writes to
// it through Write).
type compressBufs struct {
	in, out []byte
}

func (b *compressBufs) Write(p []byte) (int, error) {
	b.out = append(b.out, p...)
	return len(p), nil
}

// maxPooledOut is the largest out buffer put back into compressBufPool; a
// larger one (which the flushes per chunk should never make) is dropped.
const maxPooledOut = 2 * compressChunk

// flushEncoder is what compressReader needs of *gzip.Writer and
// *zstd.Encoder.
type flushEncoder interface {
	io.WriteCloser
	Flush() error
}

var errCompressClosed = errors.New("edge: read from a closed compressing reader")

// compressReader is the reader newCompressReader returns. It is not safe
// for concurrent use.
type compressReader struct {
	src  io.Reader
	enc  flushEncoder  // nil once released
	bufs *compressBufs // nil once closed
	off  int           // read offset in bufs.out
	err  error         // sticky: src's error, io.EOF once the trailer is out, or the encoder's
}

// newCompressReader returns a reader of src's bytes compressed with enc
// ("gzip" or "zstd"; anything else panics), streamed: it never reads all
// of src first. Each Read takes at most one chunk (up to 32 KiB) from src,
// compresses it and flushes the encoder so the compressed bytes of
// everything read so far are available (server-sent events and slow
// origins reach the visitor without waiting); at src's io.EOF it closes
// the encoder (trailer) and then returns io.EOF. Other src errors are
// returned as is. Close releases the pooled encoder (idempotent) and
// closes src if it is an io.Closer.
//
// Its memory is bounded: the compressed output of one chunk waits in its
// buffer until read, however small the caller's reads, and src is not
// read again before it is all read.
func newCompressReader(enc string, src io.Reader) io.ReadCloser {
	r := &compressReader{src: src, bufs: compressBufPool.Get().(*compressBufs)}
	r.bufs.out = r.bufs.out[:0]
	switch enc {
	case "gzip":
		w := gzipPool.Get().(*gzip.Writer)
		w.Reset(r.bufs)
		r.enc = w
	case "zstd":
		w := zstdPool.Get().(*zstd.Encoder)
		w.Reset(r.bufs)
		r.enc = w
	default:
		compressBufPool.Put(r.bufs)
		panic("edge: unknown content coding " + enc)
	}
	return r
}

// maxEmptyReads bounds how often Read calls src in a row when src returns
// neither bytes nor an error.
const maxEmptyReads = 100

func (r *compressReader) Read(p []byte) (int, error) {
	if r.bufs == nil {
		return 0, errCompressClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for empty := 0; r.off == len(r.bufs.out); empty++ {
		if r.err != nil {
			return 0, r.err
		}
		if empty == maxEmptyReads {
			return 0, io.ErrNoProgress
		}
		r.fill()
	}
	n := copy(p, r.bufs.out[r.off:])
	r.off += n
	if r.off < len(r.bufs.out) {
		return n, nil
	}
	r.bufs.out, r.off = r.bufs.out[:0], 0
	return n, r.err
}

// fill reads one chunk from src into the encoder and flushes it, or at
// src's end closes the encoder; the output lands in r.bufs.out, which is
// empty when fill is called. Errors are kept in r.err.
func (r *compressReader) fill() {
	n, err := r.src.Read(r.bufs.in[:compressChunk])
	if n > 0 {
		if _, werr := r.enc.Write(r.bufs.in[:n]); werr != nil {
			r.err = werr
			return
		}
		if err != io.EOF { // at the end, Close flushes
			if ferr := r.enc.Flush(); ferr != nil {
				r.err = ferr
				return
			}
		}
	}
	switch {
	case err == io.EOF:
		if cerr := r.enc.Close(); cerr != nil {
			r.err = cerr
			return
		}
		r.releaseEncoder()
		r.err = io.EOF
	case err != nil:
		r.err = err
	}
}

// releaseEncoder puts the encoder back into its pool. A later Reset starts
// it afresh, whatever state it was left in.
func (r *compressReader) releaseEncoder() {
	switch w := r.enc.(type) {
	case *gzip.Writer:
		gzipPool.Put(w)
	case *zstd.Encoder:
		zstdPool.Put(w)
	}
	r.enc = nil
}

// Close releases the encoder and the buffers, and closes src if it is an
// io.Closer. A second Close does nothing.
func (r *compressReader) Close() error {
	if r.bufs == nil {
		return nil
	}
	if r.enc != nil {
		r.releaseEncoder()
	}
	if cap(r.bufs.out) <= maxPooledOut {
		r.bufs.out = r.bufs.out[:0]
		compressBufPool.Put(r.bufs)
	}
	r.bufs, r.off = nil, 0
	if c, ok := r.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Byte helpers, allocation-free.

// trimOWS trims optional whitespace (spaces and tabs, RFC 9110 §5.6.3).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals s, ASCII case-insensitively.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
