package frames

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func raw(t FrameType, fl Flags, sid uint32, payload []byte) []byte {
	b := make([]byte, HeaderLen+len(payload))
	PutHeader(b, FrameHeader{Length: uint32(len(payload)), Type: t, Flags: fl, StreamID: sid})
	copy(b[HeaderLen:], payload)
	return b
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func setting(id SettingID, v uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, uint16(id)), v)
}

type errKind int

const (
	kindConn errKind = iota
	kindStream
)

// TestReader_Malformed holds one bad frame (or sequence) per RFC 9113 rule
// the codec enforces, with the error kind and code the RFC prescribes.
func TestReader_Malformed(t *testing.T) {
	ping := raw(FramePing, 0, 0, make([]byte, 8))
	openBlock := raw(FrameHeaders, 0, 1, []byte{0x82})
	cases := []struct {
		name string
		in   []byte
		kind errKind
		code ErrCode
		sid  uint32 // stream of a stream error
	}{
		{"§4.2 frame larger than SETTINGS_MAX_FRAME_SIZE", raw(FrameData, 0, 1, make([]byte, DefaultMaxFrameSize+1)), kindConn, ErrCodeFrameSize, 0},
		{"§4.2 unknown type larger than SETTINGS_MAX_FRAME_SIZE", raw(0x42, 0, 1, make([]byte, DefaultMaxFrameSize+1)), kindConn, ErrCodeFrameSize, 0},
		{"§6.1 DATA on stream 0", raw(FrameData, 0, 0, []byte("x")), kindConn, ErrCodeProtocol, 0},
		{"§6.1 DATA PADDED without Pad Length", raw(FrameData, FlagDataPadded, 1, nil), kindConn, ErrCodeFrameSize, 0},
		{"§6.1 DATA padding equal to payload", raw(FrameData, FlagDataPadded, 1, []byte{4, 0, 0, 0}), kindConn, ErrCodeProtocol, 0},
		{"§6.1 DATA padding longer than payload", raw(FrameData, FlagDataPadded, 1, []byte{200, 0}), kindConn, ErrCodeProtocol, 0},
		{"§6.2 HEADERS on stream 0", raw(FrameHeaders, FlagHeadersEndHeaders, 0, []byte{0x82}), kindConn, ErrCodeProtocol, 0},
		{"§6.2 HEADERS padding longer than payload", raw(FrameHeaders, FlagHeadersEndHeaders|FlagHeadersPadded, 1, []byte{5, 0x82}), kindConn, ErrCodeProtocol, 0},
		{"§6.2 HEADERS PADDED without Pad Length", raw(FrameHeaders, FlagHeadersEndHeaders|FlagHeadersPadded, 1, nil), kindConn, ErrCodeFrameSize, 0},
		{"§6.2 HEADERS PRIORITY too short", raw(FrameHeaders, FlagHeadersEndHeaders|FlagHeadersPriority, 1, []byte{0, 0, 0, 3}), kindConn, ErrCodeFrameSize, 0},
		{"§6.2 HEADERS PADDED|PRIORITY too short", raw(FrameHeaders, FlagHeadersEndHeaders|FlagHeadersPriority|FlagHeadersPadded, 1, []byte{0, 0, 0, 0, 3}), kindConn, ErrCodeFrameSize, 0},
		{"§6.2 HEADERS padding eats the priority fields", raw(FrameHeaders, FlagHeadersEndHeaders|FlagHeadersPriority|FlagHeadersPadded, 1, []byte{3, 0, 0, 0, 3, 16}), kindConn, ErrCodeProtocol, 0},
		{"§5.3.1 HEADERS depends on itself", raw(FrameHeaders, FlagHeadersEndHeaders|FlagHeadersPriority, 3, []byte{0, 0, 0, 3, 16, 0x82}), kindStream, ErrCodeProtocol, 3},
		{"§6.3 PRIORITY on stream 0", raw(FramePriority, 0, 0, []byte{0, 0, 0, 1, 16}), kindConn, ErrCodeProtocol, 0},
		{"§6.3 PRIORITY length 4", raw(FramePriority, 0, 1, []byte{0, 0, 0, 3}), kindStream, ErrCodeFrameSize, 1},
		{"§6.3 PRIORITY length 6", raw(FramePriority, 0, 1, []byte{0, 0, 0, 3, 1, 1}), kindStream, ErrCodeFrameSize, 1},
		{"§5.3.1 PRIORITY depends on itself", raw(FramePriority, 0, 5, []byte{0x80, 0, 0, 5, 16}), kindStream, ErrCodeProtocol, 5},
		{"§6.4 RST_STREAM on stream 0", raw(FrameRSTStream, 0, 0, u32(8)), kindConn, ErrCodeProtocol, 0},
		{"§6.4 RST_STREAM length 3", raw(FrameRSTStream, 0, 1, []byte{0, 0, 8}), kindConn, ErrCodeFrameSize, 0},
		{"§6.4 RST_STREAM length 5", raw(FrameRSTStream, 0, 1, []byte{0, 0, 0, 8, 0}), kindConn, ErrCodeFrameSize, 0},
		{"§6.5 SETTINGS on a stream", raw(FrameSettings, 0, 1, nil), kindConn, ErrCodeProtocol, 0},
		{"§6.5 SETTINGS ACK with payload", raw(FrameSettings, FlagSettingsAck, 0, setting(SettingEnablePush, 0)), kindConn, ErrCodeFrameSize, 0},
		{"§6.5 SETTINGS length not a multiple of 6", raw(FrameSettings, 0, 0, []byte{0, 2, 0, 0, 0}), kindConn, ErrCodeFrameSize, 0},
		{"§6.5.2 SETTINGS_ENABLE_PUSH 2", raw(FrameSettings, 0, 0, setting(SettingEnablePush, 2)), kindConn, ErrCodeProtocol, 0},
		{"§6.5.2 SETTINGS_INITIAL_WINDOW_SIZE 2^31", raw(FrameSettings, 0, 0, setting(SettingInitialWindowSize, 1<<31)), kindConn, ErrCodeFlowControl, 0},
		{"§6.5.2 SETTINGS_MAX_FRAME_SIZE 2^14-1", raw(FrameSettings, 0, 0, setting(SettingMaxFrameSize, 1<<14-1)), kindConn, ErrCodeProtocol, 0},
		{"§6.5.2 SETTINGS_MAX_FRAME_SIZE 2^24", raw(FrameSettings, 0, 0, setting(SettingMaxFrameSize, 1<<24)), kindConn, ErrCodeProtocol, 0},
		{"§6.5.2 bad value after good ones", raw(FrameSettings, 0, 0, cat(setting(SettingMaxFrameSize, 1<<14), setting(SettingEnablePush, 7))), kindConn, ErrCodeProtocol, 0},
		{"RFC 8441 §3 SETTINGS_ENABLE_CONNECT_PROTOCOL 2", raw(FrameSettings, 0, 0, setting(SettingEnableConnectProtocol, 2)), kindConn, ErrCodeProtocol, 0},
		{"§6.6 PUSH_PROMISE on stream 0", raw(FramePushPromise, FlagPushPromiseEndHeaders, 0, u32(2)), kindConn, ErrCodeProtocol, 0},
		{"§6.6 PUSH_PROMISE length 3", raw(FramePushPromise, FlagPushPromiseEndHeaders, 1, []byte{0, 0, 2}), kindConn, ErrCodeFrameSize, 0},
		{"§6.6 PUSH_PROMISE padding longer than payload", raw(FramePushPromise, FlagPushPromiseEndHeaders|FlagPushPromisePadded, 1, cat([]byte{2}, u32(2), []byte{0x82})), kindConn, ErrCodeProtocol, 0},
		{"§6.6 PUSH_PROMISE promising stream 0", raw(FramePushPromise, FlagPushPromiseEndHeaders, 1, u32(0)), kindConn, ErrCodeProtocol, 0},
		{"§6.7 PING on a stream", raw(FramePing, 0, 1, make([]byte, 8)), kindConn, ErrCodeProtocol, 0},
		{"§6.7 PING length 7", raw(FramePing, 0, 0, make([]byte, 7)), kindConn, ErrCodeFrameSize, 0},
		{"§6.7 PING length 9", raw(FramePing, FlagPingAck, 0, make([]byte, 9)), kindConn, ErrCodeFrameSize, 0},
		{"§6.8 GOAWAY on a stream", raw(FrameGoAway, 0, 1, make([]byte, 8)), kindConn, ErrCodeProtocol, 0},
		{"§6.8 GOAWAY length 7", raw(FrameGoAway, 0, 0, make([]byte, 7)), kindConn, ErrCodeFrameSize, 0},
		{"§6.9 WINDOW_UPDATE length 3", raw(FrameWindowUpdate, 0, 0, []byte{0, 0, 1}), kindConn, ErrCodeFrameSize, 0},
		{"§6.9 WINDOW_UPDATE length 5 on a stream", raw(FrameWindowUpdate, 0, 1, []byte{0, 0, 0, 1, 0}), kindConn, ErrCodeFrameSize, 0},
		{"§6.9 WINDOW_UPDATE increment 0 on the connection", raw(FrameWindowUpdate, 0, 0, u32(0)), kindConn, ErrCodeProtocol, 0},
		{"§6.9 WINDOW_UPDATE increment 0 (reserved bit set) on a stream", raw(FrameWindowUpdate, 0, 7, u32(1<<31)), kindStream, ErrCodeProtocol, 7},
		{"§6.10 CONTINUATION without a field block", raw(FrameContinuation, FlagContinuationEndHeaders, 1, []byte{0x82}), kindConn, ErrCodeProtocol, 0},
		{"§6.10 CONTINUATION on stream 0", raw(FrameContinuation, FlagContinuationEndHeaders, 0, []byte{0x82}), kindConn, ErrCodeProtocol, 0},
		{"§6.10 CONTINUATION after a finished block", cat(raw(FrameHeaders, FlagHeadersEndHeaders, 1, []byte{0x82}), raw(FrameContinuation, FlagContinuationEndHeaders, 1, nil)), kindConn, ErrCodeProtocol, 0},
		{"§6.10 DATA inside a field block", cat(openBlock, raw(FrameData, 0, 1, nil)), kindConn, ErrCodeProtocol, 0},
		{"§6.10 PING inside a field block", cat(openBlock, ping), kindConn, ErrCodeProtocol, 0},
		{"§6.10 unknown type inside a field block", cat(openBlock, raw(0x42, 0, 1, nil)), kindConn, ErrCodeProtocol, 0},
		{"§6.10 CONTINUATION of another stream", cat(openBlock, raw(FrameContinuation, FlagContinuationEndHeaders, 3, nil)), kindConn, ErrCodeProtocol, 0},
		{"§6.10 HEADERS inside a field block", cat(openBlock, raw(FrameHeaders, FlagHeadersEndHeaders, 3, []byte{0x82})), kindConn, ErrCodeProtocol, 0},
		{"§6.10 PUSH_PROMISE block interrupted", cat(raw(FramePushPromise, 0, 1, u32(2)), ping), kindConn, ErrCodeProtocol, 0},
		{"CVE-2024-27316 too many empty CONTINUATION frames", cat(openBlock, bytes.Repeat(raw(FrameContinuation, 0, 1, nil), DefaultMaxContinuationFrames+1)), kindConn, ErrCodeEnhanceYourCalm, 0},
	}
	for _, c := range cases {
		for _, assemble := range []bool{true, false} {
			name := c.name
			if !assemble {
				name += "/raw"
			}
			t.Run(name, func(t *testing.T) {
				r := NewReader(bytes.NewReader(cat(c.in, ping)))
				r.SetAssembleHeaderBlocks(assemble)
				var err error
				var f Frame
				for range 1000 {
					if f, err = r.ReadFrame(); err != nil {
						break
					}
				}
				switch c.kind {
				case kindConn:
					var ce ConnError
					if !errors.As(err, &ce) || ce.Code != c.code {
						t.Fatalf("got %v, want connection error %v", err, c.code)
					}
					if f != nil {
						t.Fatalf("connection error returned a frame %v", f.Header())
					}
					if _, err2 := r.ReadFrame(); err2 != err {
						t.Fatalf("connection error not sticky: then %v", err2)
					}
				case kindStream:
					var se StreamError
					if !errors.As(err, &se) || se.Code != c.code || se.StreamID != c.sid {
						t.Fatalf("got %v, want stream error %v on stream %d", err, c.code, c.sid)
					}
					if f == nil || f.Header().StreamID != c.sid {
						t.Fatalf("stream error without its frame")
					}
					// The connection goes on: the PING after it reads fine.
					if f, err := r.ReadFrame(); err != nil || f.Header().Type != FramePing {
						t.Fatalf("after a stream error: %v, %v", f, err)
					}
				}
			})
		}
	}
}

