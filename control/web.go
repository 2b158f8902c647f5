package control

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The web pages of the control API: sign-in, the connector login page
// (`culvert login` prints its URL) and the dashboard. Plain HTML forms, no
// script, no outside resources.

const sessionCookie = "culvert_session"

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": strings.Join,
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · culvert</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f6f9}
header{background:#1d2330;color:#fff;padding:.7em 1.5em;display:flex;justify-content:space-between;align-items:center}
header form{margin:0} main{max-width:72em;margin:1.5em auto;padding:0 1.5em}
.card{background:#fff;border:1px solid #d9dee7;border-radius:6px;padding:1.2em 1.5em;margin-bottom:1.2em}
label{display:block;margin:.6em 0 .2em} input[type=email],input[type=password]{width:100%;max-width:24em;padding:.4em;box-sizing:border-box}
button{margin-top:1em;padding:.45em 1.2em;background:#2457c5;color:#fff;border:0;border-radius:4px;cursor:pointer}
header button{margin:0;background:#3b4458}
table{border-collapse:collapse;width:100%;font-size:14px} th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e6e9ef;vertical-align:top}
.err{background:#fdecec;border:1px solid #e3a5a5;padding:.6em 1em;border-radius:4px}
.ok{background:#e9f7ee;border:1px solid #9fd3b0;padding:.6em 1em;border-radius:4px}
.muted{color:#6b7385} code{background:#eef1f6;padding:0 .3em;border-radius:3px}
</style></head><body>
<header><strong>culvert</strong>{{if .User}}<form method="post" action="/signout"><input type="hidden" name="csrf" value="{{.CSRF}}"><span>{{.User.Email}} ({{.User.Role}}) </span><button id="signout">Sign out</button></form>{{end}}</header>
<main>{{end}}
{{define "foot"}}</main></body></html>{{end}}

{{define "signin"}}{{template "head" .}}
<div class="card"><h1>Sign in</h1>
{{if .Intro}}<p>{{.Intro}}</p>{{end}}
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}" id="signin-form">
<input type="hidden" name="action" value="signin">
<label for="email">Email</label><input type="email" id="email" name="email" value="{{.Email}}" required autocomplete="username">
<label for="password">Password</label><input type="password" id="password" name="password" required autocomplete="current-password">
<button type="submit" id="signin">Sign in</button>
</form></div>
{{template "foot" .}}{{end}}

{{define "authorize"}}{{template "head" .}}
<div class="card"><h1>Authorize a connector</h1>
<p>A <code>culvert login</code> is waiting. Pick the zone whose tunnels it will serve; the edge then issues an
origin certificate for that zone (for the key the connector generated, which stays with it) and gives it
an API token of your key.</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if .CanAuthorize}}{{if .Zones}}
<form method="post" action="{{.Action}}" id="authorize-form">
<input type="hidden" name="action" value="authorize"><input type="hidden" name="csrf" value="{{.CSRF}}">
{{range $i, $z := .Zones}}<label><input type="radio" name="zone" value="{{$z.Name}}" {{if eq $i 0}}checked{{end}}> {{$z.Name}}{{if $z.Partial}} <span class="muted">(partial zone)</span>{{end}}</label>{{end}}
<button type="submit" id="authorize">Authorize</button>
</form>{{else}}<p class="err" id="error">Your account has no zone yet: an administrator creates one with <code>culvert edge zone create</code>.</p>{{end}}
{{end}}</div>
{{template "foot" .}}{{end}}

{{define "done"}}{{template "head" .}}
<div class="card"><h1>Done</h1><p class="ok" id="done">The connector is authorized for <strong>{{.Zone}}</strong>. Return to your terminal: <code>culvert login</code> writes cert.pem.</p>
<p><a href="/dashboard">Dashboard</a></p></div>
{{template "foot" .}}{{end}}

{{define "message"}}{{template "head" .}}
<div class="card"><h1>{{.Title}}</h1><p class="err" id="error">{{.Error}}</p></div>
{{template "foot" .}}{{end}}

{{define "dashboard"}}{{template "head" .}}
<div class="card"><h1>Dashboard</h1><p class="muted">Account {{.Account}}{{if .Operator}} · operator: every account is shown{{end}}</p></div>
<div class="card"><h2>Tunnels</h2>
<table id="tunnels"><tr><th>Hostname</th><th>Status</th><th>Pool</th><th>Last registered</th></tr>
{{range .Tunnels}}<tr><td>{{.Hostname}}</td><td>{{if .Live}}connected{{else if not .DeleteAt.IsZero}}unregistered, deleted at {{when .DeleteAt}}{{else}}not connected here{{end}}</td><td>{{.LBPool}}</td><td>{{when .LastSeen}}</td></tr>
{{else}}<tr><td colspan="4" class="muted">none</td></tr>{{end}}</table></div>
<div class="card"><h2>DNS records</h2>
<table id="records"><tr><th>Name</th><th>Type</th><th>Value</th><th>Deletion</th></tr>
{{range .Records}}<tr><td>{{.Name}}</td><td>{{.Type}}</td><td>{{join .Values ", "}}</td><td>{{when .DeleteAt}}</td></tr>
{{else}}<tr><td colspan="4" class="muted">none</td></tr>{{end}}</table></div>
<div class="card"><h2>Certificates</h2>
<table id="certs"><tr><th>Serial</th><th>Zone</th><th>Issued</th><th>Not after</th><th>Revoked</th></tr>
{{range .Certs}}<tr><td><code>{{.Serial}}</code></td><td>{{.Zone}}</td><td>{{when .Issued}}</td><td>{{when .NotAfter}}</td><td>{{if .Revoked}}revoked {{when .RevokedAt}}{{end}}</td></tr>
{{else}}<tr><td colspan="5" class="muted">none</td></tr>{{end}}</table></div>
<div class="card"><h2>Audit log</h2>
<table id="audit"><tr><th>Time</th><th>Event</th><th>Subject</th><th>Detail</th><th>Actor</th></tr>
{{range .Audit}}<tr><td>{{when .Time}}</td><td>{{.Kind}}</td><td>{{.Subject}}</td><td>{{.Detail}}</td><td class="muted">{{.Actor}}</td></tr>
{{else}}<tr><td colspan="5" class="muted">none</td></tr>{{end}}</table></div>
{{template "foot" .}}{{end}}
`))

type pageData struct {
	Title, Error, Intro, Action, Email, CSRF, Zone string
	User                                           *User
	Zones                                          []Zone
	CanAuthorize                                   bool
}

func (a *API) render(w http.ResponseWriter, status int, name string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		a.Edge.Logger.Error("rendering a page failed", "page", name, "err", err)
	}
}

// sessionUser returns the signed-in user and the cookie value, if any.
func (a *API) sessionUser(r *http.Request) (*User, string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, ""
	}
	u, err := a.Edge.SessionUser(c.Value)
	if err != nil {
		return nil, ""
	}
	return &u, c.Value
}

func setSession(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

// signIn handles a sign-in form; it renders the form again on failure.
func (a *API) signIn(w http.ResponseWriter, r *http.Request, action, intro string) (*User, bool) {
	email := r.PostFormValue("email")
	u, err := a.Edge.SignIn(email, r.PostFormValue("password"))
	if err != nil {
		msg := "Wrong email or password."
		if errors.Is(err, ErrLockedOut) {
			msg = "Too many failed sign-ins for this email: try again in 15 minutes."
		} else if !errors.Is(err, ErrBadCredentials) {
			msg = "The edge could not check the password; try again."
		}
		a.Edge.Logger.Info("sign-in refused", "email", email, "remote", r.RemoteAddr)
		a.render(w, http.StatusUnauthorized, "signin", pageData{Title: "Sign in", Error: msg, Action: action, Email: email, Intro: intro})
		return nil, false
	}
	setSession(w, a.Edge.SessionCookie(u), int(sessionTTL/time.Second))
	a.Edge.audit(u.AccountID, "SignIn", u.ID, userLabel(u), "dashboard")
	return &u, true
}

func (a *API) checkCSRF(r *http.Request, cookie string) bool {
	return cookie != "" && r.PostFormValue("csrf") == a.Edge.CSRFToken(cookie)
}

// loginPage is /login/{id}: sign in, then pick a zone and authorize.
func (a *API) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	action := "/login/" + url.PathEscape(id)
	intro := "A connector is asking for a cert.pem. Sign in as a super administrator of the account that owns the zone."
	if _, err := a.Edge.pendingLogin(id); err != nil {
		a.render(w, http.StatusNotFound, "message", pageData{Title: "Login expired", Error: "This login link is unknown or has expired: run `culvert login` again."})
		return
	}
	u, cookie := a.sessionUser(r)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8192)
		switch r.PostFormValue("action") {
		case "signin":
			var ok bool
			if u, ok = a.signIn(w, r, action, intro); !ok {
				return
			}
			http.Redirect(w, r, action, http.StatusSeeOther)
			return
		case "authorize":
			if u == nil || !a.checkCSRF(r, cookie) {
				a.render(w, http.StatusForbidden, "signin", pageData{Title: "Sign in", Error: "Your session ended: sign in again.", Action: action, Intro: intro})
				return
			}
			zone := r.PostFormValue("zone")
			if err := a.Edge.AuthorizeLogin(*u, id, zone); err != nil {
				msg := err.Error()
				if errors.Is(err, ErrPermission) {
					msg = "Not allowed: " + notSuperAdminMsg + "."
				}
				a.renderAuthorize(w, http.StatusForbidden, *u, cookie, action, msg)
				return
			}
			a.render(w, http.StatusOK, "done", pageData{Title: "Authorized", User: u, CSRF: a.Edge.CSRFToken(cookie), Zone: zone})
			return
		}
	}
	if u == nil {
		a.render(w, http.StatusOK, "signin", pageData{Title: "Sign in", Action: action, Intro: intro})
		return
	}
	a.renderAuthorize(w, http.StatusOK, *u, cookie, action, "")
}

func (a *API) renderAuthorize(w http.ResponseWriter, status int, u User, cookie, action, msg string) {
	zones, err := a.Edge.Store.ListZones(u.AccountID)
	if err != nil {
		msg = "The edge could not list your zones: " + err.Error()
	}
	can := CanAuthorizeLogin(u, u.AccountID)
	if !can {
		msg = "Not allowed: you are " + string(u.Role) + " of your account; " + notSuperAdminMsg + "."
		status = http.StatusForbidden
	}
	a.render(w, status, "authorize", pageData{Title: "Authorize", User: &u, CSRF: a.Edge.CSRFToken(cookie),
		Action: action, Zones: zones, CanAuthorize: can, Error: msg})
}

// signinPage is /signin, in front of the dashboard.
func (a *API) signinPage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8192)
		if _, ok := a.signIn(w, r, "/signin", ""); ok {
			http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		}
		return
	}
	a.render(w, http.StatusOK, "signin", pageData{Title: "Sign in", Action: "/signin"})
}

func (a *API) signOut(w http.ResponseWriter, r *http.Request) {
	if _, cookie := a.sessionUser(r); cookie != "" && a.checkCSRF(r, cookie) {
		setSession(w, "", -1)
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

type tunnelRow struct {
	Tunnel
	Live bool
}

type certRow struct {
	CertRecord
	Zone string
}

// dashboard lists the account's tunnels, DNS records, certificates and
// audit log (an operator sees every account).
func (a *API) dashboard(w http.ResponseWriter, r *http.Request) {
	u, cookie := a.sessionUser(r)
	if u == nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	e := a.Edge
	acct := u.AccountID
	op := e.IsOperator(*u)
	if op {
		acct = ""
	}
	tunnels, err1 := e.Store.ListTunnels(acct)
	recs, err2 := e.Store.ListRecords(acct)
	certs, err3 := e.Store.ListCerts(acct)
	audit, err4 := e.Store.ListAudit(acct, 0, 0)
	zones, err5 := e.Store.ListZones(acct)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		a.render(w, http.StatusInternalServerError, "message", pageData{Title: "Error", Error: err.Error(), User: u})
		return
	}
	zoneName := map[string]string{}
	for _, z := range zones {
		zoneName[z.ID] = z.Name
	}
	var trs []tunnelRow
	for _, t := range tunnels {
		trs = append(trs, tunnelRow{t, e.isLive(t.AccountID, t.Hostname)})
	}
	var crs []certRow
	for _, c := range certs {
		crs = append(crs, certRow{c, zoneName[c.ZoneID]})
	}
	slices.Reverse(audit)
	if len(audit) > 200 {
		audit = audit[:200]
	}
	a.render(w, http.StatusOK, "dashboard", struct {
		pageData
		Account  string
		Operator bool
		Tunnels  []tunnelRow
		Records  []DNSRecord
		Certs    []certRow
		Audit    []AuditEvent
	}{pageData{Title: "Dashboard", User: u, CSRF: e.CSRFToken(cookie)}, u.AccountID, op, trs, recs, crs, audit})
}
