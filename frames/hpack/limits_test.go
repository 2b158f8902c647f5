package hpack

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"
)

// literal returns a literal with incremental indexing and a new name.
func literal(e *Encoder, name, value string) []byte {
	e.SetIndexPolicy(IndexAll)
	return e.AppendFieldString(nil, name, value, false)
}

func TestLimits_ListSizeStopsAtLimit(t *testing.T) {
	d := NewDecoder(4096)
	d.SetMaxHeaderListSize(100)
	// 2 + 32 = 34 each: two fit, the third passes 100.
	blk := dehex("82 82 82 82")
	got, err := d.Decode(nil, blk)
	if err != ErrHeaderListTooLarge {
		t.Fatalf("err = %v", err)
	}
	var de DecodingError
	if errors.As(err, &de) {
		t.Fatal("ErrHeaderListTooLarge must not be a DecodingError")
	}
	if len(got) != 2 {
		t.Fatalf("returned %d fields before the limit, want 2", len(got))
	}
	// Exactly at the limit is fine: :method GET is 42 bytes.
	d.SetMaxHeaderListSize(84)
	if got, err = d.Decode(nil, dehex("82 82")); err != nil || len(got) != 2 {
		t.Fatalf("at the limit: %d fields, %v", len(got), err)
	}
	if _, err = d.Decode(nil, dehex("82 82 87")); err != ErrHeaderListTooLarge {
		t.Fatalf("one byte over: %v", err)
	}
}

func TestLimits_MaxFields(t *testing.T) {
	d := NewDecoder(4096)
	d.SetMaxFields(10)
	blk := bytes.Repeat([]byte{0x82}, 11)
	got, err := d.Decode(nil, blk)
	if err != ErrHeaderListTooLarge || len(got) != 10 {
		t.Fatalf("%d fields, %v", len(got), err)
	}
	if got, err = d.Decode(nil, blk[:10]); err != nil || len(got) != 10 {
		t.Fatalf("%d fields, %v", len(got), err)
	}
	// Default: 1000.
	d.SetMaxFields(0)
	if _, err = d.Decode(nil, bytes.Repeat([]byte{0x82}, 1001)); err != ErrHeaderListTooLarge {
		t.Fatalf("1001 fields: %v", err)
	}
}

