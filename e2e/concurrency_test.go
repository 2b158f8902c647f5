package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/origin"
)

// TestConcurrentRequestsOneConnection sends 1000 requests at once over a
// tunnel of ONE connection: half POST a unique body to /echo, half GET
// /headers with a unique header. Every request succeeds and gets back
// exactly its own value: no answer crosses to another request.
func TestConcurrentRequestsOneConnection(t *testing.T) {
	concurrentRequests(t, connOptions{})
}

// TestConcurrentRequestsPipelined is the same with the connector pipelining
// the GETs to the origin (--proxy-pipeline-depth 8), the POSTs going on
// connections of their own between them.
func TestConcurrentRequestsPipelined(t *testing.T) {
	concurrentRequests(t, connOptions{origin: func(c *origin.Config) { c.PipelineDepth = 8 }})
}

func concurrentRequests(t *testing.T, opts connOptions) {
	tn := startTunnel(t, opts)
	if got := tn.edge.e.Connections(); got != 1 {
		t.Fatalf("edge has %d tunnel connections, want 1", got)
	}
	before := tn.conn.scrape().get("culvert_connector_requests_total")

	const n = 1000
	start := make(chan struct{})
	errs := make(chan error, n)
	reqIDs := make([]string, n) // the edge's culvert-request-id, as /headers saw it
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- oneRequest(tn, i, &reqIDs[i])
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 10 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
	t.Logf("%d requests in %v", n, time.Since(began).Round(time.Millisecond))
	seen := map[string]int{}
	for i, id := range reqIDs {
		if i%2 == 0 {
			continue
		}
		if j, dup := seen[id]; dup || id == "" {
			t.Errorf("requests %d and %d carried the same request id %q", j, i, id)
		}
		seen[id] = i
	}
	if got := tn.edge.e.Connections(); got != 1 {
		t.Errorf("edge has %d tunnel connections after the requests, want 1", got)
	}
	if got := tn.conn.c.Registered(); got != 1 {
		t.Errorf("connector has %d registered connections after the requests, want 1", got)
	}
	m := tn.conn.scrape()
	if got := m.get("culvert_connector_requests_total") - before; got != n {
		t.Errorf("the connector served %v requests, want %d", got, n)
	}
	if got := m.get("culvert_connector_tunnel_reconnects_total"); got != 0 {
		t.Errorf("the connector reconnected %v times, want 0", got)
	}
}

// oneRequest makes request i and checks that the answer is its own; a
// /headers request stores the culvert-request-id the origin saw in reqID.
func oneRequest(tn *setup, i int, reqID *string) error {
	id := fmt.Sprintf("req-%04d-%x", i, uint64(i)*0x9e3779b97f4a7c15)
	if i%2 == 0 {
		body := strings.Repeat(id+";", 1+i%64)
		req, err := http.NewRequest(http.MethodPost, tn.url("/echo"), strings.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := tn.client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("%s: reading: %w", id, err)
		}
		if resp.StatusCode != 200 || string(got) != body {
			return fmt.Errorf("%s: /echo answered %d with %d bytes %.60q, want its own %d bytes", id, resp.StatusCode, len(got), got, len(body))
		}
		return nil
	}
	req, err := http.NewRequest(http.MethodGet, tn.url("/headers"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-E2e-Id", id)
	resp, err := tn.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: reading: %w", id, err)
	}
	var hs map[string][]string
	if resp.StatusCode != 200 || json.Unmarshal(got, &hs) != nil {
		return fmt.Errorf("%s: /headers answered %d: %.200q", id, resp.StatusCode, got)
	}
	if v := hs["X-E2e-Id"]; len(v) != 1 || v[0] != id {
		return fmt.Errorf("%s: the origin saw X-E2e-Id %q, want exactly [%q]", id, v, id)
	}
	if v := hs["Host"]; len(v) != 1 || v[0] != tn.hostname {
		return fmt.Errorf("%s: the origin saw Host %q, want %q", id, v, tn.hostname)
	}
	if v := hs["Culvert-Request-Id"]; len(v) == 1 {
		*reqID = v[0]
	}
	return nil
}