func TestReader_LimitsConfigurable(t *testing.T) {
	big := raw(FrameHeaders, FlagHeadersEndHeaders, 1, make([]byte, 1000))
	r := NewReader(bytes.NewReader(big))
	r.SetMaxHeaderBlockSize(999)
	if _, err := r.ReadFrame(); !isConn(err, ErrCodeEnhanceYourCalm) {
		t.Fatalf("single-frame block over the limit: %v", err)
	}
	split := cat(raw(FrameHeaders, 0, 1, make([]byte, 600)), raw(FrameContinuation, FlagContinuationEndHeaders, 1, make([]byte, 600)))
	for _, assemble := range []bool{true, false} {
		r = NewReader(bytes.NewReader(split))
		r.SetAssembleHeaderBlocks(assemble)
		r.SetMaxHeaderBlockSize(1000)
		var err error
		for err == nil {
			_, err = r.ReadFrame()
		}
		if !isConn(err, ErrCodeEnhanceYourCalm) {
			t.Fatalf("assemble=%v: split block over the limit: %v", assemble, err)
		}
	}
	r = NewReader(bytes.NewReader(cat(raw(FrameHeaders, 0, 1, nil), raw(FrameContinuation, 0, 1, nil), raw(FrameContinuation, FlagContinuationEndHeaders, 1, nil))))
	r.SetMaxContinuationFrames(1)
	if _, err := r.ReadFrame(); !isConn(err, ErrCodeEnhanceYourCalm) {
		t.Fatalf("continuation count limit 1: %v", err)
	}
	// A larger SETTINGS_MAX_FRAME_SIZE admits a larger frame.
	r = NewReader(bytes.NewReader(raw(FrameData, 0, 1, make([]byte, 100000))))
	r.SetMaxReadFrameSize(100000)
	if f, err := r.ReadFrame(); err != nil || len(f.(*DataFrame).Data()) != 100000 {
		t.Fatalf("100000-byte frame with limit 100000: %v", err)
	}
}

