package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/connector"
	"github.com/culvert-tunnel/culvert/dataplane/edge"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
)

// namedOrigin answers every request with its name.
func namedOrigin(t *testing.T, name string) string {
	return startOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
}

// TestReplicas: two connectors registering one hostname both serve it, the
// edge spreads requests over their connections (fewest in-flight streams),
// a replica that unregisters gets no new request from that moment, and a
// replica naming another --lb-pool is refused with a message.
func TestReplicas(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	b := te.zoneBundle("example.test")
	const host = "app.example.test"
	pool := func(name string) func(*connector.Config) {
		return func(c *connector.Config) { c.LBPool = name; c.HAConnections = 2 }
	}
	a := startConnector(t, te, b, connOptions{hostname: host, originURL: namedOrigin(t, "a"), config: pool("web")})
	bb := startConnector(t, te, b, connOptions{hostname: host, originURL: namedOrigin(t, "b"), config: pool("web")})
	waitFor(t, 15*time.Second, "both replicas registered", func() bool {
		return a.c.Registered() == 2 && bb.c.Registered() == 2 && te.e.LiveConnections(host) == 4
	})

	client := visitorClient(t, te.visitorAddr)
	fetch := func() string {
		t.Helper()
		resp, err := client.Get("http://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return string(body)
	}
	// Concurrent requests: the fewest-in-flight pick spreads them.
	counts := map[string]int{}
	results := make(chan string, 64)
	for range 64 {
		go func() {
			resp, err := client.Get("http://" + host + "/")
			if err != nil {
				results <- "error: " + err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(body)
		}()
	}
	for range 64 {
		counts[<-results]++
	}
	if counts["a"] == 0 || counts["b"] == 0 || counts["a"]+counts["b"] != 64 {
		t.Fatalf("64 concurrent requests over two replicas: %v", counts)
	}

	// Another pool for the same hostname: refused, permanently.
	c := startConnector(t, te, b, connOptions{hostname: host, originURL: namedOrigin(t, "c"), config: pool("other")})
	err, ok := c.wait(15 * time.Second)
	if !ok {
		t.Fatal("a replica with another --lb-pool was not refused")
	}
	var terr *tunnel.Error
	if !errors.As(err, &terr) || terr.Code != tunnel.CodeLBPoolMismatch || !strings.Contains(terr.Message, `--lb-pool "web"`) {
		t.Fatalf("replica with another pool: %v, want %s naming the pool", err, tunnel.CodeLBPoolMismatch)
	}

	// Replica a stops: from the moment it unregisters every request goes to b.
	a.stop()
	for i := range 50 {
		if got := fetch(); got != "b" {
			t.Fatalf("request %d after replica a stopped went to %q", i, got)
		}
	}
	if n := te.e.LiveConnections(host); n != 2 {
		t.Fatalf("live connections after replica a stopped: %d, want 2", n)
	}
}

// slowFirstRegistrar records the order of registrations and holds
// connection 0's for a while, so a sibling that did not wait would show.
type slowFirstRegistrar struct {
	edge.Registrar
	mu     sync.Mutex
	events []string
}

func (r *slowFirstRegistrar) Register(ctx context.Context, cert *x509.Certificate, m *tunnel.Register) (*edge.Registration, *tunnel.Error) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf("start %d", m.ConnIndex))
	r.mu.Unlock()
	if m.ConnIndex == 0 {
		time.Sleep(300 * time.Millisecond)
	}
	reg, err := r.Registrar.Register(ctx, cert, m)
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf("end %d", m.ConnIndex))
	r.mu.Unlock()
	return reg, err
}

// TestConnectionZeroRegistersFirst: of a connector's HA connections,
// connection 0 registers first; the others start once it has.
func TestConnectionZeroRegistersFirst(t *testing.T) {
	logs := newLogBook(t)
	rec := &slowFirstRegistrar{}
	te := startEdge(t, logs, edgeOptions{config: func(c *edge.Config) {
		rec.Registrar = c.Registrar
		c.Registrar = rec
	}})
	b := te.zoneBundle("example.test")
	c := startConnector(t, te, b, connOptions{hostname: "app.example.test", originURL: startHelloOrigin(t),
		config: func(c *connector.Config) { c.HAConnections = 4 }})
	waitFor(t, 15*time.Second, "4 connections registered", func() bool { return c.c.Registered() == 4 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.events) != 8 || rec.events[0] != "start 0" || rec.events[1] != "end 0" {
		t.Fatalf("registrations: %v; want connection 0's to start and end before any other", rec.events)
	}
}
