package dataplane

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/bufpool"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// Chunk payload sizes. A send chunk holds one DATA frame's payload: the
// peer's SETTINGS_MAX_FRAME_SIZE, at most maxChunkPayload (bigger frames
// gain little and pin more memory per stream). It keeps frames.HeaderLen
// bytes free in front of the payload, so a full chunk goes out as a DATA
// frame without a copy; a small write takes a small chunk instead (see
// sendChunkPayload). Receive chunks hold defaultChunkPayload, or less for
// small data (see recvChunkPayload).
const (
	defaultChunkPayload = frames.DefaultMaxFrameSize
	maxChunkPayload     = 64 << 10
	smallChunkPayload   = 4 << 10
)

// recvChunkPayload is the payload size of a new receive chunk for n bytes
// of copied DATA: the data alone when it ends the stream (a small body
// takes a 512-byte buffer, not 16 KiB), a small chunk for small data, and
// defaultChunkPayload otherwise. Many streams with small bodies in flight
// then hold little memory, and a burst of them leaves little in the pools.
func recvChunkPayload(n int, end bool) int {
	switch {
	case n >= minSharedData:
		return defaultChunkPayload
	case end:
		return n
	default:
		return smallChunkPayload
	}
}

// sendChunkPayload is the payload size of a new send chunk for a write of
// n bytes when a DATA frame may carry frameMax: small writes take a small
// chunk (later small writes fill it up before another is taken).
func sendChunkPayload(n, frameMax int) int {
	if n < smallChunkPayload {
		return min(smallChunkPayload, frameMax)
	}
	return frameMax
}

// Received DATA: data of at least minSharedData bytes is queued as a
// reference to the frame reader's buffer instead of a copy, while fewer than
// shareBuffers of the reader's buffers (256 KiB each) are held that way;
// beyond that, and for smaller data, it is copied. The bound keeps a stream
// that is not read from pinning more than 1 MiB of read buffers per
// connection, whatever mix of frame sizes the peer sends.
const (
	minSharedData = 4 << 10
	shareBuffers  = 4
)

type chunkBuf = bufpool.Buf

// chunk is a pooled buffer with pending bytes [r, w). A shared chunk is a
// reference to the frame reader's buffer (see frames.Reader.RetainData):
// its bytes after w belong to someone else, so nothing is appended to it.
// The frames.HeaderLen bytes in front of its data held that DATA frame's
// own header, which nobody reads again: a shared chunk moved to a send
// queue (ReadFromSource from a Stream) may be written as a frame in place
// over them, like any chunk that starts at frames.HeaderLen.
type chunk struct {
	b      *chunkBuf
	r, w   int
	shared bool
}

// chunkQueue is a FIFO of byte chunks; n counts the pending bytes. The
// chunks live in q[h:]; the slice keeps its capacity across uses, so a
// warm queue appends without allocating.
type chunkQueue struct {
	q []chunk
	h int
	n int
}

// front returns the first chunk; the queue must not be empty.
func (cq *chunkQueue) front() *chunk { return &cq.q[cq.h] }

func (cq *chunkQueue) empty() bool { return cq.h == len(cq.q) }

// last returns the last chunk if more bytes may be appended to it (it is
// not shared).
func (cq *chunkQueue) last() *chunk {
	if cq.empty() {
		return nil
	}
	if l := &cq.q[len(cq.q)-1]; !l.shared {
		return l
	}
	return nil
}

// write appends p (copied) to the queue, filling the last chunk first, in
// chunks of up to payload bytes that keep frames.HeaderLen bytes free in
// front.
func (cq *chunkQueue) write(p []byte, payload int) {
	cq.n += len(p)
	end := frames.HeaderLen + payload
	for len(p) > 0 {
		if last := cq.last(); last != nil {
			if lim := min(len(last.b.B), end); last.w < lim {
				m := copy(last.b.B[last.w:lim], p)
				last.w += m
				p = p[m:]
				continue
			}
		}
		b := bufpool.Get(end)
		cq.q = append(cq.q, chunk{b: b, r: frames.HeaderLen, w: frames.HeaderLen})
	}
}

