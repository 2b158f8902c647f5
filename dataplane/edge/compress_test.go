package edge

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestCompressionFor(t *testing.T) {
	type hdrs map[string]string
	// Each case changes one thing from a compressible GET 200 text/html
	// response of unknown length to a visitor accepting gzip.
	tests := []struct {
		name   string
		ae     *string // nil: "gzip"; pointer to "\x00": no header
		method string  // "": GET
		status int     // 0: 200
		h      hdrs    // merged over {"content-type": "text/html"}; "\x00" deletes
		want   string
	}{
		// Accept-Encoding.
		{name: "gzip", want: "gzip"},
		{name: "zstd only", ae: strp("zstd"), want: "zstd"},
		{name: "zstd preferred at equal q", ae: strp("gzip, deflate, br, zstd"), want: "zstd"},
		{name: "zstd preferred at equal q order", ae: strp("zstd, gzip"), want: "zstd"},
		{name: "zstd preferred at equal explicit q", ae: strp("gzip;q=0.8, zstd;q=0.8"), want: "zstd"},
		{name: "higher q gzip", ae: strp("gzip;q=1, zstd;q=0.5"), want: "gzip"},
		{name: "higher q zstd by a thousandth", ae: strp("gzip;q=0.5, zstd;q=0.501"), want: "zstd"},
		{name: "gzip refused, star", ae: strp("gzip;q=0, *"), want: "zstd"},
		{name: "zstd refused, star", ae: strp("*, zstd;q=0"), want: "gzip"},
		{name: "star alone", ae: strp("*"), want: "zstd"},
		{name: "star weight below explicit zstd", ae: strp("zstd;q=0.5, *;q=0.9"), want: "gzip"},
		{name: "star refused", ae: strp("*;q=0"), want: ""},
		{name: "identity only", ae: strp("identity"), want: ""},
		{name: "identity and star refused", ae: strp("identity, *;q=0"), want: ""},
		{name: "empty field", ae: strp(""), want: ""},
		{name: "no field", ae: strp("\x00"), want: ""},
		{name: "upper case", ae: strp("GZIP"), want: "gzip"},
		{name: "mixed case zstd", ae: strp("ZStd"), want: "zstd"},
		{name: "br then gzip q", ae: strp("br, gzip;q=0.5"), want: "gzip"},
		{name: "br only", ae: strp("br"), want: ""},
		{name: "deflate only", ae: strp("deflate"), want: ""},
		{name: "x-gzip", ae: strp("x-gzip"), want: "gzip"},
		{name: "gzip refused", ae: strp("gzip;q=0"), want: ""},
		{name: "gzip refused with decimals", ae: strp("gzip;q=0.000"), want: ""},
		{name: "both refused", ae: strp("zstd;q=0, gzip;q=0"), want: ""},
		{name: "tiny weight counts", ae: strp("zstd;q=0, gzip;q=0.001"), want: "gzip"},
		{name: "whitespace", ae: strp(" gzip ; q=0.5 ,\tzstd;q=0 "), want: "gzip"},
		{name: "whitespace around =", ae: strp("zstd; q = 0.7"), want: "zstd"},
		{name: "capital Q", ae: strp("gzip;Q=0.5"), want: "gzip"},
		{name: "q=1.000", ae: strp("gzip;q=1.000"), want: "gzip"},
		{name: "q above 1 ignored", ae: strp("gzip;q=1.5"), want: ""},
		{name: "q four decimals ignored", ae: strp("gzip;q=0.1234"), want: ""},
		{name: "q not a number ignored", ae: strp("gzip;q=abc, zstd;q=x"), want: ""},
		{name: "malformed element does not hide others", ae: strp("zstd;q=2, gzip"), want: "gzip"},
		{name: "other parameter ignored", ae: strp("gzip;level=1"), want: "gzip"},
		{name: "listed twice: refusal stands", ae: strp("gzip, gzip;q=0"), want: ""},
		{name: "empty elements", ae: strp(",, ,gzip,,"), want: "gzip"},

		// Method.
		{name: "HEAD", method: "HEAD", want: ""},
		{name: "POST", method: "POST", want: "gzip"},

		// Status.
		{name: "201", status: 201, want: "gzip"},
		{name: "202", status: 202, want: "gzip"},
		{name: "203", status: 203, want: "gzip"},
		{name: "100", status: 100, want: ""},
		{name: "101", status: 101, want: ""},
		{name: "103", status: 103, want: ""},
		{name: "204", status: 204, want: ""},
		{name: "205", status: 205, want: ""},
		{name: "206", status: 206, want: ""},
		{name: "301", status: 301, want: ""},
		{name: "304", status: 304, want: ""},
		{name: "404", status: 404, want: ""},
		{name: "500", status: 500, want: ""},

		// Content-Encoding.
		{name: "already gzip", h: hdrs{"content-encoding": "gzip"}, want: ""},
		{name: "already br", h: hdrs{"content-encoding": "br"}, want: ""},
		{name: "identity", h: hdrs{"content-encoding": "identity"}, want: "gzip"},
		{name: "Identity with spaces", h: hdrs{"content-encoding": " Identity "}, want: "gzip"},
		{name: "empty content-encoding", h: hdrs{"content-encoding": ""}, want: "gzip"},

		// Content-Range.
		{name: "content-range", h: hdrs{"content-range": "bytes 0-99/1000"}, want: ""},

		// Cache-Control.
		{name: "no-transform", h: hdrs{"cache-control": "no-transform"}, want: ""},
		{name: "No-Transform in a list", h: hdrs{"cache-control": "public, No-Transform"}, want: ""},
		{name: "no-transform after a value", h: hdrs{"cache-control": "max-age=60,no-transform , private"}, want: ""},
		{name: "other directives", h: hdrs{"cache-control": "public, max-age=60, no-cache"}, want: "gzip"},
		{name: "not no-transform", h: hdrs{"cache-control": "no-transformer"}, want: "gzip"},

		// Content-Type.
		{name: "html charset", h: hdrs{"content-type": "text/html; charset=utf-8"}, want: "gzip"},
		{name: "upper case type", h: hdrs{"content-type": "TEXT/HTML;Charset=UTF-8"}, want: "gzip"},
		{name: "text/plain", h: hdrs{"content-type": "text/plain"}, want: "gzip"},
		{name: "text/css", h: hdrs{"content-type": "text/css"}, want: "gzip"},
		{name: "text/javascript", h: hdrs{"content-type": "text/javascript"}, want: "gzip"},
		{name: "text/csv", h: hdrs{"content-type": "text/csv"}, want: "gzip"},
		{name: "text/event-stream", h: hdrs{"content-type": "text/event-stream"}, want: "gzip"},
		{name: "json", h: hdrs{"content-type": "application/json"}, want: "gzip"},
		{name: "json charset", h: hdrs{"content-type": "application/json; charset=utf-8"}, want: "gzip"},
		{name: "problem+json", h: hdrs{"content-type": "application/problem+json"}, want: "gzip"},
		{name: "ld+json", h: hdrs{"content-type": "application/ld+json"}, want: "gzip"},
		{name: "graphql-response+json", h: hdrs{"content-type": "application/graphql-response+json"}, want: "gzip"},
		{name: "vnd.api+json", h: hdrs{"content-type": "application/vnd.api+json"}, want: "gzip"},
		{name: "x-ndjson", h: hdrs{"content-type": "application/x-ndjson"}, want: "gzip"},
		{name: "javascript", h: hdrs{"content-type": "application/javascript"}, want: "gzip"},
		{name: "x-javascript", h: hdrs{"content-type": "application/x-javascript"}, want: "gzip"},
		{name: "xml", h: hdrs{"content-type": "application/xml"}, want: "gzip"},
		{name: "atom+xml", h: hdrs{"content-type": "application/atom+xml"}, want: "gzip"},
		{name: "xhtml+xml", h: hdrs{"content-type": "application/xhtml+xml"}, want: "gzip"},
		{name: "svg", h: hdrs{"content-type": "image/svg+xml"}, want: "gzip"},
		{name: "wasm", h: hdrs{"content-type": "application/wasm"}, want: "gzip"},
		{name: "ttf", h: hdrs{"content-type": "font/ttf"}, want: "gzip"},
		{name: "icon", h: hdrs{"content-type": "image/x-icon"}, want: "gzip"},
		{name: "png", h: hdrs{"content-type": "image/png"}, want: ""},
		{name: "jpeg", h: hdrs{"content-type": "image/jpeg"}, want: ""},
		{name: "webp", h: hdrs{"content-type": "image/webp"}, want: ""},
		{name: "mp4", h: hdrs{"content-type": "video/mp4"}, want: ""},
		{name: "mpeg audio", h: hdrs{"content-type": "audio/mpeg"}, want: ""},
		{name: "zip", h: hdrs{"content-type": "application/zip"}, want: ""},
		{name: "gzip file", h: hdrs{"content-type": "application/gzip"}, want: ""},
		{name: "pdf", h: hdrs{"content-type": "application/pdf"}, want: ""},
		{name: "octet-stream", h: hdrs{"content-type": "application/octet-stream"}, want: ""},
		{name: "woff2", h: hdrs{"content-type": "font/woff2"}, want: ""},
		{name: "byteranges", h: hdrs{"content-type": "multipart/byteranges; boundary=x"}, want: ""},
		{name: "+json outside application", h: hdrs{"content-type": "video/x+json"}, want: ""},
		{name: "no slash", h: hdrs{"content-type": "text"}, want: ""},
		{name: "no subtype", h: hdrs{"content-type": "text/"}, want: ""},
		{name: "empty type", h: hdrs{"content-type": ""}, want: ""},
		{name: "no content-type", h: hdrs{"content-type": "\x00"}, want: ""},
		{name: "long type", h: hdrs{"content-type": "application/" + strings.Repeat("x", 200) + "+json"}, want: ""},

		// Content-Length.
		{name: "length at minimum", h: hdrs{"content-length": "1024"}, want: "gzip"},
		{name: "length large", h: hdrs{"content-length": "1048576"}, want: "gzip"},
		{name: "length with spaces", h: hdrs{"content-length": " 2048 "}, want: "gzip"},
		{name: "length huge", h: hdrs{"content-length": "99999999999999999999999999"}, want: "gzip"},
		{name: "length below minimum", h: hdrs{"content-length": "1023"}, want: ""},
		{name: "length zero", h: hdrs{"content-length": "0"}, want: ""},
		{name: "length empty", h: hdrs{"content-length": ""}, want: ""},
		{name: "length negative", h: hdrs{"content-length": "-5000"}, want: ""},
		{name: "length not a number", h: hdrs{"content-length": "abc"}, want: ""},
		{name: "length list", h: hdrs{"content-length": "2048, 2048"}, want: ""},
		{name: "length hex", h: hdrs{"content-length": "0x800"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ae []byte
			switch {
			case tt.ae == nil:
				ae = []byte("gzip")
			case *tt.ae != "\x00":
				ae = []byte(*tt.ae)
			}
			method := orDefault(tt.method, "GET")
			status := orDefault(tt.status, 200)
			h := map[string]string{"content-type": "text/html"}
			for k, v := range tt.h {
				if v == "\x00" {
					delete(h, k)
				} else {
					h[k] = v
				}
			}
			header := func(name string) []byte {
				if name != strings.ToLower(name) {
					t.Errorf("header(%q): name not lower case", name)
				}
				if v, ok := h[name]; ok {
					return []byte(v)
				}
				return nil
			}
			if got := compressionFor(ae, []byte(method), status, header); got != tt.want {
				t.Errorf("compressionFor(%q, %s, %d, %q) = %q, want %q", ae, method, status, h, got, tt.want)
			}
		})
	}
}

