package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/bufpool"
	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// Role says which side of HTTP/2 a connection plays.
type Role uint8

const (
	RoleServer Role = iota // reads the preface, serves peer-opened streams
	RoleClient             // sends the preface, opens streams
)

// Handler serves one peer-opened stream. It runs on its own goroutine; the
// stream's response is finished (END_STREAM) when it returns, or the stream
// is reset if it sent no headers. The handler must not use the Stream (or
// its header lists) after it returns: the connection reuses it.
type Handler interface {
	ServeStream(s *Stream)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(*Stream)

func (f HandlerFunc) ServeStream(s *Stream) { f(s) }

// Conn is one HTTP/2 connection in either role over any net.Conn.
//
// Goroutines: a reader (readLoop) that parses frames and applies them to
// the connection state, a writer (writeLoop) that turns queued work into
// batches, one Write per batch, a heartbeat timer, and one goroutine per
// handler. All connection and stream state is guarded by mu.
type Conn struct {
	// Immutable after construction.
	nc   net.Conn
	role Role
	cfg  Config

	// Owned by the reader goroutine.
	fr      *frames.Reader
	dr      *deadlineReader
	dec     *hpack.Decoder
	decoded []hpack.HeaderField

	// Owned by the writer goroutine (and by buildBatchLocked under mu).
	fw       *frames.Writer
	enc      *hpack.Encoder
	hblock   []byte
	inflight []*chunkBuf // zero-copy chunks in the batch being written

	wake chan struct{} // writer wake-up, capacity 1
	done chan struct{} // closed when the connection is closed

	mu sync.Mutex
	// Guarded by mu.
	streams      map[uint32]*Stream
	nextStreamID uint32 // next id we open (client: odd)
	maxPeerID    uint32 // highest stream id the peer opened
	peerActive   int    // open streams the peer initiated
	ownActive    int    // open streams we initiated
	handlers     int    // handler goroutines running
	drainedClose bool   // closing after GOAWAY(NO_ERROR) with every stream done
	slotFree     sync.Cond

	peer struct { // the peer's settings
		maxConcurrent  uint32
		initialWindow  int32
		maxFrameSize   uint32
		headerTable    uint32
		connectProto   bool
		tableSizeDirty bool
	}
	settingsSentAt time.Time // zero once acknowledged
	peerSettings   bool      // the peer's first SETTINGS arrived
	out            outflow
	in             inflow

	ctrl       []ctrlFrame // control frames to write, FIFO
	ready      []*Stream   // streams with headers or data to write, FIFO
	readySpare []*Stream
	writing    *Stream   // the stream buildBatchLocked is writing
	readers    sync.Cond // reader waits here while ctrl is backed up

	goAwaySent  bool
	goAwayLast  uint32 // the last stream id our GOAWAY promised to process
	goAwayFinal bool   // a graceful shutdown's second GOAWAY is queued
	goAwayRecv  bool
	peerLastID  uint32 // from the peer's GOAWAY
	shutdown    bool   // graceful shutdown requested
	closeAfter  bool   // close once the batch holding our GOAWAY is written
	closed      bool
	closeErr    error
	readerDone  bool      // the reader goroutine has exited
	inRead      bool      // the reader is in a socket read (OnResponse news waits for it otherwise)
	notifyQ     []*Stream // streams with OnResponse news, run by the reader
	notifyFns   []func()  // deliverNotify's buffer, reused (nil while one delivers)
	fatal       bool      // a connection error: process no more frames
	lastRecv    time.Time
	activeAt    time.Time // last frame other than a PING ACK, or end of the last stream
	pingSent    [8]byte
	pingAt      time.Time
	pingMisses  int
	rtt         time.Duration
	pingWaiters []chan time.Duration
	pingSeq     uint64

	tokens   float64
	tokensAt time.Time

	// The streams we reset most recently (a ring of recentResets ids and
	// a set of the same), whose late frames are ignored.
	resetRing []uint32
	resetNext int
	resetSet  map[uint32]struct{}

	// Metrics-style counters, guarded by mu.
	stats ConnStats
}

// ConnStats are counters about one connection.
type ConnStats struct {
	StreamsOpened   uint64
	PeerResets      uint64
	ResetsSent      uint64
	FramesRead      uint64
	Batches         uint64 // writes issued
	AbuseEvents     uint64
	LastPingRTT     time.Duration
	CloseCode       frames.ErrCode
	HeartbeatMisses int
}

type ctrlFrame struct {
	typ      frames.FrameType
	flags    frames.Flags
	streamID uint32
	val      uint32 // error code, window increment, last stream id
	data     [8]byte
	debug    string
}

// NewServerConn returns a connection in the server role. Call Serve.
func NewServerConn(nc net.Conn, cfg *Config) *Conn { return newConn(nc, RoleServer, cfg) }

// NewClientConn starts a connection in the client role: it queues the
// preface and SETTINGS and starts the reader and writer. Open streams with
// OpenStream.
func NewClientConn(nc net.Conn, cfg *Config) *Conn {
	c := newConn(nc, RoleClient, cfg)
	c.start()
	go c.readLoop()
	return c
}

func newConn(nc net.Conn, role Role, cfg *Config) *Conn {
	if cfg == nil {
		cfg = &Config{}
	}
	c := &Conn{
		nc:      nc,
		role:    role,
		cfg:     cfg.withDefaults(),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		streams: make(map[uint32]*Stream),
	}
	c.slotFree.L = &c.mu
	c.readers.L = &c.mu
	c.dr = &deadlineReader{c: c}
	c.fr = frames.NewReader(c.dr)
	c.fr.SetMaxReadFrameSize(c.cfg.MaxFrameSize)
	c.fr.SetMaxHeaderBlockSize(c.cfg.MaxHeaderListSize*2 + 1024)
	c.fr.SetShareLimit(shareBuffers)
	c.dec = hpack.NewDecoder(c.cfg.HeaderTableSize)
	c.dec.SetMaxHeaderListSize(c.cfg.MaxHeaderListSize)
	c.fw = frames.NewWriter(nc)
	c.fw.SetMaxBatch(1 << 30) // batches are bounded by buildBatchLocked
	c.enc = hpack.NewEncoder()
	c.nextStreamID = 1
	if role == RoleServer {
		c.nextStreamID = 2
	}
	c.peer.maxConcurrent = 100 // assumed until the peer's SETTINGS arrive
	c.peer.initialWindow = 65535
	c.peer.maxFrameSize = frames.DefaultMaxFrameSize
	c.peer.headerTable = 4096
	c.out.add(65535)
	c.in.init(65535)
	c.tokens = float64(c.cfg.AbuseBurst)
	now := time.Now()
	c.tokensAt, c.lastRecv, c.activeAt = now, now, now
	return c
}

// start queues our preface (client), SETTINGS and the connection window
// update, and starts the writer and the heartbeat.
func (c *Conn) start() {
	c.mu.Lock()
	c.settingsSentAt = time.Now()
	if grow := int(c.cfg.InitialConnWindow) - 65535; grow > 0 {
		c.in.init(int32(c.cfg.InitialConnWindow))
		c.pushCtrlLocked(ctrlFrame{typ: frames.FrameWindowUpdate, val: uint32(grow)})
	}
	c.signalWriterLocked()
	c.mu.Unlock()
	go c.writeLoop()
	go c.heartbeat()
}

func (c *Conn) localSettings() []frames.Setting {
	s := []frames.Setting{
		{ID: frames.SettingEnablePush, Val: 0},
		{ID: frames.SettingMaxConcurrentStreams, Val: c.cfg.MaxConcurrentStreams},
		{ID: frames.SettingInitialWindowSize, Val: c.cfg.InitialStreamWindow},
		{ID: frames.SettingMaxHeaderListSize, Val: c.cfg.MaxHeaderListSize},
	}
	if c.cfg.MaxFrameSize != frames.DefaultMaxFrameSize {
		s = append(s, frames.Setting{ID: frames.SettingMaxFrameSize, Val: c.cfg.MaxFrameSize})
	}
	if c.cfg.HeaderTableSize != 4096 {
		s = append(s, frames.Setting{ID: frames.SettingHeaderTableSize, Val: c.cfg.HeaderTableSize})
	}
	if c.cfg.EnableConnectProtocol && c.role == RoleServer {
		s = append(s, frames.Setting{ID: frames.SettingEnableConnectProtocol, Val: 1})
	}
	return s
}

// Serve runs a server-role connection until it ends; it returns the reason
// (nil after a graceful close).
func (c *Conn) Serve() error {
	if c.role != RoleServer {
		panic("dataplane: Serve on a client connection")
	}
	c.start()
	c.readLoop()
	<-c.done
	return c.Err()
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, nil while it is open or after a
// clean close.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.closeErr, errGracefulClose) {
		return nil
	}
	return c.closeErr
}

