package hpack

import "errors"

// DecodingError is a compression error: the header block is malformed or
// breaks a rule of RFC 7541. The HTTP/2 layer answers it with a connection
// error of type COMPRESSION_ERROR. Err is one of the Err* sentinels of this
// package; errors.Is sees through a DecodingError to it.
type DecodingError struct{ Err error }

func (e DecodingError) Error() string { return "hpack: decoding error: " + e.Err.Error() }

// Unwrap returns the sentinel describing the problem.
func (e DecodingError) Unwrap() error { return e.Err }

// Sentinels wrapped in a DecodingError.
var (
	// ErrIndex: an index of 0 or beyond the static and dynamic tables
	// (§2.3.3, §6.1).
	ErrIndex = errors.New("invalid table index")
	// ErrIntegerOverflow: an integer (§5.1) larger than 2^32-1 or encoded
	// with more than five continuation bytes.
	ErrIntegerOverflow = errors.New("integer overflow")
	// ErrTruncated: the block ends inside a field representation.
	ErrTruncated = errors.New("truncated header block")
	// ErrStringLength: a string literal (§5.2) claims more bytes than are
	// left in the block.
	ErrStringLength = errors.New("string length exceeds the header block")
	// ErrInvalidHuffman: a Huffman-coded string contains the EOS symbol, or
	// its padding is longer than 7 bits or not all ones (§5.2).
	ErrInvalidHuffman = errors.New("invalid Huffman-coded string")
	// ErrTableSizeUpdate: a dynamic table size update (§6.3) larger than the
	// advertised maximum, one that is not at the beginning of the block, or
	// a missing one after the advertised maximum was lowered (§4.2).
	ErrTableSizeUpdate = errors.New("invalid dynamic table size update")
)

// ErrHeaderListTooLarge reports that a header block decoded to more bytes
// (see SetMaxHeaderListSize) or more fields (see SetMaxFields) than allowed.
// It is not a DecodingError: the decoder's state is still in sync with the
// peer, so the HTTP/2 layer can refuse the stream (HTTP 431) and keep the
// connection.
var ErrHeaderListTooLarge = errors.New("hpack: header list too large")

// Preallocated errors, so that error paths do not allocate.
var (
	errIndex           error = DecodingError{ErrIndex}
	errIntegerOverflow error = DecodingError{ErrIntegerOverflow}
	errTruncated       error = DecodingError{ErrTruncated}
	errStringLength    error = DecodingError{ErrStringLength}
	errInvalidHuffman  error = DecodingError{ErrInvalidHuffman}
	errTableSizeUpdate error = DecodingError{ErrTableSizeUpdate}
	errHuffmanTooLong        = errors.New("hpack: Huffman output exceeds limit") // internal
	errOverBudget            = errors.New("hpack: field exceeds list budget")    // internal
)
