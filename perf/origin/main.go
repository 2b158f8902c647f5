// Command origin is the origin server of the tunnel benchmarks
// (perf/tunnel.sh): fasthttp serving fixed bodies, so that the origin
// costs as little as possible beside the tunnel it is measured through.
// It is a measuring tool, not a product.
//
//	GET /hello          "hello world\n" (12 bytes)
//	GET /bytes/65536    64 KiB
//	GET /bytes/1048576  1 MiB
//
// The bodies are allocated once at start and are the same on every run
// (byte i is 'a'+i%26, with a newline every 64 bytes). The first line on
// stdout is the address listened on (so --addr 127.0.0.1:0 works).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/valyala/fasthttp"
)

var hello = []byte("hello world\n")

// body returns n deterministic bytes.
func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if i%64 == 63 {
			b[i] = '\n'
		} else {
			b[i] = 'a' + byte(i%26)
		}
	}
	return b
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	flag.Parse()

	bodies := map[string][]byte{
		"/hello":         hello,
		"/bytes/65536":   body(65536),
		"/bytes/1048576": body(1048576),
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		b, ok := bodies[string(ctx.Path())]
		if !ok {
			ctx.Error("not found\n", fasthttp.StatusNotFound)
			return
		}
		ctx.SetContentType("text/plain")
		// The body is shared and never written: no copy per response.
		// fasthttp sets Content-Length from it.
		ctx.Response.SetBodyRaw(b)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The driving script reads the address from the first line.
	fmt.Println(ln.Addr().String())
	os.Stdout.Sync()

	srv := &fasthttp.Server{
		Handler:               handler,
		NoDefaultServerHeader: true,
		Concurrency:           1 << 16,
	}
	if err := srv.Serve(ln); err != nil {
		log.Fatal(err)
	}
}
