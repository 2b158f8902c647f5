package origin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/culvert-tunnel/culvert/bufpool"
	"github.com/valyala/fasthttp"
)

// sendChunk is the most a request body sender reads from the stream, and so
// writes to the origin, at a time.
const sendChunk = 32 << 10

// chunkHead is the room left in front of a chunk for its size line
// ("%x\r\n": up to 16 hex digits) and chunkTail the room behind it for
// "\r\n" and, on the last chunk, the terminating "0\r\n\r\n".
const (
	chunkHead = 18
	chunkTail = 7
)

// exchange is the state of one request/response exchange that outlives the
// simple path of Do: a streamed request body, a streamed response body, or
// both. Exchanges are pooled by their Client.
//
// Ownership. Do fills it and starts the sender; from then on:
//   - the sender goroutine owns src, srcLen and the write side of oc until
//     it reports under mu (sendDone);
//   - the response body side (Do until it returns, then the responseBody's
//     reader under its mutex) owns br, frame, rs and the read side of oc;
//   - mu guards headDone, sendDone and sendErr, the hand-over points of the
//     two sides;
//   - the goroutine that ends the exchange (Do on its error or no-body
//     paths, else whoever closes the response body) waits for the sender
//     (stopSender), then owns everything and recycles it (finish).
type exchange struct {
	c  *Client
	h  connHandle
	oc *originConn
	pc *pipeConn // a pipelined connection's turn: ending the body ends it

	// request body
	req     *fasthttp.Request
	src     io.Reader
	srcLen  int
	started bool          // a sender was started and not yet waited for; ending goroutine only
	sent    chan struct{} // closed when the sender has finished
	// lastWrite is set by the sender once the body is entirely read from
	// the stream, before its last write: the origin cannot have read the
	// whole body before then, so a response seen after it usually means the
	// upload is done, and Do waits for the sender instead of aborting it.
	lastWrite atomic.Bool
	aborted   bool // the sender was aborted; ending goroutine only

	mu       sync.Mutex
	headDone bool  // the response head is in (or failed)
	sendDone bool  // the sender has finished
	sendErr  error // why it failed

	// response body
	br        *bufio.Reader
	frame     fasthttp.Response // holds the chunked decoder and the discarded trailers
	rs        io.Reader         // chunked decoder (frame's body stream), nil for other framings
	remaining int64             // Content-Length bytes still unread; -1 when not length-delimited
	keep      bool              // both heads allow keep-alive
	eof       bool
	failed    bool
}

func (c *Client) getExchange(h connHandle, oc *originConn) *exchange {
	x := c.exchanges.Get().(*exchange)
	x.h, x.oc = h, oc
	x.remaining = -1
	return x
}

// startSender starts sending src, the body of req, on the connection whose
// head Do has written.
func (x *exchange) startSender(req *fasthttp.Request, src io.Reader, srcLen int) {
	x.req, x.src, x.srcLen = req, src, srcLen
	x.started = true
	x.sent = make(chan struct{})
	go x.send()
}

// send is the sender goroutine.
func (x *exchange) send() {
	defer close(x.sent)
	srcFailed, err := x.copyBody()
	x.src = nil
	x.mu.Lock()
	x.sendDone = true
	x.sendErr = err
	switch {
	case err != nil && (!x.headDone || srcFailed):
		// The request is broken: no head to wait for, or a response to a
		// request the origin will never see the end of.
		x.oc.Close()
	case err == nil && !x.headDone && x.c.responseTimeout > 0:
		// The response timeout runs from the end of the request.
		_ = x.oc.SetReadDeadline(time.Now().Add(x.c.responseTimeout))
	}
	x.mu.Unlock()
}

