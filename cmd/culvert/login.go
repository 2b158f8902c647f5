package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/culvert-tunnel/culvert/control"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/spf13/pflag"
)

// runLogin is `culvert login`: a key made here, a CSR sent to the edge, a
// browser page where a super administrator picks the zone, then cert.pem
// written with the key that never left this machine.
func runLogin(args []string) error {
	fs := pflag.NewFlagSet("culvert login", pflag.ContinueOnError)
	edgeURL := fs.String("edge", "", "the edge's control API, https://HOST:PORT (required)")
	caFile := fs.String("api-ca", "", "CA certificate (PEM) to trust the control API with, beside the system's (e.g. the edge's edge-ca.pem)")
	out := fs.StringP("out", "o", filepath.Join(homeDir(), ".culvert", "cert.pem"), "where to write cert.pem")
	force := fs.Bool("force", false, "replace an existing cert.pem")
	noBrowser := fs.Bool("no-browser", false, "only print the URL; do not try to open a browser")
	timeout := fs.Duration("timeout", 15*time.Minute, "how long to wait for the authorization")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("login: unexpected argument %q", fs.Arg(0))
	}
	u, err := url.Parse(*edgeURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return errors.New("login: give the edge's control API with --edge https://HOST:PORT")
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("%s exists; use --force to replace it", *out)
	}
	hc, err := apiHTTPClient(*caFile, nil)
	if err != nil {
		return err
	}
	key, err := culverttls.GenerateKey()
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "culvert login"}}, key)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(*edgeURL, "/")
	body, _ := json.Marshal(map[string]string{"csr": base64.StdEncoding.EncodeToString(csr)})
	resp, err := hc.Post(base+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	var start struct {
		ID, Secret, URL, Error string
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&start)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		if start.Error != "" {
			return fmt.Errorf("login: the edge refused: %s", start.Error)
		}
		return fmt.Errorf("login: the edge answered %s", resp.Status)
	}
	fmt.Printf("Open this URL in a browser and sign in as a super administrator of the account:\n\n    %s\n\n", start.URL)
	if !*noBrowser {
		openBrowser(start.URL)
	}
	fmt.Println("Waiting for the authorization...")

	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *timeout)
	defer cancel2()
	var res struct {
		Status string `json:"status"`
		control.LoginResult
		Error string `json:"error"`
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/login/"+url.PathEscape(start.ID), nil)
		req.Header.Set("Authorization", "Login "+start.Secret)
		resp, err := hc.Do(req)
		if err == nil {
			res.Status, res.Error = "", ""
			derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK && derr == nil && res.Status == control.LoginDone:
				return writeLoginBundle(key, &res.LoginResult, *out, *force)
			case resp.StatusCode == http.StatusAccepted:
			case res.Error != "":
				return fmt.Errorf("login: %s", res.Error)
			default:
				return fmt.Errorf("login: the edge answered %s", resp.Status)
			}
		} else if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "culvert login: polling the edge: %v (retrying)\n", err)
		}
		select {
		case <-ctx.Done():
			return errors.New("login: no authorization in time; run `culvert login` again")
		case <-time.After(time.Second):
		}
	}
}

func writeLoginBundle(key crypto.Signer, res *control.LoginResult, out string, force bool) error {
	cert, err := culverttls.FirstCertificate([]byte(res.CertPEM))
	if err != nil {
		return fmt.Errorf("login: the edge sent a bad certificate: %w", err)
	}
	b := &culverttls.Bundle{Cert: cert, Key: key, Token: res.Token}
	pem, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("login: the edge's answer does not make a valid cert.pem: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	if err := writeBundle(out, pem, force); err != nil {
		return err
	}
	fmt.Printf("cert.pem for zone %s written to %s (mode 0600). Run a tunnel with:\n\n    culvert tunnel --hostname app.%s --url http://localhost:8000\n",
		b.Token.Zone, out, b.Token.Zone)
	return nil
}

// openBrowser tries the desktop's URL opener; failure is fine (the URL is
// printed).
func openBrowser(u string) {
	for _, p := range []string{"xdg-open", "open"} {
		if path, err := exec.LookPath(p); err == nil {
			cmd := exec.Command(path, u)
			cmd.Stdout, cmd.Stderr = nil, nil
			if cmd.Start() == nil {
				go cmd.Wait()
			}
			return
		}
	}
}

