// Package dataplane is culvert's HTTP/2 connection engine: one Conn runs one
// HTTP/2 connection (RFC 9113) over any net.Conn, in the server role (it
// reads the client preface and serves the streams the peer opens) or the
// client role (it opens streams). The edge uses the client role on tunnel
// connections, the connector the server role (it dialed out, then serves),
// and the edge's visitor ingress the server role for HTTP/2 visitors. The
// edge and connector proxies are built on it.
//
// What it is not: an http.Handler server or an http.RoundTripper. It speaks
// streams of header lists and bytes; mapping them to HTTP/1.1 origins and
// visitors is the proxies' job. It has no priority scheduling (RFC 9113
// deprecates it; PRIORITY frames are read and ignored) and never pushes.
//
// # Goroutines and locking
//
// A Conn has a reader goroutine (frames in, applied to the connection state),
// a writer goroutine (work out: it builds a batch of frames and writes it with
// one Write), a heartbeat ticker, and, in the server role, one goroutine per
// stream running the Handler. All connection and stream state is guarded by
// one mutex; I/O happens outside it. The writer sends control frames
// (SETTINGS ACK, PING ACK, RST_STREAM, WINDOW_UPDATE, GOAWAY) before stream
// frames in every batch, then one frame per ready stream per round, so a
// busy stream cannot starve the others or the control frames.
//
// # Bytes and their owners
//
// Stream.Write copies the caller's bytes into pooled chunks that keep the
// 9-byte frame header free in front; a full chunk goes to the socket as a
// DATA frame without another copy on TCP (vectored write). Received DATA is
// copied from the frame reader's buffer into the stream's chunks and out
// again by Stream.Read. Header lists (HeaderList) own their bytes and stay
// valid for the stream's lifetime.
//
// # Flow control
//
// Windows are large by default (4 MiB per stream, 16 MiB per connection;
// see Config) and WINDOW_UPDATEs are batched: credit goes back once a
// quarter of the window is consumed. A stream whose peer stops reading stalls
// only itself: its Write blocks once SendBuffer bytes are queued, and the
// writer skips it until the peer opens its window. Received data is credited
// back as the application reads it.
//
// # Limits
//
// Every queue is bounded: control frames (MaxControlFrames; at half of it the
// reader stops reading until the writer catches up, past it the connection
// is closed), stream send buffers (SendBuffer), receive buffers (the stream
// window), header blocks (frames.Reader limits and MaxHeaderListSize, an
// oversized request gets 431), open streams (MaxConcurrentStreams; running
// handlers count too, so streams reset early still hold a slot). Frames that
// cost work but carry nothing (RST_STREAM from the peer, resets the peer
// provokes, PING, SETTINGS, PRIORITY, empty DATA) draw from a token bucket
// (AbuseBurst, AbuseRate); when it runs dry the connection ends with
// GOAWAY(ENHANCE_YOUR_CALM). Timeouts are on by default: preface, SETTINGS
// acknowledgement, half-received frames, idle connections, stuck writes, and
// the heartbeat (a PING after PingInterval of silence, the connection closed
// after PingMisses unanswered ones). A client stops opening streams before
// stream ids run out (ErrNoNewStreams), so a pool moves to a new connection.
//
// # Errors
//
// A connection error sends GOAWAY with its code, half-closes the socket,
// drains what the peer still sends for a short while and closes, so that the
// peer reads the GOAWAY rather than a TCP reset. Streams report resets as
// ResetError, a closed connection as ErrConnClosed, streams refused by the
// peer's GOAWAY as ErrGoAway (safe to retry elsewhere).
package dataplane
