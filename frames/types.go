package frames

import (
	"encoding/binary"
	"strconv"
)

// HeaderLen is the size of the fixed frame header (§4.1).
const HeaderLen = 9

// Frame size limits (§4.2, §6.5.2).
const (
	DefaultMaxFrameSize = 1 << 14                            // SETTINGS_MAX_FRAME_SIZE initial value
	MinMaxFrameSize     = 1 << 14                            // smallest legal SETTINGS_MAX_FRAME_SIZE
	MaxMaxFrameSize     = 1<<24 - 1                          // largest legal SETTINGS_MAX_FRAME_SIZE
	MaxWindowSize       = 1<<31 - 1                          // largest flow-control window (§6.9.1)
	maxStreamID         = 1<<31 - 1                          // stream identifiers are 31 bits (§5.1.1)
	ClientPreface       = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" // §3.4
)

// FrameType is the 8-bit type of a frame (§6).
type FrameType uint8

const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

var frameNames = [...]string{
	FrameData:         "DATA",
	FrameHeaders:      "HEADERS",
	FramePriority:     "PRIORITY",
	FrameRSTStream:    "RST_STREAM",
	FrameSettings:     "SETTINGS",
	FramePushPromise:  "PUSH_PROMISE",
	FramePing:         "PING",
	FrameGoAway:       "GOAWAY",
	FrameWindowUpdate: "WINDOW_UPDATE",
	FrameContinuation: "CONTINUATION",
}

func (t FrameType) String() string {
	if int(t) < len(frameNames) {
		return frameNames[t]
	}
	return "UNKNOWN_FRAME_TYPE_" + strconv.Itoa(int(t))
}

// Flags are the 8 flag bits of a frame header. Their meaning depends on the
// frame type.
type Flags uint8

// Has reports whether all bits of v are set in f.
func (f Flags) Has(v Flags) bool { return f&v == v }

const (
	FlagDataEndStream Flags = 0x1
	FlagDataPadded    Flags = 0x8

	FlagHeadersEndStream  Flags = 0x1
	FlagHeadersEndHeaders Flags = 0x4
	FlagHeadersPadded     Flags = 0x8
	FlagHeadersPriority   Flags = 0x20

	FlagSettingsAck Flags = 0x1

	FlagPingAck Flags = 0x1

	FlagContinuationEndHeaders Flags = 0x4

	FlagPushPromiseEndHeaders Flags = 0x4
	FlagPushPromisePadded     Flags = 0x8
)

// FrameHeader is the parsed 9-byte frame header (§4.1). The reserved bit of
// the stream identifier is dropped on read, as §4.1 requires.
type FrameHeader struct {
	Length   uint32 // payload length, including any padding
	Type     FrameType
	Flags    Flags
	StreamID uint32
}

func (h FrameHeader) String() string {
	return h.Type.String() + " stream=" + strconv.FormatUint(uint64(h.StreamID), 10) +
		" len=" + strconv.FormatUint(uint64(h.Length), 10) +
		" flags=0x" + strconv.FormatUint(uint64(h.Flags), 16)
}

// ParseHeader parses the first HeaderLen bytes of b, which must hold at
// least that many.
func ParseHeader(b []byte) FrameHeader {
	_ = b[8]
	return FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     FrameType(b[3]),
		Flags:    Flags(b[4]),
		StreamID: binary.BigEndian.Uint32(b[5:]) & maxStreamID,
	}
}

// PutHeader writes h into the first HeaderLen bytes of b.
func PutHeader(b []byte, h FrameHeader) {
	_ = b[8]
	b[0] = byte(h.Length >> 16)
	b[1] = byte(h.Length >> 8)
	b[2] = byte(h.Length)
	b[3] = byte(h.Type)
	b[4] = byte(h.Flags)
	binary.BigEndian.PutUint32(b[5:], h.StreamID)
}

