package control

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// The web pages of the control API: sign-in, the connector login page
// (`culvert login` prints its URL) and the dashboard. Plain HTML forms, no
// script, no outside resources.

const sessionCookie = "culvert_session"

func (a *API) render(w http.ResponseWriter, status int, name string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	io.WriteString(w, renderPage(name, data))
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

// dashboardAuditEvents is how many of the newest audit events the
// dashboard shows (read alone, however long the log).
const dashboardAuditEvents = 200

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
	audit, err4 := e.Store.RecentAudit(acct, dashboardAuditEvents)
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
	a.render(w, http.StatusOK, "dashboard", dashboardData{pageData{Title: "Dashboard", User: u, CSRF: e.CSRFToken(cookie)}, u.AccountID, op, trs, recs, crs, audit})
}
