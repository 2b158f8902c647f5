package frames

import (
	"encoding/binary"
	"io"
	"net"

	"github.com/culvert-tunnel/culvert/bufpool"
)

const (
	// firstBatch is the first pooled buffer a Writer takes: a full default
	// DATA frame fits.
	firstBatch = DefaultMaxFrameSize + HeaderLen
	// DefaultMaxBatch is the size past which the Writer flushes on its own
	// before appending another frame.
	DefaultMaxBatch = 256 << 10
	// copyBelow: a reserved-header DATA frame smaller than this is copied
	// into the batch instead of being queued as its own write vector.
	copyBelow = 1 << 10
)

// Writer builds frames into a reused batch buffer and writes each batch with
// one Write (or one vectored write when zero-copy DATA frames are queued).
//
// Frames are appended by the Write* methods and reach the io.Writer on Flush,
// or earlier when the batch passes its size limit. A Writer is not safe for
// concurrent use: the engine gives it to one writer goroutine. A write error
// is sticky. The batch buffer is pooled: the Writer takes it at the first
// frame and keeps it across Flushes until Release, which the writer
// goroutine calls when it has nothing more to send, so an idle connection
// pins no buffer.
//
// The Write* methods check their arguments against RFC 9113 and return an
// error without writing anything for a frame that would be illegal (a bug of
// the caller, never of the peer). WriteRawFrame writes anything.
type Writer struct {
	dst      io.Writer
	vectored bool // dst does writev (net.Buffers) natively

	pb   *bufpool.Buf // pending batch bytes [0, n); nil when idle
	n    int
	segs []segment // zero-copy frames to interleave with the batch bytes
	iov  net.Buffers

	maxFrameSize uint32 // the peer's SETTINGS_MAX_FRAME_SIZE
	maxBatch     int
	err          error
}

// segment says: after batch bytes [.., at), write ext.
type segment struct {
	at  int
	ext []byte
}

// VectoredWriter is a destination that writes several buffers with one
// call (writev), as *net.TCPConn does. A wrapper around a connection that
// adds nothing on the write side implements it (b.WriteTo on the wrapped
// connection) so that zero-copy DATA frames stay zero-copy.
type VectoredWriter interface {
	WriteBuffers(b *net.Buffers) (int64, error)
}

// NewWriter returns a Writer for dst with the peer's SETTINGS_MAX_FRAME_SIZE
// at its initial 16384.
func NewWriter(dst io.Writer) *Writer {
	w := &Writer{dst: dst, maxFrameSize: DefaultMaxFrameSize, maxBatch: DefaultMaxBatch}
	switch dst.(type) {
	case *net.TCPConn, *net.UnixConn, VectoredWriter:
		w.vectored = true
	}
	return w
}

// SetMaxFrameSize records the peer's SETTINGS_MAX_FRAME_SIZE: no frame
// longer than it is written, and WriteHeaderBlock splits blocks by it.
func (w *Writer) SetMaxFrameSize(n uint32) {
	w.maxFrameSize = min(max(n, MinMaxFrameSize), MaxMaxFrameSize)
}

// MaxFrameSize returns the payload limit in force.
func (w *Writer) MaxFrameSize() uint32 { return w.maxFrameSize }

// SetMaxBatch sets the pending size past which the Writer flushes by itself.
func (w *Writer) SetMaxBatch(n int) { w.maxBatch = max(n, firstBatch) }

// Vectored reports whether zero-copy DATA frames reach the destination
// without a copy (it supports vectored writes). When it does not (TLS),
// WriteDataReserved copies like WriteData.
func (w *Writer) Vectored() bool { return w.vectored }

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int {
	n := w.n
	for _, s := range w.segs {
		n += len(s.ext)
	}
	return n
}

// Err returns the sticky write error, if any.
func (w *Writer) Err() error { return w.err }