func isConn(err error, code ErrCode) bool {
	var ce ConnError
	return errors.As(err, &ce) && ce.Code == code
}

// infiniteContinuations is a peer that opens a field block and then sends
// empty CONTINUATION frames forever.
type infiniteContinuations struct {
	sent  int64
	first bool
}

func (p *infiniteContinuations) Read(b []byte) (int, error) {
	var fr []byte
	if !p.first {
		p.first = true
		fr = raw(FrameHeaders, 0, 1, []byte{0x82})
	} else {
		fr = raw(FrameContinuation, 0, 1, nil)
	}
	n := copy(b, fr)
	if n < len(fr) {
		panic("test reader needs room for one frame")
	}
	p.sent += int64(n)
	return n, nil
}

// TestReader_ContinuationFlood: a peer sending a million empty
// CONTINUATION frames (x/net used to accept them all) is cut off after the
// frame-count limit, having sent a bounded number of bytes.
func TestReader_ContinuationFlood(t *testing.T) {
	for _, assemble := range []bool{true, false} {
		p := &infiniteContinuations{}
		r := NewReader(p)
		r.SetAssembleHeaderBlocks(assemble)
		var err error
		frames := 0
		for err == nil && frames < 1_000_000 {
			_, err = r.ReadFrame()
			frames++
		}
		if !isConn(err, ErrCodeEnhanceYourCalm) {
			t.Fatalf("assemble=%v: after %d frames: %v", assemble, frames, err)
		}
		if limit := int64(HeaderLen*(DefaultMaxContinuationFrames+2) + 1); p.sent > limit {
			t.Fatalf("read %d bytes before giving up, want <= %d", p.sent, limit)
		}
	}
}

