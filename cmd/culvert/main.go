// Command culvert is the one binary of culvert: the edge, the connector
// (culvert tunnel), the one-process quickstart and the admin commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `culvert: a self-hostable reverse tunnel.

Usage:
  culvert quickstart [flags]          edge + connector + hello-world origin in one process
  culvert edge [flags]                run an edge
  culvert edge zone create ZONE       create a zone and write a cert.pem for it
  culvert edge cert issue ZONE        write a new cert.pem for a zone
  culvert edge cert list|revoke       list or revoke origin certificates
  culvert edge account create|list    accounts (operators)
  culvert edge user create|list|set|remove   users and their roles (a change rolls the user's key)
  culvert login --edge URL            get a cert.pem through the browser (super administrators)
  culvert cert inspect [FILE]         what a cert.pem holds and until when
  culvert cert list|revoke SERIAL     the account's origin certificates
  culvert tunnel [flags]              run a connector for one hostname
  culvert tunnel list|delete HOST     the account's tunnels
  culvert dns list|delete NAME        the account's DNS records
  culvert audit                       the account's audit log
  culvert version

Run "culvert COMMAND --help" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "quickstart":
		err = runQuickstart(args)
	case "edge":
		err = runEdgeCommand(args)
	case "tunnel":
		err = runTunnel(args)
	case "login":
		err = runLogin(args)
	case "cert":
		err = runCertCommand(args)
	case "dns":
		err = runDNSCommand(args)
	case "audit":
		err = runAuditCommand(args)
	case "version", "--version":
		fmt.Println("culvert", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "culvert: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "culvert:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "culvert: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx, cancel
}