// Flush writes everything pending with one Write, or one vectored write if
// zero-copy frames are queued. It keeps the batch buffer for the next
// batch; see Release.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.n == 0 && len(w.segs) == 0 {
		return nil
	}
	var err error
	if len(w.segs) == 0 {
		_, err = w.dst.Write(w.pb.B[:w.n])
	} else {
		iov, prev := w.iov[:0], 0
		for _, s := range w.segs {
			if s.at > prev {
				iov = append(iov, w.pb.B[prev:s.at])
			}
			iov = append(iov, s.ext)
			prev = s.at
		}
		if w.n > prev {
			iov = append(iov, w.pb.B[prev:w.n])
		}
		w.iov = iov
		// WriteTo consumes the slice header it is called on; w.iov keeps
		// the backing array for the next flush.
		tmp := &w.iov
		saved := *tmp
		if vw, ok := w.dst.(VectoredWriter); ok {
			_, err = vw.WriteBuffers(tmp)
		} else {
			_, err = tmp.WriteTo(w.dst)
		}
		w.iov = saved[:0]
		clear(w.segs)
		w.segs = w.segs[:0]
	}
	w.n = 0
	if err != nil {
		w.err = err
		w.Release()
	}
	return err
}

// Release flushes and gives the batch buffer back to its pool. Call it
// when the connection goes quiet; the next frame takes a buffer again.
func (w *Writer) Release() error {
	err := w.Flush()
	if w.pb != nil && w.n == 0 {
		bufpool.Put(w.pb)
		w.pb = nil
	}
	return err
}

// alloc reserves n bytes at the end of the batch and returns them.
func (w *Writer) alloc(n int) ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	need := w.n + n
	if w.pb == nil {
		w.pb = bufpool.Get(max(n, firstBatch))
	} else if need > len(w.pb.B) {
		if w.n > 0 && need > w.maxBatch {
			if err := w.Flush(); err != nil {
				return nil, err
			}
			return w.alloc(n)
		}
		nb := bufpool.Get(max(need, 2*len(w.pb.B)))
		copy(nb.B, w.pb.B[:w.n])
		bufpool.Put(w.pb)
		w.pb = nb
	}
	b := w.pb.B[w.n:need]
	w.n = need
	return b, nil
}

// frame reserves a frame of the given payload length, writes its header and
// returns the payload space to fill.
func (w *Writer) frame(t FrameType, fl Flags, sid uint32, length int) ([]byte, error) {
	if uint32(length) > w.maxFrameSize {
		return nil, ErrFrameTooLarge
	}
	b, err := w.alloc(HeaderLen + length)
	if err != nil {
		return nil, err
	}
	PutHeader(b, FrameHeader{Length: uint32(length), Type: t, Flags: fl, StreamID: sid})
	return b[HeaderLen:], nil
}

func validStream(id uint32) bool { return id != 0 && id <= maxStreamID }

// WriteData appends a DATA frame, copying data into the batch.
func (w *Writer) WriteData(streamID uint32, endStream bool, data []byte) error {
	if !validStream(streamID) {
		return ErrInvalidStreamID
	}
	var fl Flags
	if endStream {
		fl = FlagDataEndStream
	}
	p, err := w.frame(FrameData, fl, streamID, len(data))
	if err != nil {
		return err
	}
	copy(p, data)
	return nil
}

// WriteDataPadded appends a DATA frame with the PADDED flag and padLen zero
// bytes of padding.
func (w *Writer) WriteDataPadded(streamID uint32, endStream bool, data []byte, padLen uint8) error {
	if !validStream(streamID) {
		return ErrInvalidStreamID
	}
	fl := FlagDataPadded
	if endStream {
		fl |= FlagDataEndStream
	}
	p, err := w.frame(FrameData, fl, streamID, 1+len(data)+int(padLen))
	if err != nil {
		return err
	}
	p[0] = padLen
	n := copy(p[1:], data)
	clear(p[1+n:])
	return nil
}

// WriteDataReserved queues a DATA frame whose payload is frame[HeaderLen:];
// the Writer fills frame[:HeaderLen] with the header. On a destination that
// takes vectored writes the payload is not copied: frame is written in place
// and must stay untouched until the next Flush returns. Small frames, and
// all frames on other destinations, are copied into the batch.
func (w *Writer) WriteDataReserved(streamID uint32, endStream bool, frame []byte) error {
	if len(frame) < HeaderLen {
		return ErrReservedHeader
	}
	if !w.vectored || len(frame) < copyBelow {
		return w.WriteData(streamID, endStream, frame[HeaderLen:])
	}
	if !validStream(streamID) {
		return ErrInvalidStreamID
	}
	if w.err != nil {
		return w.err
	}
	length := len(frame) - HeaderLen
	if uint32(length) > w.maxFrameSize {
		return ErrFrameTooLarge
	}
	var fl Flags
	if endStream {
		fl = FlagDataEndStream
	}
	PutHeader(frame, FrameHeader{Length: uint32(length), Type: FrameData, Flags: fl, StreamID: streamID})
	w.segs = append(w.segs, segment{at: w.n, ext: frame})
	if w.Buffered() > w.maxBatch {
		return w.Flush()
	}
	return nil
}

