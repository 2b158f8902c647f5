package edge

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// corpusSize is the size of each benchmark corpus.
const corpusSize = 256 << 10

var benchWords = strings.Fields(`the of and to in is you that it he was for on are as with his they at be
	this have from or one had by word but not what all were we when your can said there use an each which she
	do how their if will up other about out many then them these so some her would make like him into time has
	look two more write go see number no way could people my than first water been call who oil its now find
	long down day did get come made may part account order shipping delivery price review product customer
	support service update release feature performance security network tunnel origin edge request response`)

// htmlCorpus returns about n bytes of HTML like a shop's listing page:
// markup that repeats with varying text, prices, links and ids.
func htmlCorpus(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := func(k int) string {
		var sb strings.Builder
		for i := range k {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(benchWords[rng.IntN(len(benchWords))])
		}
		return sb.String()
	}
	var b bytes.Buffer
	b.WriteString(`<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Catalogue - Example Shop</title>
  <link rel="stylesheet" href="/static/css/main.3f9a1c.css">
  <script defer src="/static/js/app.8b2d4e.js"></script>
</head>
<body class="page page-catalogue">
  <header class="site-header">
    <nav class="nav"><ul class="nav-list">
      <li class="nav-item"><a class="nav-link" href="/">Home</a></li>
      <li class="nav-item"><a class="nav-link active" href="/catalogue">Catalogue</a></li>
      <li class="nav-item"><a class="nav-link" href="/account">Account</a></li>
    </ul></nav>
  </header>
  <main class="container">
    <ul class="product-grid">
`)
	for id := 1000; b.Len() < n-200; id++ {
		fmt.Fprintf(&b, `      <li class="product-card" data-id="%d" data-category="%s">
        <a class="product-link" href="/products/%d-%s">
          <img class="product-image" src="/img/p/%d/%x.webp" alt="%s" width="320" height="240" loading="lazy">
          <h2 class="product-title">%s</h2>
        </a>
        <p class="product-description">%s</p>
        <div class="product-meta">
          <span class="price" itemprop="price">$%d.%02d</span>
          <span class="rating" aria-label="rated %d out of 5">%s</span>
          <button class="btn btn-primary add-to-cart" type="button" data-sku="SKU-%06d">Add to cart</button>
        </div>
      </li>
`, id, benchWords[rng.IntN(len(benchWords))], id, benchWords[rng.IntN(len(benchWords))],
			id%97, rng.Uint32(), words(3), words(2+rng.IntN(4)), words(12+rng.IntN(20)),
			1+rng.IntN(500), rng.IntN(100), 1+rng.IntN(5), strings.Repeat("★", 1+rng.IntN(5)), rng.IntN(1000000))
	}
	b.WriteString("    </ul>\n  </main>\n  <footer class=\"site-footer\"><p>&copy; Example Shop</p></footer>\n</body>\n</html>\n")
	return b.Bytes()
}

// jsonCorpus returns about n bytes of a JSON API response: an array of
// user records.
func jsonCorpus(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for id := 1; b.Len() < n-300; id++ {
		if id > 1 {
			b.WriteByte(',')
		}
		first := benchWords[rng.IntN(len(benchWords))]
		last := benchWords[rng.IntN(len(benchWords))]
		fmt.Fprintf(&b, `{"id":%d,"uuid":"%08x-%04x-4%03x-%04x-%012x","name":"%s %s","email":"%s.%s%d@example.com",`+
			`"created_at":"2024-%02d-%02dT%02d:%02d:%02dZ","active":%t,"score":%.3f,"roles":["%s","%s"],`+
			`"address":{"street":"%d %s street","city":"%s","zip":"%05d","country":"%s"},"orders":%d}`,
			id, rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<16), rng.Uint64()&(1<<48-1),
			first, last, first, last, rng.IntN(100),
			1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(2) == 0, rng.Float64()*100,
			[]string{"user", "admin", "editor", "viewer"}[rng.IntN(4)], []string{"billing", "support", "ops"}[rng.IntN(3)],
			1+rng.IntN(999), benchWords[rng.IntN(len(benchWords))], []string{"Berlin", "Lisbon", "Austin", "Osaka", "Lagos"}[rng.IntN(5)],
			rng.IntN(100000), []string{"DE", "PT", "US", "JP", "NG"}[rng.IntN(5)], rng.IntN(50))
	}
	b.WriteString(`],"page":1,"next":"/api/v1/users?page=2"}`)
	return b.Bytes()
}

// BenchmarkCompress measures newCompressReader end to end on a body read
// from its source in 16 KiB pieces (the size of a tunnel DATA frame), each
// one compressed and flushed: MB/s of input, and ratio = compressed size /
// original size.
func BenchmarkCompress(b *testing.B) {
	corpora := []struct {
		name string
		data []byte
	}{
		{"html", htmlCorpus(corpusSize)},
		{"json", jsonCorpus(corpusSize)},
	}
	for _, enc := range []string{"gzip", "zstd"} {
		for _, c := range corpora {
			b.Run(enc+"/"+c.name, func(b *testing.B) {
				src := &pieceReader{piece: 16 << 10}
				buf := make([]byte, 32<<10)
				var out int64
				b.SetBytes(int64(len(c.data)))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					src.data = c.data
					cr := newCompressReader(enc, src)
					out = 0
					for {
						n, err := cr.Read(buf)
						out += int64(n)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					cr.Close()
				}
				b.ReportMetric(float64(out)/float64(len(c.data)), "ratio")
			})
		}
	}
}

// BenchmarkCompressEncoderMemory reports the heap one encoder holds
// (B/encoder) once it has compressed 256 KiB of HTML the way a
// compressReader does: what each pooled encoder costs while its response
// lasts. A reader's buffers add compressChunk for the source and about as
// much for the output.
func BenchmarkCompressEncoderMemory(b *testing.B) {
	data := htmlCorpus(corpusSize)
	for _, enc := range []string{"gzip", "zstd"} {
		b.Run(enc, func(b *testing.B) {
			var perEncoder float64
			for b.Loop() {
				perEncoder = encoderMemory(enc, data, 16)
			}
			b.ReportMetric(perEncoder, "B/encoder")
		})
	}
}

// encoderMemory returns the heap held per encoder by n new encoders of enc
// made as the pools make them, each having compressed data in chunks.
func encoderMemory(enc string, data []byte, n int) float64 {
	pool := &gzipPool
	if enc == "zstd" {
		pool = &zstdPool
	}
	encs := make([]interface {
		flushEncoder
		Reset(io.Writer)
	}, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range encs {
		w := pool.New().(interface {
			flushEncoder
			Reset(io.Writer)
		})
		w.Reset(io.Discard)
		for d := data; len(d) > 0; {
			k := min(len(d), compressChunk)
			w.Write(d[:k])
			w.Flush()
			d = d[k:]
		}
		w.Close()
		encs[i] = w
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(encs)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// pieceReader reads data in pieces of at most piece bytes.
type pieceReader struct {
	data  []byte
	piece int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	return n, nil
}