func strp(s string) *string { return &s }

// orDefault returns v, or def if v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func TestCompressionForAllocs(t *testing.T) {
	ae := []byte("gzip, deflate, br, zstd")
	method := []byte("GET")
	h := map[string][]byte{
		"content-type":   []byte("application/json; charset=utf-8"),
		"content-length": []byte("4096"),
		"cache-control":  []byte("public, max-age=60"),
	}
	header := func(name string) []byte { return h[name] }
	if n := testing.AllocsPerRun(100, func() { compressionFor(ae, method, 200, header) }); n != 0 {
		t.Errorf("compressionFor allocates %v times per call", n)
	}
}

func TestVaryAcceptEncoding(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{nil, "Accept-Encoding"},
		{[]byte(""), "Accept-Encoding"},
		{[]byte("  "), "Accept-Encoding"},
		{[]byte("Origin"), "Origin, Accept-Encoding"},
		{[]byte("Accept"), "Accept, Accept-Encoding"},
		{[]byte("Accept-Encoding-Extra"), "Accept-Encoding-Extra, Accept-Encoding"},
		{[]byte("Origin, Accept-Language"), "Origin, Accept-Language, Accept-Encoding"},
		{[]byte("Origin,"), "Origin, Accept-Encoding"},
		{[]byte("Accept-Encoding"), "Accept-Encoding"},
		{[]byte("accept-encoding"), "accept-encoding"},
		{[]byte("Origin,ACCEPT-ENCODING "), "Origin,ACCEPT-ENCODING "},
		{[]byte("Origin, \tAccept-Encoding, Cookie"), "Origin, \tAccept-Encoding, Cookie"},
		{[]byte("*"), "*"},
		{[]byte("Origin, *"), "Origin, *"},
	}
	for _, tt := range tests {
		if got := varyAcceptEncoding(tt.in); string(got) != tt.want {
			t.Errorf("varyAcceptEncoding(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The result does not write into existing's spare capacity.
	buf := make([]byte, 6, 64)
	copy(buf, "Origin")
	got := varyAcceptEncoding(buf)
	if string(got) != "Origin, Accept-Encoding" || &got[0] == &buf[0] || string(buf[:cap(buf)][6:8]) != "\x00\x00" {
		t.Errorf("varyAcceptEncoding aliases or writes into its argument: %q", got)
	}
}

func TestWeakETag(t *testing.T) {
	tests := []struct {
		in   []byte
		want []byte
	}{
		{nil, nil},
		{[]byte(`"abc"`), []byte(`W/"abc"`)},
		{[]byte(`""`), []byte(`W/""`)},
		{[]byte(`W/"abc"`), []byte(`W/"abc"`)},
		{[]byte(`W/""`), []byte(`W/""`)},
		{[]byte(` "abc" `), []byte(`W/"abc"`)},
		{[]byte(`abc`), []byte(`W/"abc"`)},
		{[]byte(`"5f3e-1a2b"`), []byte(`W/"5f3e-1a2b"`)},
	}
	for _, tt := range tests {
		got := weakETag(tt.in)
		if !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("weakETag(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	buf := make([]byte, 5, 64)
	copy(buf, `"abc"`)
	if got := weakETag(buf); string(got) != `W/"abc"` || string(buf) != `"abc"` || string(buf[:cap(buf)][5:7]) != "\x00\x00" {
		t.Errorf("weakETag aliases or writes into its argument: %q", got)
	}
}

// oddReader returns data in small pieces of varying odd sizes.
type oddReader struct {
	data []byte
	i    int
}

var oddSizes = []int{1, 3, 7, 61, 509, 4093, 40961}

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), oddSizes[r.i%len(oddSizes)])], r.data)
	r.i++
	r.data = r.data[n:]
	return n, nil
}

