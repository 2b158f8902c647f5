package main

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/culvert-tunnel/culvert/control"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/spf13/pflag"
)

// adminClient talks to an edge's control API with the administrator's
// token from the edge's data dir (or --token).
type adminClient struct {
	base  string
	token string
	hc    *http.Client
}

type adminFlags struct {
	api     string
	dataDir string
	token   string
	caFile  string
}

func (a *adminFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.api, "api", "https://127.0.0.1:7845", "the edge's control API")
	fs.StringVar(&a.dataDir, "data-dir", filepath.Join(homeDir(), ".culvert", "edge"), "the edge's data dir (for admin.token and edge-ca.pem)")
	fs.StringVar(&a.token, "token", "", "API token of a super administrator (default: DATA-DIR/admin.token)")
	fs.StringVar(&a.caFile, "api-ca", "", "CA certificate of the control API (default: DATA-DIR/edge-ca.pem)")
}

func (a *adminFlags) client() (*adminClient, error) {
	tok := a.token
	if tok == "" {
		b, err := os.ReadFile(filepath.Join(a.dataDir, control.AdminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("no --token and no admin token in the data dir: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	caFile := a.caFile
	if caFile == "" {
		caFile = filepath.Join(a.dataDir, control.EdgeCAFile)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("control API CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("control API CA %s: no certificate in it", caFile)
	}
	u, err := url.Parse(a.api)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--api %q: want https://host:port", a.api)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return &adminClient{base: strings.TrimSuffix(a.api, "/"), token: tok, hc: hc}, nil
}

// do sends a request and returns the body of a 2xx answer, or the API's error.
func (c *adminClient) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control API: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("control API: %s (%s)", e.Error, resp.Status)
		}
		return nil, fmt.Errorf("control API: %s", resp.Status)
	}
	return out, nil
}

// writeBundle writes a cert.pem the API issued.
func writeBundle(path string, pem []byte, force bool) error {
	if _, err := culverttls.ParseBundle(pem); err != nil {
		return fmt.Errorf("the edge sent a bad cert.pem: %w", err)
	}
	if err := culverttls.WriteBundleFile(path, pem, force); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; use --force to replace it", path)
		}
		return err
	}
	return nil
}

