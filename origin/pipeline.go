package origin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// HTTP/1.1 pipelining (Config.PipelineDepth).
//
// A pipelined connection is borrowed from the pool for as long as it has
// requests in flight and goes back to it when the last answer is read, so
// the pool's bounds (MaxConnsPerHost, KeepAliveConnections, the idle
// timeout) cover it like any other connection.
//
// Requests are written in the order they are queued, by one writer at a
// time: a request queued while another goroutine writes is written by that
// goroutine in the same Write (group commit), so a burst of requests costs
// the connector and the origin one write and one read. Answers come back in
// the same order; the request at the head of a connection's queue holds
// the read side (its turn), reads its answer and hands the turn to the next
// one, whose answer is often already buffered.
//
// Head-of-line blocking is bounded: a body up to pipelineWholeBody bytes is
// read at once (the turn passes before Do returns); a larger or
// open-ended body is streamed, the connection takes no new requests
// meanwhile, and if requests wait behind it for more than pipelineStall
// they are sent again, each on a connection of its own (only GET and HEAD
// are pipelined, so sending one again is safe), and the connection is
// closed when the stream ends.

// pipelineWholeBody is the largest response body read whole before Do
// returns on a pipelined connection; larger ones are streamed.
const pipelineWholeBody = readBufferSize

// pipelineStall is how long requests may wait behind a streamed response
// before they are sent again on another connection.
const pipelineStall = 250 * time.Millisecond

// errPipelineBroken fails the requests queued on a pipelined connection that
// broke, closed, or stalled before their turn. They are sent again (up to
// Do's attempts).
var errPipelineBroken = errors.New("origin: the pipelined connection ended before the response")

// PipelineStats counts the pipelining of a Client (Config.PipelineDepth).
type PipelineStats struct {
	// Requests is the number of requests queued on pipelined connections.
	// (A request sent again after a fail-over goes on a connection of its
	// own and is not counted again.)
	Requests uint64
	// Writes is the number of writes of queued requests: Requests / Writes
	// is the average batch.
	Writes uint64
	// Resent counts the requests whose pipelined connection broke, closed
	// or stalled behind a streamed answer before their own answer: they
	// were sent again on a connection of their own.
	Resent uint64
}

// PipelineStats returns the pipelining counters (zero when pipelining is
// off).
func (c *Client) PipelineStats() PipelineStats {
	if c.pipe == nil {
		return PipelineStats{}
	}
	return PipelineStats{Requests: c.pipe.requests.Load(), Writes: c.pipe.writes.Load(), Resent: c.pipe.resent.Load()}
}

// pipelinable reports whether req may be pipelined: a GET or HEAD without
// a body, not asking to close the connection or to upgrade it.
func pipelinable(req *fasthttp.Request) bool {
	h := &req.Header
	return (h.IsGet() || h.IsHead()) && !req.IsBodyStream() && len(req.Body()) == 0 &&
		!h.ConnectionClose() && len(h.Peek(fasthttp.HeaderUpgrade)) == 0
}

// pipeline is the Client's set of pipelined connections.
type pipeline struct {
	c     *Client
	depth int // the most requests in flight on one connection

	mu    sync.Mutex
	conns []*pipeConn // borrowed, not dead, possibly idle for an instant

	requests, writes, resent atomic.Uint64 // see PipelineStats

	connPool sync.Pool // *pipeConn
	reqPool  sync.Pool // *pipeReq
}

// pipeConn is a connection borrowed from the pool for pipelining. Its
// fields are guarded by pipeline.mu, except that the turn holder reads br
// and oc, and the writer writes oc, without it.
type pipeConn struct {
	h  connHandle // nil until opened
	oc *originConn
	br *bufio.Reader

	wbuf, spare []byte     // request heads not yet written; the writer's other buffer
	writing     bool       // a goroutine is writing wbuf
	queue       []*pipeReq // in write order; queue[0] holds the turn
	dead        bool       // takes no requests; closed when the last turn ends
	streaming   bool       // queue[0]'s body is being streamed
	stallTok    uint64     // identifies a stream for its stall timer
}

// pipeReq is one pipelined request's place in a queue.
type pipeReq struct {
	turn  chan struct{} // signalled once: the turn is handed over, or err is set
	err   error
	retry retry // whether a failed request may be sent again
}

func newPipeline(c *Client, depth int) *pipeline {
	p := &pipeline{c: c, depth: depth}
	p.connPool.New = func() any { return &pipeConn{queue: make([]*pipeReq, 0, depth)} }
	p.reqPool.New = func() any { return &pipeReq{turn: make(chan struct{}, 1)} }
	return p
}

