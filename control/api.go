package control

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// API is the control API: JSON over HTTPS, authenticated by an API token
// ("Authorization: Bearer cvt_..."). Today it serves what the admin
// commands need: zones, cert.pem issuance, certificates, tunnels, audit.
type API struct {
	Edge *Edge
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/zones", a.auth(false, a.listZones))
	mux.HandleFunc("POST /v1/zones", a.auth(true, a.createZone))
	mux.HandleFunc("POST /v1/zones/{name}/certs", a.auth(true, a.issueBundle))
	mux.HandleFunc("GET /v1/certs", a.auth(false, a.listCerts))
	mux.HandleFunc("POST /v1/certs/{serial}/revoke", a.auth(true, a.revokeCert))
	mux.HandleFunc("GET /v1/tunnels", a.auth(false, a.listTunnels))
	mux.HandleFunc("GET /v1/audit", a.auth(false, a.listAudit))
	return mux
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// auth checks the bearer token; admin requires a super administrator.
func (a *API) auth(admin bool, h func(http.ResponseWriter, *http.Request, User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			fail(w, http.StatusUnauthorized, "missing API token (Authorization: Bearer ...)")
			return
		}
		u, err := a.Edge.Store.UserByToken(strings.TrimSpace(tok))
		if err != nil {
			fail(w, http.StatusUnauthorized, "invalid API token")
			return
		}
		if admin && u.Role != RoleSuperAdmin {
			fail(w, http.StatusForbidden, "this needs a super administrator")
			return
		}
		h(w, r, u)
	}
}

func storeStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists):
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

func (a *API) listZones(w http.ResponseWriter, r *http.Request, u User) {
	zs, err := a.Edge.Store.ListZones(u.AccountID)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, zs)
}

func (a *API) createZone(w http.ResponseWriter, r *http.Request, u User) {
	var req struct {
		Name    string `json:"name"`
		Partial bool   `json:"partial"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	z, err := a.Edge.CreateZone(req.Name, req.Partial)
	if err != nil {
		fail(w, storeStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, z)
}

func (a *API) issueBundle(w http.ResponseWriter, r *http.Request, u User) {
	z, err := a.Edge.Store.ZoneByName(r.PathValue("name"))
	if err != nil || z.AccountID != u.AccountID {
		fail(w, http.StatusNotFound, "no such zone in your account")
		return
	}
	pem, err := a.Edge.IssueBundle(z.Name)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.WriteHeader(http.StatusCreated)
	w.Write(pem)
}

func (a *API) listCerts(w http.ResponseWriter, r *http.Request, u User) {
	cs, err := a.Edge.Store.ListCerts(u.AccountID)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (a *API) revokeCert(w http.ResponseWriter, r *http.Request, u User) {
	c, err := a.Edge.Store.GetCert(r.PathValue("serial"))
	if err != nil || c.AccountID != u.AccountID {
		fail(w, http.StatusNotFound, "no such certificate in your account")
		return
	}
	if err := a.Edge.RevokeCert(c.Serial); err != nil {
		fail(w, storeStatus(err), err.Error())
		return
	}
	c, _ = a.Edge.Store.GetCert(c.Serial)
	writeJSON(w, http.StatusOK, c)
}

func (a *API) listTunnels(w http.ResponseWriter, r *http.Request, u User) {
	ts, err := a.Edge.Store.ListTunnels(u.AccountID)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, u User) {
	es, err := a.Edge.Store.ListAudit(u.AccountID, 0, 1000)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, es)
}
