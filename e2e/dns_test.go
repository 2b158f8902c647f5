package e2e

import (
	"io"
	"strings"
	"testing"
)

// TestPartialZone: a tunnel in a partial (CNAME setup) zone gets no DNS
// record; the connector logs the CNAME the user must create at their DNS
// provider, and visitors who arrive through it (with the hostname as Host)
// are routed as usual.
func TestPartialZone(t *testing.T) {
	logs := newLogBook(t)
	te := startEdge(t, logs, edgeOptions{})
	if _, err := te.ctl.CreateZone("partial.test", true); err != nil {
		t.Fatal(err)
	}
	b := te.zoneBundle("partial.test")
	tc := startConnector(t, te, b, connOptions{hostname: "app.partial.test", originURL: startHelloOrigin(t)})
	waitRegistered(t, te, tc, "app.partial.test")

	recs, err := te.ctl.Store.RecordsByName("app.partial.test")
	if err != nil || len(recs) != 0 {
		t.Fatalf("records for a partial zone's tunnel: %v %v", recs, err)
	}
	warn := logs.find("connector", "the zone is a partial zone: create this record at its DNS provider so visitors reach the edge")
	if len(warn) != 1 || warn[0].attrs["record"] != "app.partial.test. CNAME app.partial.test.cdn.culvert.test." {
		t.Fatalf("connector's CNAME notice: %v", warn)
	}
	resp, err := visitorClient(t, te.visitorAddr).Get("http://app.partial.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "app.partial.test") {
		t.Fatalf("visitor through the CNAME: %d %s", resp.StatusCode, body)
	}
}