// decompress decodes a whole gzip or zstd body with klauspost's decoders.
func decompress(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip.NewReader: %v", err)
		}
		zr.Multistream(false)
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatalf("zstd.NewReader: %v", err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompressing %s: %v", enc, err)
	}
	return out
}

// readAllBy reads r to its end with reads of p bytes.
func readAllBy(r io.Reader, p int) ([]byte, error) {
	var out []byte
	buf := make([]byte, p)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := htmlCorpus(1 << 20)
	bodies := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text-1B", text[:1]},
		{"text-1KiB", text[:1024]},
		{"text-1MiB", text[:1<<20]},
		{"random-1B", random(1)},
		{"random-1KiB", random(1024)},
		{"random-1MiB", random(1 << 20)},
	}
	for _, enc := range []string{"gzip", "zstd"} {
		for _, body := range bodies {
			for _, p := range []int{1, 7, 64 << 10} {
				t.Run(fmt.Sprintf("%s/%s/p%d", enc, body.name, p), func(t *testing.T) {
					if p == 1 && len(body.data) > 1<<10 && testing.Short() {
						t.Skip("short")
					}
					cr := newCompressReader(enc, &oddReader{data: body.data})
					got, err := readAllBy(cr, p)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if err := cr.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					if len(got) == 0 {
						t.Fatalf("no output: an empty body must still be a valid %s stream", enc)
					}
					plain := decompress(t, enc, got)
					if sha256.Sum256(plain) != sha256.Sum256(body.data) {
						t.Fatalf("round trip differs: got %d bytes, want %d", len(plain), len(body.data))
					}
					if len(body.data) == 1<<20 && strings.HasPrefix(body.name, "text") && len(got) > len(body.data)/4 {
						t.Errorf("text compressed to %d of %d bytes", len(got), len(body.data))
					}
				})
			}
		}
	}
}