// Stats returns a copy of the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.LastPingRTT = c.rtt
	s.HeartbeatMisses = c.pingMisses
	return s
}

// ActiveStreams returns the number of open streams, both directions.
func (c *Conn) ActiveStreams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerActive + c.ownActive
}

// CanTakeNewStreams reports whether OpenStream may succeed now.
func (c *Conn) CanTakeNewStreams() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.canOpenLocked() == nil
}

var errGracefulClose = errors.New("dataplane: closed gracefully")

// Close closes the connection at once, resetting every stream.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closeLocked(errGracefulClose)
	c.mu.Unlock()
	return nil
}

// Shutdown stops new streams (GOAWAY with NO_ERROR), lets open streams
// finish, and closes the connection when none is left or ctx ends.
func (c *Conn) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if !c.closed && !c.shutdown {
		c.shutdown = true
		if c.role == RoleServer && !c.goAwaySent {
			// §6.8: a first GOAWAY with the largest id tells the client to
			// open no more streams; a PING after it comes back once the
			// client has seen it, so every stream it opened before is
			// known when the second GOAWAY names the real last id. No
			// request sent while the GOAWAY was under way is lost.
			c.goAwaySent = true
			c.goAwayLast = maxStreamID
			c.pushCtrlLocked(ctrlFrame{typ: frames.FrameGoAway, val: maxStreamID, debug: "shutdown"})
			c.pushCtrlLocked(ctrlFrame{typ: frames.FramePing, data: shutdownPing})
			time.AfterFunc(shutdownPingWait, func() {
				c.mu.Lock()
				c.finalGoAwayLocked()
				c.mu.Unlock()
			})
		} else {
			c.finalGoAwayLocked()
		}
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	}
}

// finalGoAwayLocked queues the graceful shutdown's GOAWAY with the real
// last stream id, once.
func (c *Conn) finalGoAwayLocked() {
	if c.goAwayFinal || c.closed {
		return
	}
	c.goAwayFinal = true
	c.goAwaySent = true
	c.goAwayLast = c.maxPeerID
	c.pushCtrlLocked(ctrlFrame{typ: frames.FrameGoAway, val: c.maxPeerID, debug: "shutdown"})
	c.maybeFinishShutdownLocked()
}

// shutdownPing is the payload of the PING that follows a graceful
// shutdown's first GOAWAY; shutdownPingWait bounds the wait for its ACK.
var shutdownPing = [8]byte{'c', 'u', 'l', 'v', 'g', 'o', 'a', 'w'}

const (
	shutdownPingWait = time.Second
	maxStreamID      = 1<<31 - 1
)

func (c *Conn) maybeFinishShutdownLocked() {
	if ((c.shutdown && c.goAwayFinal) || c.goAwayRecv) && c.peerActive+c.ownActive == 0 && !c.closed {
		c.closeAfter = true
		c.signalWriterLocked()
	}
}

