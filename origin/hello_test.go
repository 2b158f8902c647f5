package origin

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

func TestHelloWorldPages(t *testing.T) {
	url, _ := startHello(t)
	c := newClient(t, Config{URL: url})

	r := mustDo(t, c, "GET", "/")
	for _, want := range []string{"Hello from culvert", "GET", "visitor.test"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/ lacks %q", want)
		}
	}

	r = mustDo(t, c, "GET", "/uptime")
	var up struct {
		Uptime  float64   `json:"uptime_seconds"`
		Started time.Time `json:"started"`
	}
	if err := json.Unmarshal(r.body, &up); err != nil || up.Uptime < 0 || up.Started.IsZero() {
		t.Fatalf("/uptime: %s (%v)", r.body, err)
	}

	r = mustDo(t, c, "GET", "/hello")
	if r.header["Content-Length"] != "12" || r.header["Content-Type"] != "text/plain; charset=utf-8" {
		t.Fatalf("/hello headers %v", r.header)
	}

	r = mustDo(t, c, "GET", "/sse?n=3&interval=0")
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n\n"), "\n\n")
	if len(lines) != 3 {
		t.Fatalf("/sse: %q", r.body)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "data:" || f[1] != string(rune('0'+i)) {
			t.Fatalf("/sse event %d: %q", i, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[2]); err != nil {
			t.Fatalf("/sse event %d time: %v", i, err)
		}
	}
	for _, bad := range []string{"/sse?n=10001", "/sse?interval=x", "/bytes/-1", "/bytes/17179869185", "/status/99", "/sleep?d=x"} {
		if r := mustDo(t, c, "GET", bad); r.status != 400 {
			t.Errorf("%s: %d, want 400", bad, r.status)
		}
	}

	r = mustDo(t, c, "GET", "/bytes/100000")
	if len(r.body) != 100000 || string(r.body[:10]) != string(patternBlock()[:10]) || r.header["Content-Length"] != "100000" {
		t.Fatalf("/bytes: %d bytes, %v", len(r.body), r.header)
	}

	r, err := do(t, c, "POST", "/echo", strings.NewReader("echo me"), 7)
	if err != nil || string(r.body) != "echo me" || r.header["X-Echo-Method"] != "POST" {
		t.Fatalf("/echo: %v %q %v", err, r.body, r.header)
	}

	r = mustDo(t, c, "GET", "/sleep?d=10ms")
	if r.status != 200 {
		t.Fatalf("/sleep: %d", r.status)
	}
}

func TestServeHelloWorldStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHelloWorld(ctx, ln) }()
	c := newClient(t, Config{URL: "http://" + ln.Addr().String()})
	// A long event stream in progress does not hold the shutdown.
	stream := make(chan error, 1)
	go func() {
		_, err := do(t, c, "GET", "/sse?n=100&interval=1h", nil, 0)
		stream <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("ServeHelloWorld did not return after ctx ended")
	}
	<-stream
}
