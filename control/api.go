package control

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// API is the control API: JSON over HTTPS, authenticated by an API token
// ("Authorization: Bearer cvt_..."), and the web pages beside it (sign-in,
// connector login, dashboard; see web.go).
//
// Routes (JSON; lists are scoped to the caller's account, an operator may
// pass ?account=ID or ?account=all):
//
//	POST   /v1/login                 start a connector login (no auth; body {"csr": base64 DER})
//	GET    /v1/login/{id}            poll it ("Authorization: Login SECRET"): 202 pending, 200 done
//	GET    /v1/me                    the caller
//	GET    /v1/accounts              POST /v1/accounts (operators)
//	GET    /v1/users                 POST /v1/users, PATCH /v1/users/{email or id}
//	GET    /v1/zones                 POST /v1/zones, POST /v1/zones/{name}/certs (service user cert.pem)
//	GET    /v1/certs                 POST /v1/certs/{serial}/revoke
//	GET    /v1/tunnels               DELETE /v1/tunnels/{hostname}
//	GET    /v1/dns                   DELETE /v1/dns/{name}
//	GET    /v1/audit                 ?after=SEQ&limit=N (oldest first), or ?last=N (the newest N)
//	GET    /ca.pem                   the CA of the edge's visitor HTTPS certificates (no auth)
type API struct {
	Edge *Edge
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/login", a.startLogin)
	mux.HandleFunc("GET /v1/login/{id}", a.pollLogin)
	mux.HandleFunc("GET /v1/me", a.auth(a.me))
	mux.HandleFunc("GET /v1/accounts", a.auth(a.listAccounts))
	mux.HandleFunc("POST /v1/accounts", a.auth(a.createAccount))
	mux.HandleFunc("GET /v1/users", a.auth(a.listUsers))
	mux.HandleFunc("POST /v1/users", a.auth(a.createUser))
	mux.HandleFunc("PATCH /v1/users/{ref}", a.auth(a.changeUser))
	mux.HandleFunc("GET /v1/zones", a.auth(a.listZones))
	mux.HandleFunc("POST /v1/zones", a.auth(a.createZone))
	mux.HandleFunc("POST /v1/zones/{name}/certs", a.auth(a.issueBundle))
	mux.HandleFunc("GET /v1/certs", a.auth(a.listCerts))
	mux.HandleFunc("POST /v1/certs/{serial}/revoke", a.auth(a.revokeCert))
	mux.HandleFunc("GET /v1/tunnels", a.auth(a.listTunnels))
	mux.HandleFunc("DELETE /v1/tunnels/{hostname}", a.auth(a.deleteTunnel))
	mux.HandleFunc("GET /v1/dns", a.auth(a.listRecords))
	mux.HandleFunc("DELETE /v1/dns/{name}", a.auth(a.deleteRecords))
	mux.HandleFunc("GET /v1/audit", a.auth(a.listAudit))

	mux.HandleFunc("GET /login/{id}", a.loginPage)
	mux.HandleFunc("POST /login/{id}", a.loginPage)
	mux.HandleFunc("GET /signin", a.signinPage)
	mux.HandleFunc("POST /signin", a.signinPage)
	mux.HandleFunc("POST /signout", a.signOut)
	mux.HandleFunc("GET /dashboard", a.dashboard)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
		pem, _, err := a.Edge.VisitorCA.PEM()
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="culvert-visitor-ca.pem"`)
		w.Write(pem)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// auth checks the bearer token.
func (a *API) auth(h func(http.ResponseWriter, *http.Request, User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			fail(w, http.StatusUnauthorized, "missing API token (Authorization: Bearer ...)")
			return
		}
		u, err := a.Edge.Store.UserByToken(strings.TrimSpace(tok))
		if err != nil {
			fail(w, http.StatusUnauthorized, "invalid API token (it may have been rolled: run `culvert login` again, or use a service user's token)")
			return
		}
		h(w, r, u)
	}
}

// errStatus maps an error to an HTTP status.
func errStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	case errors.Is(err, ErrPermission):
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return false
	}
	return true
}

// scope is the account a list covers: the caller's, or for an operator
// the one asked for ("" for all).
func (a *API) scope(w http.ResponseWriter, r *http.Request, u User) (string, bool) {
	q := r.URL.Query().Get("account")
	if q == "" || q == u.AccountID {
		return u.AccountID, true
	}
	if !a.Edge.IsOperator(u) {
		fail(w, http.StatusForbidden, "only an operator of the edge lists other accounts")
		return "", false
	}
	if q == "all" {
		return "", true
	}
	return q, true
}

func (a *API) startLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CSR string `json:"csr"` // base64 DER
	}
	if !decode(w, r, &req) {
		return
	}
	der, err := base64.StdEncoding.DecodeString(req.CSR)
	if err != nil {
		fail(w, http.StatusBadRequest, "csr: want base64 DER")
		return
	}
	id, secret, exp, err := a.Edge.StartLogin(der)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": id, "secret": secret, "expires": exp.UTC(),
		"url": "https://" + r.Host + "/login/" + id,
	})
}

func (a *API) pollLogin(w http.ResponseWriter, r *http.Request) {
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Login ")
	state, res, err := a.Edge.PollLogin(r.PathValue("id"), strings.TrimSpace(secret))
	switch {
	case err != nil:
		fail(w, http.StatusNotFound, err.Error())
	case state == LoginPending:
		writeJSON(w, http.StatusAccepted, map[string]string{"status": state})
	default:
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			*LoginResult
		}{state, res})
	}
}

// publicUser is a user without its secrets.
func publicUser(u User) map[string]any {
	return map[string]any{"id": u.ID, "account_id": u.AccountID, "name": u.Name, "email": u.Email,
		"role": u.Role, "service": u.Service, "disabled": u.Disabled, "key_version": u.KeyVersion, "created": u.Created}
}

func (a *API) me(w http.ResponseWriter, r *http.Request, u User) {
	m := publicUser(u)
	m["operator"] = a.Edge.IsOperator(u)
	writeJSON(w, http.StatusOK, m)
}

func (a *API) listAccounts(w http.ResponseWriter, r *http.Request, u User) {
	if !a.Edge.IsOperator(u) {
		acct, err := a.Edge.Store.GetAccount(u.AccountID)
		if err != nil {
			fail(w, errStatus(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, []Account{acct})
		return
	}
	as, err := a.Edge.Store.ListAccounts()
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, as)
}

func (a *API) createAccount(w http.ResponseWriter, r *http.Request, u User) {
	var req struct {
		Name        string `json:"name"`
		TunnelLimit int    `json:"tunnel_limit"`
	}
	if !decode(w, r, &req) {
		return
	}
	acct, err := a.Edge.CreateAccount(u, req.Name, req.TunnelLimit)
	if err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, acct)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, u User) {
	acct, ok := a.scope(w, r, u)
	if !ok {
		return
	}
	us, err := a.Edge.Store.ListUsers(acct)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]map[string]any, 0, len(us))
	for _, x := range us {
		out = append(out, publicUser(x))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, u User) {
	var req NewUser
	if !decode(w, r, &req) {
		return
	}
	nu, token, err := a.Edge.CreateUser(u, req)
	if err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	m := publicUser(nu)
	m["token"] = token
	writeJSON(w, http.StatusCreated, m)
}

func (a *API) changeUser(w http.ResponseWriter, r *http.Request, u User) {
	var req struct {
		Role      Role   `json:"role,omitempty"`
		AccountID string `json:"account_id,omitempty"`
		Remove    bool   `json:"remove,omitempty"`
	}
	if !decode(w, r, &req) {
		return
	}
	nu, token, err := a.Edge.ChangeUser(u, r.PathValue("ref"), req.Role, req.AccountID, req.Remove)
	if err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	m := publicUser(nu)
	if token != "" {
		m["token"] = token
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *API) listZones(w http.ResponseWriter, r *http.Request, u User) {
	acct, ok := a.scope(w, r, u)
	if !ok {
		return
	}
	zs, err := a.Edge.Store.ListZones(acct)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, zs)
}

func (a *API) createZone(w http.ResponseWriter, r *http.Request, u User) {
	var req struct {
		Name      string `json:"name"`
		Partial   bool   `json:"partial"`
		AccountID string `json:"account_id,omitempty"`
	}
	if !decode(w, r, &req) {
		return
	}
	z, err := a.Edge.CreateZoneAs(u, req.AccountID, req.Name, req.Partial)
	if err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, z)
}

func (a *API) issueBundle(w http.ResponseWriter, r *http.Request, u User) {
	pem, err := a.Edge.IssueBundleAs(u, r.PathValue("name"))
	if err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	w.Write(pem)
}

func (a *API) listCerts(w http.ResponseWriter, r *http.Request, u User) {
	acct, ok := a.scope(w, r, u)
	if !ok {
		return
	}
	cs, err := a.Edge.Store.ListCerts(acct)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (a *API) revokeCert(w http.ResponseWriter, r *http.Request, u User) {
	serial := strings.ToLower(r.PathValue("serial"))
	if err := a.Edge.RevokeCertAs(u, serial); err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	c, _ := a.Edge.Store.GetCert(serial)
	writeJSON(w, http.StatusOK, c)
}

// TunnelStatus is a tunnel as the API lists it.
type TunnelStatus struct {
	Tunnel
	Connected bool `json:"connected"` // to the edge that answers
}

func (a *API) listTunnels(w http.ResponseWriter, r *http.Request, u User) {
	acct, ok := a.scope(w, r, u)
	if !ok {
		return
	}
	ts, err := a.Edge.Store.ListTunnels(acct)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]TunnelStatus, 0, len(ts))
	for _, t := range ts {
		out = append(out, TunnelStatus{t, a.Edge.isLive(t.AccountID, t.Hostname)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteTunnel(w http.ResponseWriter, r *http.Request, u User) {
	if err := a.Edge.DeleteTunnel(u, r.PathValue("hostname")); err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("hostname")})
}

func (a *API) listRecords(w http.ResponseWriter, r *http.Request, u User) {
	acct, ok := a.scope(w, r, u)
	if !ok {
		return
	}
	rs, err := a.Edge.Store.ListRecords(acct)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	if rs == nil {
		rs = []DNSRecord{}
	}
	writeJSON(w, http.StatusOK, rs)
}

func (a *API) deleteRecords(w http.ResponseWriter, r *http.Request, u User) {
	n, err := a.Edge.DeleteRecords(u, r.PathValue("name"))
	if err != nil {
		fail(w, errStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": n})
}

// maxAuditPage bounds the events one GET /v1/audit returns.
const maxAuditPage = 10000

// listAudit is GET /v1/audit: the events after ?after= (at most ?limit=,
// default 1000), or the newest ?last= events; oldest first either way.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request, u User) {
	acct, ok := a.scope(w, r, u)
	if !ok {
		return
	}
	q := r.URL.Query()
	var es []AuditEvent
	var err error
	if q.Has("last") {
		// The newest events, in Seq order like the rest of the list.
		last, perr := strconv.Atoi(q.Get("last"))
		if perr != nil || last <= 0 || last > maxAuditPage || q.Has("after") {
			fail(w, http.StatusBadRequest, fmt.Sprintf("last: want a number from 1 to %d, without after", maxAuditPage))
			return
		}
		es, err = a.Edge.Store.RecentAudit(acct, last)
		slices.Reverse(es)
	} else {
		after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
		limit, perr := strconv.Atoi(q.Get("limit"))
		if perr != nil || limit <= 0 || limit > maxAuditPage {
			limit = 1000
		}
		es, err = a.Edge.Store.ListAudit(acct, after, limit)
	}
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	if es == nil {
		es = []AuditEvent{}
	}
	writeJSON(w, http.StatusOK, es)
}