func TestCompressReaderConformance(t *testing.T) {
	data := htmlCorpus(100 << 10)
	sources := map[string]func() io.Reader{
		// The last bytes come with io.EOF.
		"data-with-EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
		"half":          func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"one-byte":      func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:3000])) },
	}
	for _, enc := range []string{"gzip", "zstd"} {
		for name, src := range sources {
			t.Run(enc+"/"+name, func(t *testing.T) {
				cr := newCompressReader(enc, src())
				want, err := io.ReadAll(cr)
				cr.Close()
				if err != nil {
					t.Fatal(err)
				}
				plain := decompress(t, enc, want)
				if !bytes.Equal(plain, data[:len(plain)]) || (name != "one-byte" && len(plain) != len(data)) {
					t.Fatal("round trip differs")
				}
				// The same source compresses to the same bytes, which
				// iotest checks reads of every size against.
				cr = newCompressReader(enc, src())
				defer cr.Close()
				if err := iotest.TestReader(cr, want); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// pipeRead reads once from r, failing the test if that takes too long
// (then it calls unblock and waits for the read to end).
func pipeRead(t *testing.T, r io.Reader, p []byte, unblock func()) int {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := r.Read(p)
		ch <- result{n, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("Read: %v", res.err)
		}
		return res.n
	case <-time.After(10 * time.Second):
		unblock()
		<-ch
		t.Fatal("Read blocks: compressed bytes are held back")
		return 0
	}
}

// decodePrefix decodes want's length of plain bytes from the start of a
// compressed stream that is not complete yet.
func decodePrefix(t *testing.T, enc string, b []byte, n int) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip.NewReader over %d bytes: %v", len(b), err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatalf("zstd.NewReader: %v", err)
		}
		defer zr.Close()
		r = zr
	}
	out := make([]byte, n)
	if m, err := io.ReadFull(r, out); err != nil {
		t.Fatalf("decoding the %d bytes read so far gave %q: %v", len(b), out[:m], err)
	}
	return out
}

