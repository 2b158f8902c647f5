package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// maxUpgradeBody bounds the body of a refused upgrade that DialUpgrade reads.
const maxUpgradeBody = 64 << 10

// UpgradeResponse is the origin's answer to an upgrade request.
type UpgradeResponse struct {
	Status int
	// Header is every response header as received (names normalized by
	// fasthttp), hop-by-hop ones and Content-Length included: filtering
	// is the proxy's job.
	Header [][2]string
	// Body is the body of a refused upgrade (Status != 101), at most
	// 64 KiB of it: a longer one is cut, and so is one the origin stopped
	// sending, so relay it with len(Body) as its length. Nil on 101.
	Body []byte
}

// DialUpgrade performs an HTTP/1.1 upgrade (a websocket handshake, or any
// other Upgrade) with the origin on a connection of its own, outside the
// pool: it dials (tcp, unix or TLS as the URL says, within ConnectTimeout),
// writes req's head as an HTTP/1.1 request with the caller's headers
// (Connection, Upgrade, Sec-WebSocket-* and the rest, Host handled as in Do;
// a body of bytes is sent, a body stream is not) and reads the response head
// within ResponseTimeout. ctx bounds the whole handshake.
//
// On 101 it returns the connection, now the caller's to close, whose Read
// first yields any bytes the origin sent after the head; it supports
// CloseWrite (a half close) on tcp, unix and TLS. On any other status it
// returns a nil connection, the status, the headers and the body (bounded,
// see UpgradeResponse), and closes the connection. Errors are classified
// as in Do; a cancelled ctx returns ctx's error wrapped.
func (c *Client) DialUpgrade(ctx context.Context, req *fasthttp.Request) (net.Conn, *UpgradeResponse, error) {
	if c.closed.Load() {
		return nil, nil, errClosed
	}
	if c.hostHeader != "" {
		req.Header.SetHost(c.hostHeader)
	} else if len(req.Header.Host()) == 0 {
		req.Header.SetHost(c.target.defaultHost)
	}
	req.Header.SetNoDefaultContentType(true)

	oc, err := c.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("origin: upgrade: %w", ctx.Err())
		}
		return nil, nil, err
	}
	conn := oc.Conn // the upgraded connection is handed over without the pool's wrapper
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (net.Conn, *UpgradeResponse, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("origin: upgrade: %w", ctx.Err())
		}
		return nil, nil, err
	}
	if c.responseTimeout > 0 {
		deadline := time.Now().Add(c.responseTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := conn.SetDeadline(deadline); err != nil {
			return fail(err)
		}
	}

	bw := c.hc.AcquireWriter(conn)
	err = writeRequest(bw, req)
	c.hc.ReleaseWriter(bw)
	if err != nil {
		return fail(c.writeError(err))
	}

	br := c.hc.AcquireReader(conn)
	defer c.hc.ReleaseReader(br)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.Header.SetNoDefaultContentType(true)
	if err := readHead(&resp.Header, br); err != nil {
		switch {
		case isTimeout(err):
			return fail(timedOut(fmt.Errorf("no upgrade response head from the origin within %v", c.responseTimeout)))
		case err == io.EOF:
			return fail(errors.New("origin: connection closed before the upgrade response head"))
		}
		return fail(fmt.Errorf("origin: reading the upgrade response head: %w", err))
	}
	ur := &UpgradeResponse{Status: resp.StatusCode()}
	for k, v := range resp.Header.All() {
		ur.Header = append(ur.Header, [2]string{string(k), string(v)})
	}

	if ur.Status == fasthttp.StatusSwitchingProtocols {
		if !stop() {
			return fail(ctx.Err())
		}
		if err := conn.SetDeadline(time.Time{}); err != nil {
			return fail(err)
		}
		uc := &upgradedConn{Conn: conn}
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			uc.pending = append([]byte(nil), b...)
		}
		return uc, ur, nil
	}

	if s := ur.Status; !(req.Header.IsHead() || s < 200 || s == fasthttp.StatusNoContent || s == fasthttp.StatusNotModified) {
		// The refusal's body, as much as arrives in time (the deadline still holds).
		resp.StreamBody = true
		if err := resp.ReadBody(br, 0); err == nil {
			ur.Body, _ = io.ReadAll(io.LimitReader(resp.BodyStream(), maxUpgradeBody))
			_ = resp.CloseBodyStream()
		}
	}
	stop()
	conn.Close()
	return nil, ur, nil
}
