// Command h2server serves a fixed small response over h2c (HTTP/2 with
// prior knowledge) with either culvert's engine or x/net/http2, for load
// tests with h2load. It is a measuring tool, not a product: see perf/h2load.sh.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/frames/hpack"
	"golang.org/x/net/http2"
)

var body = []byte("hello, h2load\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	impl := flag.String("impl", "culvert", "culvert or xnet")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The driving script reads the address from the first line.
	fmt.Println(ln.Addr().String())
	os.Stdout.Sync()

	resp := []hpack.HeaderField{
		{Name: []byte(":status"), Value: []byte("200")},
		{Name: []byte("content-type"), Value: []byte("text/plain")},
		{Name: []byte("content-length"), Value: []byte(fmt.Sprint(len(body)))},
	}
	cfg := &dataplane.Config{
		MaxConcurrentStreams: 1000,
		Handler: dataplane.HandlerFunc(func(s *dataplane.Stream) {
			s.WriteHeaders(resp, false)
			s.Write(body)
			s.CloseWrite()
		}),
	}
	xsrv := &http2.Server{MaxConcurrentStreams: 1000}
	xh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	for {
		nc, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		switch *impl {
		case "xnet":
			go xsrv.ServeConn(nc, &http2.ServeConnOpts{Handler: xh})
		default:
			go dataplane.NewServerConn(nc, cfg).Serve()
		}
	}
}
