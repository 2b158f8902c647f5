package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

// Attacks on our server role, one test per attack, each played by a raw
// peer (rawpeer_test.go) over loopback TCP against an in-process server, so
// that the tests can look at the server's heap and goroutines. Every test
// checks the outcome the engine's design promises (the connection closed
// with the right GOAWAY code, or the work bounded) and that the heap in use
// stayed bounded.

// attackWait bounds every wait for an expected outcome; the outcomes
// themselves come far sooner.
const attackWait = 10 * time.Second

// heapSlack is the heap growth allowed to any attack on top of what the
// configuration legitimately lets a connection hold.
const heapSlack = 4 << 20

// slowHandler returns a handler that blocks until the test ends, and the
// highest number of its invocations that ran at the same time.
func slowHandler(t *testing.T) (Handler, *atomic.Int32) {
	var running, most atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := HandlerFunc(func(s *Stream) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
	})
	return h, &most
}

// appendInt appends an HPACK integer (RFC 7541 §5.1) with an n-bit prefix;
// first holds the representation's bits above the prefix.
func appendInt(dst []byte, first byte, n uint, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(limit))
	for v -= limit; v >= 128; v >>= 7 {
		dst = append(dst, byte(v%128)|0x80)
	}
	return append(dst, byte(v))
}

// appendLiteral appends a field as a literal with a new name (not Huffman
// coded): without indexing, or with incremental indexing (§6.2.1).
func appendLiteral(dst []byte, name, value string, index bool) []byte {
	if index {
		dst = append(dst, 0x40)
	} else {
		dst = append(dst, 0x00)
	}
	dst = appendInt(dst, 0, 7, uint64(len(name)))
	dst = append(dst, name...)
	dst = appendInt(dst, 0, 7, uint64(len(value)))
	return append(dst, value...)
}

// literalRequest encodes a request using literals without indexing only,
// so the block leaves the server's HPACK table alone (for tests that
// manage that table by hand).
func literalRequest(path string, extra ...string) []byte {
	kv := append([]string{":method", "GET", ":scheme", "http", ":path", path, ":authority", "x"}, extra...)
	var b []byte
	for i := 0; i < len(kv); i += 2 {
		b = appendLiteral(b, kv[i], kv[i+1], false)
	}
	return b
}

// ctrlLen returns the length of c's control frame queue.
func ctrlLen(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ctrl)
}

// CVE-2023-44487: streams opened and cancelled at once, in bulk, against a
// handler that does not notice. The engine counts running handlers against
// MAX_CONCURRENT_STREAMS (up to twice it) and refuses streams beyond that;
// every reset and every refusal spends an abuse token.
func TestAttack_RapidReset(t *testing.T) {
	const mcs = 10
	h, most := slowHandler(t)
	srv := startAttackServer(t, &Config{Handler: h, MaxConcurrentStreams: mcs, AbuseBurst: 300, AbuseRate: 1}, 0)
	base := heapInuse()
	p := dialPeer(t, srv.addr, peerOpts{})
	c := srv.conn(t)
	for i := range 5000 {
		id := uint32(2*i + 1)
		p.request(id, true, "GET", "/")
		p.fw.WriteRSTStream(id, frames.ErrCodeCancel)
	}
	p.flush()
	p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
	p.expectClosed(attackWait)
	waitDone(t, c, attackWait)
	if n := most.Load(); n > 2*mcs {
		t.Errorf("%d handlers ran at once, want at most %d", n, 2*mcs)
	}
	// Every stream that reached a handler still holds it: the handlers
	// started are the bound, however many streams were cancelled.
	if n := c.Stats().StreamsOpened; n > 2*mcs || n < mcs {
		t.Errorf("%d streams reached a handler, want between %d and %d", n, mcs, 2*mcs)
	}
	if n := p.count(frames.FrameRSTStream); n == 0 {
		t.Errorf("no stream refused")
	}
	if code, _ := connCode(c); code != frames.ErrCodeEnhanceYourCalm {
		t.Errorf("connection ended with %v", c.Err())
	}
	checkHeap(t, base, heapSlack, "rapid reset")
}

// CVE-2024-27316, CVE-2023-45288: a field block that never ends. The frame
// reader bounds a block's CONTINUATION frames (128) and its bytes
// (MaxHeaderListSize*2+1 KiB): past either the connection ends with
// ENHANCE_YOUR_CALM, having buffered at most the byte bound.
func TestAttack_ContinuationFlood(t *testing.T) {
	cases := []struct {
		name string
		frag []byte
		n    int
	}{
		{"Empty", nil, 100000},
		{"OneByte", []byte{'a'}, 100000},
		{"Full", bytes.Repeat([]byte{'a'}, 16384), 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
			base := heapInuse()
			p := dialPeer(t, srv.addr, peerOpts{})
			c := srv.conn(t)
			block := literalRequest("/")
			p.fw.WriteHeaders(frames.HeadersParam{StreamID: 1, BlockFragment: block[:5], EndStream: true})
			for range tc.n {
				p.fw.WriteContinuation(1, false, tc.frag)
			}
			p.flush()
			p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
			p.expectClosed(attackWait)
			waitDone(t, c, attackWait)
			checkHeap(t, base, heapSlack, "CONTINUATION flood")
		})
	}
}

