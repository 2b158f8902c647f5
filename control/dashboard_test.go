package control

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The dashboard shows the newest audit events, newest first, however long
// the log: it reads only those (Store.RecentAudit).
func TestDashboardShowsNewestAudit(t *testing.T) {
	te := newTestEdge(t)
	admin := te.admin()
	const n = dashboardAuditEvents + 50
	for i := range n {
		if _, err := te.Store.AppendAudit(AuditEvent{AccountID: admin.AccountID, Kind: "Test", Subject: fmt.Sprintf("ev-%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c := te.browser(t)
	if resp, page := signInForm(t, c, te.srv.URL+"/signin", "admin@culvert.test", adminPassword); resp.StatusCode >= 400 {
		t.Fatalf("sign in: %s %s", resp.Status, page)
	}
	resp, err := c.Get(te.srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	if !strings.Contains(page, `id="audit"`) {
		t.Fatalf("no audit table on the dashboard: %s", page)
	}
	newest, next := strings.Index(page, fmt.Sprintf("ev-%03d", n-1)), strings.Index(page, fmt.Sprintf("ev-%03d", n-2))
	if newest < 0 || next < 0 || newest > next {
		t.Errorf("the newest events are not first (positions %d, %d)", newest, next)
	}
	// The sign-in is the newest event: 199 of the test's events fit.
	if strings.Contains(page, fmt.Sprintf("ev-%03d", n-dashboardAuditEvents)) || !strings.Contains(page, fmt.Sprintf("ev-%03d", n-dashboardAuditEvents+1)) {
		t.Errorf("the dashboard does not show exactly the newest %d events", dashboardAuditEvents)
	}
	if got := strings.Count(page, "ev-"); got != dashboardAuditEvents-1 {
		t.Errorf("%d test events on the dashboard, want %d", got, dashboardAuditEvents-1)
	}
}

// GET /v1/audit?last=N: the newest N events, oldest of them first; a bad
// N, or N with after, is refused.
func TestAuditAPILast(t *testing.T) {
	te := newTestEdge(t)
	admin := te.admin()
	for i := range 30 {
		if _, err := te.Store.AppendAudit(AuditEvent{AccountID: admin.AccountID, Kind: "Test", Subject: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := os.ReadFile(filepath.Join(te.DataDir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	get := func(query string) (int, []AuditEvent) {
		req, _ := http.NewRequest("GET", te.srv.URL+"/v1/audit?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := te.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var es []AuditEvent
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&es); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, es
	}
	all := must[[]AuditEvent](t)(te.Store.ListAudit(admin.AccountID, 0, 0))
	code, es := get("last=5")
	if code != http.StatusOK || len(es) != 5 {
		t.Fatalf("last=5: %d, %d events", code, len(es))
	}
	for i, e := range es {
		if want := all[len(all)-5+i].Seq; e.Seq != want {
			t.Errorf("last=5: event %d has seq %d, want %d", i, e.Seq, want)
		}
	}
	for _, q := range []string{"last=0", "last=-1", "last=abc", "last=20000", "last=5&after=1"} {
		if code, _ := get(q); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, code)
		}
	}
}
