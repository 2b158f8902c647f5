package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// A raw peer: an HTTP/2 client written frame by frame over loopback TCP,
// for playing an attacker against our server role. It writes with
// frames.Writer (frames are buffered until flush) and, unless told not to,
// reads the server's frames on a goroutine into a queue of small records.

// peerFrame is what the raw peer keeps of a frame the server sent: frames
// are only valid until the next read, so only these fields are copied out.
type peerFrame struct {
	frames.FrameHeader
	Code   frames.ErrCode // RST_STREAM, GOAWAY
	LastID uint32         // GOAWAY
	Incr   uint32         // WINDOW_UPDATE
	Status string         // HEADERS: the :status field
	Debug  string         // GOAWAY debug data
	Data   int            // DATA: payload bytes (padding excluded)
	Ping   [8]byte        // PING: the opaque data
}

func (f peerFrame) String() string {
	s := f.FrameHeader.String()
	switch f.Type {
	case frames.FrameRSTStream:
		s += " " + f.Code.String()
	case frames.FrameGoAway:
		s += fmt.Sprintf(" %s last=%d %q", f.Code, f.LastID, f.Debug)
	case frames.FrameHeaders:
		s += " :status=" + f.Status
	case frames.FrameWindowUpdate:
		s += fmt.Sprintf(" +%d", f.Incr)
	}
	return s
}

// peerOpts configures a raw peer.
type peerOpts struct {
	// settings is the peer's SETTINGS frame (empty by default).
	settings []frames.Setting
	// noHello sends nothing at all on connect: no preface, no SETTINGS.
	noHello bool
	// noRead never reads the socket, until startReading is called.
	noRead bool
	// rcvBuf sets SO_RCVBUF before connecting (0: the system default), so
	// that a peer that does not read backs the server up quickly.
	rcvBuf int
	// ackPings answers the server's PINGs from the reader goroutine. Only
	// for peers that never write a batch the server might not read.
	ackPings bool
}

// maxQueued bounds the frames a raw peer keeps (GOAWAY frames are always
// kept); beyond it frames are only counted. It keeps the peer's own memory,
// which shares the heap the attack tests measure, small.
const maxQueued = 4096

type rawPeer struct {
	t   testing.TB
	nc  *net.TCPConn
	fw  *frames.Writer
	enc *hpack.Encoder
	hb  []byte
	wmu sync.Mutex // serializes writes to nc (the PING answers)

	mu       sync.Mutex
	queue    []peerFrame
	counts   map[frames.FrameType]int
	dropped  int
	readErr  error // set when the reader goroutine ends
	notify   chan struct{}
	reading  atomic.Bool
	readDone chan struct{}
}

// dialPeer connects to addr and sends the preface, the SETTINGS of opts
// and an acknowledgement of the server's SETTINGS (sent ahead: the server
// only checks that one arrives), unless opts.noHello.
func dialPeer(t testing.TB, addr string, opts peerOpts) *rawPeer {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if opts.rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, opts.rcvBuf)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{
		t:        t,
		nc:       nc.(*net.TCPConn),
		enc:      hpack.NewEncoder(),
		counts:   make(map[frames.FrameType]int),
		notify:   make(chan struct{}, 1),
		readDone: make(chan struct{}),
	}
	p.fw = frames.NewWriter(&lockedWriter{p})
	t.Cleanup(p.close)
	if !opts.noHello {
		p.fw.WritePreface()
		p.fw.WriteSettings(opts.settings)
		p.fw.WriteSettingsAck()
		if err := p.flush(); err != nil {
			t.Fatal(err)
		}
	}
	if !opts.noRead {
		p.startReading(opts.ackPings)
	}
	return p
}

// lockedWriter writes to the peer's socket under wmu.
type lockedWriter struct{ p *rawPeer }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.wmu.Lock()
	defer w.p.wmu.Unlock()
	return w.p.nc.Write(b)
}

// flush writes the buffered frames (one write). Errors are returned, not
// fatal: an attack usually ends with the server closing mid-write.
func (p *rawPeer) flush() error { return p.fw.Flush() }

// close closes the socket and waits for the reader goroutine.
func (p *rawPeer) close() {
	p.nc.Close()
	if p.reading.Load() {
		<-p.readDone
	}
}

// startReading starts the reader goroutine (for a peer dialed with noRead).
func (p *rawPeer) startReading(ackPings bool) {
	if p.reading.Swap(true) {
		return
	}
	go p.readLoop(ackPings)
}