// copyBody writes the request body to the origin, framed by Content-Length
// or chunked, one write per read of the stream. srcFailed says the error
// came from the stream (or its length), not from the origin.
func (x *exchange) copyBody() (srcFailed bool, err error) {
	pb := bufpool.Get(chunkHead + sendChunk + chunkTail)
	defer bufpool.Put(pb)
	buf := pb.B
	if x.srcLen >= 0 {
		left := int64(x.srcLen)
		for left > 0 {
			p := buf[:min(int64(sendChunk), left)]
			n, rerr := x.src.Read(p)
			if n > 0 {
				left -= int64(n)
				if left == 0 {
					x.lastWrite.Store(true)
				}
				if _, werr := x.oc.Write(p[:n]); werr != nil {
					return false, x.sendError(werr)
				}
			}
			if rerr != nil && left > 0 {
				if rerr == io.EOF {
					rerr = io.ErrUnexpectedEOF
				}
				return true, fmt.Errorf("origin: request body (%d of %d bytes): %w", int64(x.srcLen)-left, x.srcLen, rerr)
			}
		}
		return false, nil
	}
	for {
		n, rerr := x.src.Read(buf[chunkHead : chunkHead+sendChunk])
		if rerr != nil && rerr != io.EOF {
			return true, fmt.Errorf("origin: request body: %w", rerr)
		}
		start, end := chunkHead, chunkHead
		if n > 0 {
			var hex [16]byte
			size := strconv.AppendInt(hex[:0], int64(n), 16)
			start = chunkHead - len(size) - 2
			copy(buf[start:], size)
			buf[chunkHead-2], buf[chunkHead-1] = '\r', '\n'
			end = chunkHead + n
			buf[end], buf[end+1] = '\r', '\n'
			end += 2
		}
		if rerr == io.EOF {
			x.lastWrite.Store(true)
			end += copy(buf[end:], "0\r\n\r\n")
		}
		if end > start {
			if _, werr := x.oc.Write(buf[start:end]); werr != nil {
				return false, x.sendError(werr)
			}
		}
		if rerr == io.EOF {
			return false, nil
		}
	}
}

func (x *exchange) sendError(err error) error {
	if isTimeout(err) {
		return timedOut(fmt.Errorf("the origin accepted no request body bytes within %v", x.c.responseTimeout))
	}
	return fmt.Errorf("origin: writing the request body: %w", err)
}

// headRead records that the response head is in (or failed) and returns the
// sender's error if it has already failed.
func (x *exchange) headRead() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.headDone = true
	return x.sendErr
}

// sendingEnded reports whether no sender runs or it has read the whole
// body (it may still be writing the last of it).
func (x *exchange) sendingEnded() bool {
	if !x.started || x.lastWrite.Load() {
		return true
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sendDone
}

// waitSent waits up to d for the sender to finish and reports whether it has.
func (x *exchange) waitSent(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-x.sent:
		return true
	case <-t.C:
		return false
	}
}

// stopSender ends the upload. Without abort it lets an upload that is
// writing its last bytes finish, for up to lastWriteGrace; with abort, or
// past that, it aborts it: the connection is closed (failing the writes)
// and the stream closed (failing a pending Read of an io.Closer stream).
// Then it waits for the sender. Either way the stream ends closed, as
// fasthttp closes a body stream after sending it.
func (x *exchange) stopSender(abort bool) {
	if !x.started {
		return
	}
	x.started = false
	if !abort {
		select {
		case <-x.sent:
		default:
			abort = !x.waitSent(lastWriteGrace)
		}
	}
	if abort {
		x.mu.Lock()
		abort = !x.sendDone
		x.mu.Unlock()
	}
	if abort {
		x.aborted = true
		x.oc.Close()
		_ = x.req.CloseBodyStream()
	}
	<-x.sent
	if !abort {
		_ = x.req.CloseBodyStream()
	}
}

// startBody sets up the response body framing after the head: cl is its
// Content-Length, -1 for chunked, -2 for a body delimited by the close.
func (x *exchange) startBody(br *bufio.Reader, cl int, keep bool) {
	x.br, x.keep = br, keep
	switch {
	case cl >= 0:
		x.remaining = int64(cl)
	case cl == -1:
		x.frame.Reset()
		x.frame.KeepBodyBuffer = true
		x.frame.StreamBody = true
		x.frame.Header.SetContentLength(-1)
		_ = x.frame.ReadBody(br, 0) // never fails when streaming
		x.rs = x.frame.BodyStream()
	default:
		x.keep = false
	}
}

