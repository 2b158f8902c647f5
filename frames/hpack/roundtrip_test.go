package hpack

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

// Interoperability with golang.org/x/net/http2/hpack: many consecutive
// blocks on one connection, so that the dynamic tables on both sides must
// stay in sync, with random names and values (binary bytes, empty values,
// values larger than the table), sensitive fields and table size changes.

var customNames = []string{
	"x-request-id", "x-forwarded-for", "x-trace", "sec-ch-ua", "priority",
	"x-custom-a", "x-custom-b", "grpc-status", "grpc-message", "te",
}

var pooledValues = []string{
	"", "0", "1", "gzip", "text/html", "no-cache", "https://example.com/",
	"application/json; charset=utf-8", "Mon, 21 Oct 2013 20:13:21 GMT",
}

type fieldGen struct {
	r *rand.Rand
}

func (g fieldGen) bytes(n int, binary bool) []byte {
	b := make([]byte, n)
	if binary {
		g.r.Read(b)
		return b
	}
	for i := range b {
		b[i] = byte(' ' + g.r.Intn(95))
	}
	return b
}

func (g fieldGen) length() int {
	switch x := g.r.Intn(100); {
	case x < 70:
		return g.r.Intn(40)
	case x < 95:
		return g.r.Intn(300)
	case x < 99:
		return 1000 + g.r.Intn(2500) // often more than half the table
	default:
		return 4000 + g.r.Intn(5000) // often more than the table
	}
}

func (g fieldGen) field() HeaderField {
	var f HeaderField
	static := 0
	switch x := g.r.Intn(100); {
	case x < 35:
		static = 1 + g.r.Intn(staticTableLen)
		f.Name = []byte(staticTable[static].name)
	case x < 65:
		f.Name = []byte(customNames[g.r.Intn(len(customNames))])
	case x < 85:
		f.Name = g.bytes(1+g.r.Intn(20), false)
	case x < 98:
		f.Name = g.bytes(g.r.Intn(20), true)
	default:
		f.Name = []byte{}
	}
	switch x := g.r.Intn(100); {
	case x < 20 && static != 0:
		f.Value = []byte(staticTable[static].value)
	case x < 45:
		f.Value = []byte(pooledValues[g.r.Intn(len(pooledValues))])
	case x < 85:
		f.Value = g.bytes(g.length(), false)
	default:
		f.Value = g.bytes(g.length(), true)
	}
	f.Sensitive = g.r.Intn(10) == 0
	return f
}

// list returns 1..30 fields, repeating earlier ones often so that the
// dynamic table gets hits.
func (g fieldGen) list(prev []HeaderField) []HeaderField {
	n := 1 + g.r.Intn(30)
	out := make([]HeaderField, 0, n)
	for range n {
		if len(prev) > 0 && g.r.Intn(2) == 0 {
			out = append(out, prev[g.r.Intn(len(prev))])
		} else {
			out = append(out, g.field())
		}
	}
	return out
}

var tableSizes = []uint32{0, 32, 64, 100, 256, 1000, 4096, 4096, 4096, 8192, 65536}

func toXNet(fs []HeaderField) []xhpack.HeaderField {
	out := make([]xhpack.HeaderField, len(fs))
	for i, f := range fs {
		out[i] = xhpack.HeaderField{Name: string(f.Name), Value: string(f.Value), Sensitive: f.Sensitive}
	}
	return out
}

func fromXNet(fs []xhpack.HeaderField) []HeaderField {
	out := make([]HeaderField, len(fs))
	for i, f := range fs {
		out[i] = HeaderField{Name: []byte(f.Name), Value: []byte(f.Value), Sensitive: f.Sensitive}
	}
	return out
}

const roundTripBlocks = 3000

