package hpack

import "math"

// maxIntContinuation is the number of continuation bytes accepted after an
// all-ones prefix: five carry 35 bits, enough for any uint32.
const maxIntContinuation = 5

// readInt decodes the integer (§5.1) with an n-bit prefix that starts at
// block[p] and returns it with the position after it. Values above
// math.MaxUint32, or encodings with more than five continuation bytes, are
// ErrIntegerOverflow, so a peer cannot make us loop or wrap around.
func readInt(block []byte, p int, n uint8) (uint32, int, error) {
	if p >= len(block) {
		return 0, p, errTruncated
	}
	mask := byte(1)<<n - 1
	v := block[p] & mask
	p++
	if v < mask {
		return uint32(v), p, nil
	}
	m := uint64(v)
	shift := uint(0)
	for range maxIntContinuation {
		if p >= len(block) {
			return 0, p, errTruncated
		}
		b := block[p]
		p++
		m += uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			if m > math.MaxUint32 {
				return 0, p, errIntegerOverflow
			}
			return uint32(m), p, nil
		}
		shift += 7
	}
	return 0, p, errIntegerOverflow
}

// appendInt appends v encoded as an integer with an n-bit prefix (§5.1);
// first holds the representation's pattern bits above the prefix.
func appendInt(dst []byte, n uint8, first byte, v uint64) []byte {
	mask := uint64(1)<<n - 1
	if v < mask {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(mask))
	v -= mask
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