// CVE-2016-6581: a 4 KiB field in the HPACK table, then a block of
// thousands of one-byte references to it (64 MiB decoded). The decoder
// stops producing fields past MaxHeaderListSize; the request is answered
// 431 and the connection goes on.
func TestAttack_HPACKBomb(t *testing.T) {
	// The bomb: literals for the request, then references to index 62, the
	// newest dynamic table entry.
	bomb := func(refs int) []byte {
		return append(literalRequest("/bytes/1"), bytes.Repeat([]byte{0x80 | 62}, refs)...)
	}
	t.Run("Once", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		// Stream 1 inserts "x-bomb: 4000 bytes" (4038 of the 4096 bytes of
		// table) and is served normally.
		p.fw.WriteHeaderBlock(1, true, appendLiteral(literalRequest("/bytes/1"), "x-bomb", string(bytes.Repeat([]byte{'a'}, 4000)), true))
		p.fw.WriteHeaderBlock(3, true, bomb(16000))
		p.fw.WriteHeaderBlock(5, true, literalRequest("/bytes/10"))
		p.flush()
		got := p.expectResponses(attackWait, 1, 3, 5)
		if f := got[1]; f.Status != "200" {
			t.Fatalf("stream 1: %v", f)
		}
		if f := got[3]; f.Status != "431" || !f.Flags.Has(frames.FlagHeadersEndStream) {
			t.Fatalf("bomb: %v, want 431 with END_STREAM", f)
		}
		if f := got[5]; f.Status != "200" {
			t.Fatalf("request after the bomb: %v", f)
		}
		checkHeap(t, base, heapSlack, "HPACK bomb")
		if c.Err() != nil {
			t.Fatalf("connection failed: %v", c.Err())
		}
	})
	// The same bomb on thousands of streams from a peer that does not read:
	// the 431 responses cannot be written, and the streams that wait for
	// them count against MAX_CONCURRENT_STREAMS like any other.
	t.Run("RepeatedNotReading", func(t *testing.T) {
		const mcs = 10
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), MaxConcurrentStreams: mcs,
			AbuseBurst: 200, AbuseRate: 1, WriteTimeout: 500 * time.Millisecond}, 4096)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{noRead: true, rcvBuf: 4096})
		c := srv.conn(t)
		p.fw.WriteHeaderBlock(1, true, appendLiteral(literalRequest("/bytes/1"), "x-bomb", string(bytes.Repeat([]byte{'a'}, 4000)), true))
		small := bomb(17) // 17 references: 69 KB decoded
		for i := range 20000 {
			p.fw.WriteHeaderBlock(uint32(2*i+3), true, small)
		}
		sent := make(chan error, 1)
		go func() { sent <- p.flush() }()
		most := 0
		for done := false; !done; {
			select {
			case <-c.Done():
				done = true
			case <-time.After(5 * time.Millisecond):
				most = max(most, c.ActiveStreams())
			}
		}
		<-sent
		if most > mcs {
			t.Errorf("%d streams open at once, want at most %d", most, mcs)
		}
		// Streams past the limit are refused, each refusal an abuse token.
		if code, _ := connCode(c); code != frames.ErrCodeEnhanceYourCalm {
			t.Errorf("connection ended with %v", c.Err())
		}
		checkHeap(t, base, heapSlack, "repeated HPACK bombs")
	})
}

// CVE-2019-9512: PINGs in bulk from a peer that does not read the ACKs.
func TestAttack_PingFlood(t *testing.T) {
	// Each PING spends an abuse token: the bucket ends the connection long
	// before the ACKs fill the control queue.
	t.Run("Bucket", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 200, AbuseRate: 1}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{noRead: true})
		c := srv.conn(t)
		for i := range 100000 {
			p.fw.WritePing(false, [8]byte{byte(i)})
		}
		p.floodEndsCalm(t, c)
		if n := p.count(frames.FramePing); n > 201 {
			t.Errorf("%d PING ACKs, want at most the abuse burst", n)
		}
		checkHeap(t, base, heapSlack, "PING flood")
	})
	// With a bucket too large to matter and small socket buffers, the ACKs
	// back up: the reader stops once the control queue is half full
	// (back-pressure), nothing grows, and WriteTimeout ends the connection.
	t.Run("BackPressure", func(t *testing.T) {
		const maxCtrl = 100
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 1 << 30,
			MaxControlFrames: maxCtrl, WriteTimeout: 500 * time.Millisecond}, 4096)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{noRead: true, rcvBuf: 4096})
		c := srv.conn(t)
		for i := range 100000 {
			p.fw.WritePing(false, [8]byte{byte(i)})
		}
		sent := make(chan error, 1)
		go func() { sent <- p.flush() }()
		most := 0
		for done := false; !done; {
			select {
			case <-c.Done():
				done = true
			case <-time.After(2 * time.Millisecond):
				most = max(most, ctrlLen(c))
			}
		}
		<-sent
		if !isDeadlineErr(c.Err()) {
			t.Errorf("connection ended with %v, want the write timeout", c.Err())
		}
		if most > maxCtrl/2+2 {
			t.Errorf("control queue reached %d frames, want at most about %d", most, maxCtrl/2)
		}
		if n := c.Stats().FramesRead; n > 20000 {
			t.Errorf("server read %d frames from a peer that reads nothing", n)
		}
		checkHeap(t, base, heapSlack, "PING flood, back-pressure")
	})
}