func runEdgeAdmin(args []string) error {
	if len(args) < 2 {
		return errors.New("edge: want `zone create ZONE`, `cert issue ZONE`, `cert list`, `cert revoke SERIAL`, " +
			"`account create NAME`, `account list`, `user create EMAIL`, `user list`, `user set EMAIL` or `user remove EMAIL`")
	}
	cmd := args[0] + " " + args[1]
	fs := pflag.NewFlagSet("culvert edge "+cmd, pflag.ContinueOnError)
	var af adminFlags
	af.register(fs)
	out := fs.StringP("out", "o", "cert.pem", "where to write the cert.pem")
	force := fs.Bool("force", false, "replace an existing cert.pem")
	partial := fs.Bool("partial", false, "zone create: a partial (CNAME setup) zone")
	noCert := fs.Bool("no-cert", false, "zone create: do not issue a cert.pem")
	account := fs.String("account", "", "zone create, user create|set|list: the account (ID; default: your own)")
	role := fs.String("role", "", "user create|set: super_admin, admin or member")
	service := fs.Bool("service", false, "user create: a service user (token only, for connectors and automation)")
	name := fs.String("name", "", "user create: display name")
	tunnelLimit := fs.Int("tunnel-limit", 0, "account create: tunnels the account may run at once (0: the edge's default)")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	switch cmd {
	case "zone create", "cert issue":
		if fs.NArg() != 1 {
			return fmt.Errorf("edge %s: want one zone name", cmd)
		}
		zone := fs.Arg(0)
		if cmd == "zone create" {
			if _, err := c.do("POST", "/v1/zones", map[string]any{"name": zone, "partial": *partial, "account_id": *account}); err != nil {
				return err
			}
			fmt.Printf("zone %s created\n", zone)
			if *noCert {
				return nil
			}
		}
		if _, err := os.Stat(*out); err == nil && !*force {
			return fmt.Errorf("%s exists; use --force to replace it", *out)
		}
		pem, err := c.do("POST", "/v1/zones/"+url.PathEscape(zone)+"/certs", nil)
		if err != nil {
			return err
		}
		if err := writeBundle(*out, pem, *force); err != nil {
			return err
		}
		fmt.Printf("cert.pem for %s written to %s (mode 0600)\n", zone, *out)
	case "cert list":
		body, err := c.do("GET", "/v1/certs", nil)
		if err != nil {
			return err
		}
		var certs []control.CertRecord
		if err := json.Unmarshal(body, &certs); err != nil {
			return err
		}
		fmt.Printf("%-34s %-10s %-12s %s\n", "SERIAL", "REVOKED", "NOT AFTER", "ZONE ID")
		for _, ce := range certs {
			fmt.Printf("%-34s %-10v %-12s %s\n", ce.Serial, ce.Revoked, ce.NotAfter.Format("2006-01-02"), ce.ZoneID)
		}
	case "cert revoke":
		if fs.NArg() != 1 {
			return errors.New("edge cert revoke: want one serial")
		}
		if _, err := c.do("POST", "/v1/certs/"+url.PathEscape(fs.Arg(0))+"/revoke", nil); err != nil {
			return err
		}
		fmt.Printf("certificate %s revoked\n", fs.Arg(0))
	case "account create":
		if fs.NArg() != 1 {
			return errors.New("edge account create: want one name")
		}
		body, err := c.do("POST", "/v1/accounts", map[string]any{"name": fs.Arg(0), "tunnel_limit": *tunnelLimit})
		if err != nil {
			return err
		}
		var a control.Account
		json.Unmarshal(body, &a)
		fmt.Printf("account %s created: id %s\n", a.Name, a.ID)
	case "account list":
		body, err := c.do("GET", "/v1/accounts", nil)
		if err != nil {
			return err
		}
		var as []control.Account
		if err := json.Unmarshal(body, &as); err != nil {
			return err
		}
		fmt.Printf("%-18s %-12s %s\n", "ID", "TUNNELS", "NAME")
		for _, a := range as {
			fmt.Printf("%-18s %-12d %s\n", a.ID, a.MaxTunnels(), a.Name)
		}
	case "user create":
		req := control.NewUser{AccountID: *account, Role: control.Role(*role), Service: *service, Name: *name}
		if !*service {
			if fs.NArg() != 1 {
				return errors.New("edge user create: want one email (or --service)")
			}
			req.Email = fs.Arg(0)
			req.Password = os.Getenv("CULVERT_PASSWORD")
			if req.Password == "" {
				return errors.New("edge user create: give the new user's password in $CULVERT_PASSWORD")
			}
		} else if fs.NArg() > 0 {
			return errors.New("edge user create --service: no email; name it with --name")
		}
		body, err := c.do("POST", "/v1/users", req)
		if err != nil {
			return err
		}
		var u struct {
			ID, Email, Name, Role, Token string
		}
		json.Unmarshal(body, &u)
		fmt.Printf("user %s created: id %s, role %s\n", cmp.Or(u.Email, u.Name), u.ID, u.Role)
		if *service {
			fmt.Printf("API token (shown once): %s\n", u.Token)
		}
	case "user list":
		path := "/v1/users"
		if *account != "" {
			path += "?account=" + url.QueryEscape(*account)
		}
		body, err := c.do("GET", path, nil)
		if err != nil {
			return err
		}
		var us []struct {
			ID, Email, Name, Role string
			AccountID             string `json:"account_id"`
			Service, Disabled     bool
		}
		if err := json.Unmarshal(body, &us); err != nil {
			return err
		}
		fmt.Printf("%-18s %-18s %-12s %-9s %s\n", "ID", "ACCOUNT", "ROLE", "KIND", "EMAIL / NAME")
		for _, u := range us {
			kind := "person"
			if u.Service {
				kind = "service"
			}
			if u.Disabled {
				kind = "removed"
			}
			fmt.Printf("%-18s %-18s %-12s %-9s %s\n", u.ID, u.AccountID, u.Role, kind, cmp.Or(u.Email, u.Name))
		}
	case "user set", "user remove":
		if fs.NArg() != 1 {
			return fmt.Errorf("edge %s: want one email or user id", cmd)
		}
		req := map[string]any{"role": *role, "account_id": *account, "remove": cmd == "user remove"}
		if _, err := c.do("PATCH", "/v1/users/"+url.PathEscape(fs.Arg(0)), req); err != nil {
			return err
		}
		if cmd == "user remove" {
			fmt.Printf("user %s removed; its API key is rolled\n", fs.Arg(0))
		} else {
			fmt.Printf("user %s changed; its API key is rolled (cert.pem files made by its logins stop working)\n", fs.Arg(0))
		}
	default:
		return fmt.Errorf("edge: unknown admin command %q", cmd)
	}
	return nil
}
