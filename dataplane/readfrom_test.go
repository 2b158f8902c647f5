package dataplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// jitterReader yields src in reads of random sizes, tiny ones included.
type jitterReader struct {
	src []byte
	rng *rand.Rand
}

func (j *jitterReader) Read(p []byte) (int, error) {
	if len(j.src) == 0 {
		return 0, io.EOF
	}
	n := 1 + j.rng.IntN(min(len(p), 40000))
	if j.rng.IntN(3) == 0 {
		n = 1 + j.rng.IntN(16)
	}
	n = min(n, len(j.src), len(p))
	copy(p, j.src[:n])
	j.src = j.src[n:]
	return n, nil
}

// TestStreamReadFrom: bytes queued with ReadFrom, from reads of every
// size, reach the peer intact and in order.
func TestStreamReadFrom(t *testing.T) {
	body := pattern(3<<20 + 12345)
	want := sha256.Sum256(body)
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		s.WriteHeaders(fields(":status", "200"), false)
		jr := &jitterReader{src: body, rng: rand.New(rand.NewPCG(1, 2))}
		if n, err := s.ReadFrom(jr); err != nil || n != int64(len(body)) {
			t.Errorf("ReadFrom: %d, %v", n, err)
		}
	})})
	c := dialClient(t, addr, &Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadHeaders(ctx); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, s)
	if err != nil || n != int64(len(body)) {
		t.Fatalf("read %d, %v; want %d", n, err, len(body))
	}
	if got := h.Sum(nil); hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
		t.Fatal("the body changed on the way")
	}
}

// TestStreamReadFromBoundedByPeer: a peer that does not read stops
// ReadFrom at the send buffer, even when every read is one byte: it is not
// one pooled chunk per read.
func TestStreamReadFromBoundedByPeer(t *testing.T) {
	queued := make(chan int64, 1)
	addr, _ := startServer(t, &Config{SendBuffer: 64 << 10, Handler: HandlerFunc(func(s *Stream) {
		s.WriteHeaders(fields(":status", "200"), false)
		cr := &countingReader{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Wait until ReadFrom stops taking bytes (one byte per Read
			// is slow under the race detector), at most 10 s.
			last := int64(-1)
			for i := 0; i < 100; i++ {
				time.Sleep(100 * time.Millisecond)
				n := cr.n.Load()
				if n == last {
					break
				}
				last = n
			}
			n := cr.n.Load()
			s.Reset(0x8) // ends ReadFrom
			queued <- n
		}()
		s.ReadFrom(cr)
		<-done // the stream is not used after the handler returns
	})})
	// The client's window (64 KiB stream, 64 KiB connection) and a client
	// that never reads: at most window + send buffer can leave ReadFrom.
	c := dialClient(t, addr, &Config{InitialStreamWindow: 65535, InitialConnWindow: 65535})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadHeaders(ctx); err != nil {
		t.Fatal(err)
	}
	n := <-queued
	if n > 65535+64<<10+1 {
		t.Fatalf("ReadFrom took %d bytes from its reader past a stalled peer; want at most window + send buffer", n)
	}
	if n < 64<<10 {
		t.Fatalf("ReadFrom took only %d bytes", n)
	}
}

// countingReader yields one byte per Read, forever, and counts them.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = 'x'
	c.n.Add(1)
	return 1, nil
}

// TestCloseReadWakesReader: CloseRead from another goroutine ends a Read
// blocked on a body that is not coming, with ErrReadClosed (not io.EOF: a
// body cut short must not pass for a whole one).
func TestCloseReadWakesReader(t *testing.T) {
	readErr := make(chan error, 1)
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		go func() {
			time.Sleep(100 * time.Millisecond)
			s.CloseRead()
		}()
		_, err := io.Copy(io.Discard, s)
		readErr <- err
		s.WriteHeaders(fields(":status", "200"), true)
	})})
	c := dialClient(t, addr, &Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx, fields(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("the start of a body that never ends"))
	select {
	case err := <-readErr:
		if err != ErrReadClosed {
			t.Fatalf("blocked Read after CloseRead: %v, want ErrReadClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CloseRead did not wake the blocked Read")
	}
}

// failingReader yields some bytes, then fails.
type failingReader struct{ left int }

var errSourceBroke = errors.New("source broke")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, errSourceBroke
	}
	n := min(len(p), f.left)
	f.left -= n
	return n, nil
}

// TestReadFromSourceTellsSidesApart: a failing source is readErr, a reset
// stream is streamErr, a clean end is neither.
func TestReadFromSourceTellsSidesApart(t *testing.T) {
	results := make(chan [2]error, 3)
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		s.WriteHeaders(fields(":status", "200"), false)
		switch string(s.Headers().Get(":path")) {
		case "/fail":
			_, r, w := s.ReadFromSource(&failingReader{left: 1000})
			results <- [2]error{r, w}
		case "/reset":
			s.Reset(0x8)
			_, r, w := s.ReadFromSource(&failingReader{left: 1000})
			results <- [2]error{r, w}
		default:
			_, r, w := s.ReadFromSource(bytes.NewReader(make([]byte, 1000)))
			results <- [2]error{r, w}
		}
	})})
	c := dialClient(t, addr, &Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, path := range []string{"/fail", "/reset", "/ok"} {
		s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", path), true)
		if err != nil {
			t.Fatal(err)
		}
		got := <-results
		switch path {
		case "/fail":
			if got[0] != errSourceBroke || got[1] != nil {
				t.Errorf("failing source: readErr %v, streamErr %v", got[0], got[1])
			}
		case "/reset":
			if got[0] != nil || got[1] == nil {
				t.Errorf("reset stream: readErr %v, streamErr %v", got[0], got[1])
			}
		default:
			if got[0] != nil || got[1] != nil {
				t.Errorf("clean end: readErr %v, streamErr %v", got[0], got[1])
			}
		}
		s.Release()
	}
}