func TestReader_UnknownFramesSkipped(t *testing.T) {
	in := cat(
		raw(0x42, 0xff, 0, []byte("ignored")),
		raw(0x10, 0, 1, make([]byte, DefaultMaxFrameSize)), // PRIORITY_UPDATE, not ours
		raw(FramePing, 0, 0, []byte("12345678")),
		raw(0xff, 0, 5, nil),
	)
	r := NewReader(bytes.NewReader(in))
	f, err := r.ReadFrame()
	if err != nil || f.(*PingFrame).Data != [8]byte([]byte("12345678")) {
		t.Fatalf("got %v, %v", f, err)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after trailing unknown frame: %v, want EOF", err)
	}
}

func TestReader_ReservedBitIgnored(t *testing.T) {
	b := raw(FrameData, 0, 1, []byte("x"))
	b[5] |= 0x80
	f, err := NewReader(bytes.NewReader(b)).ReadFrame()
	if err != nil || f.Header().StreamID != 1 {
		t.Fatalf("got %v, %v", f, err)
	}
}

func TestReader_Truncated(t *testing.T) {
	full := raw(FrameData, 0, 1, []byte("hello"))
	for n := 1; n < len(full); n++ {
		_, err := NewReader(bytes.NewReader(full[:n])).ReadFrame()
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("cut at %d: %v, want ErrUnexpectedEOF", n, err)
		}
	}
	// EOF inside an open field block, between frames, is unexpected too.
	r := NewReader(bytes.NewReader(raw(FrameHeaders, 0, 1, []byte{0x82})))
	r.SetAssembleHeaderBlocks(false)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("EOF in an open block: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(nil)).ReadFrame(); err != io.EOF {
		t.Fatalf("empty input: %v, want EOF", err)
	}
}

