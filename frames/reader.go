package frames

import (
	"encoding/binary"
	"io"
	"sync/atomic"

	"github.com/culvert-tunnel/culvert/bufpool"
)

const (
	// inlineSize is the Reader's own small buffer. While no bytes are
	// pending the Reader holds no pooled buffer and reads into this one, so
	// an idle connection pins no pool memory, and small frames (SETTINGS,
	// PING, WINDOW_UPDATE, most HEADERS of a warm HPACK table) never touch
	// the pool.
	inlineSize = 256

	// minPooled is the smallest pooled buffer the Reader takes when a frame
	// does not fit inline: two default-size frames.
	minPooled = 32 << 10

	// bulkPooled is the buffer size while big frames keep coming (bulk
	// DATA). A read fills whatever room the buffer has, so the bigger it
	// is, the fewer read calls per byte; a frame straddling the end is
	// moved to the front (compaction), which copies at most one partial
	// frame per buffer-full: under 7% of the bytes for 16 KiB frames.
	bulkPooled = 256 << 10

	// DefaultMaxHeaderBlockSize bounds an assembled field block (HEADERS or
	// PUSH_PROMISE plus CONTINUATION frames), compressed bytes.
	DefaultMaxHeaderBlockSize = 1 << 20
	// DefaultMaxContinuationFrames bounds the CONTINUATION frames of one
	// field block, whatever their size: empty CONTINUATION frames cost the
	// receiver work but add no bytes (CVE-2024-27316, CVE-2023-45288).
	DefaultMaxContinuationFrames = 128

	poisonByte = 0xA5
)

// Reader reads and validates HTTP/2 frames from an io.Reader.
//
// A Reader is not safe for concurrent use. Frames it returns, and the byte
// slices they give out, are valid until the next ReadFrame, ReadPreface or
// Release call (see the package doc).
type Reader struct {
	src io.Reader

	// Read buffer: buf is inline[:] or pb.B; bytes [rpos, wpos) are unread.
	// While pb is shared (RetainData), bytes before wpos may belong to
	// other holders: the Reader moves to a fresh buffer instead of reusing
	// them.
	buf        []byte
	pb         *bufpool.Buf
	rpos, wpos int

	shareLimit int32        // pooled buffers that may be shared out at once
	sharedOut  atomic.Int32 // buffers shared out and not yet back in the pool
	dataOff    int          // offset in buf of the last DATA frame's data

	maxFrameSize     uint32
	maxBlockSize     uint32
	maxContinuations int
	assemble         bool
	poison           bool

	// Open field block: set while a HEADERS or PUSH_PROMISE frame without
	// END_HEADERS waits for its CONTINUATION frames (§6.10).
	contStream uint32
	contFrames int
	contBytes  uint32
	blk        *bufpool.Buf // assembled block bytes, released on the next read

	last *frameBase // frame handed out last, invalidated on the next read
	// lastBig: the last frame read did not fit the inline buffer. While
	// frames are big the pooled buffer is kept even when drained, so bulk
	// DATA does not take and return it per frame.
	lastBig bool
	keep    bool  // KeepBuffer
	err     error // sticky: an I/O error or a ConnError

	data         DataFrame
	headers      HeadersFrame
	priority     PriorityFrame
	rst          RSTStreamFrame
	settings     SettingsFrame
	pushPromise  PushPromiseFrame
	ping         PingFrame
	goAway       GoAwayFrame
	windowUpdate WindowUpdateFrame
	continuation ContinuationFrame

	inline [inlineSize]byte
}

// NewReader returns a Reader with SETTINGS_MAX_FRAME_SIZE at its initial
// 16384, header-block assembly on and the default header block limits.
func NewReader(src io.Reader) *Reader {
	r := &Reader{
		src:              src,
		maxFrameSize:     DefaultMaxFrameSize,
		maxBlockSize:     DefaultMaxHeaderBlockSize,
		maxContinuations: DefaultMaxContinuationFrames,
		assemble:         true,
	}
	r.buf = r.inline[:]
	return r
}

// SetMaxReadFrameSize sets the largest payload accepted, normally the
// SETTINGS_MAX_FRAME_SIZE this side advertised (and the peer acknowledged).
// Values are clamped to [16384, 2^24-1].
func (r *Reader) SetMaxReadFrameSize(n uint32) {
	r.maxFrameSize = min(max(n, MinMaxFrameSize), MaxMaxFrameSize)
}

