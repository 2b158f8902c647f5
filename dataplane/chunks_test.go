package dataplane

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/bufpool"
	"github.com/culvert-tunnel/culvert/frames"
)

// A small body that ends its stream is held in a buffer of its size, not in
// a frame-sized one: many small responses in flight hold little memory.
func TestSmallBodyTakesSmallReceiveChunk(t *testing.T) {
	body := []byte("hello from the origin\n")
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		s.WriteHeaders(fields(":status", "200"), false)
		s.Write(body)
		s.CloseWrite()
	})})
	c := dialClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if _, err := s.ReadHeaders(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for END_STREAM without reading, then look at the queue.
	for {
		c.mu.Lock()
		done := s.recvEnd
		var chunkCap int
		if done && !s.rbuf.empty() {
			chunkCap = cap(s.rbuf.front().b.B)
		}
		c.mu.Unlock()
		if done {
			if chunkCap == 0 || chunkCap > 1<<10 {
				t.Fatalf("a %d-byte body is held in a %d-byte buffer, want at most 1 KiB", len(body), chunkCap)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body %q, %v; want %q", got, err, body)
	}
}

func TestChunkPayloadSizes(t *testing.T) {
	const frameMax = 16 << 10
	chunkCaps := func(q *chunkQueue) (caps []int) {
		for i := q.h; i < len(q.q); i++ {
			caps = append(caps, cap(q.q[i].b.B))
		}
		return caps
	}
	small := frames.HeaderLen + smallChunkPayload + bufpool.Slack

	// Small writes share a small chunk, then take another.
	var q chunkQueue
	for range 5 {
		p := make([]byte, 1000)
		q.write(p, sendChunkPayload(len(p), frameMax))
	}
	if caps := chunkCaps(&q); len(caps) != 2 || caps[0] > small || caps[1] > small {
		t.Errorf("five 1000-byte writes: chunks of %v bytes, want two of at most %d", caps, small)
	}
	if q.n != 5000 {
		t.Errorf("queued %d bytes, want 5000", q.n)
	}
	q.reset()

	// A big write fills frame-sized chunks (each goes out without a copy).
	p := make([]byte, 40<<10)
	q.write(p, sendChunkPayload(len(p), frameMax))
	var payloads []int
	for !q.empty() {
		c := q.take()
		payloads = append(payloads, c.w-c.r)
		bufpool.Put(c.b)
	}
	if len(payloads) != 3 || payloads[0] != frameMax || payloads[1] != frameMax || payloads[2] != 8<<10 {
		t.Errorf("a 40 KiB write: chunk payloads %v, want 16 KiB, 16 KiB, 8 KiB", payloads)
	}

	// Received: data that ends the stream is held at its size; small data
	// that does not, in a small chunk; the rest in frame-sized chunks.
	for _, tc := range []struct {
		n    int
		end  bool
		want int
	}{
		{14, true, 14},
		{3000, true, 3000},
		{14, false, smallChunkPayload},
		{minSharedData, true, defaultChunkPayload},
		{minSharedData, false, defaultChunkPayload},
	} {
		if got := recvChunkPayload(tc.n, tc.end); got != tc.want {
			t.Errorf("recvChunkPayload(%d, %v) = %d, want %d", tc.n, tc.end, got, tc.want)
		}
	}
}
