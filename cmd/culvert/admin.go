package main

import (
	"bytes"
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
		return errors.New("edge: want `zone create ZONE`, `cert issue ZONE`, `cert list` or `cert revoke SERIAL`")
	}
	cmd := args[0] + " " + args[1]
	fs := pflag.NewFlagSet("culvert edge "+cmd, pflag.ContinueOnError)
	var af adminFlags
	af.register(fs)
	out := fs.StringP("out", "o", "cert.pem", "where to write the cert.pem")
	force := fs.Bool("force", false, "replace an existing cert.pem")
	partial := fs.Bool("partial", false, "zone create: a partial (CNAME setup) zone")
	noCert := fs.Bool("no-cert", false, "zone create: do not issue a cert.pem")
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
			if _, err := c.do("POST", "/v1/zones", map[string]any{"name": zone, "partial": *partial}); err != nil {
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
	default:
		return fmt.Errorf("edge: unknown admin command %q", cmd)
	}
	return nil
}