// Ping sends a PING and waits for its ACK, returning the round trip.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan time.Duration, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrConnClosed
	}
	c.pingWaiters = append(c.pingWaiters, ch)
	c.sendPingLocked()
	c.mu.Unlock()
	select {
	case d := <-ch:
		return d, nil
	case <-c.done:
		return 0, ErrConnClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *Conn) sendPingLocked() {
	if !c.pingAt.IsZero() {
		return // one outstanding PING at a time; waiters share its ACK
	}
	c.pingSeq++
	var d [8]byte
	for i := range 8 {
		d[i] = byte(c.pingSeq >> (8 * i))
	}
	c.pingSent, c.pingAt = d, time.Now()
	c.pushCtrlLocked(ctrlFrame{typ: frames.FramePing, data: d})
}

// heartbeat sends a PING after PingInterval of silence from the peer, and
// another each PingInterval while the silence lasts; after PingInterval x
// PingMisses of silence with PINGs unanswered it closes the connection. It
// also enforces the SETTINGS acknowledgement timeout.
func (c *Conn) heartbeat() {
	interval := c.cfg.PingInterval
	if interval < 0 {
		interval = time.Second // still police SETTINGS and idle timeouts
	}
	t := time.NewTicker(max(min(interval/4, time.Second), time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			c.mu.Lock()
			c.tickLocked(now)
			c.mu.Unlock()
		}
	}
}

func (c *Conn) tickLocked(now time.Time) {
	if c.closed {
		return
	}
	if !c.settingsSentAt.IsZero() && c.cfg.SettingsTimeout > 0 && now.Sub(c.settingsSentAt) > c.cfg.SettingsTimeout {
		c.connErrorLocked(frames.ErrCodeSettingsTimeout, "SETTINGS not acknowledged in time")
		return
	}
	if c.cfg.PingInterval <= 0 {
		return
	}
	silent := now.Sub(c.lastRecv)
	if !c.pingAt.IsZero() && silent >= c.cfg.PingInterval*time.Duration(c.cfg.PingMisses) {
		c.pingMisses++
		c.closeLocked(ConnError{Code: frames.ErrCodeNo, Reason: ReasonHeartbeat})
		return
	}
	if !c.pingAt.IsZero() && now.Sub(c.pingAt) >= c.cfg.PingInterval {
		c.pingMisses++ // unanswered for an interval: ask again
		c.pingAt = time.Time{}
	}
	if c.pingAt.IsZero() && silent >= c.cfg.PingInterval {
		c.sendPingLocked()
	}
}

// deadlineReader sets the read deadline before each read from the socket:
//   - until the server has the preface and the first SETTINGS, the
//     PrefaceTimeout counted from the start;
//   - while a frame or field block is half received (slowloris),
//     FrameTimeout counted from when it was first seen incomplete, not from
//     the last read, so a peer cannot hold it open by dribbling bytes;
//   - while no stream is open, IdleTimeout counted from the last activity
//     (a frame other than an answer to our heartbeat PING, or the end of
//     the last stream), so the heartbeat does not keep an idle connection
//     open;
//   - none otherwise (the heartbeat covers liveness).
//
// Once the connection is closed it leaves the deadline alone: closeLocked
// set the linger deadline.
type deadlineReader struct {
	c   *Conn
	set time.Time // the deadline in force, zero: none; guarded by c.mu

	prefaceDue time.Time // server: preface and first SETTINGS due; zero once read

	// The partial frame's deadline, renewed once a frame completes (the
	// reader returns one) or a maximal frame's worth of bytes arrived since
	// it was set (frames the reader skips, like unknown types).
	frameDue  time.Time
	frameMark uint64 // c.stats.FramesRead when frameDue was set
	frameRead int    // bytes read since frameDue was set

	// readAt is when the last Read returned: the arrival time of the
	// frames it brought (the reader's; one clock read per read call, not
	// per frame).
	readAt time.Time
}

// dueLocked returns the read deadline that applies now (zero: none).
func (d *deadlineReader) dueLocked(now time.Time) time.Time {
	c := d.c
	if !d.prefaceDue.IsZero() {
		return d.prefaceDue
	}
	if c.fr.Partial() {
		if c.cfg.FrameTimeout <= 0 {
			return time.Time{}
		}
		if d.frameDue.IsZero() || d.frameMark != c.stats.FramesRead ||
			d.frameRead > int(c.cfg.MaxFrameSize)+frames.HeaderLen {
			d.frameDue = now.Add(c.cfg.FrameTimeout)
			d.frameMark, d.frameRead = c.stats.FramesRead, 0
		}
		return d.frameDue
	}
	d.frameDue = time.Time{}
	if c.cfg.IdleTimeout > 0 && c.peerActive+c.ownActive == 0 {
		return c.activeAt.Add(c.cfg.IdleTimeout)
	}
	return time.Time{}
}

// streamsEndedLocked is called when the last stream ended: a read that started
// while it was open waits without a deadline, so the idle one is set now.
// (A deadline already in force is sooner, or is reworked when it passes;
// the next read works its deadline out again either way.)
func (d *deadlineReader) streamsEndedLocked() {
	c := d.c
	if c.closed || c.readerDone || c.cfg.IdleTimeout <= 0 || !d.set.IsZero() {
		return // closed: the linger deadline is in force
	}
	d.set = c.activeAt.Add(c.cfg.IdleTimeout)
	c.nc.SetReadDeadline(d.set)
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	c := d.c
	for {
		c.mu.Lock()
		if len(c.notifyQ) > 0 {
			// Every frame read so far is processed: tell the streams
			// with news before waiting for more.
			c.mu.Unlock()
			c.deliverNotify()
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			n, err := c.nc.Read(p)
			d.readAt = time.Now()
			return n, err
		}
		due := d.dueLocked(time.Now())
		if !due.Equal(d.set) {
			c.nc.SetReadDeadline(due)
			d.set = due
		}
		c.inRead = true // until the reader takes c.mu again
		c.mu.Unlock()
		n, err := c.nc.Read(p)
		d.readAt = time.Now()
		d.frameRead += n
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		// The deadline passed, but it may have moved while we waited: a
		// stream opened (client role), or the last one ended. Read on if
		// it did.
		c.mu.Lock()
		now := time.Now()
		due = time.Time{}
		if !c.closed {
			due = d.dueLocked(now)
		}
		retry := !c.closed && (due.IsZero() || due.After(now))
		c.mu.Unlock()
		if !retry {
			return n, err
		}
	}
}

