package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/culvert-tunnel/culvert/control"
	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/spf13/pflag"
)

// userFlags make an API client from cert.pem: its token, its control API
// URL and its edge CA.
type userFlags struct {
	cert  string
	api   string
	token string
	ca    string
}

func (f *userFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cert, "origincert", filepath.Join(homeDir(), ".culvert", "cert.pem"), "cert.pem whose token, control API and edge CA to use")
	fs.StringVar(&f.api, "api", "", "the control API, https://HOST:PORT (default: the one in cert.pem)")
	fs.StringVar(&f.token, "token", os.Getenv("CULVERT_API_TOKEN"), "API token (default: $CULVERT_API_TOKEN, else the one in cert.pem)")
	fs.StringVar(&f.ca, "api-ca", "", "CA certificate (PEM) of the control API (default: the edge CA in cert.pem)")
}

func (f *userFlags) client() (*adminClient, error) {
	api, token := f.api, f.token
	var caPEM []byte
	if b, err := culverttls.ReadBundleFile(f.cert); err == nil {
		if api == "" {
			api = b.Token.API
		}
		if token == "" {
			token = b.Token.APIToken
		}
		caPEM = []byte(b.Token.EdgeCA)
	} else if token == "" || api == "" {
		return nil, fmt.Errorf("%w\n(run `culvert login`, or give --api and --token)", err)
	}
	if api == "" {
		return nil, errors.New("cert.pem names no control API: give --api https://HOST:PORT")
	}
	u, err := url.Parse(api)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--api %q: want https://HOST:PORT", api)
	}
	hc, err := apiHTTPClient(f.ca, caPEM)
	if err != nil {
		return nil, err
	}
	return &adminClient{base: strings.TrimSuffix(api, "/"), token: token, hc: hc}, nil
}

func runTunnelAdmin(args []string) error { return runUserAPI("tunnel", args) }

func runDNSCommand(args []string) error {
	if len(args) == 0 {
		return errors.New("dns: want `list` or `delete NAME`")
	}
	return runUserAPI("dns", args)
}

func runAuditCommand(args []string) error {
	return runUserAPI("audit", append([]string{"list"}, args...))
}

// runUserAPI runs the account commands that talk to the control API:
// tunnel list|delete, dns list|delete, cert list|revoke, audit.
func runUserAPI(group string, args []string) error {
	cmd := group + " " + args[0]
	fs := pflag.NewFlagSet("culvert "+cmd, pflag.ContinueOnError)
	var uf userFlags
	uf.register(fs)
	account := fs.String("account", "", "operators: the account to list (an ID, or all)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	after := fs.Uint64("after", 0, "audit: events after this sequence number")
	limit := fs.Int("limit", 1000, "audit: at most this many events")
	last := fs.Int("last", 0, "audit: the newest N events instead (reads only those)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := uf.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *account != "" {
		q.Set("account", *account)
	}
	one := func(what string) (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("%s: want one %s", cmd, what)
		}
		return fs.Arg(0), nil
	}
	list := func(path string, v any) error {
		if fs.NArg() != 0 {
			return fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		body, err := c.do("GET", path, nil)
		if err != nil {
			return err
		}
		if *asJSON {
			os.Stdout.Write(body)
			return errPrinted
		}
		return json.Unmarshal(body, v)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	defer tw.Flush()
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	}
	err = nil
	switch cmd {
	case "tunnel list":
		var ts []control.TunnelStatus
		if err = list("/v1/tunnels", &ts); err != nil {
			break
		}
		fmt.Fprintln(tw, "HOSTNAME\tSTATUS\tPOOL\tLAST REGISTERED\tID")
		for _, t := range ts {
			status := "connected"
			if !t.Connected {
				status = "not connected"
				if !t.DeleteAt.IsZero() {
					status = "deleted at " + when(t.DeleteAt)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Hostname, status, dash(t.LBPool), when(t.LastSeen), t.ID)
		}
	case "tunnel delete":
		var h string
		if h, err = one("hostname"); err == nil {
			if _, err = c.do("DELETE", "/v1/tunnels/"+url.PathEscape(h), nil); err == nil {
				fmt.Fprintf(tw, "tunnel %s deleted with its DNS records\n", h)
			}
		}
	case "dns list":
		var rs []control.DNSRecord
		if err = list("/v1/dns", &rs); err != nil {
			break
		}
		fmt.Fprintln(tw, "NAME\tTYPE\tVALUE\tDELETION")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Type, strings.Join(r.Values, ","), when(r.DeleteAt))
		}
	case "dns delete":
		var n string
		if n, err = one("record name"); err == nil {
			var body []byte
			if body, err = c.do("DELETE", "/v1/dns/"+url.PathEscape(n), nil); err == nil {
				var res struct{ Deleted int }
				json.Unmarshal(body, &res)
				fmt.Fprintf(tw, "%d record(s) at %s deleted\n", res.Deleted, n)
			}
		}
	case "cert list":
		var cs []control.CertRecord
		if err = list("/v1/certs", &cs); err != nil {
			break
		}
		fmt.Fprintln(tw, "SERIAL\tZONE ID\tISSUED\tNOT AFTER\tREVOKED")
		for _, ce := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ce.Serial, ce.ZoneID, when(ce.Issued), ce.NotAfter.Format("2006-01-02"), when(ce.RevokedAt))
		}
	case "cert revoke":
		var s string
		if s, err = one("serial"); err == nil {
			if _, err = c.do("POST", "/v1/certs/"+url.PathEscape(s)+"/revoke", nil); err == nil {
				fmt.Fprintf(tw, "certificate %s revoked: the edge refuses it from the next connection on\n", s)
			}
		}
	case "audit list":
		if *last > 0 {
			if fs.Changed("after") {
				err = errors.New("audit: --last and --after do not go together")
				break
			}
			q.Set("last", strconv.Itoa(*last))
		} else {
			q.Set("after", strconv.FormatUint(*after, 10))
			q.Set("limit", strconv.Itoa(*limit))
		}
		var es []control.AuditEvent
		if err = list("/v1/audit", &es); err != nil {
			break
		}
		fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tSUBJECT\tDETAIL")
		for _, e := range es {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Seq, when(e.Time), e.Kind, e.Subject, e.Detail)
		}
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, errPrinted) {
		return nil
	}
	return err
}

// errPrinted ends a command whose output is already written.
var errPrinted = errors.New("printed")

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