func TestRoundTrip_OurEncoderToXNetDecoder(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			g := fieldGen{r}
			e := NewEncoder()
			e.SetIndexPolicy(IndexPolicy(seed % 3))
			e.huffman = huffmanMode(seed % 3)
			e.SetMaxDynamicTableSizeLimit(65536)
			xd := xhpack.NewDecoder(4096, nil)
			d := NewDecoder(4096)
			var prev, dst []HeaderField
			var blk []byte
			for i := range roundTripBlocks {
				if r.Intn(40) == 0 {
					// The peer acknowledges new settings, once or twice
					// before the next block; sometimes our own cap changes.
					for range 1 + r.Intn(2) {
						s := tableSizes[r.Intn(len(tableSizes))]
						xd.SetAllowedMaxDynamicTableSize(s)
						d.SetMaxDynamicTableSize(s)
						e.SetMaxDynamicTableSize(s)
					}
					if r.Intn(4) == 0 {
						e.SetMaxDynamicTableSizeLimit(tableSizes[r.Intn(len(tableSizes))])
					}
				}
				fields := g.list(prev)
				blk = e.AppendHeaderBlock(blk[:0], fields)

				xf, err := xd.DecodeFull(blk)
				if err != nil {
					t.Fatalf("block %d: x/net: %v\nfields %s", i, err, fmtFields(fields))
				}
				if got := fromXNet(xf); !fieldsEqual(got, fields) {
					t.Fatalf("block %d: x/net decoded %s\nwant %s", i, fmtFields(got), fmtFields(fields))
				}
				dst, err = d.Decode(dst, blk)
				if err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
				if !fieldsEqual(dst, fields) {
					t.Fatalf("block %d: decoded %s\nwant %s", i, fmtFields(dst), fmtFields(fields))
				}
				if d.DynamicTableSize() != e.DynamicTableSize() {
					t.Fatalf("block %d: table sizes %d (decoder) != %d (encoder)", i, d.DynamicTableSize(), e.DynamicTableSize())
				}
				prev = fields
			}
		})
	}
}

func TestRoundTrip_XNetEncoderToOurDecoder(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(100 + seed))
			g := fieldGen{r}
			var buf bytes.Buffer
			xe := xhpack.NewEncoder(&buf)
			xe.SetMaxDynamicTableSizeLimit(65536)
			d := NewDecoder(4096)
			var prev, dst []HeaderField
			for i := range roundTripBlocks {
				if r.Intn(40) == 0 {
					for range 1 + r.Intn(2) {
						s := tableSizes[r.Intn(len(tableSizes))]
						d.SetMaxDynamicTableSize(s)
						xe.SetMaxDynamicTableSize(s)
					}
				}
				fields := g.list(prev)
				buf.Reset()
				for _, f := range toXNet(fields) {
					if err := xe.WriteField(f); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				dst, err = d.Decode(dst, buf.Bytes())
				if err != nil {
					t.Fatalf("block %d: %v\nfields %s", i, err, fmtFields(fields))
				}
				if !fieldsEqual(dst, fields) {
					t.Fatalf("block %d: decoded %s\nwant %s", i, fmtFields(dst), fmtFields(fields))
				}
				prev = fields
			}
		})
	}
}

// The decoded fields of a block must survive everything the rest of the
// block does to the table: evictions, arena relocation and the insertion of
// entries larger than the table.
func TestDecode_FieldsSurviveLaterEvictions(t *testing.T) {
	for _, size := range []uint32{64, 256, 4096} {
		r := rand.New(rand.NewSource(int64(size)))
		g := fieldGen{r}
		e := NewEncoder()
		e.SetIndexPolicy(IndexAll)
		e.SetMaxDynamicTableSize(size)
		d := NewDecoder(4096)
		d.SetMaxDynamicTableSize(size)
		var prev []HeaderField
		for i := range 500 {
			// Long blocks whose insertions exceed the table several times.
			fields := append(g.list(prev), g.list(prev)...)
			fields = append(fields, g.list(fields)...)
			blk := e.AppendHeaderBlock(nil, fields)
			got, err := d.Decode(nil, blk)
			if err != nil {
				t.Fatalf("size %d block %d: %v", size, i, err)
			}
			if !fieldsEqual(got, fields) {
				t.Fatalf("size %d block %d: decoded %s\nwant %s", size, i, fmtFields(got), fmtFields(fields))
			}
			prev = fields
		}
	}
}