func TestReader_Preface(t *testing.T) {
	r := NewReader(strings.NewReader(ClientPreface + string(raw(FrameSettings, 0, 0, nil))))
	if err := r.ReadPreface(); err != nil {
		t.Fatal(err)
	}
	if f, err := r.ReadFrame(); err != nil || f.Header().Type != FrameSettings {
		t.Fatalf("after preface: %v %v", f, err)
	}
	r = NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if err := r.ReadPreface(); !isConn(err, ErrCodeProtocol) {
		t.Fatalf("HTTP/1.1 request as preface: %v", err)
	}
	r = NewReader(strings.NewReader(ClientPreface[:10]))
	if err := r.ReadPreface(); err != io.ErrUnexpectedEOF {
		t.Fatalf("short preface: %v", err)
	}
}

// TestReader_StaleUse: a frame used after the next read panics, and with
// debug poison a payload slice kept too long no longer holds the payload.
func TestReader_StaleUse(t *testing.T) {
	in := cat(raw(FrameData, 0, 1, []byte("first payload")), raw(FrameGoAway, 0, 0, cat(u32(1), u32(0), []byte("dbg"))),
		raw(FrameData, 0, 1, make([]byte, 1000)), raw(FramePing, 0, 0, make([]byte, 8)))
	r := NewReader(bytes.NewReader(in))
	r.SetDebugPoison(true)
	f, _ := r.ReadFrame()
	df := f.(*DataFrame)
	kept := df.Data()
	if string(kept) != "first payload" {
		t.Fatal(string(kept))
	}
	g, _ := r.ReadFrame()
	if string(kept) == "first payload" {
		t.Fatal("payload slice kept past the next read still reads as the payload under poison")
	}
	mustPanic(t, "DataFrame.Data after next read", func() { df.Data() })
	ga := g.(*GoAwayFrame)
	debug := ga.DebugData()
	r.Release()
	mustPanic(t, "GoAwayFrame.DebugData after Release", func() { ga.DebugData() })
	if string(debug) == "dbg" {
		t.Fatal("debug data slice kept past Release still reads as before under poison")
	}
	// The big frame lives in a pooled buffer; it is poisoned too.
	f, _ = r.ReadFrame()
	big := f.(*DataFrame).Data()
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if big[0] != poisonByte {
		t.Fatal("pooled payload not poisoned after next read")
	}
	// Header() stays readable: it is a copy.
	if ga.Header().Type != FrameGoAway {
		t.Fatal("Header after invalidation")
	}
}