// appendShared appends the bytes b.B[r:w] without copying them; the queue
// takes over the caller's reference to b.
func (cq *chunkQueue) appendShared(b *chunkBuf, r, w int) {
	cq.q = append(cq.q, chunk{b: b, r: r, w: w, shared: true})
	cq.n += w - r
}

// read copies up to len(p) bytes out, freeing drained chunks.
func (cq *chunkQueue) read(p []byte) int {
	n := 0
	for n < len(p) && !cq.empty() {
		c := cq.front()
		m := copy(p[n:], c.b.B[c.r:c.w])
		c.r += m
		n += m
		if c.r == c.w {
			cq.pop()
		}
	}
	cq.n -= n
	return n
}

// pop drops the first chunk, returning its buffer to the pool.
func (cq *chunkQueue) pop() {
	bufpool.Put(cq.q[cq.h].b)
	cq.advance()
}

func (cq *chunkQueue) advance() {
	cq.q[cq.h] = chunk{}
	cq.h++
	if cq.h == len(cq.q) {
		cq.q, cq.h = cq.q[:0], 0
	}
}

// take removes the first chunk without freeing it: its new owner does.
func (cq *chunkQueue) take() chunk {
	c := cq.q[cq.h]
	cq.advance()
	cq.n -= c.w - c.r
	return c
}

func (cq *chunkQueue) reset() {
	for !cq.empty() {
		cq.pop()
	}
	cq.n = 0
}

// Stream is one HTTP/2 stream. Its methods are safe for use by one
// goroutine on the receive side (Read, Headers, Trailers) and one on the
// send side (WriteHeaders, Write, CloseWrite) at the same time; Reset may
// be called from anywhere.
type Stream struct {
	c  *Conn
	id uint32

	// Guarded by c.mu.
	in  inflow
	out outflow

	// Receive side.
	recvHdrs    HeaderList // request (server) or response (client) headers
	hdrsReady   bool
	trailers    HeaderList
	info        messageInfo
	headRequest bool
	recvd       int64
	rbuf        chunkQueue
	recvEnd     bool // END_STREAM received
	readClosed  bool // nobody reads any more: discard DATA
	readWait    sync.Cond

	// Send side.
	sendHdrs        HeaderList
	sendHdrsPending bool
	hdrsSent        bool
	sendTrl         HeaderList
	sendTrlPending  bool
	sq              chunkQueue
	sendEndPending  bool // CloseWrite called: END_STREAM after the queue
	sendEnd         bool // END_STREAM written (or decided)
	rstAfterEnd     bool // RST_STREAM(NO_ERROR) after END_STREAM (§8.1)
	writeWait       sync.Cond
	queued          bool
	tinyFrames      int

	err         error // set when reset or the connection closed
	removed     bool
	handlerDone bool
	userDone    bool // handler returned, or Release called: recyclable

	notify       func() // client role: OnResponse's callback, until it runs
	notifyQueued bool   // in c.notifyQ
	detached     bool   // server role: the handler handed the stream over (Detach)
	returned     bool   // server role: the handler returned
	finishLater  bool   // Finish came before the handler returned
}

// ID returns the stream identifier.
func (s *Stream) ID() uint32 { return s.id }

// Conn returns the connection the stream belongs to.
func (s *Stream) Conn() *Conn { return s.c }

// streamPool recycles Streams with their header lists and queues, so a
// round trip allocates no stream state once warm. A Stream goes back once
// the connection is done with it (removed, not in the writer's queue, not
// being written) and so is its user: the handler returned (server role) or
// Release was called (client role).
var streamPool sync.Pool

