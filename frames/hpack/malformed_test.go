package hpack

import (
	"errors"
	"testing"
)

func TestDecode_MalformedInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(d *Decoder)
		block string // hex
		want  error
	}{
		{"index 0", nil, "80", ErrIndex},
		{"index 62 with an empty dynamic table", nil, "be", ErrIndex},
		{"index past the dynamic table", nil, "4001 6101 62 be bf", ErrIndex},
		{"huge index", nil, "ff ffff ff0f", ErrIndex},
		{"literal name index 0 is a new name, index past table", nil, "0f30 0161", ErrIndex},
		{"literal with indexing, name index past table", nil, "7f00 0161", ErrIndex},
		{"integer above 2^32-1", nil, "ff ffffffff0f", ErrIntegerOverflow},
		{"integer with six continuation bytes", nil, "ff 8080808080 00", ErrIntegerOverflow},
		{"string length overflow", nil, "0400 7fffffffff7f", ErrIntegerOverflow},
		{"truncated integer", nil, "ff 80", ErrTruncated},
		{"truncated index prefix only", nil, "ff", ErrTruncated},
		{"missing value", nil, "41", ErrTruncated},
		{"missing name", nil, "40", ErrTruncated},
		{"missing value after new name", nil, "4001 61", ErrTruncated},
		{"truncated string length", nil, "44 7f", ErrTruncated},
		{"string longer than block", nil, "4005 6162", ErrStringLength},
		{"huge string length", nil, "44 7fe1ffff07", ErrStringLength},
		{"huffman name containing EOS", nil, "4084 ffffffff 0161", ErrInvalidHuffman},
		{"huffman value containing EOS", nil, "0484 ffffffff", ErrInvalidHuffman},
		{"huffman padding longer than 7 bits", nil, "0481 ff", ErrInvalidHuffman},
		{"huffman padding of 11 bits", nil, "0482 1fff", ErrInvalidHuffman},
		{"huffman padding not all ones", nil, "0481 00", ErrInvalidHuffman},
		{"huffman padding not all ones, never indexed", nil, "1481 1e", ErrInvalidHuffman},
		{"size update above the advertised maximum", nil, "3fe21f", ErrTableSizeUpdate},
		{"size update above a lowered maximum", func(d *Decoder) { d.SetMaxDynamicTableSize(100) }, "3f46", ErrTableSizeUpdate},
		{"size update after a field", nil, "82 20", ErrTableSizeUpdate},
		{"size update after a field, empty table", nil, "82 3fe11f", ErrTableSizeUpdate},
		{"size update at the end", nil, "4001 6101 62 20", ErrTableSizeUpdate},
		{"missing size update after lowering", func(d *Decoder) { d.SetMaxDynamicTableSize(1024) }, "82", ErrTableSizeUpdate},
		{"missing size update, empty block", func(d *Decoder) { d.SetMaxDynamicTableSize(0) }, "", ErrTableSizeUpdate},
		{"truncated size update", nil, "3f", ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(4096)
			if tc.setup != nil {
				tc.setup(d)
			}
			got, err := d.Decode(make([]HeaderField, 0, 4), dehex(tc.block))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var de DecodingError
			if !errors.As(err, &de) || de.Err != tc.want {
				t.Fatalf("err = %#v, want a DecodingError wrapping %v", err, tc.want)
			}
			if len(got) != 0 {
				t.Fatalf("returned %d fields with a decoding error", len(got))
			}
		})
	}
}

func TestDecode_ValidEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(d *Decoder)
		block string
		want  []HeaderField
		size  uint32
	}{
		{"empty block", nil, "", nil, 0},
		{"index 62 after an insertion", nil, "4001 6101 62 be", []HeaderField{pf("a", "b"), pf("a", "b")}, 34},
		{"zero-length name and value", nil, "4000 00", []HeaderField{pf("", "")}, 32},
		{"empty Huffman string", nil, "4080 0161", []HeaderField{pf("", "a")}, 33},
		{"integer with redundant zero continuation", nil, "0f8000 0161", []HeaderField{pf("accept-charset", "a")}, 0},
		{"size update to the maximum", nil, "3fe11f 82", []HeaderField{pf(":method", "GET")}, 0},
		{"two size updates", nil, "20 3fe11f 82", []HeaderField{pf(":method", "GET")}, 0},
		{"size update after lowering", func(d *Decoder) { d.SetMaxDynamicTableSize(1024) }, "3fe107 82", []HeaderField{pf(":method", "GET")}, 0},
		{"raising needs no update", func(d *Decoder) { d.SetMaxDynamicTableSize(8192) }, "82", []HeaderField{pf(":method", "GET")}, 0},
		{"lowering to the current size needs no update", func(d *Decoder) { d.SetMaxDynamicTableSize(4096) }, "82", []HeaderField{pf(":method", "GET")}, 0},
		// Table of 40 bytes: the empty entry (32) fits, "c: 0123456789" (43)
		// does not and empties the table (§4.4), without an error.
		{"entry larger than the table empties it", nil, "3f09 4000 00 4001 630a 3031 3233 3435 3637 3839",
			[]HeaderField{pf("", ""), pf("c", "0123456789")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(4096)
			if tc.setup != nil {
				tc.setup(d)
			}
			got, err := d.Decode(nil, dehex(tc.block))
			if err != nil {
				t.Fatal(err)
			}
			if !fieldsEqual(got, tc.want) {
				t.Fatalf("got %s, want %s", fmtFields(got), fmtFields(tc.want))
			}
			if d.DynamicTableSize() != tc.size {
				t.Fatalf("table size %d, want %d", d.DynamicTableSize(), tc.size)
			}
		})
	}
}

// After a lowering, the required update is consumed by the next block;
// the block after it needs none.
func TestDecode_RequiredUpdateOnlyOnce(t *testing.T) {
	d := NewDecoder(4096)
	d.SetMaxDynamicTableSize(1024)
	if _, err := d.Decode(nil, dehex("3fe107 82")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(nil, dehex("82")); err != nil {
		t.Fatal(err)
	}
}

// Every decoded slice has its capacity clipped to its length, so appending
// to a field copies instead of overwriting a neighbour.
func TestDecode_SlicesAreCapacityClipped(t *testing.T) {
	for _, series := range [][]vectorStep{vectorsC3, vectorsC4} {
		d := NewDecoder(4096)
		for _, st := range series {
			got, err := d.Decode(nil, dehex(st.block))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range got {
				if cap(f.Name) != len(f.Name) || cap(f.Value) != len(f.Value) {
					t.Fatalf("%q: %q: capacities %d/%d for lengths %d/%d", f.Name, f.Value, cap(f.Name), cap(f.Value), len(f.Name), len(f.Value))
				}
			}
		}
	}
}