// CVE-2019-9514: frames that each make the server send RST_STREAM, sent in
// bulk. Each provoked reset spends an abuse token.
func TestAttack_ResetFlood(t *testing.T) {
	// WINDOW_UPDATE with increment 0 (a stream error, §6.9), from a peer
	// that does not read the resets.
	t.Run("WindowUpdateZero", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 200, AbuseRate: 1}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{noRead: true})
		c := srv.conn(t)
		p.request(1, true, "GET", "/bytes/1")
		for range 20000 {
			p.fw.WriteRawFrame(frames.FrameWindowUpdate, 0, 1, []byte{0, 0, 0, 0})
		}
		p.floodEndsCalm(t, c)
		if n := p.count(frames.FrameRSTStream); n > 201 {
			t.Errorf("%d RST_STREAM frames, want at most the abuse burst", n)
		}
		checkHeap(t, base, heapSlack, "reset flood")
	})
	// The same on a stream never opened: a frame other than HEADERS or
	// PRIORITY on an idle stream is a connection error (§5.1), and no
	// RST_STREAM may be sent for it.
	t.Run("WindowUpdateZeroIdle", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		p.fw.WriteRawFrame(frames.FrameWindowUpdate, 0, 5, []byte{0, 0, 0, 0})
		p.flush()
		p.expectGoAway(frames.ErrCodeProtocol, attackWait)
		if n := p.count(frames.FrameRSTStream); n != 0 {
			t.Errorf("%d RST_STREAM frames on an idle stream", n)
		}
	})
	// DATA on streams that ended normally: the first DATA on each is
	// answered with RST_STREAM(STREAM_CLOSED); later ones on the same
	// stream are ignored (§5.1: we sent RST_STREAM), so the peer has to
	// go through streams, one token each.
	t.Run("DataOnClosedStreams", func(t *testing.T) {
		const streams, burst = 150, 100
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: burst, AbuseRate: 1}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		var ids []uint32
		for i := range streams {
			ids = append(ids, uint32(2*i+1))
			p.request(ids[i], true, "GET", "/bytes/1")
		}
		p.flush()
		p.expectResponses(attackWait, ids...)
		waitFor(t, "streams closed", func() bool { return c.ActiveStreams() == 0 })
		for _, id := range ids {
			for range 20 {
				p.fw.WriteData(id, false, []byte{'x'})
			}
		}
		p.flush()
		p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
		p.expectClosed(attackWait)
		if n := p.count(frames.FrameRSTStream); n > burst+1 {
			t.Errorf("%d RST_STREAM frames, want at most the abuse burst", n)
		}
		checkHeap(t, base, heapSlack, "reset flood")
	})
}

// CVE-2019-9515: SETTINGS frames in bulk, their ACKs never read. Each
// SETTINGS frame spends an abuse token.
func TestAttack_SettingsFlood(t *testing.T) {
	srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 200, AbuseRate: 1}, 0)
	base := heapInuse()
	p := dialPeer(t, srv.addr, peerOpts{noRead: true})
	c := srv.conn(t)
	for range 100000 {
		p.fw.WriteSettings([]frames.Setting{{ID: frames.SettingMaxConcurrentStreams, Val: 100}})
	}
	p.floodEndsCalm(t, c)
	// The server's own SETTINGS, and at most one ACK per token.
	if n := p.count(frames.FrameSettings); n > 1+201 {
		t.Errorf("%d SETTINGS frames, want at most the abuse burst", n)
	}
	checkHeap(t, base, heapSlack, "SETTINGS flood")
}

// CVE-2019-9516: header blocks with empty field names. Such a request is
// malformed (§8.2.1): the stream is reset with PROTOCOL_ERROR, a reset the
// peer provoked, so repeating it empties the abuse bucket. Entries with
// empty names inserted into the HPACK table are bounded by the table size.
func TestAttack_ZeroLengthHeaderNames(t *testing.T) {
	for _, index := range []bool{false, true} {
		t.Run(fmt.Sprintf("indexed=%v", index), func(t *testing.T) {
			srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 200, AbuseRate: 1}, 0)
			base := heapInuse()
			p := dialPeer(t, srv.addr, peerOpts{})
			c := srv.conn(t)
			block := literalRequest("/bytes/1")
			for range 100 {
				block = appendLiteral(block, "", "v", index)
			}
			p.fw.WriteHeaderBlock(1, true, block)
			p.flush()
			p.expectRST(1, frames.ErrCodeProtocol, attackWait)
			for i := range 5000 {
				p.fw.WriteHeaderBlock(uint32(2*i+3), true, block)
			}
			p.flush()
			p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
			p.expectClosed(attackWait)
			waitDone(t, c, attackWait)
			if n := c.Stats().StreamsOpened; n != 0 {
				t.Errorf("%d malformed requests reached the handler", n)
			}
			checkHeap(t, base, heapSlack, "empty header names")
		})
	}
}

// CVE-2019-9513: PRIORITY frames in bulk on many streams. The engine keeps
// no priority tree: a PRIORITY frame costs one abuse token and no memory.
func TestAttack_PriorityFlood(t *testing.T) {
	srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 1000, AbuseRate: 1}, 0)
	base := heapInuse()
	p := dialPeer(t, srv.addr, peerOpts{noRead: true})
	c := srv.conn(t)
	for i := range 100000 {
		id := uint32(2*i + 1)
		p.fw.WritePriority(id, frames.PriorityParam{StreamDep: id + 2, Weight: byte(i)})
	}
	p.floodEndsCalm(t, c)
	if n := c.Stats().FramesRead; n > 1100 {
		t.Errorf("server processed %d frames, want about the abuse burst", n)
	}
	checkHeap(t, base, heapSlack, "PRIORITY flood")
}

