package dataplane

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

// ended is a context that has ended: ReadHeaders with it does not wait.
func endedCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestOnResponse: the callback runs once, on news for the receiver: the
// whole small response, a reset, the connection's end; and at once when
// the news is already in.
func TestOnResponse(t *testing.T) {
	release := make(chan struct{})
	addr, conns := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		switch string(s.Headers().Get(":path")) {
		case "/reset":
			s.Reset(frames.ErrCodeCancel)
		case "/hang":
			<-release
		default:
			s.WriteMessage(fields(":status", "200"), []byte("hello"))
		}
	})})
	defer close(release)
	c := dialClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(path string) *Stream {
		s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", path), true)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	type news struct {
		hdrsErr error
		ended   bool
		n       int
	}
	watch := func(s *Stream) (chan news, *atomic.Int32) {
		ch := make(chan news, 2)
		var calls atomic.Int32
		s.OnResponse(func() {
			calls.Add(1)
			_, err := s.ReadHeaders(endedCtx())
			n, ended := s.BodyState()
			ch <- news{err, ended, n}
		})
		return ch, &calls
	}
	wait := func(ch chan news) news {
		select {
		case n := <-ch:
			return n
		case <-time.After(5 * time.Second):
			t.Fatal("no OnResponse call within 5s")
			return news{}
		}
	}

	// A whole small response: one call, with all of it in.
	s := open("/")
	ch, calls := watch(s)
	if n := wait(ch); n.hdrsErr != nil || !n.ended || n.n != 5 {
		t.Fatalf("small response: %+v", n)
	}
	body, _ := io.ReadAll(s)
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != 1 {
		t.Fatalf("%d calls, want 1", calls.Load())
	}
	// Registered after the news: called at once, on the caller's goroutine.
	var now bool
	s.OnResponse(func() { now = true })
	if !now {
		t.Fatal("OnResponse after the response: not called at once")
	}
	s.Release()

	// A reset before any headers.
	s = open("/reset")
	ch, _ = watch(s)
	if n := wait(ch); n.hdrsErr == nil {
		t.Fatalf("reset stream: %+v", n)
	}
	s.Release()

	// The connection ends under a pending request.
	s = open("/hang")
	ch, _ = watch(s)
	srv := <-conns
	srv.Close()
	if n := wait(ch); n.hdrsErr == nil {
		t.Fatalf("closed connection: %+v", n)
	}
	s.Release()
}

// TestDetachFinish: a handler may hand its stream over and return; the
// stream ends when Finish is called, from another goroutine or from the
// handler itself; Finish without a response resets the stream.
func TestDetachFinish(t *testing.T) {
	var workers Workers
	defer workers.Close()
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(func(s *Stream) {
		s.Detach()
		switch string(s.Headers().Get(":path")) {
		case "/later":
			workers.Go(func() {
				time.Sleep(20 * time.Millisecond)
				s.WriteMessage(fields(":status", "200"), []byte("later"))
				s.Finish()
			})
		case "/now":
			s.WriteHeaders(fields(":status", "200"), false)
			s.Write([]byte("now"))
			s.Finish() // before the handler returns
		case "/nothing":
			go s.Finish()
		}
	})})
	c := dialClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	get := func(path string) (string, error) {
		s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":authority", "a.test", ":path", path), true)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Release()
		if _, err := s.ReadHeaders(ctx); err != nil {
			return "", err
		}
		b, err := io.ReadAll(s)
		return string(b), err
	}
	for range 3 {
		if b, err := get("/later"); b != "later" || err != nil {
			t.Fatalf("/later: %q %v", b, err)
		}
		if b, err := get("/now"); b != "now" || err != nil {
			t.Fatalf("/now: %q %v", b, err)
		}
		var re ResetError
		if _, err := get("/nothing"); !errors.As(err, &re) || re.Code != frames.ErrCodeInternal {
			t.Fatalf("/nothing: %v, want a reset with INTERNAL_ERROR", err)
		}
	}
}
