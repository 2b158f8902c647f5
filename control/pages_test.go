package control

import (
	"strings"
	"testing"
)

// Every value on a page is escaped: a hostile connector ID in the audit
// log, a zone name, an email cannot inject markup.
func TestPagesEscape(t *testing.T) {
	evil := `"><script>alert(1)</script>`
	u := &User{Email: evil, Role: RoleSuperAdmin}
	pages := []string{
		renderPage("signin", pageData{Title: evil, Error: evil, Intro: evil, Action: evil, Email: evil}),
		renderPage("authorize", pageData{Title: "x", User: u, CSRF: evil, Action: evil, CanAuthorize: true, Zones: []Zone{{Name: evil}}}),
		renderPage("done", pageData{Title: "x", User: u, Zone: evil}),
		renderPage("message", pageData{Title: evil, Error: evil}),
		renderPage("dashboard", dashboardData{pageData: pageData{Title: "x", User: u}, Account: evil,
			Tunnels: []tunnelRow{{Tunnel: Tunnel{Hostname: evil, LBPool: evil}}},
			Records: []DNSRecord{{Name: evil, Type: evil, Values: []string{evil}}},
			Certs:   []certRow{{CertRecord: CertRecord{Serial: evil}, Zone: evil}},
			Audit:   []AuditEvent{{Kind: evil, Subject: evil, Detail: evil, Actor: evil}}}),
	}
	for i, p := range pages {
		if strings.Contains(p, "<script") || strings.Contains(p, evil) {
			t.Errorf("page %d is not escaped:\n%s", i, p)
		}
		if !strings.Contains(p, "&lt;script&gt;") {
			t.Errorf("page %d lost the value", i)
		}
	}
	if p := renderPage("dashboard", dashboardData{pageData: pageData{Title: "x"}}); strings.Count(p, ">none<") != 4 {
		t.Errorf("empty dashboard: %s", p)
	}
}