// HeadersParam describes one HEADERS frame.
type HeadersParam struct {
	StreamID      uint32
	BlockFragment []byte // a fragment of an HPACK-encoded field block
	EndStream     bool
	EndHeaders    bool
	Padded        bool // write a Pad Length byte and PadLength zero bytes
	PadLength     uint8
	HasPriority   bool
	Priority      PriorityParam
}

// WriteHeaders appends one HEADERS frame. Use WriteHeaderBlock to have a
// block split into HEADERS and CONTINUATION frames.
func (w *Writer) WriteHeaders(p HeadersParam) error {
	if !validStream(p.StreamID) {
		return ErrInvalidStreamID
	}
	if p.HasPriority && p.Priority.StreamDep > maxStreamID {
		return ErrInvalidDependency
	}
	var fl Flags
	n := len(p.BlockFragment)
	if p.EndStream {
		fl |= FlagHeadersEndStream
	}
	if p.EndHeaders {
		fl |= FlagHeadersEndHeaders
	}
	if p.Padded {
		fl |= FlagHeadersPadded
		n += 1 + int(p.PadLength)
	}
	if p.HasPriority {
		fl |= FlagHeadersPriority
		n += 5
	}
	b, err := w.frame(FrameHeaders, fl, p.StreamID, n)
	if err != nil {
		return err
	}
	if p.Padded {
		b[0] = p.PadLength
		b = b[1:]
	}
	if p.HasPriority {
		putPriority(b, p.Priority)
		b = b[5:]
	}
	n = copy(b, p.BlockFragment)
	clear(b[n:])
	return nil
}

// WriteHeaderBlock appends a complete field block as one HEADERS frame and
// as many CONTINUATION frames as the peer's max frame size requires.
func (w *Writer) WriteHeaderBlock(streamID uint32, endStream bool, block []byte) error {
	max := int(w.maxFrameSize)
	first := block
	if len(first) > max {
		first = first[:max]
	}
	err := w.WriteHeaders(HeadersParam{
		StreamID:      streamID,
		BlockFragment: first,
		EndStream:     endStream,
		EndHeaders:    len(first) == len(block),
	})
	for rest := block[len(first):]; err == nil && len(rest) > 0; {
		frag := rest
		if len(frag) > max {
			frag = frag[:max]
		}
		rest = rest[len(frag):]
		err = w.WriteContinuation(streamID, len(rest) == 0, frag)
	}
	return err
}

func putPriority(b []byte, p PriorityParam) {
	v := p.StreamDep
	if p.Exclusive {
		v |= 1 << 31
	}
	binary.BigEndian.PutUint32(b, v)
	b[4] = p.Weight
}

// WritePriority appends a PRIORITY frame.
func (w *Writer) WritePriority(streamID uint32, p PriorityParam) error {
	if !validStream(streamID) {
		return ErrInvalidStreamID
	}
	if p.StreamDep > maxStreamID {
		return ErrInvalidDependency
	}
	b, err := w.frame(FramePriority, 0, streamID, 5)
	if err != nil {
		return err
	}
	putPriority(b, p)
	return nil
}

// WriteRSTStream appends a RST_STREAM frame.
func (w *Writer) WriteRSTStream(streamID uint32, code ErrCode) error {
	if !validStream(streamID) {
		return ErrInvalidStreamID
	}
	b, err := w.frame(FrameRSTStream, 0, streamID, 4)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(b, uint32(code))
	return nil
}

// WriteSettings appends a SETTINGS frame with the given parameters, in
// order. Illegal values are refused with ErrInvalidSetting.
func (w *Writer) WriteSettings(settings []Setting) error {
	for _, s := range settings {
		if s.Valid() != nil {
			return ErrInvalidSetting
		}
	}
	b, err := w.frame(FrameSettings, 0, 0, 6*len(settings))
	if err != nil {
		return err
	}
	for i, s := range settings {
		binary.BigEndian.PutUint16(b[6*i:], uint16(s.ID))
		binary.BigEndian.PutUint32(b[6*i+2:], s.Val)
	}
	return nil
}