func TestReader_StaleAssembledBlock(t *testing.T) {
	in := cat(raw(FrameHeaders, 0, 1, []byte("abc")), raw(FrameContinuation, FlagContinuationEndHeaders, 1, []byte("def")), raw(FramePing, 0, 0, make([]byte, 8)))
	r := NewReader(bytes.NewReader(in))
	r.SetDebugPoison(true)
	f, _ := r.ReadFrame()
	hf := f.(*HeadersFrame)
	blk := hf.BlockFragment()
	if string(blk) != "abcdef" {
		t.Fatal(string(blk))
	}
	r.ReadFrame()
	mustPanic(t, "BlockFragment after next read", func() { hf.BlockFragment() })
	if string(blk) == "abcdef" {
		t.Fatal("assembled block kept past the next read not poisoned")
	}
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s: no panic", what)
		}
	}()
	fn()
}

// TestReader_IdleHoldsNoPoolBuffer: once every read byte is consumed, the
// Reader gives its pooled buffer back.
func TestReader_IdleHoldsNoPoolBuffer(t *testing.T) {
	r := NewReader(bytes.NewReader(raw(FrameData, 0, 1, make([]byte, 10000))))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.pb == nil {
		t.Fatal("a 10000-byte frame should come through a pooled buffer")
	}
	r.Release()
	if r.pb == nil {
		t.Fatal("pooled buffer given back between big frames")
	}
	r.ReleaseAll()
	if r.pb != nil {
		t.Fatal("pooled buffer held after ReleaseAll")
	}
	// After a small frame, a drained Reader holds nothing.
	r = NewReader(bytes.NewReader(cat(raw(FrameData, 0, 1, make([]byte, 10000)), raw(FramePing, 0, 0, make([]byte, 8)))))
	for range 2 {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	r.Release()
	if r.pb != nil {
		t.Fatal("pooled buffer held while idle after a small frame")
	}
}

func TestSettingsFrame_Value(t *testing.T) {
	in := raw(FrameSettings, 0, 0, cat(setting(SettingMaxFrameSize, 20000), setting(0x99, 1), setting(SettingMaxFrameSize, 30000)))
	f, err := NewReader(bytes.NewReader(in)).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf := f.(*SettingsFrame)
	if v, ok := sf.Value(SettingMaxFrameSize); !ok || v != 30000 {
		t.Fatalf("Value = %d, %v; the last occurrence wins", v, ok)
	}
	if _, ok := sf.Value(SettingEnablePush); ok {
		t.Fatal("absent setting reported")
	}
	if sf.NumSettings() != 3 || sf.Setting(1).ID != 0x99 {
		t.Fatal("unknown setting not kept in order")
	}
}

// readSizes records the room each Read is given.
type readSizes struct {
	src   io.Reader
	rooms []int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.rooms = append(r.rooms, len(p))
	return r.src.Read(p)
}

// TestReader_KeepBuffer: a busy Reader (KeepBuffer) reads small frames
// through a pooled buffer, in reads as big as it, and keeps it when
// drained; an idle one reads them through its small inline buffer.
func TestReader_KeepBuffer(t *testing.T) {
	var stream []byte
	for i := range 40 {
		stream = append(stream, raw(FrameHeaders, FlagHeadersEndHeaders, uint32(2*i+1), make([]byte, 30))...)
	}
	for _, keep := range []bool{false, true} {
		src := &readSizes{src: bytes.NewReader(stream)}
		r := NewReader(src)
		r.KeepBuffer(keep)
		for range 40 {
			if _, err := r.ReadFrame(); err != nil {
				t.Fatal(err)
			}
		}
		r.Release()
		if keep {
			if r.pb == nil {
				t.Error("busy: the drained pooled buffer was given back")
			}
			if src.rooms[0] < minPooled {
				t.Errorf("busy: the first read had room for %d bytes, want a pooled buffer's %d", src.rooms[0], minPooled)
			}
			if len(src.rooms) != 1 {
				t.Errorf("busy: %d reads for %d bytes, want 1", len(src.rooms), len(stream))
			}
			r.KeepBuffer(false)
			r.Release()
			if r.pb != nil {
				t.Error("no longer busy: the drained pooled buffer is still held")
			}
		} else {
			if r.pb != nil {
				t.Error("idle: a pooled buffer is held after small frames")
			}
			if src.rooms[0] > inlineSize {
				t.Errorf("idle: the first read had room for %d bytes, want the inline buffer's %d", src.rooms[0], inlineSize)
			}
		}
	}
}