// apiHTTPClient trusts the system's CAs plus caFile or caPEM.
func apiHTTPClient(caFile string, caPEM []byte) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--api-ca: %w", err)
		}
		caPEM = append(caPEM, b...)
	}
	if len(caPEM) > 0 && !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the control API CA has no certificate in it")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// runCertCommand is `culvert cert inspect|list|revoke`.
func runCertCommand(args []string) error {
	if len(args) == 0 {
		return errors.New("cert: want `inspect [FILE]`, `list` or `revoke SERIAL`")
	}
	switch args[0] {
	case "inspect":
		return runCertInspect(args[1:])
	case "list", "revoke":
		return runUserAPI("cert", args)
	}
	return fmt.Errorf("cert: unknown command %q", args[0])
}

func runCertInspect(args []string) error {
	fs := pflag.NewFlagSet("culvert cert inspect", pflag.ContinueOnError)
	path := fs.String("origincert", filepath.Join(homeDir(), ".culvert", "cert.pem"), "the cert.pem to inspect")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 1 {
		*path = fs.Arg(0)
	} else if fs.NArg() > 1 {
		return errors.New("cert inspect: at most one file")
	}
	b, err := culverttls.ReadBundleFile(*path)
	if err != nil {
		return err
	}
	c := b.Cert
	fi, _ := os.Stat(*path)
	tok := b.Token.APIToken
	if len(tok) > 10 {
		tok = tok[:8] + "…" + fmt.Sprintf(" (%d characters)", len(b.Token.APIToken))
	}
	w := os.Stdout
	fmt.Fprintf(w, "File:            %s", *path)
	if fi != nil {
		fmt.Fprintf(w, " (mode %04o)", fi.Mode().Perm())
	}
	fmt.Fprintf(w, "\nOrigin certificate\n")
	fmt.Fprintf(w, "  Subject:       %s\n", c.Subject.CommonName)
	fmt.Fprintf(w, "  Names:         %s\n", strings.Join(c.DNSNames, ", "))
	fmt.Fprintf(w, "  Serial:        %s\n", c.SerialNumber.Text(16))
	fmt.Fprintf(w, "  Issuer:        %s\n", c.Issuer.CommonName)
	fmt.Fprintf(w, "  Valid from:    %s\n", c.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  Valid until:   %s (%s left)\n", c.NotAfter.UTC().Format(time.RFC3339), roughDuration(time.Until(c.NotAfter)))
	fmt.Fprintf(w, "  Key:           %s\n", keyDesc(c))
	fmt.Fprintf(w, "Token\n")
	fmt.Fprintf(w, "  Zone:          %s (id %s)\n", b.Token.Zone, b.Token.ZoneID)
	fmt.Fprintf(w, "  Account:       %s\n", b.Token.AccountID)
	fmt.Fprintf(w, "  API token:     %s (valid until revoked or rolled)\n", tok)
	fmt.Fprintf(w, "  Edge server:   %s\n", b.Token.TunnelServerName)
	if len(b.Token.Edges) > 0 {
		fmt.Fprintf(w, "  Edges:         %s\n", strings.Join(b.Token.Edges, ", "))
	} else {
		fmt.Fprintf(w, "  Edges:         (found by DNS: _culvert._tcp.%s)\n", strings.TrimPrefix(b.Token.TunnelServerName, "tunnel."))
	}
	if b.Token.API != "" {
		fmt.Fprintf(w, "  Control API:   %s\n", b.Token.API)
	}
	if b.Token.EdgeCA != "" {
		if ca, err := culverttls.FirstCertificate([]byte(b.Token.EdgeCA)); err == nil {
			fmt.Fprintf(w, "  Edge CA:       %s, until %s\n", ca.Subject.CommonName, ca.NotAfter.UTC().Format("2006-01-02"))
		}
	}
	return nil
}

func keyDesc(c *x509.Certificate) string {
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
		return "ECDSA " + k.Curve.Params().Name
	}
	return c.PublicKeyAlgorithm.String()
}

func roughDuration(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	days := int(d.Hours() / 24)
	if days >= 365 {
		return fmt.Sprintf("%d years %d days", days/365, days%365)
	}
	return fmt.Sprintf("%d days", days)
}
