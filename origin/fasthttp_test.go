package origin

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestFasthttpHostClientBodyStream records what fasthttp's own client does
// with a request body stream, which is why Client sends streams itself:
//
//   - size -1 (chunked): it streams, each Read of the stream is written and
//     flushed as one chunk, the body is never buffered whole;
//   - but HostClient.Do is half duplex: it returns only after the whole
//     body is written, even when the origin answered long before;
//   - size >= 0: the body goes through the bufio writer, so a small Read
//     waits in its buffer (WriteBufferSize) until more comes, and after the
//     last byte Do still reads the stream once more, waiting for its EOF.
//
// If a fasthttp upgrade makes the first two assertions fail, revisit the
// sender in exchange.go.
func TestFasthttpHostClientBodyStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gotFirst := make(chan struct{}, 1)
	serveOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		if _, err := io.ReadFull(r.Body, make([]byte, 100)); err != nil {
			return
		}
		gotFirst <- struct{}{}
		w.WriteHeader(200) // an early answer
		rc.Flush()
		io.Copy(io.Discard, r.Body)
	}))
	hc := &fasthttp.HostClient{Addr: ln.Addr().String()}

	for _, size := range []int{-1, 2000} {
		pr, pw := io.Pipe()
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.Header.SetMethod("POST")
		req.SetRequestURI("/")
		req.Header.SetHost("origin.test")
		req.SetBodyStream(pr, size)
		done := make(chan error, 1)
		go func() { done <- hc.Do(req, resp) }()
		pw.Write(make([]byte, 100))
		streamed := false
		wait := 300 * time.Millisecond // fixed size: only logged
		if size < 0 {
			wait = 5 * time.Second
		}
		select {
		case <-gotFirst:
			streamed = true
		case <-time.After(wait):
		}
		switch {
		case size < 0 && !streamed:
			t.Errorf("size %d: the origin did not get the first bytes while the body was open", size)
		case size >= 0:
			t.Logf("size %d: first 100 bytes reached the origin while the body was open: %v", size, streamed)
		}
		if size < 0 {
			// The origin has answered; Do still waits for the body.
			select {
			case err := <-done:
				t.Errorf("size %d: HostClient.Do returned (%v) before the body ended: full duplex now?", size, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
		pw.Write(make([]byte, 1900))
		pw.Close()
		if !streamed {
			<-gotFirst
		}
		if err := <-done; err != nil {
			t.Errorf("size %d: %v", size, err)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