func TestCompressStreaming(t *testing.T) {
	events := []string{"data: 1\n\n", "data: 2\n\n", "event: end\ndata: {\"done\":true}\n\n"}
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			pr, pw := io.Pipe()
			next := make(chan struct{}, len(events))
			go func() {
				for _, ev := range events {
					if _, err := io.WriteString(pw, ev); err != nil {
						return
					}
					<-next // the origin is slow: it waits for the test
				}
				pw.Close()
			}()
			cr := newCompressReader(enc, pr)
			defer cr.Close()
			var got []byte
			var plain string
			buf := make([]byte, 64<<10)
			for _, ev := range events {
				n := pipeRead(t, cr, buf, func() { pw.CloseWithError(errors.New("test timed out")) })
				got = append(got, buf[:n]...)
				plain += ev
				if d := decodePrefix(t, enc, got, len(plain)); string(d) != plain {
					t.Fatalf("prefix decodes to %q, want %q", d, plain)
				}
				next <- struct{}{}
			}
			rest, err := io.ReadAll(cr)
			if err != nil {
				t.Fatalf("read to the end: %v", err)
			}
			got = append(got, rest...)
			if d := decompress(t, enc, got); string(d) != plain {
				t.Fatalf("stream decodes to %q, want %q", d, plain)
			}
		})
	}
}

var errBoom = errors.New("boom")

// failReader returns data, then err (with the last bytes if together).
type failReader struct {
	data     []byte
	err      error
	together bool
	reads    int
}

func (r *failReader) Read(p []byte) (int, error) {
	r.reads++
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 && (r.together || n == 0) {
		return n, r.err
	}
	return n, nil
}