func (c *Conn) newStreamLocked(id uint32) *Stream {
	s, _ := streamPool.Get().(*Stream)
	if s == nil {
		s = new(Stream)
	}
	s.c, s.id = c, id
	s.readWait.L = &c.mu
	s.writeWait.L = &c.mu
	s.in.init(int32(c.cfg.InitialStreamWindow))
	s.out.add(c.peer.initialWindow)
	s.info.contentLength = -1
	c.streams[id] = s
	return s
}

// sendable reports whether the writer has something to do for s now.
func (s *Stream) sendable() bool {
	if s.err != nil || s.sendEnd {
		return s.rstAfterEnd && s.sendEnd && s.err == nil
	}
	if s.sendHdrsPending {
		return true
	}
	if !s.hdrsSent {
		return false
	}
	if s.sq.n > 0 {
		return s.out.available() > 0
	}
	return s.sendTrlPending || s.sendEndPending
}

func (c *Conn) queueStreamLocked(s *Stream) {
	if s.queued || !s.sendable() {
		return
	}
	s.queued = true
	c.ready = append(c.ready, s)
	c.signalWriterLocked()
}

// returnCreditLocked gives n bytes of stream window back.
func (s *Stream) returnCreditLocked(n int) {
	if s.recvEnd || s.err != nil {
		return // no more DATA will come: no update needed
	}
	if inc := s.in.add(n); inc > 0 {
		s.c.pushCtrlLocked(ctrlFrame{typ: frames.FrameWindowUpdate, streamID: s.id, val: inc})
	}
}

// resetStreamLocked closes s with err. A local ResetError queues an
// RST_STREAM frame.
func (c *Conn) resetStreamLocked(s *Stream, err error) {
	if s.err != nil {
		return
	}
	s.err = err
	var re ResetError
	// A stream we opened whose HEADERS have not gone out does not exist
	// on the wire: RST_STREAM for it would be a frame on an idle stream,
	// a connection error for the peer (§5.1). It is dropped quietly; its
	// id stays unused, and the next one closes it implicitly (§5.1.1).
	onWire := c.peerInitiated(s.id) || s.hdrsSent
	if errors.As(err, &re) && !re.Remote && !c.closed && onWire {
		c.stats.ResetsSent++
		c.noteResetLocked(s.id)
		c.pushCtrlLocked(ctrlFrame{typ: frames.FrameRSTStream, streamID: s.id, val: uint32(re.Code)})
	}
	// Unread data is dropped: return its connection credit.
	if s.rbuf.n > 0 {
		c.returnConnCreditLocked(s.rbuf.n)
	}
	s.rbuf.reset()
	s.sq.reset()
	s.wakeReaderLocked()
	s.writeWait.Broadcast()
	c.removeStreamLocked(s)
}

// maybeCloseStreamLocked removes s once both directions have ended.
func (c *Conn) maybeCloseStreamLocked(s *Stream) {
	if s.recvEnd && s.sendEnd && !s.rstAfterEnd {
		c.removeStreamLocked(s)
	}
}

func (c *Conn) removeStreamLocked(s *Stream) {
	if s.removed {
		return
	}
	s.removed = true
	delete(c.streams, s.id)
	if c.peerInitiated(s.id) {
		c.peerActive--
	} else {
		c.ownActive--
		c.slotFree.Signal()
	}
	if c.peerActive+c.ownActive == 0 {
		c.activeAt = time.Now() // the idle time starts now
		c.dr.streamsEndedLocked()
	}
	c.maybeFinishShutdownLocked()
	c.maybeRecycleLocked(s)
}

