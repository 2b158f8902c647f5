package control

import (
	"html"
	"strconv"
	"strings"
	"time"
)

// The pages are written by hand rather than with html/template: the
// template engine calls methods by name through reflection, which makes
// the linker keep every exported method of every type in the binary (it
// grew culvert by more than half). Every value goes through text() or
// attr(), which escape it.

type pageData struct {
	Title, Error, Intro, Action, Email, CSRF, Zone string
	User                                           *User
	Zones                                          []Zone
	CanAuthorize                                   bool
}

type dashboardData struct {
	pageData
	Account  string
	Operator bool
	Tunnels  []tunnelRow
	Records  []DNSRecord
	Certs    []certRow
	Audit    []AuditEvent
}

type htmlBuf struct{ strings.Builder }

func (b *htmlBuf) raw(ss ...string) {
	for _, s := range ss {
		b.WriteString(s)
	}
}

// text writes s escaped for element content and attribute values.
func (b *htmlBuf) text(s string) { b.WriteString(html.EscapeString(s)) }

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

const pageStyle = `body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2330;color:#fff;padding:.7em 1.5em;display:flex;justify-content:space-between;align-items:center}
header form{margin:0} main{max-width:72em;margin:1.5em auto;padding:0 1.5em}
.card{background:#fff;border:1px solid #d9dee7;border-radius:6px;padding:1.2em 1.5em;margin-bottom:1.2em}
label{display:block;margin:.6em 0 .2em} input[type=email],input[type=password]{width:100%;max-width:24em;padding:.4em;box-sizing:border-box}
button{margin-top:1em;padding:.45em 1.2em;background:#2457c5;color:#fff;border:0;border-radius:4px;cursor:pointer}
header button{margin:0;background:#3b4458}
table{border-collapse:collapse;width:100%;font-size:14px} th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e6e9ef;vertical-align:top}
.err{background:#fdecec;border:1px solid #e3a5a5;padding:.6em 1em;border-radius:4px}
.ok{background:#e9f7ee;border:1px solid #9fd3b0;padding:.6em 1em;border-radius:4px}
.muted{color:#6b7385} code{background:#eef1f6;padding:0 .3em;border-radius:3px}`

func (b *htmlBuf) head(d *pageData) {
	b.raw(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>`)
	b.text(d.Title)
	b.raw(` · culvert</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>`, pageStyle, `</style></head><body>
<header><strong>culvert</strong>`)
	if d.User != nil {
		b.raw(`<form method="post" action="/signout"><input type="hidden" name="csrf" value="`)
		b.text(d.CSRF)
		b.raw(`"><span>`)
		b.text(d.User.Email)
		b.raw(` (`)
		b.text(string(d.User.Role))
		b.raw(`) </span><button id="signout">Sign out</button></form>`)
	}
	b.raw("</header>\n<main>")
}

func (b *htmlBuf) foot() { b.raw("</main></body></html>\n") }

func (b *htmlBuf) errorBox(msg string) {
	if msg != "" {
		b.raw(`<p class="err" id="error">`)
		b.text(msg)
		b.raw("</p>\n")
	}
}