// A plain literal far larger than the limit is rejected without copying it.
func TestLimits_LargeLiteralDoesNotAllocate(t *testing.T) {
	e := NewEncoder()
	e.huffman = huffmanNever
	e.SetIndexPolicy(IndexNone)
	blk := e.AppendFieldString(nil, "x-big", string(bytes.Repeat([]byte("a"), 1<<20)), false)
	d := NewDecoder(4096)
	d.SetMaxHeaderListSize(16 << 10)
	dst := make([]HeaderField, 0, 8)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := d.Decode(dst, blk); err != ErrHeaderListTooLarge {
			t.Fatalf("err = %v", err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per oversized block", allocs)
	}
}

// rawLiteral builds a literal representation with a new name; first is
// 0x40 (incremental indexing), 0x00 (without indexing) or 0x10 (never
// indexed). The value is Huffman-coded if huffman is set.
func rawLiteral(first byte, name, value string, huffman bool) []byte {
	b := []byte{first}
	b = appendInt(b, 7, 0, uint64(len(name)))
	b = append(b, name...)
	if huffman {
		n := HuffmanEncodeLength([]byte(value))
		b = appendInt(b, 7, 0x80, n)
		return AppendHuffmanString(b, []byte(value))
	}
	b = appendInt(b, 7, 0, uint64(len(value)))
	return append(b, value...)
}

// A Huffman-coded string that expands past the limit is not decoded beyond
// it: the memory used is bounded by the limit, not by the input, whether or
// not the field is to be inserted into the table.
func TestLimits_HuffmanExpansionBounded(t *testing.T) {
	for _, first := range []byte{0x00, 0x40, 0x10} {
		// '0' has a 5-bit code: 8 output bytes per 5 input bytes.
		blk := rawLiteral(first, "x-bomb", string(bytes.Repeat([]byte("0"), 4<<20)), true)
		d := NewDecoder(4096)
		d.SetMaxHeaderListSize(8 << 10)
		dst := make([]HeaderField, 0, 8)
		if _, err := d.Decode(dst, blk); err != ErrHeaderListTooLarge {
			t.Fatalf("err = %v", err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, err := d.Decode(dst, blk); err != ErrHeaderListTooLarge {
				t.Fatalf("err = %v", err)
			}
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Fatalf("representation %#x: allocated %d bytes for 10 blocks of 2.5 MiB limited to 8 KiB", first, n)
		}
		if d.DynamicTableSize() != 0 {
			t.Fatalf("table size %d", d.DynamicTableSize())
		}
	}
}

// After ErrHeaderListTooLarge the table holds exactly what the peer's
// does, so the following blocks decode correctly.
func TestLimits_TableStaysInSync(t *testing.T) {
	for _, huff := range []huffmanMode{huffmanNever, huffmanAlways} {
		e := NewEncoder()
		e.SetIndexPolicy(IndexAll)
		e.huffman = huff
		big := string(bytes.Repeat([]byte("abcdefgh"), 250)) // 2000 bytes: fits the table
		huge := string(bytes.Repeat([]byte("z"), 5000))      // larger than the table
		block1 := [][]HeaderField{
			{pf("x-a", "1"), pf("x-big", big), pf("x-b", "2"), pf("x-c", "3")},
			{pf("x-big", big), pf("x-a", "1"), pf("x-b", "2"), pf("x-c", "3"), pf("x-d", "4")},
			{pf("x-e", "5"), pf("x-huge", huge), pf("x-f", "6")}, // x-huge empties the table
			{pf("x-big", big), pf("x-f", "6"), pf("x-g", "7")},
		}
		d := NewDecoder(4096)
		ref := NewDecoder(4096)
		for i, fields := range block1 {
			blk := e.AppendHeaderBlock(nil, fields)
			d.SetMaxHeaderListSize(1000)
			got, err := d.Decode(nil, blk)
			if err != ErrHeaderListTooLarge {
				t.Fatalf("block %d: err = %v", i, err)
			}
			if !fieldsEqual(got, fields[:len(got)]) {
				t.Fatalf("block %d: prefix %s", i, fmtFields(got))
			}
			if _, err := ref.Decode(nil, blk); err != nil {
				t.Fatal(err)
			}
			checkTable(t, "after too large block", &d.dt, ref.dt.entries(), ref.dt.size)
			// The next block, referring to the table, decodes fine.
			blk = e.AppendHeaderBlock(nil, fields)
			d.SetMaxHeaderListSize(0)
			got, err = d.Decode(nil, blk)
			if err != nil || !fieldsEqual(got, fields) {
				t.Fatalf("block %d after: %s, %v", i, fmtFields(got), err)
			}
			if _, err := ref.Decode(nil, blk); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The HPACK bomb: one large entry in the table, then a long run of one-byte
// references to it. Each reference costs 4 KiB of list size and nothing
// else, so the limit stops it after a few hundred.
func TestLimits_HPACKBomb(t *testing.T) {
	e := NewEncoder()
	blk := literal(e, "x", string(bytes.Repeat([]byte("A"), 4000)))
	blk = append(blk, bytes.Repeat([]byte{0x80 | 62}, 200_000)...)
	d := NewDecoder(4096)
	dst := make([]HeaderField, 0, 1000)
	start := time.Now()
	got, err := d.Decode(dst, blk)
	if err != ErrHeaderListTooLarge {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Fatalf("took %v", el)
	}
	var total uint32
	for _, f := range got {
		total += f.Size()
	}
	if total > defaultMaxHeaderListSize || len(got) < 200 {
		t.Fatalf("returned %d fields of %d bytes", len(got), total)
	}
	allocs := testing.AllocsPerRun(5, func() {
		d := d
		d.Decode(dst, blk[len(blk)-100_000:]) // the references alone
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}