// maybeRecycleLocked returns s to the pool once nobody refers to it.
func (c *Conn) maybeRecycleLocked(s *Stream) {
	if !s.removed || !s.userDone || s.queued || c.writing == s || s.notifyQueued {
		return
	}
	s.rbuf.reset()
	s.sq.reset()
	// Keep the buffers; zero everything else.
	rh, tr, sh, st := s.recvHdrs, s.trailers, s.sendHdrs, s.sendTrl
	rq, sq := s.rbuf.q[:0], s.sq.q[:0] // reset emptied them
	*s = Stream{}
	s.recvHdrs, s.trailers, s.sendHdrs, s.sendTrl = rh, tr, sh, st
	s.recvHdrs.Reset()
	s.trailers.Reset()
	s.sendHdrs.Reset()
	s.sendTrl.Reset()
	s.rbuf.q, s.sq.q = rq, sq
	streamPool.Put(s)
}

// Release says the caller (client role) is done with the stream; a stream
// still open is reset with CANCEL. The Stream must not be used afterwards.
// Calling it is optional: it lets the connection reuse the stream's memory.
func (s *Stream) Release() {
	c := s.c
	c.mu.Lock()
	if !s.removed {
		c.resetStreamLocked(s, ResetError{Code: frames.ErrCodeCancel})
	}
	s.notify = nil
	s.userDone = true
	c.maybeRecycleLocked(s)
	c.mu.Unlock()
}

// OnResponse (client role) asks for fn to be called once there is news
// for the receiving side: the response headers arrived, or the stream
// failed (fn sees which through the non-blocking calls: Headers after a
// check of BodyState, or ReadHeaders, which then returns at once). Later
// news of the same stream (more body) is not reported: fn takes over with
// the usual blocking calls if the response is not complete.
//
// fn runs on the connection's reader goroutine once the frames read so far
// are processed (or at once on the caller's, if the news is already in),
// without the connection's lock held. It must not block: it may write to
// other streams' send queues within their SendBuffer, release this stream,
// and start goroutines for longer work.
func (s *Stream) OnResponse(fn func()) {
	c := s.c
	c.mu.Lock()
	if s.hdrsReady || s.err != nil {
		c.mu.Unlock()
		fn()
		return
	}
	s.notify = fn
	c.mu.Unlock()
}

// wakeReaderLocked wakes the stream's blocked reader, and queues its
// OnResponse callback.
func (s *Stream) wakeReaderLocked() {
	s.readWait.Broadcast()
	if s.notify == nil || s.notifyQueued {
		return
	}
	c := s.c
	s.notifyQueued = true
	c.notifyQ = append(c.notifyQ, s)
	if c.inRead || c.readerDone {
		// The reader will not get to it soon (news from another
		// goroutine while it waits for the socket, or after it ended).
		go c.deliverNotify()
	}
}

// deliverNotify runs the queued OnResponse callbacks (not under c.mu).
// The callbacks are collected in c.notifyFns, taken for the delivery and
// given back after it, so that a busy reader allocates nothing here.
func (c *Conn) deliverNotify() {
	c.mu.Lock()
	fns := c.notifyFns[:0]
	c.notifyFns = nil
	for i, s := range c.notifyQ {
		s.notifyQueued = false
		if s.notify != nil {
			fns = append(fns, s.notify)
			s.notify = nil
		}
		c.notifyQ[i] = nil
		c.maybeRecycleLocked(s)
	}
	c.notifyQ = c.notifyQ[:0]
	c.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	clear(fns)
	c.mu.Lock()
	if c.notifyFns == nil {
		c.notifyFns = fns[:0]
	}
	c.mu.Unlock()
}

// Detach (server role, in the handler) hands the stream over to the
// caller: when the handler returns the stream stays as it is, still
// counted as being handled, until Finish is called. It lets a handler
// hand a request to a callback (such as OnResponse's) instead of waiting.
func (s *Stream) Detach() {
	c := s.c
	c.mu.Lock()
	s.detached = true
	c.mu.Unlock()
}

// Finish completes a detached stream as a returning handler's would be:
// the response ends (or is reset if no headers were written), and the
// stream may not be used afterwards.
func (s *Stream) Finish() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.returned {
		s.finishLater = true // the handler is still on its way out
		return
	}
	c.finishHandlerLocked(s)
}