// CVE-2019-9518: frames that carry nothing, in bulk.
func TestAttack_EmptyFramesFlood(t *testing.T) {
	newConn := func(t *testing.T) (*rawPeer, *Conn, uint64) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 200, AbuseRate: 1}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{})
		return p, srv.conn(t), base
	}
	// Empty DATA without END_STREAM on an open stream (the handler reads
	// the body): each spends an abuse token.
	t.Run("Data", func(t *testing.T) {
		p, c, base := newConn(t)
		p.request(1, false, "POST", "/sha")
		for range 100000 {
			p.fw.WriteData(1, false, nil)
		}
		p.flush()
		p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
		p.expectClosed(attackWait)
		waitDone(t, c, attackWait)
		checkHeap(t, base, heapSlack, "empty DATA flood")
	})
	// The same with padding only: the payload is empty once unpadded.
	t.Run("PaddedData", func(t *testing.T) {
		p, c, base := newConn(t)
		p.request(1, false, "POST", "/sha")
		for range 100000 {
			p.fw.WriteDataPadded(1, false, nil, 10)
		}
		p.flush()
		p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
		p.expectClosed(attackWait)
		waitDone(t, c, attackWait)
		checkHeap(t, base, heapSlack, "padded empty DATA flood")
	})
	// Empty HEADERS opening streams: malformed requests (no pseudo-header
	// fields), each reset with PROTOCOL_ERROR and an abuse token.
	t.Run("Headers", func(t *testing.T) {
		p, c, base := newConn(t)
		for i := range 20000 {
			p.fw.WriteHeaders(frames.HeadersParam{StreamID: uint32(2*i + 1), EndHeaders: true, EndStream: true})
		}
		p.flush()
		p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
		p.expectClosed(attackWait)
		waitDone(t, c, attackWait)
		checkHeap(t, base, heapSlack, "empty HEADERS flood")
	})
	// Empty frames of an unknown type are skipped by the frame reader
	// (§4.1, §5.5) at the cost of parsing a 9-byte header: work in
	// proportion to the bytes received, like any input, so they spend no
	// tokens. The connection survives them and still serves.
	t.Run("UnknownType", func(t *testing.T) {
		p, c, base := newConn(t)
		for range 100000 {
			p.fw.WriteRawFrame(0x20, 0, 1, nil)
		}
		p.request(1, true, "GET", "/bytes/10")
		p.flush()
		if f := p.expectHeaders(1, attackWait); f.Status != "200" {
			t.Fatalf("request after the flood: %v", f)
		}
		if c.Err() != nil {
			t.Fatalf("connection failed: %v", c.Err())
		}
		checkHeap(t, base, heapSlack, "unknown frame flood")
	})
}

