package hpack

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

// The code derived from the lengths must be RFC 7541 Appendix B: compare
// every symbol with golang.org/x/net's independent table.
func TestHuffman_AppendixB_MatchesXNet(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := []byte{byte(c)}
		want := xhpack.AppendHuffmanString(nil, string(s))
		if got := AppendHuffmanString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("symbol %#x: encoded %x, want %x", c, got, want)
		}
		// Two symbols, so that no code hides in the padding.
		s2 := []byte{byte(c), byte(c)}
		want = xhpack.AppendHuffmanString(nil, string(s2))
		if got := AppendHuffmanString(nil, s2); !bytes.Equal(got, want) {
			t.Errorf("symbol %#x twice: encoded %x, want %x", c, got, want)
		}
	}
	// EOS is thirty 1 bits: the all-ones code after the three other
	// 30-bit codes (0x0a, 0x0d, 0x16).
	if huffmanCode[0x16] != 0x3ffffffe || huffmanCodeLen[huffmanEOS] != 30 {
		t.Errorf("unexpected 30-bit codes")
	}
}

func TestHuffman_RandomRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		s := make([]byte, r.Intn(300))
		if i%2 == 0 {
			r.Read(s)
		} else {
			for j := range s {
				s[j] = byte(32 + r.Intn(95))
			}
		}
		enc := AppendHuffmanString([]byte("prefix"), s)
		if !bytes.Equal(enc[:6], []byte("prefix")) {
			t.Fatal("prefix clobbered")
		}
		enc = enc[6:]
		if want := xhpack.AppendHuffmanString(nil, string(s)); !bytes.Equal(enc, want) {
			t.Fatalf("encode %x: got %x, want %x", s, enc, want)
		}
		if uint64(len(enc)) != HuffmanEncodeLength(s) || HuffmanEncodeLength(s) != xhpack.HuffmanEncodeLength(string(s)) {
			t.Fatalf("HuffmanEncodeLength mismatch for %x", s)
		}
		dec, err := AppendHuffmanDecode([]byte("x"), enc)
		if err != nil || !bytes.Equal(dec[1:], s) || dec[0] != 'x' {
			t.Fatalf("decode of %x: %x, %v", s, dec, err)
		}
	}
}

func TestHuffman_InvalidInput(t *testing.T) {
	eos := []byte{0xff, 0xff, 0xff, 0xfc} // 30 ones + "00"
	for _, tc := range []struct {
		name string
		enc  []byte
	}{
		{"EOS alone", []byte{0xff, 0xff, 0xff, 0xff}},
		{"EOS then padding", eos},
		{"EOS after a symbol", append([]byte{0x1f}, 0xff, 0xff, 0xff, 0xff)}, // '0' = 00000 + ones
		{"padding of 8 ones", []byte{0xff}},
		{"padding of 8 ones after a symbol", []byte{0xf8, 0xff}}, // '&' (8 bits) + 11111111
		{"padding of 11 ones", []byte{0x1f, 0xff}},               // 'a' 00011 + 11 ones
		{"padding not ones", []byte{0x00}},                       // '0' (5 bits) + 000
		{"padding not ones 2", []byte{0x1e}},                     // '0' + 110
		{"incomplete code", []byte{0xfe}},                        // 1111 1110 prefix of a long code
	} {
		if _, err := AppendHuffmanDecode(nil, tc.enc); !errors.Is(err, ErrInvalidHuffman) {
			t.Errorf("%s (%x): err = %v, want ErrInvalidHuffman", tc.name, tc.enc, err)
		}
		var de DecodingError
		if _, err := AppendHuffmanDecode(nil, tc.enc); !errors.As(err, &de) {
			t.Errorf("%s: %v is not a DecodingError", tc.name, err)
		}
		if err := huffmanValidate(tc.enc); !errors.Is(err, ErrInvalidHuffman) {
			t.Errorf("%s: huffmanValidate = %v", tc.name, err)
		}
		// x/net agrees that these are invalid.
		if _, err := xhpack.HuffmanDecodeToString(tc.enc); err == nil {
			t.Errorf("%s: x/net accepts %x", tc.name, tc.enc)
		}
	}
	// Valid: empty string, 7 bits of padding, no padding.
	for _, enc := range [][]byte{nil, {0x1f}, AppendHuffmanString(nil, []byte("abcdefgh"))} {
		if _, err := AppendHuffmanDecode(nil, enc); err != nil {
			t.Errorf("%x: %v", enc, err)
		}
		if err := huffmanValidate(enc); err != nil {
			t.Errorf("validate %x: %v", enc, err)
		}
	}
}

func TestHuffman_DecodeLimit(t *testing.T) {
	s := bytes.Repeat([]byte("a"), 100)
	enc := AppendHuffmanString(nil, s)
	if _, err := huffmanDecode(nil, enc, 99); err != errHuffmanTooLong {
		t.Fatalf("limit 99: %v", err)
	}
	out, err := huffmanDecode(nil, enc, 100)
	if err != nil || !bytes.Equal(out, s) {
		t.Fatalf("limit 100: %v", err)
	}
	// The reservation is bounded by the limit, not by the input size.
	out, _ = huffmanDecode(nil, bytes.Repeat([]byte{0}, 1<<20), 10)
	if cap(out) > 64 {
		t.Fatalf("reserved %d bytes for a 10-byte limit", cap(out))
	}
}
