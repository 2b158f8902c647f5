package frames

import (
	"errors"
	"strconv"
)

// ConnError is a connection error (§5.4.1): the connection must be closed
// with a GOAWAY carrying Code. Reason is a fixed string for logs and metrics
// (it never contains peer data).
type ConnError struct {
	Code   ErrCode
	Reason string
}

func (e ConnError) Error() string {
	return "http2: connection error: " + e.Code.String() + ": " + e.Reason
}

// StreamError is a stream error (§5.4.2): the stream must be reset with Code;
// the connection stays usable.
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	Reason   string
}

func (e StreamError) Error() string {
	return "http2: stream error on stream " + strconv.FormatUint(uint64(e.StreamID), 10) +
		": " + e.Code.String() + ": " + e.Reason
}

// Errors returned by the Writer for arguments that would produce an illegal
// frame. They are bugs of the caller, never of the peer.
var (
	ErrInvalidStreamID   = errors.New("frames: invalid stream id for this frame type")
	ErrFrameTooLarge     = errors.New("frames: payload exceeds the peer's max frame size")
	ErrInvalidIncrement  = errors.New("frames: window increment must be in [1, 2^31-1]")
	ErrInvalidDependency = errors.New("frames: stream dependency must be a 31-bit stream id")
	ErrReservedHeader    = errors.New("frames: reserved frame header space must be HeaderLen bytes")
	ErrInvalidSetting    = errors.New("frames: illegal SETTINGS value")
)
