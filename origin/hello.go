package origin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Limits of the hello-world origin.
const (
	helloWSReadLimit = 16 << 20
	helloMaxEvents   = 10000
	helloMaxBytes    = 1 << 34
	helloMaxSleep    = 10 * time.Minute
)

// patternBlock is the 64 KiB block /bytes/N repeats: byte i of the body is
// patternBlock()[i%len]. Cheap to produce at any N, and not all one byte,
// so that a misplaced chunk shows in a hash.
var patternBlock = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<10)
	x := uint32(0x9e3779b9)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
})

// HelloWorld is the built-in origin (`culvert --hello-world`). It serves over
// net/http, so that flushing server-sent events and accepting websockets is
// plain. Pages:
//
//	/             HTML: "Hello from culvert", the request's method, host and
//	              path, and the X-Forwarded-For, X-Forwarded-Proto,
//	              Culvert-Connecting-IP and Culvert-Request-ID headers it had
//	/ws           websocket echo: every message back with its type (16 MiB read limit)
//	/sse          text/event-stream: ?n events (default 10, at most 10000),
//	              ?interval apart (Go duration, default 1s), each flushed:
//	              "data: <i> <RFC 3339 time>\n\n"
//	/uptime       JSON {"uptime_seconds": float, "started": time}
//	/hello        "hello world\n" (12 bytes: the benchmark page)
//	/headers      JSON of the request headers as received (Host included)
//	/status/N     answers status N (200..599)
//	/sleep?d=D    sleeps D (at most 10m), then 200
//	/bytes/N      N bytes (N <= 2^34) of a fixed 64 KiB pattern, Content-Length set
//	/echo         any method: streams the request body back as it arrives
//	              (same Content-Type, X-Echo-Method: the method)
//	/sha256       JSON {"sha256": hex, "bytes": n} of the request body
func HelloWorld() http.Handler {
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", helloIndex)
	mux.HandleFunc("/ws", helloWebsocket)
	mux.HandleFunc("/sse", helloSSE)
	mux.HandleFunc("/uptime", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{
			"uptime_seconds": time.Since(started).Seconds(),
			"started":        started,
		})
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{"12"}
		_, _ = io.WriteString(w, "hello world\n")
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		hs := r.Header.Clone()
		hs["Host"] = []string{r.Host}
		writeJSON(w, hs)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "status must be 200..599", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d\n", code)
	})
	mux.HandleFunc("/sleep", helloSleep)
	mux.HandleFunc("/bytes/{n}", helloBytes)
	mux.HandleFunc("/echo", helloEcho)
	mux.HandleFunc("/sha256", helloSHA256)
	return mux
}

// ServeHelloWorld serves HelloWorld on ln until ctx ends, then shuts the
// server down (requests in progress see their context cancelled) and
// returns nil. It closes ln. An error of the listener is returned as is.
func ServeHelloWorld(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           HelloWorld(),
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	_, _ = w.Write(append(b, '\n'))
}

func helloIndex(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Hello from culvert</title></head>\n<body>\n<h1>Hello from culvert</h1>\n<p>This page is served by culvert's built-in origin, through the tunnel.</p>\n<table>\n")
	row := func(k, v string) {
		fmt.Fprintf(&b, "<tr><th>%s</th><td>%s</td></tr>\n", html.EscapeString(k), html.EscapeString(v))
	}
	row("method", r.Method)
	row("host", r.Host)
	row("path", r.URL.Path)
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "Culvert-Connecting-IP", "Culvert-Request-ID"} {
		if v := r.Header.Values(h); len(v) > 0 {
			row(strings.ToLower(h), strings.Join(v, ", "))
		}
	}
	b.WriteString("</table>\n</body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	_, _ = io.WriteString(w, b.String())
}

func helloWebsocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// The Origin of a browser behind the tunnel names the public
		// hostname, not the one this origin sees: an echo page has
		// nothing to protect from cross-origin use.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return // Accept answered the request
	}
	defer c.CloseNow()
	c.SetReadLimit(helloWSReadLimit)
	ctx := r.Context()
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return // the peer closed (answered by the library) or the connection broke
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

func helloSSE(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n := 10
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > helloMaxEvents {
			http.Error(w, "n must be 0..10000", http.StatusBadRequest)
			return
		}
		n = v
	}
	interval := time.Second
	if s := q.Get("interval"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "interval must be a Go duration", http.StatusBadRequest)
			return
		}
		interval = max(d, 0)
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	var t *time.Timer
	buf := make([]byte, 0, 64)
	for i := range n {
		if i > 0 && interval > 0 {
			if t == nil {
				t = time.NewTimer(interval)
				defer t.Stop()
			} else {
				t.Reset(interval)
			}
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
		}
		buf = append(buf[:0], "data: "...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, ' ')
		buf = time.Now().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func helloSleep(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("d"))
	if err != nil || d < 0 || d > helloMaxSleep {
		http.Error(w, "d must be a Go duration, 0..10m", http.StatusBadRequest)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return
	case <-t.C:
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "slept %v\n", d)
}

func helloBytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 || n > helloMaxBytes {
		http.Error(w, "N must be 0..2^34", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	block := patternBlock()
	for n > 0 {
		k := min(n, int64(len(block)))
		if _, err := w.Write(block[:k]); err != nil {
			return
		}
		n -= k
	}
}

func helloEcho(w http.ResponseWriter, r *http.Request) {
	// Read the body while the answer goes out: HTTP/1.1 allows it and a
	// streaming client needs it (net/http otherwise stops reading the body
	// once the response has begun).
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	h := w.Header()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	} else {
		h["Content-Type"] = nil // no sniffing
	}
	h.Set("X-Echo-Method", r.Method)
	if r.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func helloSHA256(w http.ResponseWriter, r *http.Request) {
	hash := sha256.New()
	n, err := io.Copy(hash, r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, map[string]any{"sha256": hex.EncodeToString(hash.Sum(nil)), "bytes": n})
}
