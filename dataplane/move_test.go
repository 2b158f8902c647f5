package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"
)

// TestReadFromStreamMovesBody: a proxy relays a backend's responses to its
// own client with ReadFromSource(backendStream), which moves the received
// chunks instead of copying them. Bodies of every size arrive intact, with
// a send buffer smaller than the body (the relay waits for room), and a
// backend that resets mid-body surfaces as the source's error.
func TestReadFromStreamMovesBody(t *testing.T) {
	backendAddr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		if s.Headers().Get(":path") != nil && string(s.Headers().Get(":path")) == "/broken" {
			s.WriteHeaders(fields(":status", "200"), false)
			writePattern(s, 100<<10)
			time.Sleep(50 * time.Millisecond) // let the bytes go out first
			s.Reset(0x2)                      // INTERNAL_ERROR mid-body
			return
		}
		testApp(s)
	})})
	backend := dialClient(t, backendAddr, &Config{})
	type relayResult struct {
		n                  int64
		readErr, streamErr error
	}
	results := make(chan relayResult, 16)
	proxyAddr, _ := startServer(t, &Config{SendBuffer: 48 << 10, Handler: HandlerFunc(func(s *Stream) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		path := string(s.Headers().Get(":path"))
		bs, err := backend.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "b", ":path", path), true)
		if err != nil {
			s.WriteHeaders(fields(":status", "502"), true)
			return
		}
		defer bs.Release()
		if _, err := bs.ReadHeaders(ctx); err != nil {
			s.WriteHeaders(fields(":status", "502"), true)
			return
		}
		s.WriteHeaders(fields(":status", "200"), false)
		n, rerr, serr := s.ReadFromSource(bs)
		results <- relayResult{n, rerr, serr}
		if rerr != nil {
			s.Reset(0x2)
		}
	})})
	c := dialClient(t, proxyAddr, &Config{})
	get := func(path string) (string, int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "p", ":path", path), true)
		if err != nil {
			return "", 0, err
		}
		defer s.Release()
		hdrs, err := s.ReadHeaders(ctx)
		if err != nil {
			return "", 0, err
		}
		if st := string(hdrs.Get(":status")); st != "200" {
			return "", 0, errors.New("status " + st)
		}
		h := sha256.New()
		n, err := io.Copy(h, s)
		return hex.EncodeToString(h.Sum(nil)), n, err
	}
	for _, size := range []int{1, 4095, 16384, 16385, 100000, 3<<20 + 123} {
		sum, n, err := get("/bytes/" + strconv.Itoa(size))
		if err != nil || n != int64(size) || sum != patternSum(size) {
			t.Fatalf("%d bytes through the relay: got %d, err %v, sha equal %v", size, n, err, sum == patternSum(size))
		}
		if r := <-results; r.n != int64(size) || r.readErr != nil || r.streamErr != nil {
			t.Fatalf("%d bytes: ReadFromSource returned %d, %v, %v", size, r.n, r.readErr, r.streamErr)
		}
	}
	if _, n, err := get("/broken"); !errors.As(err, new(ResetError)) {
		t.Fatalf("a body the backend reset mid-way: %d bytes, err %v; want a reset", n, err)
	}
	r := <-results
	var re ResetError
	if !errors.As(r.readErr, &re) || r.streamErr != nil {
		t.Fatalf("backend reset: ReadFromSource returned %d, %v, %v; want the reset as the source's error", r.n, r.readErr, r.streamErr)
	}
}
