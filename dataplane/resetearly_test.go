package dataplane

import (
	"context"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

// TestResetBeforeHeadersSent: a stream the client resets before its
// HEADERS went out never existed on the wire; sending RST_STREAM for it
// would be a frame on an idle stream, a connection error for the peer
// (RFC 9113 §5.1), ending every other stream of the connection. Hundreds
// of open-then-reset streams leave the connection healthy.
func TestResetBeforeHeadersSent(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		s.WriteHeaders(fields(":status", "200"), true)
	})})
	c := dialClient(t, addr, &Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
	for range 500 {
		s, err := c.OpenStream(ctx, req, true)
		if err != nil {
			t.Fatal(err)
		}
		s.Reset(frames.ErrCodeCancel)
	}
	s, err := c.OpenStream(ctx, req, true)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, err := s.ReadHeaders(ctx)
	if err != nil {
		t.Fatalf("the connection did not survive the early resets: %v", err)
	}
	if st := string(hdrs.Get(":status")); st != "200" {
		t.Fatalf("status %s", st)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}