// runHandler runs the handler for a peer-opened stream and finishes the
// stream after it returns (unless the handler detached it).
func (c *Conn) runHandler(s *Stream) {
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		s.returned = true
		if s.detached && !s.finishLater {
			return // Finish will
		}
		c.finishHandlerLocked(s)
	}()
	c.cfg.Handler.ServeStream(s)
}

// finishHandlerLocked ends a peer-opened stream once its handler is done.
func (c *Conn) finishHandlerLocked(s *Stream) {
	c.handlers--
	s.handlerDone = true
	defer func() {
		s.userDone = true
		c.maybeRecycleLocked(s)
	}()
	s.readClosed = true
	if s.err == nil {
		switch {
		case !s.hdrsSent && !s.sendHdrsPending:
			c.resetStreamLocked(s, ResetError{Code: frames.ErrCodeInternal})
		case !s.sendEndPending:
			s.sendEndPending = true
			c.queueStreamLocked(s)
		}
		if s.err == nil && !s.recvEnd && s.recvd > 0 {
			// §8.1: the response is complete but the request body is
			// not; tell the client to stop sending. Only when body
			// bytes are flowing: a request that merely lacks END_STREAM
			// keeps its stream (its window still tracked, its
			// content-length still checked) until the client ends it or
			// sends DATA (see onDataLocked), bounded by
			// MAX_CONCURRENT_STREAMS.
			s.rstAfterEnd = true
			if s.rbuf.n > 0 {
				c.returnConnCreditLocked(s.rbuf.n)
				s.rbuf.reset()
			}
			c.queueStreamLocked(s)
		}
	}
}

// Headers returns the received headers: the request (server role) or the
// response (client role, after ReadHeaders). The list stays valid for the
// stream's lifetime.
func (s *Stream) Headers() *HeaderList { return &s.recvHdrs }

// ReadHeaders waits for the response headers (client role), skipping
// informational (1xx) responses.
func (s *Stream) ReadHeaders(ctx context.Context) (*HeaderList, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.hdrsReady && s.err == nil && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			c.mu.Lock()
			s.readWait.Broadcast()
			c.mu.Unlock()
		})
		defer stop()
	}
	for !s.hdrsReady && s.err == nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.readWait.Wait()
	}
	if !s.hdrsReady {
		return nil, s.err
	}
	return &s.recvHdrs, nil
}

// Trailers returns the received trailers; complete once Read returned
// io.EOF.
func (s *Stream) Trailers() *HeaderList { return &s.trailers }

// recvDoneLocked reports why no more body bytes will come once the queue is
// empty: the stream's error, io.EOF after END_STREAM, or ErrReadClosed;
// nil while more may arrive.
func (s *Stream) recvDoneLocked() error {
	switch {
	case s.err != nil:
		return s.err
	case s.recvEnd:
		return io.EOF
	case s.readClosed:
		return ErrReadClosed
	}
	return nil
}

// Read reads body bytes. It returns io.EOF after END_STREAM and the reset
// or connection error if the stream ended abnormally.
func (s *Stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for s.rbuf.n == 0 {
		if err := s.recvDoneLocked(); err != nil {
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		s.readWait.Wait()
	}
	n := s.rbuf.read(p)
	c.returnConnCreditLocked(n)
	s.returnCreditLocked(n)
	return n, nil
}

// BodyState reports what is known of the received body now: the bytes
// buffered but not yet read, and whether END_STREAM has arrived (then
// buffered is all that is left of the body). A proxy uses it to forward a
// request that came without a body, or whole, with its exact length.
func (s *Stream) BodyState() (buffered int, ended bool) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.rbuf.n, s.recvEnd && s.err == nil
}

