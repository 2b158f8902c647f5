package dataplane

import (
	"bytes"

	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// HeaderList is an ordered list of header fields whose bytes it owns. The
// zero value is empty and ready to use; Reset keeps the memory for reuse.
type HeaderList struct {
	fields []hpack.HeaderField
	arena  []byte
}

// Fields returns the fields. The slices alias the list's memory: valid until
// the list is modified or reset.
func (h *HeaderList) Fields() []hpack.HeaderField { return h.fields }

// Len returns the number of fields.
func (h *HeaderList) Len() int { return len(h.fields) }

// Reset empties the list, keeping its memory.
func (h *HeaderList) Reset() {
	clear(h.fields)
	h.fields = h.fields[:0]
	h.arena = h.arena[:0]
}

// Add appends a field, copying name and value.
func (h *HeaderList) Add(name, value []byte) { h.add(name, value, false) }

// AddString appends a field, copying name and value.
func (h *HeaderList) AddString(name, value string) {
	h.grow(len(name) + len(value))
	start := len(h.arena)
	h.arena = append(h.arena, name...)
	h.arena = append(h.arena, value...)
	h.appendField(start, len(name), len(value), false)
}

// AddSensitive appends a field to be sent as never-indexed (RFC 7541
// §6.2.3), e.g. an authorization token.
func (h *HeaderList) AddSensitive(name, value []byte) { h.add(name, value, true) }

func (h *HeaderList) add(name, value []byte, sensitive bool) {
	h.grow(len(name) + len(value))
	start := len(h.arena)
	h.arena = append(h.arena, name...)
	h.arena = append(h.arena, value...)
	h.appendField(start, len(name), len(value), sensitive)
}

func (h *HeaderList) appendField(start, nl, vl int, sensitive bool) {
	a := h.arena
	h.fields = append(h.fields, hpack.HeaderField{
		Name:      a[start : start+nl : start+nl],
		Value:     a[start+nl : start+nl+vl : start+nl+vl],
		Sensitive: sensitive,
	})
}

// grow makes room for n more arena bytes. When the arena moves, every field
// is re-pointed: fields are laid out back to back in order, so their
// offsets follow from their lengths.
func (h *HeaderList) grow(n int) {
	if len(h.arena)+n <= cap(h.arena) {
		return
	}
	na := make([]byte, len(h.arena), max(2*cap(h.arena), len(h.arena)+n, 256))
	copy(na, h.arena)
	off := 0
	for i := range h.fields {
		f := &h.fields[i]
		nl, vl := len(f.Name), len(f.Value)
		f.Name = na[off : off+nl : off+nl]
		f.Value = na[off+nl : off+nl+vl : off+nl+vl]
		off += nl + vl
	}
	h.arena = na
}

// Get returns the value of the first field named name, or nil.
func (h *HeaderList) Get(name string) []byte {
	for _, f := range h.fields {
		if string(f.Name) == name {
			return f.Value
		}
	}
	return nil
}

// Has reports whether a field named name is present.
func (h *HeaderList) Has(name string) bool {
	for _, f := range h.fields {
		if string(f.Name) == name {
			return true
		}
	}
	return false
}

// CopyFrom replaces the list's contents with fields (copying the bytes).
func (h *HeaderList) CopyFrom(fields []hpack.HeaderField) {
	h.Reset()
	n := 0
	for _, f := range fields {
		n += len(f.Name) + len(f.Value)
	}
	h.grow(n)
	a := h.arena[:n]
	if cap(h.fields) < len(fields) {
		h.fields = make([]hpack.HeaderField, len(fields))
	}
	out := h.fields[:len(fields)]
	off := 0
	for i, f := range fields {
		nl := copy(a[off:], f.Name)
		vl := copy(a[off+nl:], f.Value)
		out[i] = hpack.HeaderField{
			Name:      a[off : off+nl : off+nl],
			Value:     a[off+nl : off+nl+vl : off+nl+vl],
			Sensitive: f.Sensitive,
		}
		off += nl + vl
	}
	h.arena, h.fields = a, out
}

// Size returns the HPACK size of the list (RFC 7541 §4.1), the measure of
// SETTINGS_MAX_HEADER_LIST_SIZE.
func (h *HeaderList) Size() uint32 {
	var n uint32
	for _, f := range h.fields {
		n += f.Size()
	}
	return n
}

// Field validation (RFC 9113 §8.2, §8.3). A failure makes the message
// malformed: a stream error of type PROTOCOL_ERROR (§8.1.1).

type blockKind uint8

const (
	kindRequest blockKind = iota
	kindResponse
	kindTrailers
)

// messageInfo is what validation learns about a message's header block.
type messageInfo struct {
	method        []byte
	protocol      []byte // :protocol of an extended CONNECT (RFC 8441)
	status        int
	contentLength int64 // -1 when absent
}

var connectionSpecific = [...]string{"connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"}

// validName checks §8.2.1: no 0x00-0x20, no upper case, no 0x7f-0xff.
// A leading colon is allowed by the caller for pseudo-header fields.
func validName(n []byte) bool {
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if c <= 0x20 || (c >= 'A' && c <= 'Z') || c >= 0x7f {
			return false
		}
	}
	return true
}

