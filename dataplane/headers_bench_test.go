package dataplane

import (
	"testing"

	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// BenchmarkHeaderListCopyFrom copies a proxied request's header list (what
// the engine does for every HEADERS frame it receives).
func BenchmarkHeaderListCopyFrom(b *testing.B) {
	in := []hpack.HeaderField{
		{Name: []byte(":method"), Value: []byte("GET")},
		{Name: []byte(":scheme"), Value: []byte("http")},
		{Name: []byte(":authority"), Value: []byte("app.perf.test:27002")},
		{Name: []byte(":path"), Value: []byte("/hello")},
		{Name: []byte("user-agent"), Value: []byte("h2load nghttp2/1.52.0")},
		{Name: []byte("accept"), Value: []byte("*/*")},
		{Name: []byte("x-forwarded-for"), Value: []byte("127.0.0.1")},
		{Name: []byte("x-forwarded-proto"), Value: []byte("http")},
		{Name: []byte("culvert-request-id"), Value: []byte("0123456789abcdef0123")},
		{Name: []byte("culvert-visitor-ip"), Value: []byte("127.0.0.1")},
	}
	var h HeaderList
	b.ReportAllocs()
	for b.Loop() {
		h.CopyFrom(in)
	}
}
