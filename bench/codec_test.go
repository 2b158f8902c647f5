package bench

import (
	"bytes"
	"io"
	"testing"

	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"golang.org/x/net/http2"
	xhpack "golang.org/x/net/http2/hpack"
)

// loopReader serves head once, then body over and over: an endless stream
// of frames from memory, so a benchmark measures the codec and one copy out
// of the "socket", not I/O.
type loopReader struct {
	head, body []byte
	off        int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if len(l.head) > 0 {
		n := copy(p, l.head)
		l.head = l.head[n:]
		return n, nil
	}
	n := copy(p, l.body[l.off:])
	l.off = (l.off + n) % len(l.body)
	return n, nil
}

const data16K = 16 << 10

// nDataFrames is how many frames the ReadData16K source holds. One: each
// Read of the source then delivers one frame, as a socket read does when
// the peer writes frame by frame, and the working set (source plus the
// Reader's buffer) stays in L1 like the Memcpy16K baseline's two buffers.
// With a source larger than L1 both codecs are bound by the copy out of it
// and the comparison says little about the codec.
const nDataFrames = 1

// dataFrames is nDataFrames 16 KiB DATA frames, back to back.
func dataFrames(b *testing.B) []byte {
	var buf bytes.Buffer
	w := frames.NewWriter(&buf)
	payload := bytes.Repeat([]byte("0123456789abcdef"), data16K/16)
	for range nDataFrames {
		if err := w.WriteData(1, false, payload); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
	return buf.Bytes()
}

// browserHeaders returns the representative browser request as x/net
// fields, our fields, and its uncompressed size (the bytes SetBytes counts).
func browserHeaders() ([]xhpack.HeaderField, []hpack.HeaderField, int64) {
	var xf []xhpack.HeaderField
	var of []hpack.HeaderField
	var n int64
	for _, f := range hpack.BrowserRequestFields {
		xf = append(xf, xhpack.HeaderField{Name: f.Name, Value: f.Value})
		of = append(of, hpack.HeaderField{Name: []byte(f.Name), Value: []byte(f.Value)})
		n += int64(len(f.Name) + len(f.Value))
	}
	return xf, of, n
}

// browserHeaderFrames returns the browser request as a HEADERS frame
// encoded into an empty table (cold) and the same list encoded again into
// the now-warm table (warm), both by x/net's encoder so both decoders read
// identical bytes.
func browserHeaderFrames(b *testing.B) (cold, warm []byte) {
	xf, _, _ := browserHeaders()
	var blk bytes.Buffer
	enc := xhpack.NewEncoder(&blk)
	frame := func(sid uint32) []byte {
		blk.Reset()
		for _, f := range xf {
			if err := enc.WriteField(f); err != nil {
				b.Fatal(err)
			}
		}
		var out bytes.Buffer
		w := frames.NewWriter(&out)
		if err := w.WriteHeaderBlock(sid, true, blk.Bytes()); err != nil {
			b.Fatal(err)
		}
		w.Flush()
		return out.Bytes()
	}
	return frame(1), frame(3)
}

func BenchmarkCodec(b *testing.B) {
	b.Run("Memcpy16K", func(b *testing.B) {
		src, dst := make([]byte, data16K), make([]byte, data16K)
		b.ReportAllocs()
		b.SetBytes(data16K)
		for b.Loop() {
			copy(dst, src)
		}
	})

	b.Run("ReadData16K/culvert", func(b *testing.B) {
		r := frames.NewReader(&loopReader{body: dataFrames(b)})
		b.ReportAllocs()
		b.SetBytes(data16K)
		for b.Loop() {
			f, err := r.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if len(f.(*frames.DataFrame).Data()) != data16K {
				b.Fatal("short frame")
			}
		}
	})
	b.Run("ReadData16K/xnet", func(b *testing.B) {
		fr := http2.NewFramer(nil, &loopReader{body: dataFrames(b)})
		fr.SetReuseFrames() // as x/net's own server does
		b.ReportAllocs()
		b.SetBytes(data16K)
		for b.Loop() {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if len(f.(*http2.DataFrame).Data()) != data16K {
				b.Fatal("short frame")
			}
		}
	})

	_, _, hdrBytes := browserHeaders()
	b.Run("ReadHeaders/culvert", func(b *testing.B) {
		cold, warm := browserHeaderFrames(b)
		r := frames.NewReader(&loopReader{head: cold, body: warm})
		dec := hpack.NewDecoder(4096)
		fields := make([]hpack.HeaderField, 0, 32)
		read := func() {
			f, err := r.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			fields, err = dec.Decode(fields[:0], f.(*frames.HeadersFrame).BlockFragment())
			if err != nil || len(fields) != len(hpack.BrowserRequestFields) {
				b.Fatalf("decode: %v (%d fields)", err, len(fields))
			}
		}
		read() // the cold block warms the table
		b.ReportAllocs()
		b.SetBytes(hdrBytes)
		for b.Loop() {
			read()
		}
	})
	b.Run("ReadHeaders/xnet", func(b *testing.B) {
		cold, warm := browserHeaderFrames(b)
		fr := http2.NewFramer(nil, &loopReader{head: cold, body: warm})
		fr.ReadMetaHeaders = xhpack.NewDecoder(4096, nil)
		fr.SetReuseFrames()
		read := func() {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if len(f.(*http2.MetaHeadersFrame).Fields) != len(hpack.BrowserRequestFields) {
				b.Fatal("wrong field count")
			}
		}
		read()
		b.ReportAllocs()
		b.SetBytes(hdrBytes)
		for b.Loop() {
			read()
		}
	})

	b.Run("WriteData16K/culvert", func(b *testing.B) {
		w := frames.NewWriter(io.Discard)
		payload := make([]byte, data16K)
		b.ReportAllocs()
		b.SetBytes(data16K)
		for b.Loop() {
			if err := w.WriteData(1, false, payload); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteData16K/xnet", func(b *testing.B) {
		fr := http2.NewFramer(io.Discard, nil)
		payload := make([]byte, data16K)
		b.ReportAllocs()
		b.SetBytes(data16K)
		for b.Loop() {
			if err := fr.WriteData(1, false, payload); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("WriteHeaders/culvert", func(b *testing.B) {
		_, fields, _ := browserHeaders()
		w := frames.NewWriter(io.Discard)
		enc := hpack.NewEncoder()
		var blk []byte
		write := func() {
			blk = enc.AppendHeaderBlock(blk[:0], fields)
			if err := w.WriteHeaderBlock(1, true, blk); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		write() // warm the table
		b.ReportAllocs()
		b.SetBytes(hdrBytes)
		for b.Loop() {
			write()
		}
	})
	b.Run("WriteHeaders/xnet", func(b *testing.B) {
		xf, _, _ := browserHeaders()
		fr := http2.NewFramer(io.Discard, nil)
		var blk bytes.Buffer
		enc := xhpack.NewEncoder(&blk)
		write := func() {
			blk.Reset()
			for _, f := range xf {
				if err := enc.WriteField(f); err != nil {
					b.Fatal(err)
				}
			}
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
				b.Fatal(err)
			}
		}
		write()
		b.ReportAllocs()
		b.SetBytes(hdrBytes)
		for b.Loop() {
			write()
		}
	})
}