// ErrCode is an RFC 9113 §7 error code, carried by RST_STREAM and GOAWAY.
type ErrCode uint32

const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
)

var errCodeNames = [...]string{
	ErrCodeNo:                 "NO_ERROR",
	ErrCodeProtocol:           "PROTOCOL_ERROR",
	ErrCodeInternal:           "INTERNAL_ERROR",
	ErrCodeFlowControl:        "FLOW_CONTROL_ERROR",
	ErrCodeSettingsTimeout:    "SETTINGS_TIMEOUT",
	ErrCodeStreamClosed:       "STREAM_CLOSED",
	ErrCodeFrameSize:          "FRAME_SIZE_ERROR",
	ErrCodeRefusedStream:      "REFUSED_STREAM",
	ErrCodeCancel:             "CANCEL",
	ErrCodeCompression:        "COMPRESSION_ERROR",
	ErrCodeConnect:            "CONNECT_ERROR",
	ErrCodeEnhanceYourCalm:    "ENHANCE_YOUR_CALM",
	ErrCodeInadequateSecurity: "INADEQUATE_SECURITY",
	ErrCodeHTTP11Required:     "HTTP_1_1_REQUIRED",
}

func (e ErrCode) String() string {
	if int(e) < len(errCodeNames) {
		return errCodeNames[e]
	}
	return "unknown error code 0x" + strconv.FormatUint(uint64(e), 16)
}

// SettingID identifies a SETTINGS parameter (§6.5.2, RFC 8441 §3).
type SettingID uint16

const (
	SettingHeaderTableSize       SettingID = 0x1
	SettingEnablePush            SettingID = 0x2
	SettingMaxConcurrentStreams  SettingID = 0x3
	SettingInitialWindowSize     SettingID = 0x4
	SettingMaxFrameSize          SettingID = 0x5
	SettingMaxHeaderListSize     SettingID = 0x6
	SettingEnableConnectProtocol SettingID = 0x8
)

var settingNames = [...]string{
	SettingHeaderTableSize:       "HEADER_TABLE_SIZE",
	SettingEnablePush:            "ENABLE_PUSH",
	SettingMaxConcurrentStreams:  "MAX_CONCURRENT_STREAMS",
	SettingInitialWindowSize:     "INITIAL_WINDOW_SIZE",
	SettingMaxFrameSize:          "MAX_FRAME_SIZE",
	SettingMaxHeaderListSize:     "MAX_HEADER_LIST_SIZE",
	SettingEnableConnectProtocol: "ENABLE_CONNECT_PROTOCOL",
}

func (s SettingID) String() string {
	if int(s) < len(settingNames) && settingNames[s] != "" {
		return settingNames[s]
	}
	return "UNKNOWN_SETTING_" + strconv.Itoa(int(s))
}

// Setting is one SETTINGS parameter.
type Setting struct {
	ID  SettingID
	Val uint32
}

// Valid reports whether the value is legal for its parameter, and if not,
// the error a receiver must raise (§6.5.2; RFC 8441 §3). Unknown parameters
// are always valid: they are ignored.
func (s Setting) Valid() error {
	switch s.ID {
	case SettingEnablePush:
		if s.Val > 1 {
			return ConnError{ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1"}
		}
	case SettingInitialWindowSize:
		if s.Val > MaxWindowSize {
			return ConnError{ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1"}
		}
	case SettingMaxFrameSize:
		if s.Val < MinMaxFrameSize || s.Val > MaxMaxFrameSize {
			return ConnError{ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE outside [2^14, 2^24-1]"}
		}
	case SettingEnableConnectProtocol:
		if s.Val > 1 {
			return ConnError{ErrCodeProtocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1"}
		}
	}
	return nil
}

// PriorityParam is the (deprecated, §5.3.2) priority block of HEADERS and
// PRIORITY frames. Weight is the wire value: the RFC weight minus one.
type PriorityParam struct {
	StreamDep uint32
	Exclusive bool
	Weight    uint8
}