// CloseRead says the body will not be read: received DATA is discarded
// (its window returned at once), and a Read blocked now or called later
// returns ErrReadClosed (io.EOF if the body had ended). It may be called
// from any goroutine, to stop a reader.
func (s *Stream) CloseRead() {
	c := s.c
	c.mu.Lock()
	s.readClosed = true
	if s.rbuf.n > 0 {
		c.returnConnCreditLocked(s.rbuf.n)
		s.returnCreditLocked(s.rbuf.n)
		s.rbuf.reset()
	}
	s.readWait.Broadcast()
	c.mu.Unlock()
}

// WriteHeaders queues the response headers (server role), or informational
// headers before them. endStream ends the stream with them.
func (s *Stream) WriteHeaders(fields []hpack.HeaderField, endStream bool) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.hdrsSent || s.sendHdrsPending || s.sendEndPending {
		return ErrHeadersSent
	}
	s.sendHdrs.CopyFrom(fields)
	s.sendHdrsPending = true
	s.sendEndPending = endStream
	c.queueStreamLocked(s)
	return nil
}

// WriteMessage queues the headers, the whole body (copied) and the end of
// the stream in one step, so that they leave in one batch: a small
// response goes out in one write and reaches the peer's reader whole. A
// body larger than SendBuffer is written as Write would, waiting for room.
func (s *Stream) WriteMessage(fields []hpack.HeaderField, body []byte) error {
	c := s.c
	c.mu.Lock()
	if s.err != nil {
		c.mu.Unlock()
		return s.err
	}
	if s.hdrsSent || s.sendHdrsPending || s.sendEndPending {
		c.mu.Unlock()
		return ErrHeadersSent
	}
	s.sendHdrs.CopyFrom(fields)
	s.sendHdrsPending = true
	if len(body) > c.cfg.SendBuffer {
		c.queueStreamLocked(s)
		c.mu.Unlock()
		if _, err := s.Write(body); err != nil {
			return err
		}
		return s.CloseWrite()
	}
	if len(body) > 0 {
		s.sq.write(body, sendChunkPayload(len(body), min(int(c.peer.maxFrameSize), maxChunkPayload)))
	}
	s.sendEndPending = true
	c.queueStreamLocked(s)
	c.mu.Unlock()
	return nil
}

// Write queues body bytes, blocking while the stream's send buffer is full
// (the peer's flow control decides how fast it drains).
func (s *Stream) Write(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if err := s.sendOpenLocked(); err != nil {
			return n, err
		}
		room := c.cfg.SendBuffer - s.sq.n
		if room <= 0 {
			s.writeWait.Wait()
			continue
		}
		m := min(room, len(p))
		s.sq.write(p[:m], sendChunkPayload(m, min(int(c.peer.maxFrameSize), maxChunkPayload)))
		p = p[m:]
		n += m
		c.queueStreamLocked(s)
	}
	return n, nil
}

// ReadFrom queues what r yields until io.EOF (io.Copy to a Stream uses
// it). A Read of r lands straight in a pooled chunk that goes to the peer as
// one DATA frame, with no copy in between; a short Read (under a quarter of
// a chunk) is copied into the queue's last chunk instead, so memory stays
// bounded by the send buffer however small r's reads are. Like Write it
// blocks while SendBuffer bytes are queued, and it reads r only when there
// is room. It returns the bytes queued and the first error of r (other than
// io.EOF) or of the stream; ReadFromSource tells the two apart.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	n, readErr, streamErr := s.ReadFromSource(r)
	if readErr != nil {
		return n, readErr
	}
	return n, streamErr
}