// read reads the response body.
func (x *exchange) read(p []byte) (int, error) {
	if x.eof {
		return 0, io.EOF
	}
	if x.failed {
		return 0, errBodyFailed
	}
	var (
		n   int
		err error
	)
	switch {
	case x.rs != nil:
		n, err = x.rs.Read(p)
	case x.remaining >= 0:
		if x.remaining == 0 {
			x.eof = true
			return 0, io.EOF
		}
		if int64(len(p)) > x.remaining {
			p = p[:x.remaining]
		}
		n, err = x.br.Read(p)
		x.remaining -= int64(n)
		if x.remaining == 0 {
			x.eof = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	default:
		n, err = x.br.Read(p)
	}
	switch {
	case err == io.EOF:
		x.eof = true
	case err != nil:
		x.failed = true
		err = fmt.Errorf("origin: reading the response body: %w", err)
	}
	return n, err
}

var errBodyFailed = errors.New("origin: reading the response body failed before")

// bodyDone ends the response body side; clean is false when the caller
// closed it with an error or after a Read was interrupted. It ends the
// exchange.
func (x *exchange) bodyDone(clean bool) {
	ok := clean && x.keep && !x.failed
	if ok && !x.eof {
		// Unread rest: reuse the connection only if the rest is already
		// buffered (never wait on the origin here).
		if x.remaining >= 0 && x.remaining <= int64(x.br.Buffered()) {
			_, _ = x.br.Discard(int(x.remaining))
		} else {
			ok = false
		}
	}
	if pc := x.pc; pc != nil {
		// Bytes past the response are the next answers; the pipeline owns
		// the reader and the connection.
		if x.rs != nil {
			_ = x.frame.CloseBodyStream()
			x.rs = nil
		}
		x.br = nil
		x.recycle()
		x.c.pipe.endTurn(pc, ok)
		return
	}
	if ok && x.br.Buffered() != 0 {
		ok = false // bytes past the response
	}
	// A clean end while the upload still runs means the origin answered in
	// full without reading the whole request body: abort the upload.
	x.stopSender(!ok || !x.sendingEnded())
	if x.rs != nil {
		_ = x.frame.CloseBodyStream()
		x.rs = nil
	}
	x.c.hc.ReleaseReader(x.br)
	x.br = nil
	x.finish(ok)
}

// finish ends the exchange: the connection goes back to the pool when keep
// holds and the upload (if any) succeeded, and is closed otherwise; then the
// exchange is recycled. The sender must have been waited for.
func (x *exchange) finish(keep bool) {
	x.mu.Lock()
	keep = keep && !x.aborted && x.sendErr == nil
	x.mu.Unlock()
	if keep {
		x.c.releaseConn(x.h)
	} else {
		x.c.closeConn(x.h)
	}
	x.recycle()
}

// recycle clears the exchange and returns it to its Client's pool.
func (x *exchange) recycle() {
	c := x.c
	x.h, x.oc, x.pc, x.req, x.src, x.srcLen, x.sent = nil, nil, nil, nil, nil, 0, nil
	x.started, x.aborted = false, false
	x.lastWrite.Store(false)
	x.headDone, x.sendDone, x.sendErr = false, false, nil
	x.br, x.rs, x.remaining, x.keep, x.eof, x.failed = nil, nil, -1, false, false, false
	c.exchanges.Put(x)
}

// responseBody is the body stream Do sets on a response whose body is
// still to come. It is allocated per streamed response, not pooled, so that
// a Read after Close (from a goroutine that lost a race with an aborting
// CloseBodyStream) meets a closed reader rather than someone else's body.
type responseBody struct {
	mu     sync.Mutex // held during a Read
	closed atomic.Bool
	x      *exchange // nil once closed
}

// Read reads the body as the origin sends it.
func (b *responseBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.x == nil {
		return 0, io.ErrClosedPipe
	}
	return b.x.read(p)
}

// CloseWithError ends the exchange (fasthttp.ReadCloserWithError; called by
// resp.CloseBodyStream with a nil error). A non-nil err, or a Read still
// blocked on the origin (it is interrupted), discards the connection.
func (b *responseBody) CloseWithError(err error) error {
	if b.closed.Swap(true) {
		return nil
	}
	clean := err == nil
	if !b.mu.TryLock() {
		// A Read is in progress, perhaps blocked on the origin.
		clean = false
		b.x.oc.Close()
		b.mu.Lock()
	}
	x := b.x
	b.x = nil
	b.mu.Unlock()
	x.bodyDone(clean)
	return nil
}