// SetMaxHeaderBlockSize bounds the compressed size of one field block across
// its HEADERS/PUSH_PROMISE and CONTINUATION frames. Exceeding it is a
// connection error (ENHANCE_YOUR_CALM): a block that cannot be decoded cannot
// be skipped either, since HPACK state would diverge (§4.3).
func (r *Reader) SetMaxHeaderBlockSize(n uint32) { r.maxBlockSize = n }

// SetMaxContinuationFrames bounds the number of CONTINUATION frames in one
// field block. Exceeding it is a connection error (ENHANCE_YOUR_CALM).
func (r *Reader) SetMaxContinuationFrames(n int) { r.maxContinuations = n }

// SetAssembleHeaderBlocks chooses whether ReadFrame joins a HEADERS or
// PUSH_PROMISE frame with its CONTINUATION frames into one frame carrying the
// whole block (on, the default) or returns each frame as read (off). The
// CONTINUATION sequence rules and limits apply either way.
func (r *Reader) SetAssembleHeaderBlocks(on bool) { r.assemble = on }

// SetDebugPoison makes the Reader overwrite the bytes of a frame when the
// frame is released, so a slice kept past its lifetime reads as 0xA5 bytes
// instead of plausible data. For tests; it costs a memset per frame.
func (r *Reader) SetDebugPoison(on bool) { r.poison = on }

// SetShareLimit lets RetainData hand out references to at most n of the
// Reader's pooled buffers at a time (0, the default: it never does). Each
// is at most 256 KiB, so n bounds the memory that slow holders pin.
func (r *Reader) SetShareLimit(n int) { r.shareLimit = int32(max(n, 0)) }

// SharedBuffers reports how many of the Reader's buffers are shared out
// now (RetainData) and not yet back in the pool.
func (r *Reader) SharedBuffers() int { return int(r.sharedOut.Load()) }

// RetainData gives the caller the payload of the DATA frame returned last
// without copying it: the data is ref.B[start:end], and the caller owns a
// reference to ref (bufpool.Put drops it). The Reader never writes those
// bytes again, so they stay valid after the next ReadFrame, until the Put.
// ok is false when the data is not in a pooled buffer (small frames are
// read into the Reader's own one), the frame is not the last one returned,
// or the share limit is reached; the caller copies the data then.
func (r *Reader) RetainData() (ref *bufpool.Buf, start, end int, ok bool) {
	if r.pb == nil || r.last != &r.data.frameBase || !r.data.valid {
		return nil, 0, 0, false
	}
	if !r.pb.Tracked() {
		if r.sharedOut.Load() >= r.shareLimit {
			return nil, 0, 0, false
		}
		r.pb.Track(&r.sharedOut)
	}
	return r.pb.Share(), r.dataOff, r.dataOff + len(r.data.data), true
}

// Buffered reports how many bytes are read from the source but not yet
// returned as frames: when it is at least HeaderLen, the next ReadFrame may
// complete without blocking.
func (r *Reader) Buffered() int { return r.wpos - r.rpos }

// Partial reports whether the Reader is in the middle of something: bytes
// of an incomplete frame are buffered, or a field block awaits its
// CONTINUATION frames. A connection uses it to tell a slow peer (partial
// frame: a short deadline) from an idle one.
func (r *Reader) Partial() bool { return r.wpos > r.rpos || r.contStream != 0 }

// Release ends the lifetime of the last frame returned and gives back pooled
// memory that holds no pending bytes, unless the last frame was too big for
// the inline buffer (bulk data keeps its buffer between frames). ReadFrame
// calls it first. An idle connection therefore holds a pooled buffer at most
// until its next small frame (a heartbeat PING, say), or until
// ReleaseAll.
func (r *Reader) Release() {
	r.release(r.lastBig || r.keep)
}

// KeepBuffer says whether the Reader reads into a pooled buffer and keeps
// it when drained (true: the connection is busy, more frames are coming
// soon) or reads into its inline buffer when it can and gives a drained
// pooled one back (false, the default: an idle connection pins no pool
// memory). Reading into the small inline buffer would cut a busy
// connection's reads into 256-byte pieces: more read calls, and a TLS
// record's frames split over several of them.
func (r *Reader) KeepBuffer(keep bool) { r.keep = keep }

// ReleaseAll is Release that also gives back a drained buffer after big
// frames: for a caller that knows the connection is going quiet.
func (r *Reader) ReleaseAll() { r.release(false) }

