package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	culverttls "github.com/culvert-tunnel/culvert/tls"
	"github.com/spf13/pflag"
)

// runQuickstart runs an edge, a connector and the hello-world origin (or
// --url) in one process on loopback, with all state in a temporary
// directory, and prints the curl command that goes through the tunnel.
func runQuickstart(args []string) error {
	fs := pflag.NewFlagSet("culvert quickstart", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "visitor HTTP address")
	hostname := fs.String("hostname", "hello.culvert.test", "the tunnel's public hostname")
	originURL := fs.String("url", "", "an origin of yours instead of the built-in hello-world")
	var logs logFlags
	logs.register(fs)
	logger, err := parseFlags(fs, args, &logs)
	if err != nil {
		return err
	}
	host := culverttls.NormalizeHostname(*hostname)
	dot := strings.IndexByte(host, '.')
	if dot <= 0 || !strings.Contains(host[dot+1:], ".") {
		return fmt.Errorf("quickstart: --hostname %q: want a name like app.example.test (one label under a zone)", *hostname)
	}
	zone := host[dot+1:]

	dir, err := os.MkdirTemp("", "culvert-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ctx, cancel := signalContext()
	defer cancel()
	eo := edgeOptions{dataDir: dir, domain: "quickstart.internal", tunnelAddr: "127.0.0.1:0", httpAddr: *listen, grace: 5 * time.Second}
	re, err := startEdge(&eo, logger)
	if err != nil {
		return err
	}
	defer re.shutdown(eo.grace)
	if _, err := re.ctl.CreateZone(zone, false); err != nil {
		return err
	}
	pem, err := re.ctl.IssueBundle(zone)
	if err != nil {
		return err
	}
	b, err := culverttls.ParseBundle(pem)
	if err != nil {
		return err
	}
	to := tunnelOptions{hostname: host, url: *originURL, helloWorld: *originURL == "", grace: 5 * time.Second, haConns: 4}
	to.origin.ConnectTimeout = 10 * time.Second
	to.origin.ResponseTimeout = 90 * time.Second
	to.origin.KeepAliveConnections = 100
	to.origin.KeepAliveTimeout = 90 * time.Second
	rt, err := startTunnel(ctx, &to, b, logger)
	if err != nil {
		return err
	}
	defer rt.close()

	// Wait for the tunnel to register before telling the user to curl.
	deadline := time.Now().Add(15 * time.Second)
	for rt.c.Registered() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if rt.c.Registered() == 0 {
		return fmt.Errorf("quickstart: the tunnel did not register")
	}
	origin := "the built-in hello-world origin"
	if *originURL != "" {
		origin = *originURL
	}
	fmt.Printf("\nculvert quickstart: edge, connector and %s are up.\n", origin)
	fmt.Printf("Reach the origin through the tunnel with:\n\n")
	fmt.Printf("    curl -H 'Host: %s' http://%s/\n\n", host, re.httpLn.Addr().String())
	fmt.Printf("Press Ctrl-C to stop.\n")
	select {
	case <-ctx.Done():
		// The connector unregisters and finishes its requests first.
		select {
		case err = <-rt.done:
		case <-time.After(to.grace + time.Second):
		}
		return err
	case err = <-rt.done:
		return err
	}
}
