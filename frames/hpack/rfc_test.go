package hpack

import (
	"bytes"
	"testing"
)

// The examples of RFC 7541 Appendix C.

type vectorStep struct {
	block  string        // hex
	fields []HeaderField // decoded header list
	table  []HeaderField // dynamic table afterwards, newest first
	size   uint32        // dynamic table size afterwards
}

var (
	// C.3 and C.4 encode the same header lists.
	requestFields = [][]HeaderField{
		{pf(":method", "GET"), pf(":scheme", "http"), pf(":path", "/"), pf(":authority", "www.example.com")},
		{pf(":method", "GET"), pf(":scheme", "http"), pf(":path", "/"), pf(":authority", "www.example.com"), pf("cache-control", "no-cache")},
		{pf(":method", "GET"), pf(":scheme", "https"), pf(":path", "/index.html"), pf(":authority", "www.example.com"), pf("custom-key", "custom-value")},
	}
	requestTables = [][]HeaderField{
		{pf(":authority", "www.example.com")},
		{pf("cache-control", "no-cache"), pf(":authority", "www.example.com")},
		{pf("custom-key", "custom-value"), pf("cache-control", "no-cache"), pf(":authority", "www.example.com")},
	}
	requestSizes = []uint32{57, 110, 164}

	// C.5 and C.6 encode the same header lists with a 256-byte table.
	responseFields = [][]HeaderField{
		{pf(":status", "302"), pf("cache-control", "private"), pf("date", "Mon, 21 Oct 2013 20:13:21 GMT"), pf("location", "https://www.example.com")},
		{pf(":status", "307"), pf("cache-control", "private"), pf("date", "Mon, 21 Oct 2013 20:13:21 GMT"), pf("location", "https://www.example.com")},
		{pf(":status", "200"), pf("cache-control", "private"), pf("date", "Mon, 21 Oct 2013 20:13:22 GMT"), pf("location", "https://www.example.com"), pf("content-encoding", "gzip"), pf("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")},
	}
	responseTables = [][]HeaderField{
		{pf("location", "https://www.example.com"), pf("date", "Mon, 21 Oct 2013 20:13:21 GMT"), pf("cache-control", "private"), pf(":status", "302")},
		{pf(":status", "307"), pf("location", "https://www.example.com"), pf("date", "Mon, 21 Oct 2013 20:13:21 GMT"), pf("cache-control", "private")},
		{pf("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"), pf("content-encoding", "gzip"), pf("date", "Mon, 21 Oct 2013 20:13:22 GMT")},
	}
	responseSizes = []uint32{222, 222, 215}
)

func series(blocks []string, fields, tables [][]HeaderField, sizes []uint32) []vectorStep {
	steps := make([]vectorStep, len(blocks))
	for i := range blocks {
		steps[i] = vectorStep{blocks[i], fields[i], tables[i], sizes[i]}
	}
	return steps
}

// C.2: one block each, decoded with a fresh table.
var vectorsC2 = map[string]vectorStep{
	"C.2.1": {"400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
		[]HeaderField{pf("custom-key", "custom-header")},
		[]HeaderField{pf("custom-key", "custom-header")}, 55},
	"C.2.2": {"040c 2f73 616d 706c 652f 7061 7468",
		[]HeaderField{pf(":path", "/sample/path")}, nil, 0},
	"C.2.3": {"1008 7061 7373 776f 7264 0673 6563 7265 74",
		[]HeaderField{sf("password", "secret")}, nil, 0},
	"C.2.4": {"82",
		[]HeaderField{pf(":method", "GET")}, nil, 0},
}

var vectorsC3 = series([]string{
	"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
	"8286 84be 5808 6e6f 2d63 6163 6865",
	"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
}, requestFields, requestTables, requestSizes)

var vectorsC4 = series([]string{
	"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
	"8286 84be 5886 a8eb 1064 9cbf",
	"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
}, requestFields, requestTables, requestSizes)

var vectorsC5 = series([]string{`
4803 3330 3258 0770 7269 7661 7465 611d
4d6f 6e2c 2032 3120 4f63 7420 3230 3133
2032 303a 3133 3a32 3120 474d 546e 1768
7474 7073 3a2f 2f77 7777 2e65 7861 6d70
6c65 2e63 6f6d`,
	"4803 3330 37c1 c0bf", `
88c1 611d 4d6f 6e2c 2032 3120 4f63 7420
3230 3133 2032 303a 3133 3a32 3220 474d
54c0 5a04 677a 6970 7738 666f 6f3d 4153
444a 4b48 514b 425a 584f 5157 454f 5049
5541 5851 5745 4f49 553b 206d 6178 2d61
6765 3d33 3630 303b 2076 6572 7369 6f6e
3d31`,
}, responseFields, responseTables, responseSizes)