// countingWriter returns a handler that answers with size bytes in 16 KiB
// writes and counts the bytes its writes accepted.
func countingWriter(size int, accepted *atomic.Int64) Handler {
	return HandlerFunc(func(s *Stream) {
		if s.WriteHeaders(fields(":status", "200"), false) != nil {
			return
		}
		chunk := pat1M[:16<<10]
		for sent := 0; sent < size; sent += len(chunk) {
			n, err := s.Write(chunk)
			accepted.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
}

// CVE-2019-9517: responses the peer will not take. Body bytes a handler
// writes are queued up to SendBuffer per stream, then Write blocks; the
// request bodies a handler does not read are bounded by our windows.
func TestAttack_InternalDataBuffering(t *testing.T) {
	const mcs, sendBuf = 16, 64 << 10
	// The peer opens every stream it may (and more) with a window of 0:
	// nothing can be sent, each handler queues SendBuffer and blocks.
	t.Run("ZeroWindow", func(t *testing.T) {
		var accepted atomic.Int64
		srv := startAttackServer(t, &Config{Handler: countingWriter(64<<20, &accepted),
			MaxConcurrentStreams: mcs, SendBuffer: sendBuf}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{settings: []frames.Setting{{ID: frames.SettingInitialWindowSize, Val: 0}}})
		c := srv.conn(t)
		for i := range 2 * mcs {
			p.request(uint32(2*i+1), true, "GET", "/")
		}
		p.flush()
		waitFor(t, "every handler blocked on a full send buffer", func() bool { return accepted.Load() == mcs*sendBuf })
		time.Sleep(50 * time.Millisecond)
		if n := accepted.Load(); n != mcs*sendBuf {
			t.Fatalf("handlers queued %d bytes, want %d", n, mcs*sendBuf)
		}
		checkHeap(t, base, 2*mcs*sendBuf+heapSlack, "zero window")
		if n := p.count(frames.FrameData); n != 0 {
			t.Errorf("%d DATA frames sent into a zero window", n)
		}
		p.close()
		waitDone(t, c, attackWait)
	})
	// Request bodies nobody reads: buffered up to the connection window,
	// and one byte more is a FLOW_CONTROL_ERROR.
	t.Run("UnreadRequestBodies", func(t *testing.T) {
		const connWin, streamWin = 1 << 20, 256 << 10
		h, _ := slowHandler(t)
		srv := startAttackServer(t, &Config{Handler: h, MaxConcurrentStreams: mcs,
			InitialConnWindow: connWin, InitialStreamWindow: streamWin}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		body := pat1M[:16384]
		for i := range connWin / streamWin {
			id := uint32(2*i + 1)
			p.request(id, false, "POST", "/")
			for range streamWin / len(body) {
				p.fw.WriteData(id, false, body)
			}
		}
		p.flush()
		waitFor(t, "the bodies buffered", func() bool { return c.Stats().FramesRead >= 1+connWin/16384 })
		checkHeap(t, base, 2*connWin+heapSlack, "unread request bodies")
		p.request(99, false, "POST", "/")
		p.fw.WriteData(99, false, []byte{1})
		p.flush()
		p.expectGoAway(frames.ErrCodeFlowControl, attackWait)
		waitDone(t, c, attackWait)
	})
}

// pingSync sends a PING and waits for its ACK, returning the frames that
// came before it. Frames the server wrote before it read the PING arrive
// before the ACK or in the same batch, so after two syncs every reaction
// to what was sent before the first one has been received.
func (p *rawPeer) pingSync(t *testing.T) []peerFrame {
	t.Helper()
	var out []peerFrame
	for round := range 2 {
		data := [8]byte{'s', 'y', 'n', 'c', byte(round)}
		p.fw.WritePing(false, data)
		p.flush()
		until := time.Now().Add(attackWait)
		for {
			f, err := p.next(time.Until(until))
			if err != nil {
				t.Fatalf("waiting for a PING ACK: %v", err)
			}
			if f.Type == frames.FramePing && f.Flags.Has(frames.FlagPingAck) && f.Ping == data {
				break
			}
			out = append(out, f)
		}
	}
	return out
}

// CVE-2019-9511: a window opened a byte at a time. The writer sends at
// most maxTinyFrames DATA frames smaller than minDataFrame per stream
// (unless one ends the body), then waits until the window allows a real
// frame.
func TestAttack_Dribble(t *testing.T) {
	t.Run("OneByteUpdates", func(t *testing.T) {
		const size = 100000
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
		base := heapInuse()
		p := dialPeer(t, srv.addr, peerOpts{settings: []frames.Setting{{ID: frames.SettingInitialWindowSize, Val: 1}}})
		p.fw.WriteWindowUpdate(0, 1<<30)
		p.request(1, true, "GET", "/bytes/"+strconv.Itoa(size))
		p.flush()
		p.expectHeaders(1, attackWait)
		// One update at a time, each given time to be answered.
		tiny, got := 0, 0
		for range 3 * maxTinyFrames {
			p.fw.WriteWindowUpdate(1, 1)
			for _, f := range p.pingSync(t) {
				if f.Type == frames.FrameData {
					tiny++
					got += f.Data
				}
			}
		}
		// The first byte (the initial window) and seven updates; the
		// later updates accumulate in the window.
		if tiny != maxTinyFrames || got != maxTinyFrames {
			t.Fatalf("%d DATA frames, %d bytes, want %d of one byte", tiny, got, maxTinyFrames)
		}
		// A real window resumes normal frames.
		p.fw.WriteWindowUpdate(1, 1<<20)
		p.flush()
		for got < size {
			f, err := p.next(attackWait)
			if err != nil {
				t.Fatalf("after %d bytes: %v", got, err)
			}
			if f.Type != frames.FrameData {
				continue
			}
			got += f.Data
			if f.Data < minDataFrame && got < size {
				t.Fatalf("%d-byte DATA frame after the window opened", f.Data)
			}
		}
		checkHeap(t, base, heapSlack, "dribble")
	})
	// A peer that opens windows in odd amounts (here: 65535 each time the
	// stream window runs out) must not be stalled by the guard: the
	// remainders of our own 16 KiB chunks are small frames, but they are
	// not the window's doing.
	t.Run("OddWindowsNotStalled", func(t *testing.T) {
		const size = 2 << 20
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		p.fw.WriteWindowUpdate(0, 1<<30)
		p.request(1, true, "GET", "/bytes/"+strconv.Itoa(size))
		p.flush()
		got, win := 0, 65535
		for got < size {
			f, err := p.next(5 * time.Second)
			if err != nil {
				t.Fatalf("stalled after %d of %d bytes: %v", got, size, err)
			}
			if f.Type != frames.FrameData {
				continue
			}
			got += f.Data
			if win -= f.Data; win == 0 {
				win = 65535
				p.fw.WriteWindowUpdate(1, 65535)
				p.flush()
			}
		}
	})
}

// CVE-2025-8671: frames that make the server reset streams, each on a
// fresh stream whose handler does not notice the reset. Running handlers
// stay bounded and every provoked reset spends an abuse token.
func TestAttack_MadeYouReset(t *testing.T) {
	cases := []struct {
		name  string
		code  frames.ErrCode
		frame func(p *rawPeer, id uint32)
	}{
		{"WindowOverflow", frames.ErrCodeFlowControl, func(p *rawPeer, id uint32) {
			p.request(id, true, "GET", "/")
			p.fw.WriteWindowUpdate(id, frames.MaxWindowSize)
		}},
		{"BeyondContentLength", frames.ErrCodeProtocol, func(p *rawPeer, id uint32) {
			p.request(id, false, "POST", "/", "content-length", "1")
			p.fw.WriteData(id, false, []byte("xx"))
		}},
		{"TrailersWithoutEndStream", frames.ErrCodeProtocol, func(p *rawPeer, id uint32) {
			p.request(id, false, "POST", "/")
			p.hb = p.enc.AppendHeaderBlock(p.hb[:0], fields("x-trailer", "1"))
			p.fw.WriteHeaderBlock(id, false, p.hb)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const mcs = 10
			h, most := slowHandler(t)
			srv := startAttackServer(t, &Config{Handler: h, MaxConcurrentStreams: mcs, AbuseBurst: 300, AbuseRate: 1}, 0)
			base := heapInuse()
			p := dialPeer(t, srv.addr, peerOpts{})
			c := srv.conn(t)
			tc.frame(p, 1)
			p.flush()
			p.expectRST(1, tc.code, attackWait)
			for i := range 5000 {
				tc.frame(p, uint32(2*i+3))
			}
			p.flush()
			p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
			p.expectClosed(attackWait)
			waitDone(t, c, attackWait)
			if n := most.Load(); n > 2*mcs {
				t.Errorf("%d handlers ran at once, want at most %d", n, 2*mcs)
			}
			checkHeap(t, base, heapSlack, "made-you-reset")
		})
	}
	// What the attack must not catch: a peer's frames that were in flight
	// when we reset the stream. A client that exceeds MAX_CONCURRENT_STREAMS
	// gets REFUSED_STREAM, but its body and trailers for that stream are
	// already on the way; they are ignored and cost nothing.
	t.Run("InnocentFramesAfterRefusal", func(t *testing.T) {
		const mcs = 4
		h, _ := slowHandler(t)
		srv := startAttackServer(t, &Config{Handler: h, MaxConcurrentStreams: mcs, AbuseBurst: 100, AbuseRate: 1}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		for i := range 2 * mcs {
			id := uint32(2*i + 1)
			p.request(id, false, "POST", "/")
			for range 20 {
				p.fw.WriteData(id, false, pat1M[:1000])
			}
			p.hb = p.enc.AppendHeaderBlock(p.hb[:0], fields("x-trailer", "1"))
			p.fw.WriteHeaderBlock(id, true, p.hb)
		}
		p.flush()
		for i := mcs; i < 2*mcs; i++ {
			p.expectRST(uint32(2*i+1), frames.ErrCodeRefusedStream, attackWait)
		}
		p.pingSync(t)
		if c.Err() != nil {
			t.Fatalf("connection failed: %v", c.Err())
		}
		if st := c.Stats(); st.ResetsSent != mcs || st.AbuseEvents > mcs+4 {
			t.Errorf("%d resets sent, %d abuse events, want %d refusals and little else", st.ResetsSent, st.AbuseEvents, mcs)
		}
	})
	// A stream error on a stream not yet opened (PRIORITY of the wrong
	// length, §6.3) leaves its id usable: late frames are ignored only on
	// streams that were open.
	t.Run("IdleStreamStaysUsable", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp)}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		p.fw.WriteRawFrame(frames.FramePriority, 0, 1, []byte{0, 0, 0, 3})
		p.request(1, true, "GET", "/bytes/10")
		p.flush()
		p.expectRST(1, frames.ErrCodeFrameSize, attackWait)
		if f := p.expectHeaders(1, attackWait); f.Status != "200" {
			t.Fatalf("request on the stream: %v", f)
		}
	})
	// The client role: cancelling downloads from a well-behaved server, whose
	// DATA in flight (up to a stream window each) is not abuse.
	t.Run("ClientCancelsDownloads", func(t *testing.T) {
		addr := startXnetServer(t, http.HandlerFunc(xnetApp))
		c := dialClient(t, addr, &Config{})
		ctx := t.Context()
		for i := range 20 {
			s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":path", "/bytes/67108864", ":authority", "x"), true)
			if err != nil {
				t.Fatalf("download %d: %v", i, err)
			}
			if _, err := s.ReadHeaders(ctx); err != nil {
				t.Fatalf("download %d: %v", i, err)
			}
			io.ReadFull(s, make([]byte, 64<<10))
			s.Reset(frames.ErrCodeCancel)
		}
		if st, body, _ := roundTrip(t, c, "GET", "/bytes/10", nil, nil); st != "200" || len(body) != 10 {
			t.Fatalf("after the cancels: %s, %d bytes", st, len(body))
		}
		if st := c.Stats(); st.ResetsSent != 20 || st.AbuseEvents > 5 {
			t.Errorf("%d resets sent, %d abuse events, want the 20 cancels and little else", st.ResetsSent, st.AbuseEvents)
		}
	})
}