// ReadFromSource is ReadFrom for a proxy, which answers differently when
// its source failed (readErr: r's error other than io.EOF) and when the
// stream did (streamErr: reset, closed, connection gone).
//
// When r is another Stream (a proxy relaying one connection's stream to
// another's), its received chunks move to this stream's send queue as they
// are: the body is not copied.
func (s *Stream) ReadFromSource(r io.Reader) (n int64, readErr, streamErr error) {
	if src, ok := r.(*Stream); ok && src != s {
		return s.moveFrom(src)
	}
	c := s.c
	var total int64
	for {
		c.mu.Lock()
		if _, err := s.waitRoomLocked(); err != nil {
			c.mu.Unlock()
			return total, nil, err
		}
		payload := min(int(c.peer.maxFrameSize), maxChunkPayload)
		c.mu.Unlock()

		b := bufpool.Get(frames.HeaderLen + payload)
		n, rerr := r.Read(b.B[frames.HeaderLen : frames.HeaderLen+payload])
		if n > 0 {
			c.mu.Lock()
			if err := s.sendOpenLocked(); err != nil {
				c.mu.Unlock()
				bufpool.Put(b)
				return total, nil, err
			}
			if n < payload/4 {
				s.sq.write(b.B[frames.HeaderLen:frames.HeaderLen+n], sendChunkPayload(n, payload))
				bufpool.Put(b)
			} else {
				s.sq.q = append(s.sq.q, chunk{b: b, r: frames.HeaderLen, w: frames.HeaderLen + n})
				s.sq.n += n
			}
			c.queueStreamLocked(s)
			c.mu.Unlock()
			total += int64(n)
		} else {
			bufpool.Put(b)
		}
		if rerr == io.EOF {
			return total, nil, nil
		}
		if rerr != nil {
			return total, rerr, nil
		}
	}
}

// waitRoomLocked waits until the send queue has room under SendBuffer and
// returns it, or the reason the send side takes no more body.
func (s *Stream) waitRoomLocked() (int, error) {
	c := s.c
	for {
		if err := s.sendOpenLocked(); err != nil {
			return 0, err
		}
		if room := c.cfg.SendBuffer - s.sq.n; room > 0 {
			return room, nil
		}
		s.writeWait.Wait()
	}
}

// moveFrom is ReadFromSource from another Stream: whole received chunks
// of src go to s's send queue, up to the room SendBuffer leaves. The two
// connections' locks are never held together.
func (s *Stream) moveFrom(src *Stream) (total int64, readErr, streamErr error) {
	c := s.c
	var arr [16]chunk
	for {
		c.mu.Lock()
		room, err := s.waitRoomLocked()
		if err != nil {
			c.mu.Unlock()
			return total, nil, err
		}
		c.mu.Unlock()

		moved, n, rerr := src.takeChunks(arr[:0], room)
		if n > 0 {
			c.mu.Lock()
			if err := s.sendOpenLocked(); err != nil {
				c.mu.Unlock()
				for _, ch := range moved {
					bufpool.Put(ch.b)
				}
				clear(moved)
				return total, nil, err
			}
			s.sq.q = append(s.sq.q, moved...)
			s.sq.n += n
			c.queueStreamLocked(s)
			c.mu.Unlock()
			clear(moved)
			total += int64(n)
		}
		switch {
		case rerr == io.EOF:
			return total, nil, nil
		case rerr != nil:
			return total, rerr, nil
		}
	}
}

// takeChunks waits for received body bytes and moves whole chunks of them
// to dst: at least one, then more while they fit in limit bytes. It returns
// the bytes moved (their flow-control credit goes back to the peer, as
// Read's does), and io.EOF once the body has ended or the error that ended
// the stream.
func (s *Stream) takeChunks(dst []chunk, limit int) ([]chunk, int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for s.rbuf.n == 0 {
		if err := s.recvDoneLocked(); err != nil {
			return dst, 0, err
		}
		s.readWait.Wait()
	}
	n := 0
	for !s.rbuf.empty() {
		f := s.rbuf.front()
		if n > 0 && n+f.w-f.r > limit {
			break
		}
		ch := s.rbuf.take()
		n += ch.w - ch.r
		dst = append(dst, ch)
	}
	c.returnConnCreditLocked(n)
	s.returnCreditLocked(n)
	return dst, n, nil
}