// validValue checks §8.2.1: no NUL, CR or LF; no leading or trailing space
// or tab.
func validValue(v []byte) bool {
	if len(v) > 0 && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		return false
	}
	return bytes.IndexByte(v, 0) < 0 && bytes.IndexByte(v, '\r') < 0 && bytes.IndexByte(v, '\n') < 0
}

func parseContentLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -2
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -2
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// validateBlock checks a decoded header block of the given kind and returns
// what it learned, or a reason (a fixed string) when the block is malformed.
// connectProtocol says whether we advertised SETTINGS_ENABLE_CONNECT_PROTOCOL.
func validateBlock(fields []hpack.HeaderField, kind blockKind, connectProtocol bool) (messageInfo, string) {
	info := messageInfo{contentLength: -1, status: -1}
	var scheme, path, authority bool
	regular := false
	for _, f := range fields {
		name := f.Name
		if len(name) > 0 && name[0] == ':' {
			// §8.3: pseudo-header fields precede regular fields, appear at
			// most once, are defined ones only, and never in trailers.
			if regular {
				return info, "pseudo-header field after a regular field"
			}
			if kind == kindTrailers {
				return info, "pseudo-header field in trailers"
			}
			if !validName(name[1:]) {
				return info, "invalid pseudo-header field name"
			}
			if !validValue(f.Value) {
				return info, "invalid field value"
			}
			var dup bool
			switch string(name) {
			case ":method":
				dup, info.method = info.method != nil, f.Value
			case ":scheme":
				dup, scheme = scheme, true
			case ":path":
				dup, path = path, true
				if len(f.Value) == 0 {
					return info, "empty :path"
				}
			case ":authority":
				dup, authority = authority, true
			case ":protocol":
				if !connectProtocol {
					return info, ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL"
				}
				dup, info.protocol = info.protocol != nil, f.Value
			case ":status":
				if kind != kindResponse {
					return info, ":status in a request"
				}
				dup = info.status >= 0
				info.status = int(parseContentLength(f.Value))
				if len(f.Value) != 3 || info.status < 100 {
					return info, "invalid :status"
				}
			default:
				return info, "unknown pseudo-header field"
			}
			if dup {
				return info, "duplicate pseudo-header field"
			}
			if kind == kindResponse && string(name) != ":status" {
				return info, "request pseudo-header field in a response"
			}
			continue
		}
		regular = true
		if !validName(name) {
			return info, "invalid field name"
		}
		if !validValue(f.Value) {
			return info, "invalid field value"
		}
		// §8.2.2: connection-specific fields are malformed; TE may only
		// carry "trailers".
		for _, cs := range connectionSpecific {
			if string(name) == cs {
				return info, "connection-specific header field"
			}
		}
		switch string(name) {
		case "te":
			if string(f.Value) != "trailers" {
				return info, "TE other than trailers"
			}
		case "content-length":
			if kind == kindTrailers {
				break
			}
			n := parseContentLength(f.Value)
			if n < 0 || (info.contentLength >= 0 && n != info.contentLength) {
				return info, "invalid content-length"
			}
			info.contentLength = n
		}
	}
	switch kind {
	case kindRequest:
		if info.method == nil {
			return info, "missing :method"
		}
		if string(info.method) == "CONNECT" && info.protocol == nil {
			// §8.5: a plain CONNECT carries only :method and :authority.
			if scheme || path || !authority {
				return info, "malformed CONNECT request"
			}
			break
		}
		if info.protocol != nil && string(info.method) != "CONNECT" {
			return info, ":protocol on a method other than CONNECT"
		}
		if !scheme || !path {
			return info, "missing :scheme or :path"
		}
	case kindResponse:
		if info.status < 0 {
			return info, "missing :status"
		}
	}
	return info, ""
}