func TestCompressSrcError(t *testing.T) {
	data := htmlCorpus(100 << 10)
	for _, enc := range []string{"gzip", "zstd"} {
		for _, together := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/together=%v", enc, together), func(t *testing.T) {
				src := &failReader{data: data, err: errBoom, together: together}
				cr := newCompressReader(enc, src)
				got, err := readAllBy(cr, 1000)
				if err != errBoom {
					t.Fatalf("read error = %v, want the source's %v", err, errBoom)
				}
				// What came before the error is a valid prefix.
				if d := decodePrefix(t, enc, got, len(data)); !bytes.Equal(d, data) {
					t.Fatal("output before the error does not decode to the source's bytes")
				}
				reads := src.reads
				if n, err := cr.Read(make([]byte, 10)); n != 0 || err != errBoom {
					t.Fatalf("Read after the error = %d, %v; want 0, %v", n, err, errBoom)
				}
				if src.reads != reads {
					t.Fatal("Read after the error read the source again")
				}
				if err := cr.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			})
		}
	}
}

// closeCounter is a source that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error {
	c.closes++
	return nil
}

func TestCompressClose(t *testing.T) {
	data := htmlCorpus(200 << 10)
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			// Closed midway: the encoder goes back to the pool mid-stream.
			for range 20 {
				src := &closeCounter{Reader: bytes.NewReader(data)}
				cr := newCompressReader(enc, src)
				if _, err := cr.Read(make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
				if err := cr.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if err := cr.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				if src.closes != 1 {
					t.Fatalf("source closed %d times, want 1", src.closes)
				}
				c := cr.(*compressReader)
				if c.enc != nil || c.bufs != nil {
					t.Fatal("Close kept the encoder or the buffers")
				}
				if n, err := cr.Read(make([]byte, 10)); n != 0 || err == nil {
					t.Fatalf("Read after Close = %d, %v; want an error", n, err)
				}
			}
			// Pooled encoders and buffers, whatever state they were left
			// in, start clean streams.
			for i := range 20 {
				cr := newCompressReader(enc, bytes.NewReader(data[:len(data)-i*1000]))
				got, err := io.ReadAll(cr)
				if err != nil {
					t.Fatal(err)
				}
				if c := cr.(*compressReader); c.enc != nil {
					t.Fatal("encoder not released at the end of the stream")
				}
				cr.Close()
				cr.Close()
				if !bytes.Equal(decompress(t, enc, got), data[:len(data)-i*1000]) {
					t.Fatal("round trip after reuse differs")
				}
			}
		})
	}
}

func TestCompressZeroLengthRead(t *testing.T) {
	src := &failReader{data: []byte("hello")}
	cr := newCompressReader("gzip", src)
	defer cr.Close()
	if n, err := cr.Read(nil); n != 0 || err != nil || src.reads != 0 {
		t.Fatalf("Read(nil) = %d, %v after %d source reads; want 0, nil, 0", n, err, src.reads)
	}
}

func TestCompressUnknownCoding(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("newCompressReader(\"br\") did not panic")
		}
	}()
	newCompressReader("br", strings.NewReader("x"))
}

// boundSrc checks, at each read, that the reader's output buffer is empty:
// src is not read while compressed bytes wait.
type boundSrc struct {
	t  *testing.T
	cr *compressReader
	r  io.Reader
}

func (s *boundSrc) Read(p []byte) (int, error) {
	if s.cr.off != len(s.cr.bufs.out) || len(s.cr.bufs.out) != 0 {
		s.t.Fatalf("source read with %d compressed bytes pending", len(s.cr.bufs.out)-s.cr.off)
	}
	return s.r.Read(p)
}

func TestCompressBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	const limit = 128 << 10
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			src := &boundSrc{t: t, r: bytes.NewReader(data)}
			cr := newCompressReader(enc, src).(*compressReader)
			src.cr = cr
			defer cr.Close()
			var got []byte
			var p [1]byte
			maxCap := 0
			for {
				n, err := cr.Read(p[:])
				got = append(got, p[:n]...)
				if cr.bufs != nil {
					maxCap = max(maxCap, cap(cr.bufs.out))
					if maxCap >= limit {
						t.Fatalf("output buffer grew to %d bytes", maxCap)
					}
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s: output buffer capacity at most %d bytes; %d bytes out for %d in", enc, maxCap, len(got), len(data))
			if !bytes.Equal(decompress(t, enc, got), data) {
				t.Fatal("round trip differs")
			}
		})
	}
}