// roundTrip is one attempt of Do for a pipelinable request.
func (p *pipeline) roundTrip(req *fasthttp.Request, resp *fasthttp.Response) (retry, error) {
	pr := p.reqPool.Get().(*pipeReq)
	defer func() {
		pr.err, pr.retry = nil, retryNo
		p.reqPool.Put(pr)
	}()
	p.mu.Lock()
	pc := p.pickLocked()
	opening := pc == nil
	if opening {
		// A connection being opened takes requests at once: a burst on a
		// cold client queues on it instead of opening one each.
		pc = p.connPool.Get().(*pipeConn)
		pc.writing = true // by us, once it is open
		p.conns = append(p.conns, pc)
	}
	pc.wbuf = req.Header.AppendBytes(pc.wbuf)
	pc.queue = append(pc.queue, pr)
	p.requests.Add(1)
	holder := len(pc.queue) == 1
	switch {
	case opening:
		p.mu.Unlock()
		err := p.open(pc)
		p.mu.Lock()
		if err != nil {
			p.killLocked(pc, 1, err, retryNo)
			pc.queue[0] = nil
			pc.queue = pc.queue[:0]
			pc.wbuf = pc.wbuf[:0]
			pc.writing = false
			p.retireIfIdleLocked(pc)
			p.mu.Unlock()
			return retryNo, err
		}
		p.flushLocked(pc)
	case !pc.writing && pc.h != nil:
		// Let the goroutines that are ready to run queue their requests
		// first (a burst of requests arrives as goroutines started one
		// after another): they go out in this one Write.
		pc.writing = true
		p.mu.Unlock()
		runtime.Gosched()
		p.mu.Lock()
		p.flushLocked(pc)
	}
	p.mu.Unlock()
	if !holder {
		<-pr.turn
		if pr.err != nil {
			return pr.retry, pr.err
		}
	}
	return p.readResponse(pc, req, resp)
}

// pickLocked returns the live connection with the fewest requests in
// flight below depth, or nil.
func (p *pipeline) pickLocked() *pipeConn {
	var best *pipeConn
	for _, pc := range p.conns {
		if pc.streaming || len(pc.queue) >= p.depth {
			continue
		}
		if best == nil || len(pc.queue) < len(best.queue) {
			best = pc
			if len(pc.queue) == 0 {
				break
			}
		}
	}
	return best
}

// open takes a connection from the pool (or dials one) for pc. Called
// without the lock; pc.writing keeps others from writing meanwhile.
func (p *pipeline) open(pc *pipeConn) error {
	h, oc, _, err := p.c.acquire()
	if err != nil {
		return err
	}
	// Every write must complete within the response timeout; reads get a
	// deadline per answer.
	oc.writeIdle = p.c.responseTimeout
	if err := oc.SetDeadline(time.Time{}); err != nil {
		p.c.closeConn(h)
		return err
	}
	br := p.c.hc.AcquireReader(oc)
	p.mu.Lock()
	pc.h, pc.oc, pc.br = h, oc, br
	p.mu.Unlock()
	return nil
}

// flushLocked writes pc.wbuf until nothing is left, releasing the lock
// during each Write so that requests queued meanwhile join the next one.
// pc.writing is set by the caller and cleared here.
func (p *pipeline) flushLocked(pc *pipeConn) {
	for len(pc.wbuf) > 0 && !pc.dead {
		buf := pc.wbuf
		pc.wbuf = pc.spare[:0]
		p.mu.Unlock()
		_, err := pc.oc.Write(buf)
		p.writes.Add(1)
		p.mu.Lock()
		pc.spare = buf[:0]
		if err != nil {
			// The turn holder's read fails on the closed connection.
			p.killLocked(pc, 1, errPipelineBroken, retryIdempotent)
			pc.oc.Close()
		}
	}
	pc.wbuf = pc.wbuf[:0]
	pc.writing = false
	p.retireIfIdleLocked(pc)
}

// killLocked marks pc dead (it takes no more requests and is closed once its
// last turn ends) and fails the queued requests from queue[from] on with
// err; r says whether they may be sent again.
func (p *pipeline) killLocked(pc *pipeConn, from int, err error, r retry) {
	if !pc.dead {
		pc.dead = true
		p.removeLocked(pc)
	}
	if from >= len(pc.queue) {
		return
	}
	for i, pr := range pc.queue[from:] {
		pr.err, pr.retry = err, r
		pr.turn <- struct{}{}
		pc.queue[from+i] = nil
	}
	pc.queue = pc.queue[:from]
}

