package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedReadBuffersBounded: a stream whose handler never reads holds
// its received DATA, by reference, while another stream on the connection
// moves 16 MiB. The references pin at most shareBuffers of the reader's
// buffers (the rest is copied), the moving stream's bytes arrive intact,
// and once the stalled stream ends no buffer stays pinned.
func TestSharedReadBuffersBounded(t *testing.T) {
	const stalledBody, movingBody = 3 << 20, 16 << 20
	release := make(chan struct{})
	got := make(chan string, 1)
	addr, conns := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		switch string(s.Headers().Get(":path")) {
		case "/stall":
			<-release
		case "/move":
			h := sha256.New()
			io.Copy(h, s)
			got <- hex.EncodeToString(h.Sum(nil))
		}
		s.WriteHeaders(fields(":status", "200"), true)
	})})
	c := dialClient(t, addr, &Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	post := func(path string) *Stream {
		s, err := c.OpenStream(ctx, fields(":method", "POST", ":scheme", "http", ":authority", "x", ":path", path), false)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	stalled, moving := post("/stall"), post("/move")
	srv := <-conns
	done := make(chan error, 1)
	go func() { done <- writePattern(stalled, stalledBody) }()
	var peak atomic.Int32
	go func() {
		for {
			select {
			case <-release:
				return
			default:
			}
			if n := int32(srv.fr.SharedBuffers()); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	if err := writePattern(moving, movingBody); err != nil {
		t.Fatal(err)
	}
	moving.CloseWrite()
	select {
	case sum := <-got:
		if sum != patternSum(movingBody) {
			t.Fatal("the moving stream's body arrived altered")
		}
	case <-ctx.Done():
		t.Fatal("the moving stream stalled")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled stream's body buffered", func() bool {
		b, _ := srvStream(srv, stalled.ID()).BodyState()
		return b == stalledBody
	})
	maxShared := int(peak.Load())
	if n := srv.fr.SharedBuffers(); n > shareBuffers || maxShared > shareBuffers {
		t.Fatalf("%d read buffers shared (peak %d), limit %d", n, maxShared, shareBuffers)
	}
	if maxShared == 0 {
		t.Fatal("no read buffer was ever shared")
	}
	close(release)
	stalled.CloseWrite()
	waitFor(t, "shared buffers returned", func() bool { return srv.fr.SharedBuffers() <= 1 })
}

// srvStream returns the server's stream id.
func srvStream(c *Conn, id uint32) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}
