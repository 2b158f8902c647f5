package dataplane

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

// recConn records the bytes of each Write.
type recConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// batchWith reports whether one Write carried both the HEADERS and the
// END_STREAM of stream id.
func (c *recConn) batchWith(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.writes {
		hdrs, end := false, false
		for len(w) >= frames.HeaderLen {
			fh := frames.ParseHeader(w)
			if fh.StreamID == id {
				hdrs = hdrs || fh.Type == frames.FrameHeaders
				end = end || fh.Flags&frames.FlagDataEndStream != 0 && (fh.Type == frames.FrameData || fh.Type == frames.FrameHeaders)
			}
			w = w[min(len(w), frames.HeaderLen+int(fh.Length)):]
		}
		if hdrs && end {
			return true
		}
	}
	return false
}

// WriteMessage sends headers, body and end in one batch when the body fits
// the send buffer, and as Write would when it does not.
func TestWriteMessage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	rc := make(chan *recConn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := &recConn{Conn: nc}
		rc <- c
		sc := NewServerConn(c, &Config{Handler: HandlerFunc(func(s *Stream) {
			n, _ := strconv.Atoi(string(s.Headers().Get(":path"))[1:])
			if err := s.WriteMessage(fields(":status", "200", "content-length", strconv.Itoa(n)), pattern(n)); err != nil {
				t.Errorf("WriteMessage(%d bytes): %v", n, err)
			}
			if err := s.WriteMessage(fields(":status", "200"), nil); err != ErrHeadersSent {
				t.Errorf("second WriteMessage: %v, want ErrHeadersSent", err)
			}
		})})
		sc.Serve()
	}()
	c := dialClient(t, ln.Addr().String(), nil)
	server := <-rc
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range []int{0, 14, 5000, 100 << 10, DefaultSendBuffer + 5000} {
		s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/"+strconv.Itoa(n)), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadHeaders(ctx); err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(body, pattern(n)) {
			t.Fatalf("%d-byte body: got %d bytes, %v", n, len(body), err)
		}
		if n <= 5000 && !server.batchWith(s.ID()) {
			t.Errorf("%d-byte body: headers and end of stream %d not in one write", n, s.ID())
		}
		s.Release()
	}
}
