// Package frames is culvert's HTTP/2 frame codec (RFC 9113 §4 and §6): a
// Reader that parses frames in place from a pooled buffer and validates them,
// and a Writer that builds frames in a reused buffer and issues one Write per
// batch. HPACK lives in the subpackage frames/hpack.
//
// What it is not: a connection. The codec keeps no stream state, sends
// nothing on its own (no SETTINGS ACK, no PING reply, no flow control) and
// starts no goroutines; dataplane/ builds the engine on top. The only
// cross-frame rules it enforces are the ones that belong to framing: a header
// block's CONTINUATION sequence (§6.10) and the limits that keep a peer from
// making one header block arbitrarily large or long.
//
// # Lifetime of read bytes
//
// Reader.ReadFrame returns a pointer to a frame owned by the Reader. The
// frame and every slice obtained from it (DataFrame.Data,
// HeadersFrame.BlockFragment, GoAwayFrame.DebugData, …) alias the Reader's
// buffer and are valid only until the next call to ReadFrame or Release.
// Using the frame's accessors after that panics; a slice kept past that
// point silently changes under the caller, and SetDebugPoison makes that
// visible in tests by overwriting released bytes. Callers that need bytes
// longer copy them.
//
// # Errors
//
// A violation of the RFC is reported as a ConnError (the caller must send
// GOAWAY with Code and close) or a StreamError (the caller must reset that
// stream and may go on reading). Both carry the RFC 9113 §7 error code.
// Other errors come from the underlying io.Reader or io.Writer.
package frames