// sendOpenLocked reports why the send side takes no more body: the stream
// ended abnormally, END_STREAM is already queued (ErrStreamClosed), or no
// headers were sent yet (ErrNoHeaders).
func (s *Stream) sendOpenLocked() error {
	switch {
	case s.err != nil:
		return s.err
	case s.sendEndPending || s.sendEnd:
		return ErrStreamClosed
	case !s.hdrsSent && !s.sendHdrsPending:
		return ErrNoHeaders
	}
	return nil
}

// WriteTrailers queues trailers; they end the stream.
func (s *Stream) WriteTrailers(fields []hpack.HeaderField) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := s.sendOpenLocked(); err != nil {
		return err
	}
	s.sendTrl.CopyFrom(fields)
	s.sendTrlPending = true
	s.sendEndPending = true
	c.queueStreamLocked(s)
	return nil
}

// CloseWrite ends the send side (END_STREAM after the queued body). A
// second call does nothing.
func (s *Stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := s.sendOpenLocked(); err != nil {
		if err == ErrStreamClosed {
			return nil
		}
		return err
	}
	s.sendEndPending = true
	c.queueStreamLocked(s)
	return nil
}

// Reset resets the stream with code (CANCEL when a caller gives up).
func (s *Stream) Reset(code frames.ErrCode) {
	c := s.c
	c.mu.Lock()
	c.resetStreamLocked(s, ResetError{Code: code})
	c.mu.Unlock()
}

// Err returns the error that ended the stream abnormally, if any.
func (s *Stream) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.err
}

// OpenStream opens a stream (client role) with the given request headers;
// endStream sends them with END_STREAM (a request without body). It waits
// while the peer's MAX_CONCURRENT_STREAMS is reached. An extended CONNECT
// (a :protocol field, RFC 8441) waits for the peer's first SETTINGS and
// fails with ErrNoConnectProtocol unless they allow it.
func (c *Conn) OpenStream(ctx context.Context, fields []hpack.HeaderField, endStream bool) (*Stream, error) {
	var isConnect, hasProtocol, isHead bool
	for _, f := range fields {
		switch string(f.Name) {
		case ":method":
			isConnect, isHead = string(f.Value) == "CONNECT", string(f.Value) == "HEAD"
		case ":protocol":
			hasProtocol = true
		}
	}
	extended := isConnect && hasProtocol
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.ownActive >= int(c.peer.maxConcurrent) || (extended && !c.peerSettings)) && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			c.mu.Lock()
			c.slotFree.Broadcast()
			c.mu.Unlock()
		})
		defer stop()
	}
	for {
		if err := c.canOpenLocked(); err != nil {
			return nil, err
		}
		if c.ownActive < int(c.peer.maxConcurrent) && (!extended || c.peerSettings) {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.slotFree.Wait()
	}
	if extended && !c.peer.connectProto {
		return nil, ErrNoConnectProtocol
	}
	id := c.nextStreamID
	c.nextStreamID += 2
	s := c.newStreamLocked(id)
	s.headRequest = isHead
	c.ownActive++
	c.stats.StreamsOpened++
	s.sendHdrs.CopyFrom(fields)
	s.sendHdrsPending = true
	s.sendEndPending = endStream
	c.queueStreamLocked(s)
	return s, nil
}

// streamIDMargin: a client stops opening streams this close to 2^31-1, so
// a pool has time to move to a fresh connection (§5.1.1: ids cannot be
// reused).
const streamIDMargin = 2

func (c *Conn) canOpenLocked() error {
	switch {
	case c.closed:
		return ErrConnClosed
	case c.role != RoleClient:
		return ErrNoNewStreams
	case c.goAwayRecv || c.goAwaySent || c.shutdown:
		return ErrNoNewStreams
	case c.nextStreamID > 1<<31-1-streamIDMargin:
		return ErrNoNewStreams
	}
	return nil
}