// WriteSettingsAck appends an empty SETTINGS frame with the ACK flag.
func (w *Writer) WriteSettingsAck() error {
	_, err := w.frame(FrameSettings, FlagSettingsAck, 0, 0)
	return err
}

// PushPromiseParam describes one PUSH_PROMISE frame.
type PushPromiseParam struct {
	StreamID      uint32
	PromiseID     uint32
	BlockFragment []byte
	EndHeaders    bool
	Padded        bool
	PadLength     uint8
}

// WritePushPromise appends a PUSH_PROMISE frame.
func (w *Writer) WritePushPromise(p PushPromiseParam) error {
	if !validStream(p.StreamID) || !validStream(p.PromiseID) {
		return ErrInvalidStreamID
	}
	var fl Flags
	n := 4 + len(p.BlockFragment)
	if p.EndHeaders {
		fl |= FlagPushPromiseEndHeaders
	}
	if p.Padded {
		fl |= FlagPushPromisePadded
		n += 1 + int(p.PadLength)
	}
	b, err := w.frame(FramePushPromise, fl, p.StreamID, n)
	if err != nil {
		return err
	}
	if p.Padded {
		b[0] = p.PadLength
		b = b[1:]
	}
	binary.BigEndian.PutUint32(b, p.PromiseID)
	n = copy(b[4:], p.BlockFragment)
	clear(b[4+n:])
	return nil
}

// WritePing appends a PING frame.
func (w *Writer) WritePing(ack bool, data [8]byte) error {
	var fl Flags
	if ack {
		fl = FlagPingAck
	}
	b, err := w.frame(FramePing, fl, 0, 8)
	if err != nil {
		return err
	}
	copy(b, data[:])
	return nil
}

// WriteGoAway appends a GOAWAY frame.
func (w *Writer) WriteGoAway(lastStreamID uint32, code ErrCode, debug []byte) error {
	if lastStreamID > maxStreamID {
		return ErrInvalidStreamID
	}
	b, err := w.frame(FrameGoAway, 0, 0, 8+len(debug))
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(b, lastStreamID)
	binary.BigEndian.PutUint32(b[4:], uint32(code))
	copy(b[8:], debug)
	return nil
}

// WriteWindowUpdate appends a WINDOW_UPDATE frame; streamID 0 is the
// connection.
func (w *Writer) WriteWindowUpdate(streamID, increment uint32) error {
	if streamID > maxStreamID {
		return ErrInvalidStreamID
	}
	if increment < 1 || increment > MaxWindowSize {
		return ErrInvalidIncrement
	}
	b, err := w.frame(FrameWindowUpdate, 0, streamID, 4)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(b, increment)
	return nil
}

// WriteContinuation appends a CONTINUATION frame.
func (w *Writer) WriteContinuation(streamID uint32, endHeaders bool, frag []byte) error {
	if !validStream(streamID) {
		return ErrInvalidStreamID
	}
	var fl Flags
	if endHeaders {
		fl = FlagContinuationEndHeaders
	}
	b, err := w.frame(FrameContinuation, fl, streamID, len(frag))
	if err != nil {
		return err
	}
	copy(b, frag)
	return nil
}

// WritePreface appends the client connection preface (§3.4).
func (w *Writer) WritePreface() error {
	b, err := w.alloc(len(ClientPreface))
	if err != nil {
		return err
	}
	copy(b, ClientPreface)
	return nil
}

// WriteRawFrame appends a frame with any type, flags, stream and payload,
// checking nothing but the length field's 24 bits. For tests and for
// extension frame types.
func (w *Writer) WriteRawFrame(t FrameType, fl Flags, streamID uint32, payload []byte) error {
	if len(payload) > MaxMaxFrameSize {
		return ErrFrameTooLarge
	}
	b, err := w.alloc(HeaderLen + len(payload))
	if err != nil {
		return err
	}
	PutHeader(b, FrameHeader{Length: uint32(len(payload)), Type: t, Flags: fl, StreamID: streamID})
	copy(b[HeaderLen:], payload)
	return nil
}
