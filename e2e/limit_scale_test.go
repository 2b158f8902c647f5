//go:build !race

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
)

// TestTunnelLimitAtRealScale: the default limit of 1000 running tunnels per
// account, reached for real: 1000 connectors (one connection each) register
// 1000 hostnames of one account, and the next one is refused with a message
// that says what to do. (Without the race detector, which allows only 8128
// goroutines: make test runs it in its second pass.)
func TestTunnelLimitAtRealScale(t *testing.T) {
	const n = 1000
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	// A partial zone: no DNS records, so the store writes the tunnel and
	// its audit entry only.
	if _, err := te.ctl.CreateZone("example.test", true); err != nil {
		t.Fatal(err)
	}
	b := te.zoneBundle("example.test")
	origin := closedPortURL(t)
	start := time.Now()
	conns := make([]*testConnector, n)
	for i := range conns {
		conns[i] = startConnector(t, te, b, connOptions{hostname: fmt.Sprintf("t%d.example.test", i), originURL: origin})
	}
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d tunnels registered", n), func() bool {
		for _, c := range conns {
			if c.c.Registered() != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("%d tunnels registered in %v", n, time.Since(start).Round(time.Millisecond))
	if got, err := te.ctl.Store.CountTunnels(b.Token.AccountID); err != nil || got != n {
		t.Fatalf("the store counts %d tunnels (%v), want %d", got, err, n)
	}
	terr := expectRefusal(t, te, b, "one-more.example.test", tunnel.CodeTunnelLimit)
	if !strings.Contains(terr.Message, "maximum of 1000 tunnels") || !strings.Contains(terr.Message, "raise the account's limit") {
		t.Fatalf("tunnel limit message: %q", terr.Message)
	}
	// One stops: the next may start.
	conns[0].stop()
	waitFor(t, 10*time.Second, "the stopped tunnel unregistered", func() bool { return te.e.LiveConnections("t0.example.test") == 0 })
	next := startConnector(t, te, b, connOptions{hostname: "one-more.example.test", originURL: origin})
	waitRegistered(t, te, next, "one-more.example.test")
}
