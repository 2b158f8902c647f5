package hpack

import (
	"encoding/binary"
	"slices"
)

// huffmanCodeLen is the bit length of the code of each symbol in the
// Huffman code of RFC 7541 Appendix B; symbol 256 is EOS. The code is
// canonical: within one length, codes increase with the symbol, and the
// first code of a length follows the last code of the previous length
// shifted left. The codes themselves are derived from these lengths in
// init.
var huffmanCodeLen = [257]uint8{
	13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
	28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
	6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //         ' '..'/'
	5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //              '0'..'?'
	13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //                '@'..'O'
	7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //             'P'..'_'
	15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //                '`'..'o'
	6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //            'p'..0x7f
	20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
	24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
	22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
	21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
	26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
	19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
	20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
	26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
	30, // EOS
}

const huffmanEOS = 256

// huffmanCode[c] is the code of byte c, right-aligned.
var huffmanCode [256]uint32

// The decoder is a finite-state machine that consumes four bits at a time.
// Its states are the 256 internal nodes of the code tree (node 0 is the
// root). huffmanFSM[state<<4|nibble] describes the transition:
//
//	bits 4..11  next state << 4 (so the next index is entry&0xff0 | nibble)
//	bits 16..23 the symbol completed by this nibble, if huffEmit is set
//	huffEmit    a symbol was completed (at most one: codes are >= 5 bits)
//	huffFail    the nibble completed EOS, which must not appear in a string
//	huffAccept  the string may end in the next state: it is the root, or a
//	            node reached from the root by at most seven 1 bits, i.e.
//	            valid padding (§5.2)
const (
	huffEmit   = 1 << 24
	huffFail   = 1 << 25
	huffAccept = 1 << 26
)

var huffmanFSM [256 * 16]uint32

func init() {
	// Canonical code assignment.
	var codes [257]uint32
	code := uint32(0)
	for length := uint8(1); length <= 30; length++ {
		for sym := 0; sym <= huffmanEOS; sym++ {
			if huffmanCodeLen[sym] == length {
				codes[sym] = code
				code++
			}
		}
		code <<= 1
	}
	copy(huffmanCode[:], codes[:256])

	// Code tree. child values: > 0 internal node, < 0 leaf -(sym+1), 0 unset
	// (the root is nobody's child).
	type node struct {
		child   [2]int16
		depth   uint8
		allOnes bool
	}
	nodes := make([]node, 1, 256)
	nodes[0].allOnes = true
	for sym := 0; sym <= huffmanEOS; sym++ {
		c, n := codes[sym], huffmanCodeLen[sym]
		cur := 0
		for i := int(n) - 1; i > 0; i-- {
			bit := (c >> uint(i)) & 1
			if nodes[cur].child[bit] == 0 {
				nodes = append(nodes, node{
					depth:   nodes[cur].depth + 1,
					allOnes: nodes[cur].allOnes && bit == 1,
				})
				nodes[cur].child[bit] = int16(len(nodes) - 1)
			}
			cur = int(nodes[cur].child[bit])
		}
		nodes[cur].child[c&1] = int16(-(sym + 1))
	}
	if len(nodes) != 256 {
		panic("hpack: Huffman code table is not a complete code")
	}

	for state := range nodes {
		for nib := 0; nib < 16; nib++ {
			cur := state
			var entry uint32
			for i := 3; i >= 0; i-- {
				c := nodes[cur].child[(nib>>uint(i))&1]
				switch {
				case c > 0:
					cur = int(c)
				case c < 0 && int(-c-1) != huffmanEOS:
					if entry&huffEmit != 0 {
						panic("hpack: two Huffman symbols in one nibble")
					}
					entry |= huffEmit | uint32(-c-1)<<16
					cur = 0
				default: // EOS (c == 0 cannot happen in a complete code)
					entry |= huffFail
				}
			}
			entry |= uint32(cur) << 4
			if nodes[cur].allOnes && nodes[cur].depth <= 7 {
				entry |= huffAccept
			}
			huffmanFSM[state<<4|nib] = entry
		}
	}
}

// HuffmanEncodeLength returns the number of bytes the Huffman encoding of s
// takes, padding included.
func HuffmanEncodeLength(s []byte) uint64 {
	var bits uint64
	for _, c := range s {
		bits += uint64(huffmanCodeLen[c])
	}
	return (bits + 7) / 8
}

