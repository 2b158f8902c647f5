package hpack

import (
	"bytes"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

// browserBlocks returns the browser request list encoded twice by x/net's
// encoder: the first block fills the dynamic table, the second one (warm)
// refers to it for almost every field.
func browserBlocks() (cold, warm []byte) {
	var buf bytes.Buffer
	enc := xhpack.NewEncoder(&buf)
	for i := 0; i < 2; i++ {
		for _, f := range BrowserRequestFields {
			if err := enc.WriteField(xhpack.HeaderField{Name: f.Name, Value: f.Value}); err != nil {
				panic(err)
			}
		}
		if i == 0 {
			cold = bytes.Clone(buf.Bytes())
			buf.Reset()
		}
	}
	return cold, bytes.Clone(buf.Bytes())
}

func BenchmarkDecodeBrowserWarm(b *testing.B) {
	cold, warm := browserBlocks()
	d := NewDecoder(4096)
	dst, err := d.Decode(nil, cold)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(warm)))
	b.ReportAllocs()
	for b.Loop() {
		dst, err = d.Decode(dst, warm)
		if err != nil {
			b.Fatal(err)
		}
	}
	if len(dst) != len(BrowserRequestFields) {
		b.Fatalf("decoded %d fields", len(dst))
	}
}

// x/net's usual entry point: DecodeFull returns a fresh []HeaderField.
func BenchmarkDecodeBrowserWarmXNet(b *testing.B) {
	cold, warm := browserBlocks()
	d := xhpack.NewDecoder(4096, nil)
	if _, err := d.DecodeFull(cold); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(warm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.DecodeFull(warm); err != nil {
			b.Fatal(err)
		}
	}
}

// x/net's cheapest use: an emit callback that does not keep the fields.
func BenchmarkDecodeBrowserWarmXNetEmit(b *testing.B) {
	cold, warm := browserBlocks()
	n := 0
	d := xhpack.NewDecoder(4096, func(xhpack.HeaderField) { n++ })
	if _, err := d.Write(cold); err != nil {
		b.Fatal(err)
	}
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(warm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Write(warm); err != nil {
			b.Fatal(err)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBrowserWarm(b *testing.B) {
	fields := browserFields()
	e := NewEncoder()
	buf := e.AppendHeaderBlock(nil, fields)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendHeaderBlock(buf[:0], fields)
	}
	b.SetBytes(int64(len(buf)))
}

// The same with IndexAll, which indexes :path like x/net does, so that the
// warm block consists of indexed fields only, as x/net's does.
func BenchmarkEncodeBrowserWarmIndexAll(b *testing.B) {
	fields := browserFields()
	e := NewEncoder()
	e.SetIndexPolicy(IndexAll)
	buf := e.AppendHeaderBlock(nil, fields)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendHeaderBlock(buf[:0], fields)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeBrowserWarmXNet(b *testing.B) {
	fields := make([]xhpack.HeaderField, len(BrowserRequestFields))
	for i, f := range BrowserRequestFields {
		fields[i] = xhpack.HeaderField{Name: f.Name, Value: f.Value}
	}
	var buf bytes.Buffer
	e := xhpack.NewEncoder(&buf)
	for _, f := range fields {
		e.WriteField(f)
	}
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		for _, f := range fields {
			e.WriteField(f)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// Encode and decode a block that inserts a new entry, and so evicts one,
// every time, as when each request carries a different x-request-id.
func BenchmarkRoundTripBrowserChangingHeader(b *testing.B) {
	fields := append(browserFields(), pf("x-request-id", "00000000"))
	e := NewEncoder()
	d := NewDecoder(4096)
	var buf []byte
	var dst []HeaderField
	var err error
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		v := fields[len(fields)-1].Value
		v[0], v[1], v[2] = byte('a'+n%26), byte('a'+n/26%26), byte('a'+n/676%26)
		buf = e.AppendHeaderBlock(buf[:0], fields)
		if dst, err = d.Decode(dst, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHuffmanDecode(b *testing.B) {
	s := []byte(BrowserRequestFields[9].Value) // accept
	enc := AppendHuffmanString(nil, s)
	var out []byte
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		out, _ = AppendHuffmanDecode(out[:0], enc)
	}
}

func BenchmarkHuffmanEncode(b *testing.B) {
	s := []byte(BrowserRequestFields[9].Value)
	var out []byte
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		out = AppendHuffmanString(out[:0], s)
	}
}
