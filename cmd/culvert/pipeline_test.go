package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestProxyPipelineDepth runs `culvert tunnel --proxy-pipeline-depth 4`
// against an origin that answers a connection's requests only once two of
// them have arrived on it: the second visitor request must reach the origin
// on the first one's connection, before its answer.
func TestProxyPipelineDepth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan string, 16)
	var mu sync.Mutex
	perConn := map[int]int{} // connection -> requests read on it
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				var paths []string
				for {
					// Answer once two requests are in, or after 5s (so
					// that a connection without pipelining still ends).
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					r, err := http.ReadRequest(br)
					if err == nil {
						paths = append(paths, r.URL.Path)
						mu.Lock()
						perConn[n]++
						mu.Unlock()
						arrived <- r.URL.Path
						if len(paths) < 2 {
							continue
						}
					}
					var out string
					for _, p := range paths {
						out += fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(p), p)
					}
					paths = nil
					if _, werr := io.WriteString(c, out); werr != nil || err != nil && !isTimeout(err) {
						return
					}
				}
			}()
		}
	}()

	dir := t.TempDir()
	e := startEdgeProc(t, filepath.Join(dir, "edge"))
	cert := e.certFor("example.test", dir)
	tun := startTunnelProc(t, cert, "app.example.test", "http://"+ln.Addr().String(), []string{e.tunnelAddr},
		"--ha-connections", "1", "--proxy-pipeline-depth", "4")
	waitTook(t, 15*time.Second, "the tunnel registers", func() bool { return readyCount(tun.metrics) == 1 })

	type answer struct {
		body string
		err  error
	}
	get := func(path string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest("GET", "http://"+e.httpAddr+path, nil)
			req.Host = "app.example.test"
			resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- answer{body: string(b), err: err}
		}()
		return ch
	}
	first := get("/first")
	select {
	case p := <-arrived:
		if p != "/first" {
			t.Fatalf("the origin got %s first", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first request did not reach the origin")
	}
	second := get("/second")
	start := time.Now()
	for _, w := range []struct {
		ch   <-chan answer
		want string
	}{{first, "/first"}, {second, "/second"}} {
		a := <-w.ch
		if a.err != nil || a.body != w.want {
			t.Errorf("GET %s: %q, %v", w.want, a.body, a.err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the answers took %v: the origin waited for a second request on the connection", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(perConn) != 1 || perConn[0] != 2 {
		t.Errorf("requests per origin connection: %v, want both on one", perConn)
	}
	for series, want := range map[string]float64{
		"culvert_connector_origin_pipelined_requests_total": 2,
		"culvert_connector_origin_pipeline_writes_total":    2,
		"culvert_connector_origin_pipeline_resent_total":    0,
	} {
		if got := metricValue(t, tun.metrics, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