var vectorsC6 = series([]string{`
4882 6402 5885 aec3 771a 4b61 96d0 7abe
9410 54d4 44a8 2005 9504 0b81 66e0 82a6
2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
e9ae 82ae 43d3`,
	"4883 640e ffc1 c0bf", `
88c1 6196 d07a be94 1054 d444 a820 0595
040b 8166 e084 a62d 1bff c05a 839b d9ab
77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
}, responseFields, responseTables, responseSizes)

// allVectorBlocks returns every Appendix C block, for fuzz seeds.
func allVectorBlocks() [][]byte {
	var out [][]byte
	for _, v := range vectorsC2 {
		out = append(out, dehex(v.block))
	}
	for _, s := range [][]vectorStep{vectorsC3, vectorsC4, vectorsC5, vectorsC6} {
		for _, v := range s {
			out = append(out, dehex(v.block))
		}
	}
	return out
}

func testDecodeSeries(t *testing.T, tableSize uint32, steps []vectorStep) {
	t.Helper()
	d := NewDecoder(tableSize)
	var dst []HeaderField
	for i, st := range steps {
		got, err := d.Decode(dst, dehex(st.block))
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if !fieldsEqual(got, st.fields) {
			t.Errorf("request %d: got %s, want %s", i+1, fmtFields(got), fmtFields(st.fields))
		}
		checkTable(t, "request "+string(rune('1'+i)), &d.dt, st.table, st.size)
		if d.DynamicTableSize() != st.size {
			t.Errorf("request %d: DynamicTableSize() = %d, want %d", i+1, d.DynamicTableSize(), st.size)
		}
		dst = got
	}
}

func testEncodeSeries(t *testing.T, e *Encoder, steps []vectorStep) {
	t.Helper()
	var buf []byte
	for i, st := range steps {
		buf = e.AppendHeaderBlock(buf[:0], st.fields)
		if want := dehex(st.block); !bytes.Equal(buf, want) {
			t.Errorf("request %d: encoded\n%x\nwant\n%x", i+1, buf, want)
		}
		checkTable(t, "request "+string(rune('1'+i)), &e.dt, st.table, st.size)
	}
}

func TestInteger_C1_Examples(t *testing.T) {
	for _, tc := range []struct {
		prefix uint8
		v      uint32
		enc    []byte
	}{
		{5, 10, []byte{0x0a}},               // C.1.1
		{5, 1337, []byte{0x1f, 0x9a, 0x0a}}, // C.1.2
		{8, 42, []byte{0x2a}},               // C.1.3
	} {
		if got := appendInt(nil, tc.prefix, 0, uint64(tc.v)); !bytes.Equal(got, tc.enc) {
			t.Errorf("appendInt(%d, %d) = %x, want %x", tc.prefix, tc.v, got, tc.enc)
		}
		v, p, err := readInt(tc.enc, 0, tc.prefix)
		if err != nil || v != tc.v || p != len(tc.enc) {
			t.Errorf("readInt(%x, %d) = %d, %d, %v", tc.enc, tc.prefix, v, p, err)
		}
	}
}

func TestDecode_C2_FieldRepresentations(t *testing.T) {
	for name, v := range vectorsC2 {
		t.Run(name, func(t *testing.T) {
			testDecodeSeries(t, 4096, []vectorStep{v})
		})
	}
}

func TestEncode_C2_FieldRepresentations(t *testing.T) {
	// The default policy reproduces C.2: ":path" is not indexed.
	for name, v := range vectorsC2 {
		t.Run(name, func(t *testing.T) {
			e := NewEncoder()
			e.huffman = huffmanNever
			testEncodeSeries(t, e, []vectorStep{v})
		})
	}
}

func TestDecode_C3_RequestsWithoutHuffman(t *testing.T) {
	testDecodeSeries(t, 4096, vectorsC3)
}

func TestEncode_C3_RequestsWithoutHuffman(t *testing.T) {
	testEncodeSeries(t, newVectorEncoder(4096, huffmanNever), vectorsC3)
	// The default policy and a fresh NewEncoder produce the same blocks.
	e := NewEncoder()
	e.huffman = huffmanNever
	testEncodeSeries(t, e, vectorsC3)
}

func TestDecode_C4_RequestsWithHuffman(t *testing.T) {
	testDecodeSeries(t, 4096, vectorsC4)
}

func TestEncode_C4_RequestsWithHuffman(t *testing.T) {
	testEncodeSeries(t, newVectorEncoder(4096, huffmanAlways), vectorsC4)
	// Every C.4 string is shorter Huffman-coded, so the default encoder
	// produces the same blocks.
	testEncodeSeries(t, NewEncoder(), vectorsC4)
}

func TestDecode_C5_ResponsesWithoutHuffman(t *testing.T) {
	testDecodeSeries(t, 256, vectorsC5)
}

func TestEncode_C5_ResponsesWithoutHuffman(t *testing.T) {
	testEncodeSeries(t, newVectorEncoder(256, huffmanNever), vectorsC5)
}

func TestDecode_C6_ResponsesWithHuffman(t *testing.T) {
	testDecodeSeries(t, 256, vectorsC6)
}

func TestEncode_C6_ResponsesWithHuffman(t *testing.T) {
	// C.6.2 Huffman-codes "307", which is not shorter: always use Huffman.
	testEncodeSeries(t, newVectorEncoder(256, huffmanAlways), vectorsC6)
}

// The C.5 responses, sent by an encoder that learns the 256-byte limit
// from SETTINGS, start with a size update and then match the vectors.
func TestEncode_C5_AfterSettingsChange(t *testing.T) {
	e := NewEncoder()
	e.SetIndexPolicy(IndexAll)
	e.huffman = huffmanNever
	e.SetMaxDynamicTableSize(256)
	d := NewDecoder(4096)
	d.SetMaxDynamicTableSize(256)
	for i, st := range vectorsC5 {
		blk := e.AppendHeaderBlock(nil, st.fields)
		want := dehex(st.block)
		if i == 0 {
			want = append([]byte{0x3f, 0xe1, 0x01}, want...) // size update to 256
		}
		if !bytes.Equal(blk, want) {
			t.Fatalf("response %d: encoded %x, want %x", i+1, blk, want)
		}
		got, err := d.Decode(nil, blk)
		if err != nil || !fieldsEqual(got, st.fields) {
			t.Fatalf("response %d: decoded %s, %v", i+1, fmtFields(got), err)
		}
	}
}