// Slowloris: connections that hold a server connection while sending
// little or nothing. Every stage has a deadline.
func TestAttack_Slowloris(t *testing.T) {
	const timeout = 300 * time.Millisecond
	// closedAfter checks that the connection ended no sooner than after
	// least and well before attackWait.
	closedAfter := func(t *testing.T, p *rawPeer, start time.Time, least time.Duration) []peerFrame {
		t.Helper()
		goAways := p.expectClosed(attackWait)
		if d := time.Since(start); d < least*9/10 {
			t.Errorf("closed after %v, before the %v deadline", d, least)
		}
		return goAways
	}
	t.Run("Defaults", func(t *testing.T) {
		d := (&Config{}).withDefaults()
		for name, v := range map[string]time.Duration{"PrefaceTimeout": d.PrefaceTimeout,
			"SettingsTimeout": d.SettingsTimeout, "FrameTimeout": d.FrameTimeout,
			"IdleTimeout": d.IdleTimeout, "WriteTimeout": d.WriteTimeout} {
			if v <= 0 {
				t.Errorf("%s is off by default", name)
			}
		}
	})
	// Connect and send nothing: closed after PrefaceTimeout (the other
	// timeouts at their defaults, far longer).
	t.Run("NoPreface", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), PrefaceTimeout: timeout}, 0)
		start := time.Now()
		p := dialPeer(t, srv.addr, peerOpts{noHello: true})
		closedAfter(t, p, start, timeout)
	})
	// The preface and then half a SETTINGS frame: the preface stage also
	// covers the first SETTINGS.
	t.Run("HalfFirstSettings", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), PrefaceTimeout: timeout}, 0)
		start := time.Now()
		p := dialPeer(t, srv.addr, peerOpts{noHello: true})
		p.nc.Write(append([]byte(frames.ClientPreface), 0, 0, 6, byte(frames.FrameSettings)))
		closedAfter(t, p, start, timeout)
	})
	// Half a frame header, then nothing: closed after FrameTimeout with
	// PROTOCOL_ERROR.
	t.Run("HalfFrame", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), FrameTimeout: timeout}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		start := time.Now()
		p.nc.Write([]byte{0, 0, 20, byte(frames.FrameHeaders), 0x5})
		p.expectGoAway(frames.ErrCodeProtocol, attackWait)
		closedAfter(t, p, start, timeout)
	})
	// A field block left open (HEADERS without END_HEADERS, no
	// CONTINUATION): closed after FrameTimeout with PROTOCOL_ERROR.
	t.Run("OpenFieldBlock", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), FrameTimeout: timeout}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		start := time.Now()
		block := literalRequest("/")
		p.fw.WriteHeaders(frames.HeadersParam{StreamID: 1, BlockFragment: block[:4], EndStream: true})
		p.flush()
		p.expectGoAway(frames.ErrCodeProtocol, attackWait)
		closedAfter(t, p, start, timeout)
	})
	// A frame sent one byte at a time, each byte well within FrameTimeout
	// of the previous one: the deadline is for the whole frame, not for
	// each read.
	t.Run("DripFeed", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), FrameTimeout: timeout}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			var ping [frames.HeaderLen + 8]byte
			frames.PutHeader(ping[:], frames.FrameHeader{Length: 8, Type: frames.FramePing})
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(timeout / 4):
				}
				if _, err := p.nc.Write(ping[i%len(ping) : i%len(ping)+1]); err != nil {
					return
				}
			}
		}()
		p.expectGoAway(frames.ErrCodeProtocol, attackWait)
		closedAfter(t, p, start, timeout)
		waitDone(t, c, attackWait)
	})
	// No stream and no frame: GOAWAY(NO_ERROR) and close after
	// IdleTimeout.
	t.Run("Idle", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), IdleTimeout: timeout}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		start := time.Now()
		p.expectGoAway(frames.ErrCodeNo, attackWait)
		closedAfter(t, p, start, timeout)
	})
	// The same, from a peer that answers the server's heartbeat PINGs: the
	// answers are not activity, or the heartbeat would keep every idle
	// connection open forever.
	t.Run("IdleAnsweringHeartbeats", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), IdleTimeout: timeout,
			PingInterval: timeout / 5}, 0)
		p := dialPeer(t, srv.addr, peerOpts{ackPings: true})
		start := time.Now()
		p.expectGoAway(frames.ErrCodeNo, attackWait)
		closedAfter(t, p, start, timeout)
		if n := p.count(frames.FramePing); n == 0 {
			t.Errorf("no heartbeat PING seen")
		}
	})
	// A connection that was busy and went idle: the idle time counts from
	// the end of its last stream.
	t.Run("IdleAfterStream", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), IdleTimeout: timeout}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		p.request(1, true, "GET", "/bytes/10")
		p.flush()
		p.expectHeaders(1, attackWait)
		start := time.Now()
		p.expectGoAway(frames.ErrCodeNo, attackWait)
		closedAfter(t, p, start, timeout/2)
	})
}