func (r *Reader) release(keep bool) {
	if r.last != nil {
		r.last.valid = false
		r.last = nil
	}
	if r.blk != nil {
		if r.poison {
			memset(r.blk.B, poisonByte)
		}
		bufpool.Put(r.blk)
		r.blk = nil
	}
	shared := r.pb != nil && r.pb.Shared()
	if r.poison && !shared {
		memset(r.buf[:r.rpos], poisonByte)
	}
	if r.rpos == r.wpos {
		r.rpos, r.wpos = 0, 0
		switch {
		case r.pb != nil && !keep:
			bufpool.Put(r.pb)
			r.pb = nil
			r.buf = r.inline[:]
		case shared:
			// Its bytes are held elsewhere: read on into a fresh one.
			size := len(r.pb.B)
			bufpool.Put(r.pb)
			r.pb = bufpool.Get(size)
			r.buf = r.pb.B
		}
	}
}

// ReadPreface reads the 24-byte client connection preface (§3.4) through
// the Reader's buffer. A mismatch is a PROTOCOL_ERROR connection error.
func (r *Reader) ReadPreface() error {
	if r.err != nil {
		return r.err
	}
	r.Release()
	if err := r.fill(len(ClientPreface)); err != nil {
		r.err = err
		return err
	}
	if string(r.buf[r.rpos:r.rpos+len(ClientPreface)]) != ClientPreface {
		r.err = ConnError{ErrCodeProtocol, "invalid client connection preface"}
		return r.err
	}
	r.rpos += len(ClientPreface)
	return nil
}

// ReadFrame reads the next frame, skipping frames of unknown type (§4.1,
// §5.5). It returns one of the frame types listed at Frame; the frame and
// its slices are valid until the next ReadFrame or Release.
//
// Errors: a ConnError or an I/O error is sticky (every later call returns
// it). A StreamError is returned together with the frame that caused it, so
// the caller can still feed a field block to HPACK (§4.3) before resetting
// the stream; reading may continue.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.Release()
	for {
		fh, p, err := r.next()
		if err != nil {
			r.err = err
			return nil, err
		}
		f, err := r.parse(fh, p)
		if err != nil {
			if _, ok := err.(StreamError); !ok {
				r.err = err
				return nil, err
			}
		}
		if f == nil {
			continue // unknown frame type: ignored
		}
		b := f.base()
		b.valid = true
		r.last = b
		return f, err
	}
}