// renderPage returns the named page: signin, authorize, done, message or
// dashboard.
func renderPage(name string, data any) string {
	var b htmlBuf
	switch name {
	case "dashboard":
		d := data.(dashboardData)
		b.dashboard(&d)
		return b.String()
	}
	d := data.(pageData)
	b.head(&d)
	switch name {
	case "signin":
		b.raw(`<div class="card"><h1>Sign in</h1>`)
		if d.Intro != "" {
			b.raw("<p>")
			b.text(d.Intro)
			b.raw("</p>")
		}
		b.errorBox(d.Error)
		b.raw(`<form method="post" action="`)
		b.text(d.Action)
		b.raw(`" id="signin-form">
<input type="hidden" name="action" value="signin">
<label for="email">Email</label><input type="email" id="email" name="email" value="`)
		b.text(d.Email)
		b.raw(`" required autocomplete="username">
<label for="password">Password</label><input type="password" id="password" name="password" required autocomplete="current-password">
<button type="submit" id="signin">Sign in</button>
</form></div>`)
	case "authorize":
		b.raw(`<div class="card"><h1>Authorize a connector</h1>
<p>A <code>culvert login</code> is waiting. Pick the zone whose tunnels it will serve; the edge then issues an
origin certificate for that zone (for the key the connector generated, which stays with it) and gives it
an API token of your key.</p>`)
		b.errorBox(d.Error)
		if d.CanAuthorize {
			if len(d.Zones) == 0 {
				b.errorBox("Your account has no zone yet: an administrator creates one with `culvert edge zone create`.")
			} else {
				b.raw(`<form method="post" action="`)
				b.text(d.Action)
				b.raw(`" id="authorize-form">
<input type="hidden" name="action" value="authorize"><input type="hidden" name="csrf" value="`)
				b.text(d.CSRF)
				b.raw(`">`)
				for i, z := range d.Zones {
					b.raw(`<label><input type="radio" name="zone" value="`)
					b.text(z.Name)
					b.raw(`"`)
					if i == 0 {
						b.raw(" checked")
					}
					b.raw("> ")
					b.text(z.Name)
					if z.Partial {
						b.raw(` <span class="muted">(partial zone)</span>`)
					}
					b.raw("</label>\n")
				}
				b.raw(`<button type="submit" id="authorize">Authorize</button></form>`)
			}
		}
		b.raw("</div>")
	case "done":
		b.raw(`<div class="card"><h1>Done</h1><p class="ok" id="done">The connector is authorized for <strong>`)
		b.text(d.Zone)
		b.raw(`</strong>. Return to your terminal: <code>culvert login</code> writes cert.pem.</p>
<p><a href="/dashboard">Dashboard</a></p></div>`)
	default: // message
		b.raw(`<div class="card"><h1>`)
		b.text(d.Title)
		b.raw("</h1>")
		b.errorBox(d.Error)
		b.raw("</div>")
	}
	b.foot()
	return b.String()
}

// table writes a card with a table: header cells, then one row of cells
// per item (already escaped by cell), or "none".
func (b *htmlBuf) table(title, id string, heads []string, rows [][]string) {
	b.raw(`<div class="card"><h2>`, title, `</h2>`+"\n"+`<table id="`, id, `"><tr>`)
	for _, h := range heads {
		b.raw("<th>", h, "</th>")
	}
	b.raw("</tr>\n")
	for _, r := range rows {
		b.raw("<tr>")
		for _, c := range r {
			b.raw("<td>", c, "</td>")
		}
		b.raw("</tr>\n")
	}
	if len(rows) == 0 {
		b.raw(`<tr><td colspan="`, itoa(len(heads)), `" class="muted">none</td></tr>`)
	}
	b.raw("</table></div>\n")
}

func itoa(n int) string   { return strconv.Itoa(n) }
func esc(s string) string { return html.EscapeString(s) }

func (b *htmlBuf) dashboard(d *dashboardData) {
	b.head(&d.pageData)
	b.raw(`<div class="card"><h1>Dashboard</h1><p class="muted">Account `)
	b.text(d.Account)
	if d.Operator {
		b.raw(" · operator: every account is shown")
	}
	b.raw("</p></div>\n")

	var rows [][]string
	for _, t := range d.Tunnels {
		status := "not connected here"
		switch {
		case t.Live:
			status = "connected"
		case !t.DeleteAt.IsZero():
			status = "unregistered, deleted at " + when(t.DeleteAt)
		}
		rows = append(rows, []string{esc(t.Hostname), esc(status), esc(t.LBPool), when(t.LastSeen)})
	}
	b.table("Tunnels", "tunnels", []string{"Hostname", "Status", "Pool", "Last registered"}, rows)

	rows = rows[:0]
	for _, r := range d.Records {
		rows = append(rows, []string{esc(r.Name), esc(r.Type), esc(strings.Join(r.Values, ", ")), when(r.DeleteAt)})
	}
	b.table("DNS records", "records", []string{"Name", "Type", "Value", "Deletion"}, rows)

	rows = rows[:0]
	for _, c := range d.Certs {
		revoked := ""
		if c.Revoked {
			revoked = "revoked " + when(c.RevokedAt)
		}
		rows = append(rows, []string{"<code>" + esc(c.Serial) + "</code>", esc(c.Zone), when(c.Issued), when(c.NotAfter), revoked})
	}
	b.table("Certificates", "certs", []string{"Serial", "Zone", "Issued", "Not after", "Revoked"}, rows)

	rows = rows[:0]
	for _, e := range d.Audit {
		rows = append(rows, []string{when(e.Time), esc(e.Kind), esc(e.Subject), esc(e.Detail), `<span class="muted">` + esc(e.Actor) + "</span>"})
	}
	b.table("Audit log", "audit", []string{"Time", "Event", "Subject", "Detail", "Actor"}, rows)
	b.foot()
}