// Stream ids run out after 2^30 streams of one side: our client role
// stops opening streams just before, and the streams in flight finish.
func TestAttack_StreamIDExhaustion(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	c := dialClient(t, addr, &Config{})
	ctx := t.Context()
	// A normal stream first, then jump near the end of the id space.
	if st, _, _ := roundTrip(t, c, "GET", "/bytes/10", nil, nil); st != "200" {
		t.Fatalf("status %s", st)
	}
	setNextStreamID(c, 1<<31-1-6)
	var inflight []*Stream
	for c.CanTakeNewStreams() {
		s, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":path", "/bytes/100000", ":authority", "x"), true)
		if err != nil {
			t.Fatalf("OpenStream while CanTakeNewStreams: %v", err)
		}
		inflight = append(inflight, s)
		if len(inflight) > 10 {
			t.Fatal("ids never ran out")
		}
	}
	if len(inflight) == 0 {
		t.Fatal("no stream opened near the end of the id space")
	}
	if last := inflight[len(inflight)-1].ID(); last > 1<<31-1 {
		t.Fatalf("stream id %d beyond 2^31-1", last)
	}
	if _, err := c.OpenStream(ctx, fields(":method", "GET", ":scheme", "http", ":path", "/", ":authority", "x"), true); !errors.Is(err, ErrNoNewStreams) {
		t.Fatalf("OpenStream after the last id: %v, want ErrNoNewStreams", err)
	}
	for _, s := range inflight {
		h, err := s.ReadHeaders(ctx)
		if err != nil || string(h.Get(":status")) != "200" {
			t.Fatalf("stream %d: %v", s.ID(), err)
		}
		b, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(b, pat1M[:100000]) {
			t.Fatalf("stream %d: %d bytes, %v", s.ID(), len(b), err)
		}
	}
}

