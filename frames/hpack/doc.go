// Package hpack implements HPACK (RFC 7541), the header compression format
// of HTTP/2, for culvert's HTTP/2 frame codec.
//
// It provides a Decoder for the header blocks received on one connection and
// an Encoder for the header blocks sent on it, plus the Huffman code of
// RFC 7541 Appendix B. Both directions keep their dynamic table in a single
// byte arena and never allocate per field once their buffers are warm.
//
// # What it is not
//
// The package knows nothing about frames or streams: the caller reassembles
// a HEADERS/PUSH_PROMISE frame and its CONTINUATION frames into one complete
// header block before calling Decoder.Decode, and splits the output of the
// Encoder into frames itself. It does not validate HTTP semantics either:
// upper-case or empty names, pseudo-header order, connection-specific
// fields and the like are the HTTP/2 layer's business. Decoded fields are
// passed through exactly as the peer encoded them. A Decoder or an Encoder
// is not safe for concurrent use; HPACK state is per connection and ordered
// anyway.
//
// # Ownership of decoded bytes
//
// Decode returns fields whose Name and Value slices point into memory the
// caller does not own:
//
//   - static table entries point at read-only memory shared by every
//     decoder in the process; writing to them faults;
//   - dynamic table entries point into the decoder's table arena, or into
//     its scratch buffer in the rare block that inserts more than the arena
//     has room for;
//   - Huffman-coded strings are decoded into the scratch buffer, owned by
//     the decoder;
//   - plain literal strings point into the block passed to Decode.
//
// All of them stay valid and unchanged until the next call to any method of
// the same Decoder, and (for the last kind) until the caller reuses the
// block. Copy what must live longer. The slices have their capacity clipped
// to their length, so appending to one copies instead of overwriting a
// neighbour.
//
// # Limits
//
// A Decoder bounds the work and memory one header block can cost:
//
//   - the sum of the fields' sizes (name + value + 32, RFC 7541 §4.1) is
//     limited by SetMaxHeaderListSize (1 MiB by default), and so is the
//     number of bytes Huffman-decoded strings may expand to;
//   - the number of fields is limited by SetMaxFields (1000 by default);
//   - integers (§5.1) larger than 2^32-1 or longer than five continuation
//     bytes, and string lengths beyond the end of the block, are rejected
//     before anything is allocated;
//   - the dynamic table never exceeds the size advertised with NewDecoder
//     or SetMaxDynamicTableSize.
//
// Exceeding a list limit yields ErrHeaderListTooLarge, which is a stream
// error (HTTP 431), not a connection error: the decoder stops producing
// fields but still parses the rest of the block and applies its table
// insertions, so the connection stays usable. Malformed input yields a
// DecodingError, which the HTTP/2 layer must turn into a connection error of
// type COMPRESSION_ERROR (RFC 9113 §4.3).
package hpack