// next reads one frame header and its payload. The payload aliases r.buf.
func (r *Reader) next() (FrameHeader, []byte, error) {
	if err := r.fill(HeaderLen); err != nil {
		return FrameHeader{}, nil, err
	}
	fh := ParseHeader(r.buf[r.rpos:])
	// §4.2: a frame larger than SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR.
	// We treat it as a connection error for every type: the alternative
	// (reading and dropping megabytes for a stream error) helps nobody.
	if fh.Length > r.maxFrameSize {
		return fh, nil, ConnError{ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE"}
	}
	n := HeaderLen + int(fh.Length)
	if err := r.fill(n); err != nil {
		return fh, nil, err
	}
	p := r.buf[r.rpos+HeaderLen : r.rpos+n]
	r.dataOff = r.rpos + HeaderLen
	r.rpos += n
	r.lastBig = n > inlineSize
	return fh, p, nil
}

// fill makes at least n unread bytes available in r.buf, moving or growing
// the buffer as needed, and reads as much more as the buffer has room for.
// It must only be called when no frame is live.
func (r *Reader) fill(n int) error {
	for r.wpos-r.rpos < n {
		if r.rpos+n > len(r.buf) || (r.keep && r.pb == nil) {
			r.makeRoom(n)
		}
		end := len(r.buf)
		m, err := r.src.Read(r.buf[r.wpos:end])
		if m < 0 || m > end-r.wpos {
			return io.ErrNoProgress // a broken io.Reader; do not trust it
		}
		r.wpos += m
		if err != nil {
			if r.wpos-r.rpos >= n {
				return nil
			}
			if err == io.EOF && (r.wpos > r.rpos || r.contStream != 0) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// makeRoom arranges for n bytes from r.rpos to fit in r.buf: it moves the
// pending bytes to the front, or into a bigger pooled buffer when n does
// not fit or big frames keep coming.
func (r *Reader) makeRoom(n int) {
	pending := r.buf[r.rpos:r.wpos]
	want := max(n, minPooled)
	if r.lastBig {
		want = max(n, bulkPooled)
	}
	shared := r.pb != nil && r.pb.Shared()
	if n <= len(r.buf) && (r.pb == nil || len(r.buf) >= want) && !shared && !(r.keep && r.pb == nil) {
		copy(r.buf, pending)
	} else {
		pb := bufpool.Get(want)
		copy(pb.B, pending)
		if r.pb != nil {
			if r.poison && !shared {
				memset(r.pb.B, poisonByte)
			}
			bufpool.Put(r.pb)
		}
		r.pb = pb
		r.buf = pb.B
	}
	r.rpos, r.wpos = 0, len(pending)
}

func (r *Reader) parse(fh FrameHeader, p []byte) (Frame, error) {
	// §6.10: a field block is a contiguous sequence: only CONTINUATION
	// frames of the same stream may follow an open HEADERS/PUSH_PROMISE.
	if r.contStream != 0 && (fh.Type != FrameContinuation || fh.StreamID != r.contStream) {
		return nil, ConnError{ErrCodeProtocol, "expected CONTINUATION of the open field block"}
	}
	switch fh.Type {
	case FrameData:
		return r.parseData(fh, p)
	case FrameHeaders:
		return r.parseHeaders(fh, p)
	case FramePriority:
		return r.parsePriority(fh, p)
	case FrameRSTStream:
		return r.parseRSTStream(fh, p)
	case FrameSettings:
		return r.parseSettings(fh, p)
	case FramePushPromise:
		return r.parsePushPromise(fh, p)
	case FramePing:
		return r.parsePing(fh, p)
	case FrameGoAway:
		return r.parseGoAway(fh, p)
	case FrameWindowUpdate:
		return r.parseWindowUpdate(fh, p)
	case FrameContinuation:
		return r.parseContinuation(fh, p)
	}
	return nil, nil
}

// unpad strips the Pad Length byte and the padding (§6.1, §6.2, §6.6).
func unpad(p []byte, fixed int, what string) ([]byte, error) {
	if len(p) < 1+fixed {
		return nil, ConnError{ErrCodeFrameSize, what + " too short for its padding and fixed fields"}
	}
	pad := int(p[0])
	p = p[1:]
	// "If the length of the padding is the length of the frame payload or
	// greater, the recipient MUST treat this as a connection error of type
	// PROTOCOL_ERROR."
	if pad > len(p)-fixed {
		return nil, ConnError{ErrCodeProtocol, what + " padding longer than the payload"}
	}
	return p[:len(p)-pad], nil
}

func (r *Reader) parseData(fh FrameHeader, p []byte) (Frame, error) {
	// "If a DATA frame is received whose Stream Identifier field is 0x00,
	// the recipient MUST respond with a connection error of type
	// PROTOCOL_ERROR."
	if fh.StreamID == 0 {
		return nil, ConnError{ErrCodeProtocol, "DATA on stream 0"}
	}
	if fh.Flags.Has(FlagDataPadded) {
		var err error
		if p, err = unpad(p, 0, "DATA"); err != nil {
			return nil, err
		}
		r.dataOff++ // the Pad Length byte
	}
	f := &r.data
	f.FrameHeader, f.data = fh, p
	return f, nil
}

func parsePriorityParam(b []byte) PriorityParam {
	v := binary.BigEndian.Uint32(b)
	return PriorityParam{StreamDep: v & maxStreamID, Exclusive: v>>31 == 1, Weight: b[4]}
}

func (r *Reader) parseHeaders(fh FrameHeader, p []byte) (Frame, error) {
	if fh.StreamID == 0 {
		return nil, ConnError{ErrCodeProtocol, "HEADERS on stream 0"}
	}
	f := &r.headers
	f.FrameHeader, f.HasPriority, f.Priority = fh, false, PriorityParam{}
	fixed := 0
	if fh.Flags.Has(FlagHeadersPriority) {
		fixed = 5
	}
	if fh.Flags.Has(FlagHeadersPadded) {
		var err error
		if p, err = unpad(p, fixed, "HEADERS"); err != nil {
			return nil, err
		}
	} else if len(p) < fixed {
		return nil, ConnError{ErrCodeFrameSize, "HEADERS too short for its priority fields"}
	}
	var serr error
	if fixed != 0 {
		f.HasPriority, f.Priority = true, parsePriorityParam(p)
		p = p[5:]
		// §5.3.1: "A stream cannot depend on itself. An endpoint MUST
		// treat this as a stream error of type PROTOCOL_ERROR."
		if f.Priority.StreamDep == fh.StreamID {
			serr = StreamError{fh.StreamID, ErrCodeProtocol, "HEADERS stream depends on itself"}
		}
	}
	block, err := r.openBlock(fh, p, fh.Flags.Has(FlagHeadersEndHeaders))
	if err != nil {
		return nil, err
	}
	f.block = block
	if r.assemble {
		f.Flags |= FlagHeadersEndHeaders
	}
	return f, serr
}

func (r *Reader) parsePushPromise(fh FrameHeader, p []byte) (Frame, error) {
	if fh.StreamID == 0 {
		return nil, ConnError{ErrCodeProtocol, "PUSH_PROMISE on stream 0"}
	}
	if fh.Flags.Has(FlagPushPromisePadded) {
		var err error
		if p, err = unpad(p, 4, "PUSH_PROMISE"); err != nil {
			return nil, err
		}
	} else if len(p) < 4 {
		return nil, ConnError{ErrCodeFrameSize, "PUSH_PROMISE too short for the promised stream id"}
	}
	f := &r.pushPromise
	f.FrameHeader = fh
	f.PromiseID = binary.BigEndian.Uint32(p) & maxStreamID
	if f.PromiseID == 0 {
		return nil, ConnError{ErrCodeProtocol, "PUSH_PROMISE promises stream 0"}
	}
	block, err := r.openBlock(fh, p[4:], fh.Flags.Has(FlagPushPromiseEndHeaders))
	if err != nil {
		return nil, err
	}
	f.block = block
	if r.assemble {
		f.Flags |= FlagPushPromiseEndHeaders
	}
	return f, nil
}

// openBlock starts a field block with its first fragment. With assembly on
// it reads the CONTINUATION frames too and returns the whole block.
func (r *Reader) openBlock(fh FrameHeader, frag []byte, ended bool) ([]byte, error) {
	if uint32(len(frag)) > r.maxBlockSize {
		return nil, ConnError{ErrCodeEnhanceYourCalm, "field block larger than the limit"}
	}
	if ended {
		return frag, nil
	}
	r.contStream, r.contFrames, r.contBytes = fh.StreamID, 0, uint32(len(frag))
	if !r.assemble {
		return frag, nil
	}
	// The fragment aliases r.buf, which the next read may move: copy.
	blk := bufpool.Get(max(2*len(frag), 4096))
	n := copy(blk.B, frag)
	r.blk = blk
	for r.contStream != 0 {
		cfh, p, err := r.next()
		if err != nil {
			return nil, err
		}
		if cfh.Type != FrameContinuation || cfh.StreamID != r.contStream {
			return nil, ConnError{ErrCodeProtocol, "expected CONTINUATION of the open field block"}
		}
		if err := r.countContinuation(cfh, p); err != nil {
			return nil, err
		}
		if n+len(p) > len(r.blk.B) {
			nb := bufpool.Get(max(2*(n+len(p)), 4096))
			copy(nb.B, r.blk.B[:n])
			bufpool.Put(r.blk)
			r.blk = nb
		}
		n += copy(r.blk.B[n:], p)
	}
	return r.blk.B[:n], nil
}

// countContinuation applies the sequence limits to one CONTINUATION frame
// and closes the block when it carries END_HEADERS.
func (r *Reader) countContinuation(fh FrameHeader, p []byte) error {
	r.contFrames++
	r.contBytes += uint32(len(p)) // cannot wrap: bounded by maxBlockSize below
	if r.contFrames > r.maxContinuations {
		return ConnError{ErrCodeEnhanceYourCalm, "too many CONTINUATION frames in one field block"}
	}
	if r.contBytes > r.maxBlockSize {
		return ConnError{ErrCodeEnhanceYourCalm, "field block larger than the limit"}
	}
	if fh.Flags.Has(FlagContinuationEndHeaders) {
		r.contStream = 0
	}
	return nil
}

func (r *Reader) parseContinuation(fh FrameHeader, p []byte) (Frame, error) {
	// The stream matches any open block (checked in parse); with no open
	// block a CONTINUATION is a PROTOCOL_ERROR (§6.10).
	if r.contStream == 0 {
		return nil, ConnError{ErrCodeProtocol, "CONTINUATION without an open field block"}
	}
	if err := r.countContinuation(fh, p); err != nil {
		return nil, err
	}
	f := &r.continuation
	f.FrameHeader, f.block = fh, p
	return f, nil
}

func (r *Reader) parsePriority(fh FrameHeader, p []byte) (Frame, error) {
	if fh.StreamID == 0 {
		return nil, ConnError{ErrCodeProtocol, "PRIORITY on stream 0"}
	}
	// §6.3: "A PRIORITY frame with a length other than 5 octets MUST be
	// treated as a stream error of type FRAME_SIZE_ERROR."
	if len(p) != 5 {
		f := &r.priority
		f.FrameHeader, f.PriorityParam = fh, PriorityParam{}
		return f, StreamError{fh.StreamID, ErrCodeFrameSize, "PRIORITY length not 5"}
	}
	f := &r.priority
	f.FrameHeader, f.PriorityParam = fh, parsePriorityParam(p)
	if f.StreamDep == fh.StreamID {
		return f, StreamError{fh.StreamID, ErrCodeProtocol, "PRIORITY stream depends on itself"}
	}
	return f, nil
}

func (r *Reader) parseRSTStream(fh FrameHeader, p []byte) (Frame, error) {
	if len(p) != 4 {
		return nil, ConnError{ErrCodeFrameSize, "RST_STREAM length not 4"}
	}
	if fh.StreamID == 0 {
		return nil, ConnError{ErrCodeProtocol, "RST_STREAM on stream 0"}
	}
	f := &r.rst
	f.FrameHeader, f.ErrCode = fh, ErrCode(binary.BigEndian.Uint32(p))
	return f, nil
}

func (r *Reader) parseSettings(fh FrameHeader, p []byte) (Frame, error) {
	if fh.StreamID != 0 {
		return nil, ConnError{ErrCodeProtocol, "SETTINGS on a stream"}
	}
	if fh.Flags.Has(FlagSettingsAck) && len(p) != 0 {
		return nil, ConnError{ErrCodeFrameSize, "SETTINGS ACK with a payload"}
	}
	if len(p)%6 != 0 {
		return nil, ConnError{ErrCodeFrameSize, "SETTINGS length not a multiple of 6"}
	}
	f := &r.settings
	f.FrameHeader, f.p = fh, p
	for i := 0; i < len(p); i += 6 {
		s := Setting{ID: SettingID(binary.BigEndian.Uint16(p[i:])), Val: binary.BigEndian.Uint32(p[i+2:])}
		if err := s.Valid(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (r *Reader) parsePing(fh FrameHeader, p []byte) (Frame, error) {
	if len(p) != 8 {
		return nil, ConnError{ErrCodeFrameSize, "PING length not 8"}
	}
	if fh.StreamID != 0 {
		return nil, ConnError{ErrCodeProtocol, "PING on a stream"}
	}
	f := &r.ping
	f.FrameHeader = fh
	copy(f.Data[:], p)
	return f, nil
}

func (r *Reader) parseGoAway(fh FrameHeader, p []byte) (Frame, error) {
	if fh.StreamID != 0 {
		return nil, ConnError{ErrCodeProtocol, "GOAWAY on a stream"}
	}
	if len(p) < 8 {
		return nil, ConnError{ErrCodeFrameSize, "GOAWAY shorter than 8 bytes"}
	}
	f := &r.goAway
	f.FrameHeader = fh
	f.LastStreamID = binary.BigEndian.Uint32(p) & maxStreamID
	f.ErrCode = ErrCode(binary.BigEndian.Uint32(p[4:]))
	f.debug = p[8:]
	return f, nil
}

func (r *Reader) parseWindowUpdate(fh FrameHeader, p []byte) (Frame, error) {
	if len(p) != 4 {
		return nil, ConnError{ErrCodeFrameSize, "WINDOW_UPDATE length not 4"}
	}
	f := &r.windowUpdate
	f.FrameHeader = fh
	f.Increment = binary.BigEndian.Uint32(p) & maxStreamID
	// §6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with
	// a flow-control window increment of 0 as a stream error of type
	// PROTOCOL_ERROR; errors on the connection flow-control window MUST be
	// treated as a connection error."
	if f.Increment == 0 {
		if fh.StreamID == 0 {
			return nil, ConnError{ErrCodeProtocol, "WINDOW_UPDATE with increment 0 on the connection"}
		}
		return f, StreamError{fh.StreamID, ErrCodeProtocol, "WINDOW_UPDATE with increment 0"}
	}
	return f, nil
}

func memset(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