// A peer that asks for large responses and never reads its socket. The
// writer blocks, each handler queues at most SendBuffer, WriteTimeout ends
// the connection, and every goroutine of it goes away.
func TestAttack_NeverReads(t *testing.T) {
	const mcs, sendBuf = 8, 64 << 10
	var accepted atomic.Int64
	srv := startAttackServer(t, &Config{Handler: countingWriter(64<<20, &accepted), MaxConcurrentStreams: mcs,
		SendBuffer: sendBuf, WriteTimeout: 500 * time.Millisecond}, 16<<10)
	goroutines := runtime.NumGoroutine()
	base := heapInuse()
	p := dialPeer(t, srv.addr, peerOpts{noRead: true, rcvBuf: 16 << 10,
		settings: []frames.Setting{{ID: frames.SettingInitialWindowSize, Val: frames.MaxWindowSize}}})
	c := srv.conn(t)
	p.fw.WriteWindowUpdate(0, frames.MaxWindowSize-65535)
	for i := range mcs {
		p.request(uint32(2*i+1), true, "GET", "/")
	}
	p.flush()
	// Everything the handlers could queue: their send buffers, one batch
	// and what the sockets hold.
	bound := int64(mcs*sendBuf + batchBudget + 4<<20)
	peak := uint64(0)
	for done := false; !done; {
		select {
		case <-c.Done():
			done = true
		case <-time.After(100 * time.Millisecond):
			peak = max(peak, heapInuse())
		}
	}
	if !isDeadlineErr(c.Err()) {
		t.Errorf("connection ended with %v, want the write timeout", c.Err())
	}
	if n := accepted.Load(); n > bound {
		t.Errorf("handlers queued %d bytes, bound %d", n, bound)
	}
	if peak > base && peak-base > 2*mcs*sendBuf+batchBudget+heapSlack {
		t.Errorf("heap in use grew by %d KiB", (peak-base)>>10)
	}
	t.Logf("peak heap growth %d KiB, %d bytes accepted", (int64(peak)-int64(base))>>10, accepted.Load())
	p.close()
	waitFor(t, "Serve returned", func() bool { return srv.live.Load() == 0 })
	waitGoroutines(t, goroutines, 2)
}

// Frames whose handling went over every open stream: each cost hundreds of
// times a plain frame with many streams open. The first two are timed
// against the same flood with no stream open (a ratio survives a loaded
// machine better than a bound); the fixed costs are flat.
func TestAttack_StreamScanFlood(t *testing.T) {
	// floodTime opens streams (on handlers that wait), then times how long
	// the server takes over the frames write appends.
	floodTime := func(t *testing.T, streams int, write func(fw *frames.Writer)) time.Duration {
		h, _ := slowHandler(t)
		srv := startAttackServer(t, &Config{Handler: h, MaxConcurrentStreams: 256}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		for i := range streams {
			p.request(uint32(2*i+1), true, "GET", "/")
		}
		p.flush()
		p.pingSync(t)
		if n := c.ActiveStreams(); n != streams {
			t.Fatalf("%d streams open, want %d", n, streams)
		}
		write(p.fw)
		start := time.Now()
		p.flush()
		p.pingSync(t)
		d := time.Since(start)
		if c.Err() != nil {
			t.Fatalf("connection failed: %v", c.Err())
		}
		return d
	}
	compare := func(t *testing.T, write func(fw *frames.Writer)) {
		idle := floodTime(t, 0, write)
		busy := floodTime(t, 256, write)
		t.Logf("no stream: %v, 256 streams: %v", idle, busy)
		if busy > 10*idle+200*time.Millisecond {
			t.Errorf("with 256 streams open the flood took %v, against %v with none", busy, idle)
		}
	}
	// SETTINGS frames full of SETTINGS_INITIAL_WINDOW_SIZE, one abuse
	// token each but 2730 window changes: applied once per frame.
	t.Run("InitialWindowSettings", func(t *testing.T) {
		var set []frames.Setting
		for i := range 2730 {
			set = append(set, frames.Setting{ID: frames.SettingInitialWindowSize, Val: uint32(65535 + i%2)})
		}
		compare(t, func(fw *frames.Writer) {
			for range 200 {
				fw.WriteSettings(set)
			}
		})
	})
	// Connection-level WINDOW_UPDATE frames, which spend no token: the
	// streams are only gone over when the connection window held them.
	t.Run("ConnWindowUpdates", func(t *testing.T) {
		compare(t, func(fw *frames.Writer) {
			for range 250000 {
				fw.WriteWindowUpdate(0, 1)
			}
		})
	})
	// GOAWAY frames after the first spend a token each.
	t.Run("GoAways", func(t *testing.T) {
		srv := startAttackServer(t, &Config{Handler: HandlerFunc(testApp), AbuseBurst: 200, AbuseRate: 1}, 0)
		p := dialPeer(t, srv.addr, peerOpts{})
		c := srv.conn(t)
		p.request(1, false, "POST", "/sha")
		for range 100000 {
			p.fw.WriteGoAway(1, frames.ErrCodeNo, nil)
		}
		p.flush()
		p.expectGoAway(frames.ErrCodeEnhanceYourCalm, attackWait)
		waitDone(t, c, attackWait)
	})
}
