// Package origin is the connector's side toward the private web service:
// Client, the pooled HTTP/1.1 client that hands each visitor request to the
// origin and streams the answer back, DialUpgrade for websockets (and any
// other HTTP/1.1 Upgrade), and the built-in hello-world origin that
// `culvert --hello-world` serves (HelloWorld, ServeHelloWorld), which the
// tests and benchmarks also use.
//
// What it is not: it never speaks HTTP/2 to an origin (one origin is one
// HTTP/1.1 endpoint: tcp, unix socket, optionally TLS), it does not balance
// load across several origins, follow redirects, cache, or rewrite anything
// but the Host header (Config.HostHeader). Hop-by-hop headers and the
// X-Forwarded-* family are the connector's business; Do sends the request
// headers it is given.
//
// # The client
//
// Client wraps one fasthttp.HostClient, used for what it does well: the
// connection pool (bounded by Config.MaxConnsPerHost, idle connections closed
// after Config.KeepAliveTimeout), the pooled bufio readers and writers, and
// request and response header serialization and parsing. The round trip
// itself is culvert's own (HostClient.Do is not used), because a tunnel needs
// what HostClient.Do does not give:
//
//   - A response timeout that covers only the wait for the response head.
//     fasthttp's read timeouts stay armed while a streamed body is read, which
//     would cut server-sent events and long downloads.
//   - Full duplex for request bodies. HostClient.Do writes the whole request
//     body before it reads a byte of the answer, so an origin that echoes a
//     large upload, or answers one early (401, 413), deadlocks against it or
//     is seen as a write error. Do sends a streamed request body from a
//     goroutine and returns as soon as the response head arrives.
//   - No per-request allocation on the common path: a streamed response body
//     is framed by pooled state, a body that arrived with the head is handed
//     over as resp.Body() and the connection goes back to the pool at once.
//   - Stale keep-alive connections detected before use (see Client.Do) and
//     errors classified for the proxy's error pages (ErrUnreachable,
//     ErrTimeout, Classify).
//
// # Ownership
//
// Do owns the connection it takes from the pool until the exchange ends:
// when Do returns an error, when Do returns a response without a body
// stream, or, when the response has one (resp.BodyStream() != nil), when the
// caller closes it (resp.CloseBodyStream, or ReleaseResponse/Reset which do
// that). Until then the caller must keep req alive and unchanged (its body
// stream may still be read) and must not hand resp to another Do. See Do.
//
// # Pipelining
//
// With Config.PipelineDepth above 1, GET and HEAD requests without a body
// are pipelined (pipeline.go): several go out in one write on a connection
// borrowed from the pool while it has answers to come, and their answers
// are read in order, each by its own caller. Off by default: it trades
// head-of-line blocking for far fewer system calls on both sides.
package origin