// readLoop reads frames until the connection ends.
func (c *Conn) readLoop() {
	defer c.readerExit()
	if c.role == RoleServer {
		if c.cfg.PrefaceTimeout > 0 {
			c.dr.prefaceDue = time.Now().Add(c.cfg.PrefaceTimeout)
		}
		if err := c.fr.ReadPreface(); err != nil {
			c.mu.Lock()
			c.readErrorLocked(err)
			c.mu.Unlock()
			return
		}
		// §3.4: the preface is followed by a SETTINGS frame.
		f, err := c.fr.ReadFrame()
		if err == nil && (f.Header().Type != frames.FrameSettings || f.(*frames.SettingsFrame).IsAck()) {
			err = frames.ConnError{Code: frames.ErrCodeProtocol, Reason: "preface not followed by SETTINGS"}
		}
		c.mu.Lock()
		c.inRead = false
		c.dr.prefaceDue = time.Time{}
		if err == nil {
			c.activeAt = time.Now()
			c.processLocked(f, nil)
		} else {
			c.readErrorLocked(err)
		}
		stop := c.closed || c.fatal
		c.mu.Unlock()
		if stop {
			return
		}
	}
	busy := false
	for {
		c.fr.KeepBuffer(busy)
		f, err := c.fr.ReadFrame()
		var decodeErr error
		if err == nil || isStreamErr(err) {
			if hf, ok := f.(*frames.HeadersFrame); ok {
				// Decode outside the lock; HPACK state is the reader's.
				c.decoded, decodeErr = c.dec.Decode(c.decoded[:0], hf.BlockFragment())
			}
		}
		c.mu.Lock()
		c.inRead = false
		c.lastRecv = c.dr.readAt
		if c.lastRecv.IsZero() {
			c.lastRecv = time.Now()
		}
		if pf, ok := f.(*frames.PingFrame); !ok || !pf.IsAck() {
			// An answer to our heartbeat is not activity: the heartbeat
			// would otherwise keep an idle connection open forever.
			c.activeAt = c.lastRecv
		}
		c.stats.FramesRead++
		switch {
		case err == nil:
			c.processLocked(f, decodeErr)
		case isStreamErr(err):
			if decodeErr != nil && !errors.Is(decodeErr, hpack.ErrHeaderListTooLarge) {
				c.connErrorLocked(frames.ErrCodeCompression, "HPACK decoding failed")
				break
			}
			var se frames.StreamError
			errors.As(err, &se)
			if f.Header().Type == frames.FrameWindowUpdate && c.idleLocked(se.StreamID) {
				// §5.1: on an idle stream, a frame other than HEADERS or
				// PRIORITY is a connection error (and RST_STREAM may not
				// be sent on an idle stream).
				c.connErrorLocked(frames.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
				break
			}
			c.streamErrorLocked(se.StreamID, se.Code, true)
		default:
			c.readErrorLocked(err)
		}
		// Back-pressure: while the control queue is half full, the peer
		// is not reading what it provokes; stop reading until it does.
		for !c.closed && len(c.ctrl) > c.cfg.MaxControlFrames/2 {
			c.readers.Wait()
		}
		stop := c.closed || c.fatal
		busy = c.peerActive+c.ownActive > 0
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

func isStreamErr(err error) bool {
	var se frames.StreamError
	return errors.As(err, &se)
}

// readErrorLocked handles a non-stream read error. Such errors are sticky
// in the frame reader: reading is over either way.
func (c *Conn) readErrorLocked(err error) {
	c.fatal = true
	var ce frames.ConnError
	switch {
	case errors.As(err, &ce):
		c.connErrorLocked(ce.Code, ce.Reason)
	case errors.Is(err, io.EOF):
		c.closeLocked(errGracefulClose)
	default:
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			if c.peerActive+c.ownActive == 0 && !c.fr.Partial() {
				c.sendGoAwayLocked(frames.ErrCodeNo, "idle timeout", true)
				return
			}
			c.connErrorLocked(frames.ErrCodeProtocol, "read timed out")
			return
		}
		c.closeLocked(err)
	}
}

// processLocked applies one frame.
func (c *Conn) processLocked(f frames.Frame, decodeErr error) {
	if c.closed || c.fatal {
		return
	}
	switch f := f.(type) {
	case *frames.DataFrame:
		c.onDataLocked(f)
	case *frames.HeadersFrame:
		c.onHeadersLocked(f, decodeErr)
	case *frames.PriorityFrame:
		c.spendLocked(1) // no priority tree: PRIORITY costs only this
	case *frames.RSTStreamFrame:
		c.onRSTStreamLocked(f)
	case *frames.SettingsFrame:
		c.onSettingsLocked(f)
	case *frames.PushPromiseFrame:
		// We advertise SETTINGS_ENABLE_PUSH 0; a server may not push to
		// us, and a client never pushes (§8.4).
		c.connErrorLocked(frames.ErrCodeProtocol, "PUSH_PROMISE not allowed")
	case *frames.PingFrame:
		c.onPingLocked(f)
	case *frames.GoAwayFrame:
		c.onGoAwayLocked(f)
	case *frames.WindowUpdateFrame:
		c.onWindowUpdateLocked(f)
	case *frames.ContinuationFrame:
		// Assembled by the reader; never returned.
		c.connErrorLocked(frames.ErrCodeInternal, "unexpected CONTINUATION")
	}
}

// peerInitiated reports whether id has the parity of streams the peer opens.
func (c *Conn) peerInitiated(id uint32) bool {
	return (id%2 == 1) == (c.role == RoleServer)
}

// idleLocked reports whether stream id is still idle (§5.1).
func (c *Conn) idleLocked(id uint32) bool {
	if c.peerInitiated(id) {
		return id > c.maxPeerID
	}
	return id >= c.nextStreamID
}

// spendLocked takes n abuse tokens; on an empty bucket it ends the
// connection with ENHANCE_YOUR_CALM and reports false.
func (c *Conn) spendLocked(n float64) bool {
	now := time.Now()
	c.tokens = min(c.tokens+now.Sub(c.tokensAt).Seconds()*c.cfg.AbuseRate, float64(c.cfg.AbuseBurst))
	c.tokensAt = now
	c.tokens -= n
	c.stats.AbuseEvents++
	if c.tokens < 0 {
		c.connErrorLocked(frames.ErrCodeEnhanceYourCalm, "too many costly frames")
		return false
	}
	return true
}

func (c *Conn) onDataLocked(f *frames.DataFrame) {
	id, n := f.StreamID, f.Length
	// Connection-level flow control counts every DATA frame (§6.9).
	if !c.in.take(n) {
		c.connErrorLocked(frames.ErrCodeFlowControl, "peer overran the connection window")
		return
	}
	s := c.streams[id]
	if s == nil {
		if c.idleLocked(id) {
			c.connErrorLocked(frames.ErrCodeProtocol, "DATA on an idle stream")
			return
		}
		// Closed stream: give the window back, reset it (§5.1, "closed"),
		// unless we reset it: then the peer sent it before it knew.
		c.returnConnCreditLocked(int(n))
		if c.resetByUsLocked(id) {
			return
		}
		c.streamErrorLocked(id, frames.ErrCodeStreamClosed, true)
		return
	}
	if s.recvEnd {
		c.returnConnCreditLocked(int(n))
		c.streamErrorLocked(id, frames.ErrCodeStreamClosed, true)
		return
	}
	if !s.in.take(n) {
		c.returnConnCreditLocked(int(n))
		c.streamErrorLocked(id, frames.ErrCodeFlowControl, true)
		return
	}
	data := f.Data()
	if pad := int(n) - len(data); pad > 0 {
		// Padding is flow-controlled but never read: credit it at once.
		c.returnConnCreditLocked(pad)
		s.returnCreditLocked(pad)
	}
	if len(data) == 0 && !f.StreamEnded() && !c.spendLocked(1) {
		return // empty DATA without END_STREAM: costs work, carries nothing
	}
	s.recvd += int64(len(data))
	if s.info.contentLength >= 0 && s.recvd > s.info.contentLength {
		c.returnConnCreditLocked(len(data))
		c.streamErrorLocked(id, frames.ErrCodeProtocol, true)
		return
	}
	if s.readClosed {
		// Nobody will read it: discard and return the credit.
		c.returnConnCreditLocked(len(data))
		s.returnCreditLocked(len(data))
		if s.handlerDone && s.sendEnd && !f.StreamEnded() {
			// §8.1: the response is complete and body bytes keep coming:
			// tell the client to stop (after all checks above).
			c.resetStreamLocked(s, ResetError{Code: frames.ErrCodeNo})
			return
		}
	} else if len(data) > 0 {
		if ref, start, end, ok := c.shareDataLocked(len(data)); ok {
			s.rbuf.appendShared(ref, start, end)
		} else {
			s.rbuf.write(data, recvChunkPayload(len(data), f.StreamEnded()))
		}
		s.wakeReaderLocked()
	}
	if f.StreamEnded() {
		c.endRecvLocked(s)
	}
}

// shareDataLocked takes a reference to the frame reader's buffer for the
// current DATA frame's n bytes of data, so the stream queues them without a
// copy; small data is copied instead (a reference pins the whole buffer,
// and the reader shares only a few buffers at a time, see shareBuffers).
func (c *Conn) shareDataLocked(n int) (*bufpool.Buf, int, int, bool) {
	if n < minSharedData {
		return nil, 0, 0, false
	}
	return c.fr.RetainData()
}

// endRecvLocked handles END_STREAM from the peer.
func (c *Conn) endRecvLocked(s *Stream) {
	if s.info.contentLength >= 0 && s.recvd != s.info.contentLength {
		// §8.1.1: a content-length that does not match the DATA is
		// malformed.
		c.streamErrorLocked(s.id, frames.ErrCodeProtocol, true)
		return
	}
	s.recvEnd = true
	s.wakeReaderLocked()
	c.maybeCloseStreamLocked(s)
}

func (c *Conn) onHeadersLocked(f *frames.HeadersFrame, decodeErr error) {
	id := f.StreamID
	if decodeErr != nil && !errors.Is(decodeErr, hpack.ErrHeaderListTooLarge) {
		c.connErrorLocked(frames.ErrCodeCompression, "HPACK decoding failed")
		return
	}
	tooLarge := decodeErr != nil
	if s := c.streams[id]; s != nil {
		c.onHeadersOpenStreamLocked(s, f, tooLarge)
		return
	}
	if c.resetByUsLocked(id) {
		// Sent before the peer knew of our RST_STREAM: ignored (the block
		// was decoded above). On a stream the peer opened it can only be
		// trailers, and malformed ones are still a stream error (§8.1).
		if c.peerInitiated(id) {
			if _, bad := validateBlock(c.decoded, kindTrailers, false); bad != "" || !f.StreamEnded() {
				c.streamErrorLocked(id, frames.ErrCodeProtocol, true)
			}
		}
		return
	}
	if !c.peerInitiated(id) {
		if c.idleLocked(id) {
			c.connErrorLocked(frames.ErrCodeProtocol, "HEADERS on an idle stream of ours")
		} else {
			c.connErrorLocked(frames.ErrCodeStreamClosed, "HEADERS on a closed stream")
		}
		return
	}
	if id < c.maxPeerID {
		// §5.1.1: a new stream id must exceed every id the peer used
		// before. (Streams below the highest are closed, used or not; we
		// keep no set of used ids, so "used and closed" is only told
		// apart for the most recent stream.)
		c.connErrorLocked(frames.ErrCodeProtocol, "HEADERS with a stream id below a previous one")
		return
	}
	if id == c.maxPeerID {
		c.connErrorLocked(frames.ErrCodeStreamClosed, "HEADERS on a closed stream")
		return
	}
	if c.role == RoleClient {
		c.connErrorLocked(frames.ErrCodeProtocol, "server opened a stream")
		return
	}
	c.maxPeerID = id
	if c.goAwaySent && id > c.goAwayLast {
		return // §6.8: streams opened after our GOAWAY are ignored
	}
	if tooLarge {
		// A 431 response holds its stream until it is written, so it
		// counts against MAX_CONCURRENT_STREAMS like any other stream: a
		// peer that does not read could otherwise pile up such streams
		// without limit.
		if c.peerActive >= int(c.cfg.MaxConcurrentStreams) {
			c.streamErrorLocked(id, frames.ErrCodeRefusedStream, true)
			return
		}
		c.refuseHeaderListLocked(id)
		return
	}
	info, bad := validateBlock(c.decoded, kindRequest, c.cfg.EnableConnectProtocol)
	if bad != "" {
		c.streamErrorLocked(id, frames.ErrCodeProtocol, true)
		return
	}
	if c.peerActive >= int(c.cfg.MaxConcurrentStreams) || c.handlers >= 2*int(c.cfg.MaxConcurrentStreams) ||
		c.cfg.Handler == nil {
		// §5.1.2: over our advertised limit. Running handlers count too,
		// so streams the peer reset early (rapid reset) still hold a slot.
		c.streamErrorLocked(id, frames.ErrCodeRefusedStream, true)
		return
	}
	s := c.newStreamLocked(id)
	s.info = info
	s.recvHdrs.CopyFrom(c.decoded)
	s.hdrsReady = true
	c.peerActive++
	c.stats.StreamsOpened++
	if f.StreamEnded() {
		c.endRecvLocked(s)
	}
	c.handlers++
	if w := c.cfg.Workers; w != nil {
		w.run(c, s)
	} else {
		go c.runHandler(s)
	}
}

// refuseHeaderListLocked answers a request whose header list is over our
// limit with 431 and ends the stream.
func (c *Conn) refuseHeaderListLocked(id uint32) {
	s := c.newStreamLocked(id)
	c.peerActive++
	s.recvEnd = true
	s.readClosed = true
	s.userDone = true // no handler
	s.sendHdrs.AddString(":status", "431")
	s.sendHdrsPending, s.sendEndPending = true, true
	c.queueStreamLocked(s)
}

func (c *Conn) onHeadersOpenStreamLocked(s *Stream, f *frames.HeadersFrame, tooLarge bool) {
	if s.recvEnd {
		c.streamErrorLocked(s.id, frames.ErrCodeStreamClosed, true)
		return
	}
	if tooLarge {
		c.streamErrorLocked(s.id, frames.ErrCodeProtocol, true)
		return
	}
	if !s.hdrsReady {
		// Client role: the response headers, perhaps after 1xx ones.
		info, bad := validateBlock(c.decoded, kindResponse, false)
		if bad != "" {
			c.streamErrorLocked(s.id, frames.ErrCodeProtocol, true)
			return
		}
		if info.status >= 100 && info.status < 200 {
			if f.StreamEnded() {
				c.streamErrorLocked(s.id, frames.ErrCodeProtocol, true)
			}
			return // informational: wait for the final response
		}
		s.info = info
		if s.headRequest {
			s.info.contentLength = -1
		}
		s.recvHdrs.CopyFrom(c.decoded)
		s.hdrsReady = true
		s.wakeReaderLocked()
		if f.StreamEnded() {
			c.endRecvLocked(s)
		}
		return
	}
	// Trailers (§8.1): must end the stream, no pseudo-header fields.
	if !f.StreamEnded() {
		c.streamErrorLocked(s.id, frames.ErrCodeProtocol, true)
		return
	}
	if _, bad := validateBlock(c.decoded, kindTrailers, false); bad != "" {
		c.streamErrorLocked(s.id, frames.ErrCodeProtocol, true)
		return
	}
	s.trailers.CopyFrom(c.decoded)
	c.endRecvLocked(s)
}

func (c *Conn) onRSTStreamLocked(f *frames.RSTStreamFrame) {
	id := f.StreamID
	if c.idleLocked(id) {
		c.connErrorLocked(frames.ErrCodeProtocol, "RST_STREAM on an idle stream")
		return
	}
	s := c.streams[id]
	if s == nil {
		return // already closed: nothing to do
	}
	c.stats.PeerResets++
	if !c.spendLocked(1) {
		return
	}
	c.resetStreamLocked(s, ResetError{Code: f.ErrCode, Remote: true})
}

func (c *Conn) onSettingsLocked(f *frames.SettingsFrame) {
	if f.IsAck() {
		if !c.settingsSentAt.IsZero() {
			c.settingsSentAt = time.Time{}
		}
		return
	}
	if !c.spendLocked(1) {
		return
	}
	// SETTINGS_INITIAL_WINDOW_SIZE changes every open stream's window. A
	// frame may repeat it thousands of times, so it is applied once, at
	// its last value (§6.5.3: the values are processed in order, and only
	// the last one stays); a window that any of the values would have
	// taken past 2^31-1 is still an error (§6.9.2).
	var initialWindow, largestWindow uint32
	haveWindow := false
	for i := 0; i < f.NumSettings(); i++ {
		s := f.Setting(i)
		switch s.ID {
		case frames.SettingHeaderTableSize:
			c.peer.headerTable, c.peer.tableSizeDirty = s.Val, true
		case frames.SettingMaxConcurrentStreams:
			c.peer.maxConcurrent = s.Val
			c.slotFree.Broadcast()
		case frames.SettingInitialWindowSize:
			initialWindow, largestWindow = s.Val, max(largestWindow, s.Val)
			haveWindow = true
		case frames.SettingMaxFrameSize:
			c.peer.maxFrameSize = s.Val
		case frames.SettingEnableConnectProtocol:
			c.peer.connectProto = s.Val == 1
			// SETTINGS_ENABLE_PUSH needs nothing: we never push, and the
			// codec already checked its value.
		}
	}
	if haveWindow {
		// §6.9.2: the change applies to every open stream's window.
		delta := int32(int64(initialWindow) - int64(c.peer.initialWindow))
		largest := int64(largestWindow) - int64(c.peer.initialWindow)
		c.peer.initialWindow = int32(initialWindow)
		for _, st := range c.streams {
			if int64(st.out.n)+largest > frames.MaxWindowSize || !st.out.add(delta) {
				c.connErrorLocked(frames.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
				return
			}
			if delta > 0 {
				c.queueStreamLocked(st)
			}
		}
	}
	c.pushCtrlLocked(ctrlFrame{typ: frames.FrameSettings, flags: frames.FlagSettingsAck})
	if !c.peerSettings {
		c.peerSettings = true
		c.slotFree.Broadcast() // OpenStream may wait for them
	}
}

func (c *Conn) onPingLocked(f *frames.PingFrame) {
	if f.IsAck() {
		if f.Data == shutdownPing && c.shutdown {
			c.finalGoAwayLocked()
			return
		}
		if !c.pingAt.IsZero() && f.Data == c.pingSent {
			c.rtt = time.Since(c.pingAt)
			c.pingAt = time.Time{}
			c.pingMisses = 0
			for _, w := range c.pingWaiters {
				w <- c.rtt
			}
			clear(c.pingWaiters)
			c.pingWaiters = c.pingWaiters[:0]
		}
		return
	}
	if !c.spendLocked(1) {
		return
	}
	c.pushCtrlLocked(ctrlFrame{typ: frames.FramePing, flags: frames.FlagPingAck, data: f.Data})
}

func (c *Conn) onGoAwayLocked(f *frames.GoAwayFrame) {
	// A peer sends one GOAWAY, or two for a graceful shutdown; each goes
	// over every stream, so the ones after the first cost a token.
	if c.goAwayRecv && !c.spendLocked(1) {
		return
	}
	c.goAwayRecv = true
	c.peerLastID = f.LastStreamID
	// Streams we opened above the peer's last id were not processed: they
	// fail with ErrGoAway so the caller can retry them elsewhere.
	for id, s := range c.streams {
		if !c.peerInitiated(id) && id > f.LastStreamID {
			c.resetStreamLocked(s, ErrGoAway)
		}
	}
	if f.ErrCode != frames.ErrCodeNo {
		c.cfg.Logger.Debug("peer sent GOAWAY", "code", f.ErrCode.String(), "debug", string(f.DebugData()))
		c.closeLocked(ConnError{Code: f.ErrCode, Remote: true, Reason: "GOAWAY from peer"})
		return
	}
	c.slotFree.Broadcast()
	c.maybeFinishShutdownLocked()
}

func (c *Conn) onWindowUpdateLocked(f *frames.WindowUpdateFrame) {
	inc := int32(f.Increment)
	if f.StreamID == 0 {
		// Streams wait on the connection window only while it is below
		// minDataFrame (writeStreamLocked): otherwise nobody needs waking,
		// and a flood of small updates must not cost a pass over every
		// stream each.
		held := c.out.available() < minDataFrame
		if !c.out.add(inc) {
			c.connErrorLocked(frames.ErrCodeFlowControl, "connection window past 2^31-1")
			return
		}
		if held {
			for _, s := range c.streams {
				if s.sendable() {
					c.queueStreamLocked(s)
				}
			}
		}
		return
	}
	if c.idleLocked(f.StreamID) {
		c.connErrorLocked(frames.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
		return
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return // closed
	}
	if !s.out.add(inc) {
		c.streamErrorLocked(s.id, frames.ErrCodeFlowControl, true)
		return
	}
	if s.sendable() {
		c.queueStreamLocked(s)
	}
}

// returnConnCreditLocked gives n bytes of connection window back.
func (c *Conn) returnConnCreditLocked(n int) {
	if inc := c.in.add(n); inc > 0 {
		c.pushCtrlLocked(ctrlFrame{typ: frames.FrameWindowUpdate, val: inc})
	}
}

// pushCtrlLocked queues a control frame; a peer that makes us queue more
// than MaxControlFrames is not reading, and the connection is closed.
func (c *Conn) pushCtrlLocked(f ctrlFrame) {
	if c.closed {
		return
	}
	if len(c.ctrl) >= c.cfg.MaxControlFrames {
		c.closeLocked(ConnError{Code: frames.ErrCodeEnhanceYourCalm, Reason: "peer does not read its control frames"})
		return
	}
	c.ctrl = append(c.ctrl, f)
	c.signalWriterLocked()
}

// streamErrorLocked resets stream id with code (§5.4.2). peerCaused marks a
// reset the peer provoked: it spends abuse tokens (MadeYouReset,
// CVE-2025-8671, is a reset flood driven through our own resets).
func (c *Conn) streamErrorLocked(id uint32, code frames.ErrCode, peerCaused bool) {
	if peerCaused && !c.spendLocked(1) {
		return
	}
	if s := c.streams[id]; s != nil {
		c.resetStreamLocked(s, ResetError{Code: code})
		return
	}
	c.stats.ResetsSent++
	if !c.idleLocked(id) {
		// An idle id stays usable: a HEADERS opening it later is not late.
		c.noteResetLocked(id)
	}
	c.pushCtrlLocked(ctrlFrame{typ: frames.FrameRSTStream, streamID: id, val: uint32(code)})
}

// recentResets is how many of the streams we reset are remembered. §5.1:
// "An endpoint MUST ignore frames that it receives on closed streams after
// it has sent a RST_STREAM frame", since the peer may have sent them before
// it saw ours (trailers after a refusal, the rest of a request body, the
// response in flight when our client gave up). Treated as frames on closed
// streams they would cost the peer abuse tokens, or the connection. The
// RFC lets the period be limited: here, to the last recentResets resets.
const recentResets = 256

// noteResetLocked records that we sent RST_STREAM on stream id.
func (c *Conn) noteResetLocked(id uint32) {
	if c.resetSet == nil {
		c.resetSet = make(map[uint32]struct{}, recentResets)
		c.resetRing = make([]uint32, 0, recentResets)
	}
	if _, ok := c.resetSet[id]; ok {
		return
	}
	if len(c.resetRing) < recentResets {
		c.resetRing = append(c.resetRing, id)
	} else {
		delete(c.resetSet, c.resetRing[c.resetNext])
		c.resetRing[c.resetNext] = id
		c.resetNext = (c.resetNext + 1) % recentResets
	}
	c.resetSet[id] = struct{}{}
}

// resetByUsLocked reports whether we recently sent RST_STREAM on stream id.
func (c *Conn) resetByUsLocked(id uint32) bool {
	_, ok := c.resetSet[id]
	return ok
}

// connErrorLocked ends the connection with GOAWAY(code) (§5.4.1).
func (c *Conn) connErrorLocked(code frames.ErrCode, reason string) {
	if c.closed {
		return
	}
	c.stats.CloseCode = code
	c.fatal = true
	c.sendGoAwayLocked(code, reason, true)
	if c.closeErr == nil {
		c.closeErr = ConnError{Code: code, Reason: reason}
	}
}

// sendGoAwayLocked queues GOAWAY with the highest peer stream id we may
// process. With closeAfter the connection closes once it is written.
func (c *Conn) sendGoAwayLocked(code frames.ErrCode, reason string, closeAfter bool) {
	if c.closed {
		return
	}
	if !c.goAwaySent || code != frames.ErrCodeNo {
		c.goAwaySent = true
		c.goAwayLast = c.maxPeerID
		c.ctrl = append(c.ctrl, ctrlFrame{typ: frames.FrameGoAway, val: c.maxPeerID, streamID: uint32(code), debug: reason})
	}
	if closeAfter {
		c.closeAfter = true
		// If the writer is stuck, do not wait for it forever.
		time.AfterFunc(time.Second, func() {
			c.mu.Lock()
			c.closeLocked(ConnError{Code: code, Reason: reason})
			c.mu.Unlock()
		})
	}
	c.signalWriterLocked()
}

// closeLocked closes the connection now: every stream fails with err.
func (c *Conn) closeLocked(err error) {
	if c.closed {
		return
	}
	c.closed = true
	if c.closeErr == nil {
		c.closeErr = err
	}
	close(c.done)
	c.lingerLocked()
	for _, s := range c.streams {
		c.resetStreamLocked(s, ErrConnClosed)
	}
	c.slotFree.Broadcast()
	c.readers.Broadcast()
}

// lingerTime is how long a closing connection keeps reading (and dropping)
// the peer's bytes after our last frame, so that the peer reads our GOAWAY
// instead of a TCP reset provoked by unread input. After a graceful close
// (every stream finished) the peer may still be reading the last responses
// from its socket buffer and sending WINDOW_UPDATEs as it goes: a reset
// then would destroy those responses, so that close lingers until the peer
// closes its side, up to gracefulLingerTime.
const (
	lingerTime         = 500 * time.Millisecond
	gracefulLingerTime = 10 * time.Second
)

// lingerLocked half-closes the connection; the reader goroutine drains
// what still comes and closes it. Without a reader, or without
// CloseWrite, it closes at once.
func (c *Conn) lingerLocked() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && !c.readerDone {
		cw.CloseWrite()
		d := lingerTime
		if c.drainedClose {
			d = gracefulLingerTime
		}
		c.nc.SetReadDeadline(time.Now().Add(d))
		return
	}
	c.nc.Close()
}

// readerExit runs when the reader goroutine stops, after a connection
// error or once the connection is closed. It drops what the peer still
// sends until the writer has sent our GOAWAY and half-closed (the linger
// deadline then ends the wait), and closes the connection.
func (c *Conn) readerExit() {
	defer c.deliverNotify() // closeLocked below gave every stream its error
	c.fr.ReleaseAll()
	c.mu.Lock()
	if !c.closed {
		// After a read timeout the deadline has passed, and draining would
		// end at once, closing the socket before the writer sent our
		// GOAWAY. Wait for closeLocked's linger deadline instead (the
		// GOAWAY's own timer closes the connection if the writer is stuck).
		c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
	io.Copy(io.Discard, io.LimitReader(c.nc, 16<<20))
	c.mu.Lock()
	c.readerDone = true
	c.closeLocked(errGracefulClose) // no-op when already closed
	c.mu.Unlock()
	c.nc.Close()
}

func (c *Conn) signalWriterLocked() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