func TestEncode_TableSizeUpdates(t *testing.T) {
	e := NewEncoder()
	if got := e.AppendTableSizeUpdate(nil); len(got) != 0 {
		t.Fatalf("no change, got update %x", got)
	}
	// A raise above our cap of 4096 changes nothing.
	e.SetMaxDynamicTableSize(8192)
	if got := e.AppendTableSizeUpdate(nil); len(got) != 0 {
		t.Fatalf("capped raise: got update %x", got)
	}
	// One change: one update.
	e.SetMaxDynamicTableSize(1024)
	if got, want := e.AppendTableSizeUpdate(nil), appendInt(nil, 5, 0x20, 1024); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if got := e.AppendTableSizeUpdate(nil); len(got) != 0 {
		t.Fatalf("update emitted twice: %x", got)
	}
	// Two changes, the first one smaller: smallest then final (§4.2).
	e.SetMaxDynamicTableSize(0)
	e.SetMaxDynamicTableSize(2048)
	want := appendInt(appendInt(nil, 5, 0x20, 0), 5, 0x20, 2048)
	if got := e.AppendHeaderBlock(nil, nil); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	// Back to the original size after a dip: still signalled.
	e.SetMaxDynamicTableSize(100)
	e.SetMaxDynamicTableSize(2048)
	want = appendInt(appendInt(nil, 5, 0x20, 100), 5, 0x20, 2048)
	if got := e.AppendTableSizeUpdate(nil); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	// A dip that leaves entries in the table: announced as 0 then the final
	// size, so that decoders that reject a second update while their table
	// is not empty (x/net) accept it.
	e.AppendFieldString(nil, "x-a", "b", false)
	e.SetMaxDynamicTableSize(100)
	e.SetMaxDynamicTableSize(2048)
	want = appendInt(appendInt(nil, 5, 0x20, 0), 5, 0x20, 2048)
	if got := e.AppendTableSizeUpdate(nil); !bytes.Equal(got, want) || e.DynamicTableSize() != 0 {
		t.Fatalf("got %x (table size %d), want %x", got, e.DynamicTableSize(), want)
	}
	// Lowering our own cap below the peer's size.
	e.SetMaxDynamicTableSizeLimit(512)
	if got, want := e.AppendTableSizeUpdate(nil), appendInt(nil, 5, 0x20, 512); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if e.MaxDynamicTableSize() != 512 {
		t.Fatalf("MaxDynamicTableSize = %d", e.MaxDynamicTableSize())
	}
}

func TestEncode_IndexPolicy(t *testing.T) {
	big := bytes.Repeat([]byte("v"), 2100) // more than half of 4096
	for _, tc := range []struct {
		f      HeaderField
		policy IndexPolicy
		index  bool
	}{
		{pf("x-a", "b"), IndexDefault, true},
		{pf(":path", "/x"), IndexDefault, false},
		{pf("content-length", "12"), IndexDefault, false},
		{pf("set-cookie", "a=b"), IndexDefault, false},
		{HeaderField{Name: []byte("x-a"), Value: big}, IndexDefault, false},
		{HeaderField{Name: []byte("x-a"), Value: big}, IndexAll, true},
		{HeaderField{Name: []byte("x-a"), Value: bytes.Repeat([]byte("v"), 4065)}, IndexAll, false}, // 4065+3+32 > 4096
		{pf(":path", "/x"), IndexAll, true},
		{pf("x-a", "b"), IndexNone, false},
		{sf("x-a", "b"), IndexAll, false},
	} {
		e := NewEncoder()
		e.SetIndexPolicy(tc.policy)
		blk := e.AppendField(nil, tc.f)
		if got := e.DynamicTableSize() != 0; got != tc.index {
			t.Errorf("%q (policy %d): indexed = %v, want %v", tc.f.Name, tc.policy, got, tc.index)
		}
		d := NewDecoder(4096)
		got, err := d.Decode(nil, blk)
		if err != nil || !fieldsEqual(got, []HeaderField{tc.f}) {
			t.Errorf("%q: decoded %s, %v", tc.f.Name, fmtFields(got), err)
		}
		if d.DynamicTableSize() != e.DynamicTableSize() {
			t.Errorf("%q: table sizes differ", tc.f.Name)
		}
	}
}

func TestEncode_IndexedAndSensitive(t *testing.T) {
	e := NewEncoder()
	blk := e.AppendFieldString(nil, "x-token", "abc", false)
	if blk[0]&0xc0 != 0x40 {
		t.Fatalf("first use not indexed: %x", blk)
	}
	// Second use: a one-byte indexed representation.
	if blk = e.AppendFieldString(nil, "x-token", "abc", false); !bytes.Equal(blk, []byte{0x80 | 62}) {
		t.Fatalf("second use: %x", blk)
	}
	// Sensitive: never indexed, even though the pair is in the table; the
	// name comes from the table.
	blk = e.AppendFieldString(nil, "x-token", "abc", true)
	if blk[0] != 0x1f || blk[1] != 62-15 {
		t.Fatalf("sensitive: %x", blk)
	}
	// Static full and name matches.
	if blk = e.AppendFieldString(nil, ":status", "404", false); !bytes.Equal(blk, []byte{0x80 | 13}) {
		t.Fatalf(":status 404: %x", blk)
	}
	if blk = e.AppendFieldString(nil, ":authority", "", false); !bytes.Equal(blk, []byte{0x81}) {
		t.Fatalf(":authority empty: %x", blk)
	}
}