func (p *pipeline) removeLocked(pc *pipeConn) {
	for i, x := range p.conns {
		if x == pc {
			last := len(p.conns) - 1
			p.conns[i] = p.conns[last]
			p.conns[last] = nil
			p.conns = p.conns[:last]
			return
		}
	}
}

// endTurn ends the turn of queue[0]; keep false (the answer was cut, or
// the origin closes the connection) kills the connection.
func (p *pipeline) endTurn(pc *pipeConn, keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	copy(pc.queue, pc.queue[1:])
	pc.queue[len(pc.queue)-1] = nil
	pc.queue = pc.queue[:len(pc.queue)-1]
	if pc.streaming {
		pc.streaming = false
		pc.stallTok++
	}
	if !keep {
		p.killLocked(pc, 0, errPipelineBroken, retryIdempotent)
		pc.oc.Close()
	}
	if len(pc.queue) > 0 {
		pc.queue[0].turn <- struct{}{}
		return
	}
	p.retireIfIdleLocked(pc)
}

// retireIfIdleLocked gives pc back to the pool (or closes it, when dead)
// once nothing is queued on it or being written.
func (p *pipeline) retireIfIdleLocked(pc *pipeConn) {
	if len(pc.queue) > 0 || pc.writing {
		return
	}
	if !pc.dead {
		p.removeLocked(pc)
	}
	c := p.c
	if pc.h == nil {
		// Never opened.
	} else if pc.dead || pc.br.Buffered() != 0 {
		c.closeConn(pc.h) // dead, or bytes past the last answer
	} else {
		c.releaseConn(pc.h)
	}
	if pc.br != nil {
		c.hc.ReleaseReader(pc.br)
	}
	pc.h, pc.oc, pc.br, pc.dead = nil, nil, nil, false
	p.connPool.Put(pc)
}

// readResponse reads the answer of the turn holder into resp: a body up to
// pipelineWholeBody is read whole and the turn ends; a larger one becomes
// resp's body stream and the turn ends when it is closed.
func (p *pipeline) readResponse(pc *pipeConn, req *fasthttp.Request, resp *fasthttp.Response) (retry, error) {
	c := p.c
	if c.responseTimeout > 0 {
		if err := pc.oc.SetReadDeadline(time.Now().Add(c.responseTimeout)); err != nil {
			p.endTurn(pc, false)
			return retryIdempotent, err
		}
	}
	br := pc.br
	if err := readHead(&resp.Header, br); err != nil {
		p.endTurn(pc, false)
		switch {
		case isTimeout(err):
			return retryNo, timedOut(fmt.Errorf("no response head from the origin within %v", c.responseTimeout))
		case err == io.EOF:
			return retryIdempotent, errors.New("origin: connection closed before the response head")
		}
		// A connection closed under us (a failed write) reads as an
		// error: the request is a GET or HEAD, send it again.
		return retryIdempotent, fmt.Errorf("origin: reading the response head: %w", err)
	}
	cl, keep := bodyFraming(resp, req.Header.IsHead())
	if cl >= 0 && cl <= pipelineWholeBody {
		for left := cl; left > 0; {
			if br.Buffered() == 0 {
				if _, err := br.Peek(1); err != nil {
					p.endTurn(pc, false)
					if isTimeout(err) {
						return retryNo, timedOut(fmt.Errorf("the origin sent no response body byte within %v", c.responseTimeout))
					}
					return retryNo, fmt.Errorf("origin: reading the response body: %w", err)
				}
			}
			b, _ := br.Peek(min(left, br.Buffered()))
			resp.AppendBody(b)
			_, _ = br.Discard(len(b))
			left -= len(b)
		}
		p.endTurn(pc, keep)
		return retryNo, nil
	}
	if err := pc.oc.SetReadDeadline(time.Time{}); err != nil {
		p.endTurn(pc, false)
		return retryNo, err
	}
	p.startStream(pc)
	x := c.getExchange(pc.h, pc.oc)
	x.pc = pc
	x.startBody(br, cl, keep)
	resp.SetBodyStream(&responseBody{x: x}, cl)
	return retryNo, nil
}

// startStream marks pc as streaming queue[0]'s body: it takes no new
// requests, and those queued behind are failed over after pipelineStall.
func (p *pipeline) startStream(pc *pipeConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.streaming = true
	pc.stallTok++
	if len(pc.queue) > 1 {
		tok := pc.stallTok
		time.AfterFunc(pipelineStall, func() { p.stalled(pc, tok) })
	}
}

// stalled fails over the requests still waiting behind the stream tok.
func (p *pipeline) stalled(pc *pipeConn, tok uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc.streaming && pc.stallTok == tok {
		p.killLocked(pc, 1, errPipelineBroken, retryIdempotent)
	}
}