func (p *rawPeer) readLoop(ackPings bool) {
	defer close(p.readDone)
	fr := frames.NewReader(p.nc)
	dec := hpack.NewDecoder(4096)
	var fields []hpack.HeaderField
	var err error
	for {
		var f frames.Frame
		f, err = fr.ReadFrame()
		if err != nil && f == nil {
			break
		}
		rec := peerFrame{FrameHeader: f.Header()}
		switch f := f.(type) {
		case *frames.DataFrame:
			rec.Data = len(f.Data())
		case *frames.HeadersFrame:
			var derr error
			fields, derr = dec.Decode(fields[:0], f.BlockFragment())
			if derr != nil {
				rec.Status = "hpack error: " + derr.Error()
			}
			for _, hf := range fields {
				if string(hf.Name) == ":status" {
					rec.Status = string(hf.Value)
				}
			}
		case *frames.RSTStreamFrame:
			rec.Code = f.ErrCode
		case *frames.GoAwayFrame:
			rec.Code, rec.LastID, rec.Debug = f.ErrCode, f.LastStreamID, string(f.DebugData())
		case *frames.WindowUpdateFrame:
			rec.Incr = f.Increment
		case *frames.PingFrame:
			rec.Ping = f.Data
			if ackPings && !f.IsAck() {
				var b [frames.HeaderLen + 8]byte
				frames.PutHeader(b[:], frames.FrameHeader{Length: 8, Type: frames.FramePing, Flags: frames.FlagPingAck})
				copy(b[frames.HeaderLen:], f.Data[:])
				p.wmu.Lock()
				p.nc.Write(b[:])
				p.wmu.Unlock()
			}
		}
		p.mu.Lock()
		p.counts[rec.Type]++
		if len(p.queue) < maxQueued || rec.Type == frames.FrameGoAway {
			p.queue = append(p.queue, rec)
		} else {
			p.dropped++
		}
		p.mu.Unlock()
		p.poke()
	}
	p.mu.Lock()
	p.readErr = err
	p.mu.Unlock()
	p.poke()
}

func (p *rawPeer) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

var errPeerTimeout = errors.New("raw peer: timed out waiting for a frame")

// next returns the next frame the server sent. At the end of the stream it
// returns the read error (io.EOF for a clean close), after timeout
// errPeerTimeout.
func (p *rawPeer) next(timeout time.Duration) (peerFrame, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			f := p.queue[0]
			p.queue = p.queue[1:]
			p.mu.Unlock()
			return f, nil
		}
		err := p.readErr
		p.mu.Unlock()
		if err != nil {
			return peerFrame{}, err
		}
		select {
		case <-p.notify:
		case <-deadline.C:
			return peerFrame{}, errPeerTimeout
		}
	}
}

// count returns how many frames of type typ the server sent so far.
func (p *rawPeer) count(typ frames.FrameType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[typ]
}

// expectGoAway skips frames until a GOAWAY and checks its code.
func (p *rawPeer) expectGoAway(code frames.ErrCode, timeout time.Duration) peerFrame {
	p.t.Helper()
	until := time.Now().Add(timeout)
	for {
		f, err := p.next(time.Until(until))
		if err != nil {
			p.t.Fatalf("waiting for GOAWAY(%s): %v", code, err)
		}
		if f.Type == frames.FrameGoAway {
			if f.Code != code {
				p.t.Fatalf("got %v, want GOAWAY(%s)", f, code)
			}
			return f
		}
	}
}

// expectRST skips frames until a RST_STREAM on stream and checks its code.
func (p *rawPeer) expectRST(stream uint32, code frames.ErrCode, timeout time.Duration) {
	p.t.Helper()
	until := time.Now().Add(timeout)
	for {
		f, err := p.next(time.Until(until))
		if err != nil {
			p.t.Fatalf("waiting for RST_STREAM(%d, %s): %v", stream, code, err)
		}
		if f.Type == frames.FrameGoAway {
			p.t.Fatalf("got %v, want RST_STREAM(%d, %s)", f, stream, code)
		}
		if f.Type == frames.FrameRSTStream && f.StreamID == stream {
			if f.Code != code {
				p.t.Fatalf("got %v, want RST_STREAM(%d, %s)", f, stream, code)
			}
			return
		}
	}
}

// expectHeaders skips frames until a HEADERS on stream and returns it.
func (p *rawPeer) expectHeaders(stream uint32, timeout time.Duration) peerFrame {
	p.t.Helper()
	until := time.Now().Add(timeout)
	for {
		f, err := p.next(time.Until(until))
		if err != nil {
			p.t.Fatalf("waiting for HEADERS on stream %d: %v", stream, err)
		}
		if f.Type == frames.FrameGoAway || (f.Type == frames.FrameRSTStream && f.StreamID == stream) {
			p.t.Fatalf("got %v, want HEADERS on stream %d", f, stream)
		}
		if f.Type == frames.FrameHeaders && f.StreamID == stream {
			return f
		}
	}
}

