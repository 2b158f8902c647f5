package dataplane

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// goroutineID parses the running goroutine's id from its stack header.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// workersServer serves handler h on Workers p; each handler records the
// goroutine it ran on.
func workersServer(t *testing.T, p *Workers, h func(*Stream)) (get func(path string), ids func() map[uint64]int) {
	var mu sync.Mutex
	seen := map[uint64]int{}
	addr, _ := startServer(t, &Config{Workers: p, Handler: HandlerFunc(func(s *Stream) {
		mu.Lock()
		seen[goroutineID()]++
		mu.Unlock()
		if h != nil {
			h(s)
		}
		s.WriteHeaders(fields(":status", "200"), false)
		s.Write([]byte("ok"))
	})})
	client := xnetClient(addr)
	get = func(path string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Errorf("GET %s: %q", path, b)
		}
	}
	ids = func() map[uint64]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[uint64]int{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
	return get, ids
}

// TestWorkersReuseGoroutines: one request after another run on the same few
// goroutines, which wait idle in between.
func TestWorkersReuseGoroutines(t *testing.T) {
	p := &Workers{MaxIdle: 4}
	defer p.Close()
	get, ids := workersServer(t, p, nil)
	for range 200 {
		get("/")
	}
	if n := len(ids()); n > 4 {
		t.Errorf("200 requests one after another ran on %d goroutines, want at most 4", n)
	}
	waitFor(t, "an idle worker", func() bool { return p.Idle() >= 1 })
}

// TestWorkersMaxIdle: after 20 handlers ran at once, only MaxIdle wait.
func TestWorkersMaxIdle(t *testing.T) {
	p := &Workers{MaxIdle: 4}
	defer p.Close()
	var arrived sync.WaitGroup
	arrived.Add(20)
	release := make(chan struct{})
	get, ids := workersServer(t, p, func(*Stream) {
		arrived.Done()
		<-release
	})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); get(fmt.Sprintf("/%d", i)) }()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	if n := len(ids()); n != 20 {
		t.Errorf("20 concurrent handlers ran on %d goroutines", n)
	}
	waitFor(t, "4 idle workers", func() bool { return p.Idle() == 4 })
	time.Sleep(50 * time.Millisecond)
	if n := p.Idle(); n != 4 {
		t.Errorf("%d idle workers, want MaxIdle 4", n)
	}
}

// TestWorkersIdleTimeout: idle workers end after IdleTimeout; after Close
// none waits and handlers still run.
func TestWorkersIdleTimeout(t *testing.T) {
	p := &Workers{IdleTimeout: 50 * time.Millisecond}
	get, _ := workersServer(t, p, nil)
	get("/")
	waitFor(t, "an idle worker", func() bool { return p.Idle() == 1 })
	waitFor(t, "the idle worker to end", func() bool { return p.Idle() == 0 })
	get("/")
	waitFor(t, "an idle worker", func() bool { return p.Idle() == 1 })
	p.Close()
	if n := p.Idle(); n != 0 {
		t.Errorf("%d idle workers after Close", n)
	}
	get("/")
	time.Sleep(20 * time.Millisecond)
	if n := p.Idle(); n != 0 {
		t.Errorf("%d idle workers after Close and a request", n)
	}
}
