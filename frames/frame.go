package frames

import "encoding/binary"

// Frame is one of the typed frames returned by Reader.ReadFrame: *DataFrame,
// *HeadersFrame, *PriorityFrame, *RSTStreamFrame, *SettingsFrame,
// *PushPromiseFrame, *PingFrame, *GoAwayFrame, *WindowUpdateFrame or
// *ContinuationFrame. It belongs to the Reader and is valid until the next
// ReadFrame or Release.
type Frame interface {
	Header() FrameHeader
	base() *frameBase
}

type frameBase struct {
	FrameHeader
	valid bool
}

// Header returns the frame's header. It stays readable after the frame is
// invalidated: it is a copy, not a view.
func (b *frameBase) Header() FrameHeader { return b.FrameHeader }
func (b *frameBase) base() *frameBase    { return b }

func (b *frameBase) check() {
	if !b.valid {
		panic("frames: use of " + b.Type.String() + " frame after the next ReadFrame or Release")
	}
}

// DataFrame is a DATA frame (§6.1).
type DataFrame struct {
	frameBase
	data []byte
}

// Data returns the payload without padding. It aliases the Reader's buffer:
// valid until the next ReadFrame or Release. Flow control counts the whole
// frame, FrameHeader.Length, padding included (§6.9.1).
func (f *DataFrame) Data() []byte { f.check(); return f.data }

// StreamEnded reports the END_STREAM flag.
func (f *DataFrame) StreamEnded() bool { return f.Flags.Has(FlagDataEndStream) }

// HeadersFrame is a HEADERS frame (§6.2). With header-block assembly on (the
// default), BlockFragment holds the whole field block of the HEADERS frame
// and its CONTINUATION frames, and HeadersEnded is true.
type HeadersFrame struct {
	frameBase
	Priority    PriorityParam // meaningful when HasPriority
	HasPriority bool
	block       []byte
}

// BlockFragment returns the field block fragment without padding and
// priority. It aliases a Reader-owned buffer: valid until the next ReadFrame
// or Release.
func (f *HeadersFrame) BlockFragment() []byte { f.check(); return f.block }

func (f *HeadersFrame) StreamEnded() bool  { return f.Flags.Has(FlagHeadersEndStream) }
func (f *HeadersFrame) HeadersEnded() bool { return f.Flags.Has(FlagHeadersEndHeaders) }

// PriorityFrame is a PRIORITY frame (§6.3).
type PriorityFrame struct {
	frameBase
	PriorityParam
}

// RSTStreamFrame is a RST_STREAM frame (§6.4).
type RSTStreamFrame struct {
	frameBase
	ErrCode ErrCode
}

// SettingsFrame is a SETTINGS frame (§6.5). Values are validated by the
// Reader; unknown parameters are kept (the receiver must ignore them).
type SettingsFrame struct {
	frameBase
	p []byte
}

func (f *SettingsFrame) IsAck() bool { return f.Flags.Has(FlagSettingsAck) }

// NumSettings returns the number of parameters in the frame.
func (f *SettingsFrame) NumSettings() int { f.check(); return len(f.p) / 6 }

// Setting returns the i'th parameter, in wire order.
func (f *SettingsFrame) Setting(i int) Setting {
	f.check()
	b := f.p[i*6 : i*6+6]
	return Setting{ID: SettingID(binary.BigEndian.Uint16(b)), Val: binary.BigEndian.Uint32(b[2:])}
}

// Value returns the last value given for id in the frame (later values of a
// parameter override earlier ones, §6.5.3).
func (f *SettingsFrame) Value(id SettingID) (v uint32, ok bool) {
	f.check()
	for i := 0; i < len(f.p)/6; i++ {
		if s := f.Setting(i); s.ID == id {
			v, ok = s.Val, true
		}
	}
	return v, ok
}

// PushPromiseFrame is a PUSH_PROMISE frame (§6.6).
type PushPromiseFrame struct {
	frameBase
	PromiseID uint32
	block     []byte
}

// BlockFragment: as HeadersFrame.BlockFragment.
func (f *PushPromiseFrame) BlockFragment() []byte { f.check(); return f.block }
func (f *PushPromiseFrame) HeadersEnded() bool    { return f.Flags.Has(FlagPushPromiseEndHeaders) }

// PingFrame is a PING frame (§6.7).
type PingFrame struct {
	frameBase
	Data [8]byte
}

func (f *PingFrame) IsAck() bool { return f.Flags.Has(FlagPingAck) }

// GoAwayFrame is a GOAWAY frame (§6.8).
type GoAwayFrame struct {
	frameBase
	LastStreamID uint32
	ErrCode      ErrCode
	debug        []byte
}

// DebugData returns the opaque debug data. It aliases the Reader's buffer:
// valid until the next ReadFrame or Release.
func (f *GoAwayFrame) DebugData() []byte { f.check(); return f.debug }

// WindowUpdateFrame is a WINDOW_UPDATE frame (§6.9). StreamID 0 updates the
// connection window.
type WindowUpdateFrame struct {
	frameBase
	Increment uint32
}

// ContinuationFrame is a CONTINUATION frame (§6.10). The Reader returns them
// only with header-block assembly off.
type ContinuationFrame struct {
	frameBase
	block []byte
}

// BlockFragment aliases the Reader's buffer: valid until the next ReadFrame
// or Release.
func (f *ContinuationFrame) BlockFragment() []byte { f.check(); return f.block }
func (f *ContinuationFrame) HeadersEnded() bool    { return f.Flags.Has(FlagContinuationEndHeaders) }