// expectResponses skips frames until a HEADERS arrived on each of the
// streams, in any order, and returns them by stream.
func (p *rawPeer) expectResponses(timeout time.Duration, streams ...uint32) map[uint32]peerFrame {
	p.t.Helper()
	until := time.Now().Add(timeout)
	got := make(map[uint32]peerFrame)
	want := make(map[uint32]bool)
	for _, id := range streams {
		want[id] = true
	}
	for len(got) < len(streams) {
		f, err := p.next(time.Until(until))
		if err != nil {
			p.t.Fatalf("waiting for HEADERS on streams %v (got %d): %v", streams, len(got), err)
		}
		if f.Type == frames.FrameGoAway || (f.Type == frames.FrameRSTStream && want[f.StreamID]) {
			p.t.Fatalf("got %v, want HEADERS on streams %v", f, streams)
		}
		if f.Type == frames.FrameHeaders && want[f.StreamID] {
			if _, dup := got[f.StreamID]; !dup {
				got[f.StreamID] = f
			}
		}
	}
	return got
}

// expectClosed skips frames until the server closes the connection and
// returns the GOAWAY frames it sent on the way (none if it just closed).
func (p *rawPeer) expectClosed(timeout time.Duration) []peerFrame {
	p.t.Helper()
	until := time.Now().Add(timeout)
	var goAways []peerFrame
	for {
		f, err := p.next(time.Until(until))
		if errors.Is(err, errPeerTimeout) {
			p.t.Fatalf("connection still open after %v", timeout)
		}
		if err != nil {
			return goAways
		}
		if f.Type == frames.FrameGoAway {
			goAways = append(goAways, f)
		}
	}
}

// request appends a request's HEADERS (":method GET :scheme http :path
// path :authority x", then extra name/value pairs) for stream id. Nothing
// is written until flush.
func (p *rawPeer) request(id uint32, endStream bool, method, path string, extra ...string) {
	p.fw.WriteHeaderBlock(id, endStream, p.requestBlock(method, path, extra...))
}

// requestBlock encodes a request header block with the peer's encoder. The
// block must be sent: the encoder's table now assumes the server saw it.
func (p *rawPeer) requestBlock(method, path string, extra ...string) []byte {
	kv := append([]string{":method", method, ":scheme", "http", ":path", path, ":authority", "x"}, extra...)
	p.hb = p.enc.AppendHeaderBlock(p.hb[:0], fields(kv...))
	return p.hb
}

// floodEndsCalm sends what the peer has batched (a flood, written without
// reading), waits for the server to end the connection c, then reads what
// it sent: a GOAWAY(ENHANCE_YOUR_CALM) and a clean close.
func (p *rawPeer) floodEndsCalm(t testing.TB, c *Conn) {
	t.Helper()
	p.flush()
	waitDone(t, c, attackWait)
	p.startReading(false)
	p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
	p.expectClosed(attackWait)
}

// attackServer serves our server role on loopback like startServer, and
// also tracks the Serve calls still running.
type attackServer struct {
	addr  string
	conns chan *Conn
	live  atomic.Int32
}

// startAttackServer serves cfg on a loopback listener. sndBuf, if
// positive, sets SO_SNDBUF on accepted connections so that a peer that
// does not read blocks the server's writer quickly.
func startAttackServer(t testing.TB, cfg *Config, sndBuf int) *attackServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &attackServer{addr: ln.Addr().String(), conns: make(chan *Conn, 100)}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if sndBuf > 0 {
				nc.(*net.TCPConn).SetWriteBuffer(sndBuf)
			}
			c := NewServerConn(nc, cfg)
			select {
			case srv.conns <- c:
			default:
			}
			srv.live.Add(1)
			go func() { defer srv.live.Add(-1); c.Serve() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return srv
}

// conn returns the server side of the next accepted connection.
func (s *attackServer) conn(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// waitDone waits until c is closed.
func waitDone(t testing.TB, c *Conn, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(timeout):
		t.Fatalf("server connection still open after %v (stats %+v)", timeout, c.Stats())
	}
}

// connCode returns the code of the GOAWAY that ended c, if a ConnError did.
func connCode(c *Conn) (frames.ErrCode, bool) {
	var ce ConnError
	if errors.As(c.Err(), &ce) {
		return ce.Code, true
	}
	return 0, false
}

// heapInuse returns the heap in use after a full collection (twice, so
// that the buffer pools' victim caches are dropped too).
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// checkHeap fails if the heap in use grew by more than bound since base.
func checkHeap(t testing.TB, base uint64, bound uint64, what string) {
	t.Helper()
	now := heapInuse()
	var grew uint64
	if now > base {
		grew = now - base
	}
	t.Logf("%s: heap in use grew by %d KiB (bound %d KiB)", what, grew>>10, bound>>10)
	if grew > bound {
		t.Fatalf("%s: heap in use grew by %d KiB, bound %d KiB", what, grew>>10, bound>>10)
	}
}

// waitGoroutines waits until at most base+slack goroutines are left.
func waitGoroutines(t testing.TB, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), base+slack, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isDeadlineErr reports whether err is a deadline error.
func isDeadlineErr(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