// AppendHuffmanString appends the Huffman encoding of s (§5.2, padded with
// the most significant bits of EOS) to dst and returns the extended slice.
func AppendHuffmanString(dst []byte, s []byte) []byte {
	return appendHuffman(dst, s, int(HuffmanEncodeLength(s)))
}

// appendHuffman appends the n = HuffmanEncodeLength(s) byte Huffman
// encoding of s to dst.
func appendHuffman(dst []byte, s []byte, n int) []byte {
	dst = slices.Grow(dst, n)
	base := len(dst)
	dst = dst[:base+n]
	out := dst[base:]
	var acc uint64 // pending bits are the low `bits` bits
	var bits uint  // always < 32 between symbols; a code has <= 30 bits
	j := 0
	for _, c := range s {
		l := uint(huffmanCodeLen[c])
		acc = acc<<l | uint64(huffmanCode[c])
		bits += l
		if bits >= 32 {
			bits -= 32
			binary.BigEndian.PutUint32(out[j:], uint32(acc>>bits))
			j += 4
		}
	}
	if bits > 0 {
		// §5.2: pad to an octet boundary with the high bits of EOS (ones).
		pad := (8 - bits%8) % 8
		acc = acc<<pad | (1<<pad - 1)
		bits += pad
		for bits > 0 {
			bits -= 8
			out[j] = byte(acc >> bits)
			j++
		}
	}
	return dst
}

// AppendHuffmanDecode appends the decoding of the Huffman-coded string enc
// to dst. It enforces §5.2 strictly: a string containing EOS, padding longer
// than 7 bits or padding that is not all ones is an error (a DecodingError
// wrapping ErrInvalidHuffman), in which case dst is returned unchanged.
func AppendHuffmanDecode(dst []byte, enc []byte) ([]byte, error) {
	return huffmanDecode(dst, enc, int(^uint(0)>>1))
}

// huffmanDecode is AppendHuffmanDecode producing at most limit bytes: a
// longer output yields errHuffmanTooLong (the rest of enc is then not
// validated). It reserves at most min(limit, 8*len(enc)/5) bytes.
func huffmanDecode(dst []byte, enc []byte, limit int) ([]byte, error) {
	// Every code is at least 5 bits long, which bounds the output.
	n := len(enc) / 5 * 8
	n += len(enc) % 5 * 8 / 5
	if n > limit {
		n = max(limit, 0)
	}
	dst = slices.Grow(dst, n)
	base := len(dst)
	out := dst[base : base+n]
	j := 0
	t := uint32(huffAccept) // at the root: the empty string is valid
	for _, c := range enc {
		t = huffmanFSM[(t&0xff0|uint32(c>>4))&0xfff]
		if t&(huffEmit|huffFail) != 0 {
			if t&huffFail != 0 {
				return dst, errInvalidHuffman
			}
			if j >= len(out) {
				return dst, errHuffmanTooLong
			}
			out[j] = byte(t >> 16)
			j++
		}
		t = huffmanFSM[(t&0xff0|uint32(c&0xf))&0xfff]
		if t&(huffEmit|huffFail) != 0 {
			if t&huffFail != 0 {
				return dst, errInvalidHuffman
			}
			if j >= len(out) {
				return dst, errHuffmanTooLong
			}
			out[j] = byte(t >> 16)
			j++
		}
	}
	if t&huffAccept == 0 {
		return dst, errInvalidHuffman
	}
	return dst[:base+j], nil
}

// huffmanValidate reports whether enc is a valid Huffman-coded string
// without producing its decoding.
func huffmanValidate(enc []byte) error {
	t := uint32(huffAccept)
	for _, c := range enc {
		t = huffmanFSM[(t&0xff0|uint32(c>>4))&0xfff]
		if t&huffFail != 0 {
			return errInvalidHuffman
		}
		t = huffmanFSM[(t&0xff0|uint32(c&0xf))&0xfff]
		if t&huffFail != 0 {
			return errInvalidHuffman
		}
	}
	if t&huffAccept == 0 {
		return errInvalidHuffman
	}
	return nil
}
