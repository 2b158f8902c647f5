// Package e2e holds the end-to-end tests of the tunnel over real sockets
// and TLS; no production code.
//
// Each test starts, in its own process space and on loopback only, an edge
// (control path, tunnel listener and visitor listener), an origin (the
// built-in hello-world one, or one of the test's own) and a connector
// logged in with a cert.pem the edge issued, then drives visitors through
// the edge with ordinary clients.
package e2e
