package origin

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// idleProbeAfter is how long a pooled connection may have been idle before
// Do checks, without blocking, that the origin has not closed it. Origins
// close idle keep-alive connections on their own schedule (Node.js after 5s,
// nginx after 75s); a request written to such a connection fails, and only
// idempotent requests could be retried. The check is one non-blocking
// MSG_PEEK recv on Linux (no check elsewhere); connections reused sooner
// than this skip it, which keeps it off the hot path under load.
const idleProbeAfter = 100 * time.Millisecond

// aLongTimeAgo is a deadline in the past: setting it fails pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// originConn is a connection to the origin as the pool holds it.
//
// One goroutine at a time does I/O on it: Do while it writes the request and
// reads the head, then the request body sender (writes) and the reader of
// the response body (reads), which the exchange keeps apart. Close may be
// called from any goroutine, any number of times.
type originConn struct {
	net.Conn // *net.TCPConn, *net.UnixConn or *tls.Conn

	// writeIdle, while positive, gives every Write that long to complete
	// (the origin must keep accepting a streamed request body). Set by Do
	// before the request is written; read only by the writing goroutine.
	writeIdle time.Duration
	closed    atomic.Bool

	// probe state, see alive: raw is the socket under TLS, probeFn is
	// bound once so that a probe does not allocate.
	raw      syscall.RawConn
	probeFn  func(fd uintptr) bool
	probeBuf [1]byte
	probeN   int
	probeErr syscall.Errno
}

func newOriginConn(conn, raw net.Conn) *originConn {
	c := &originConn{Conn: conn}
	if sc, ok := raw.(syscall.Conn); ok && probeSupported {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw = rc
			c.probeFn = c.probe
		}
	}
	return c
}

func (c *originConn) Write(p []byte) (int, error) {
	if c.writeIdle > 0 {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.writeIdle)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

// Close closes the connection once; later calls return nil.
func (c *originConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.Conn.Close()
}

// alive reports whether an idle connection still looks usable: no EOF, no
// error and no unexpected bytes waiting on the socket. A TLS close_notify
// counts as unexpected bytes, which is right: the origin is closing.
func (c *originConn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.probeN, c.probeErr = 0, 0
	if err := c.raw.Read(c.probeFn); err != nil {
		return false
	}
	return c.probeErr == syscall.EAGAIN || c.probeErr == syscall.EWOULDBLOCK
}

// dial opens a connection to the origin: tcp or unix, TLS when the URL says
// so, within ConnectTimeout (and ctx). Errors are classified.
func (c *Client) dial(ctx context.Context) (*originConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	raw, err := c.dialer.DialContext(ctx, c.target.network, c.target.address)
	if err != nil {
		return nil, dialError(err)
	}
	conn := raw
	if c.tls != nil {
		tc := tls.Client(raw, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, dialError(err)
		}
		conn = tc
	}
	return newOriginConn(conn, raw), nil
}

// dialForPool is the HostClient's dial function. The address fasthttp
// passes is ignored: the target is the Client's.
func (c *Client) dialForPool(string, time.Duration) (net.Conn, error) {
	conn, err := c.dial(context.Background())
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// upgradedConn is a connection handed over after a 101 response: Read first
// returns the bytes that were read past the response head.
type upgradedConn struct {
	net.Conn
	pending []byte
}

func (c *upgradedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection (TCP FIN, or close_notify on TLS)
// where the underlying connection supports it, and closes it otherwise.
func (c *upgradedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
