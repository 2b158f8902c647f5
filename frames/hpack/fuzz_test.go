package hpack

import (
	"bytes"
	"testing"

	xhpack "golang.org/x/net/http2/hpack"
)

func cloneFields(fs []HeaderField) []HeaderField {
	out := make([]HeaderField, len(fs))
	for i, f := range fs {
		out[i] = HeaderField{Name: bytes.Clone(f.Name), Value: bytes.Clone(f.Value), Sensitive: f.Sensitive}
	}
	return out
}

// FuzzDecode feeds arbitrary bytes to the decoder, twice in a row on the
// same decoder (the second pass sees the table left by the first). It must
// never panic, and:
//
//   - whatever decodes re-encodes, with a fresh encoder, to a block that a
//     fresh decoder decodes to the same fields;
//   - where golang.org/x/net's decoder also succeeds, both produce the same
//     fields. The decoders legitimately disagree on some inputs, so only
//     successes are compared: x/net accepts integers of up to 63 bits and
//     any number of continuation bytes, accepts a table size update after a
//     field while its table is empty, and has no list size or field count
//     limit, while this decoder rejects all of these;
//   - a decoder with a small list size limit returns a prefix of the fields
//     (or all of them) and ends with the same dynamic table as the
//     unlimited one, which shows that the skipping path keeps the table in
//     sync.
func FuzzDecode(f *testing.F) {
	for _, b := range allVectorBlocks() {
		f.Add(b)
	}
	cold, warm := browserBlocks()
	f.Add(cold)
	f.Add(append(bytes.Clone(cold), warm...))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(4096)
		xd := xhpack.NewDecoder(4096, nil)
		small := NewDecoder(4096)
		small.SetMaxHeaderListSize(uint32(40 + len(data)%200))

		xok := true // x/net's state is only comparable while it succeeds
		for pass := range 2 {
			got, err := d.Decode(nil, data)
			xf, xerr := xd.DecodeFull(data)
			xok = xok && xerr == nil
			if err == nil && xok {
				if want := fromXNet(xf); !fieldsEqual(got, want) {
					t.Fatalf("pass %d: decoded %s, x/net %s", pass, fmtFields(got), fmtFields(want))
				}
			}
			if err != nil {
				if _, ok := err.(DecodingError); !ok && err != ErrHeaderListTooLarge {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			fields := cloneFields(got)

			sgot, serr := small.Decode(nil, data)
			switch serr {
			case nil:
				if !fieldsEqual(sgot, fields) {
					t.Fatalf("limited decoder: %s, want %s", fmtFields(sgot), fmtFields(fields))
				}
			case ErrHeaderListTooLarge:
				if len(sgot) >= len(fields) || !fieldsEqual(sgot, fields[:len(sgot)]) {
					t.Fatalf("limited decoder: %s is not a prefix of %s", fmtFields(sgot), fmtFields(fields))
				}
			default:
				t.Fatalf("limited decoder: %v", serr)
			}
			checkTable(t, "limited decoder", &small.dt, d.dt.entries(), d.dt.size)

			e := NewEncoder()
			blk := e.AppendHeaderBlock(nil, fields)
			again, err := NewDecoder(4096).Decode(nil, blk)
			if err != nil {
				t.Fatalf("re-encoded block: %v", err)
			}
			if !fieldsEqual(again, fields) {
				t.Fatalf("re-encoded: %s, want %s", fmtFields(again), fmtFields(fields))
			}
		}
	})
}

// fieldsFromFuzz turns fuzzer bytes into encoder settings and a list of
// blocks of fields.
func fieldsFromFuzz(data []byte) (cfg byte, blocks [][]HeaderField) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	take := func(n int) []byte {
		n = min(n, len(data))
		b := bytes.Clone(data[:n])
		data = data[n:]
		return b
	}
	cfg = next()
	var cur, all []HeaderField
	for len(data) > 0 {
		op := next()
		var f HeaderField
		switch op & 7 {
		case 0: // end of block
			blocks = append(blocks, cur)
			cur = nil
			continue
		case 1, 2: // static name
			i := 1 + int(next())%staticTableLen
			f.Name = []byte(staticTable[i].name)
			if op&8 != 0 {
				f.Value = []byte(staticTable[i].value)
			} else {
				f.Value = take(int(next()))
			}
		case 3: // repeat an earlier field
			if len(all) == 0 {
				continue
			}
			f = all[int(next())%len(all)]
		case 4: // earlier name, new value
			if len(all) == 0 {
				continue
			}
			f.Name = all[int(next())%len(all)].Name
			f.Value = take(int(next()))
		default: // new name and value, possibly long
			f.Name = take(int(next()) % 40)
			n := int(next())
			if op&0x40 != 0 {
				n *= 32
			}
			f.Value = take(n)
		}
		if f.Name == nil {
			f.Name = []byte{}
		}
		if f.Value == nil {
			f.Value = []byte{}
		}
		f.Sensitive = op&0x80 != 0
		cur = append(cur, f)
		all = append(all, f)
	}
	return cfg, append(blocks, cur)
}

// FuzzRoundTrip builds header lists from the fuzzer's bytes, encodes them
// with this package's encoder (policy, Huffman mode and table size chosen by
// the input) and decodes them with this package's and x/net's decoders:
// both must reproduce the lists exactly, block after block.
func FuzzRoundTrip(f *testing.F) {
	var seed []byte
	seed = append(seed, 0)
	for _, fl := range BrowserRequestFields {
		seed = append(seed, 5, byte(len(fl.Name)))
		seed = append(seed, fl.Name...)
		seed = append(seed, byte(len(fl.Value)))
		seed = append(seed, fl.Value...)
	}
	seed = append(seed, 0, 3, 0, 3, 5, 3, 7, 8, 4, 2, 3, 4)
	f.Add(seed)
	f.Add([]byte{0x11, 1, 7, 0x89, 3, 'a', 'b', 'c', 0, 3, 0})
	f.Add([]byte{0x2a, 0x45, 2, 'x', 'y', 200, 0x3, 0, 0, 0x84, 0, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, blocks := fieldsFromFuzz(data)
		e := NewEncoder()
		e.SetIndexPolicy(IndexPolicy(cfg % 3))
		e.huffman = huffmanMode(cfg / 3 % 3)
		size := []uint32{4096, 0, 64, 256, 1024, 4096, 8192, 100}[cfg>>5]
		e.SetMaxDynamicTableSizeLimit(8192)
		e.SetMaxDynamicTableSize(size)
		d := NewDecoder(4096)
		d.SetMaxDynamicTableSize(size)
		xd := xhpack.NewDecoder(4096, nil)
		xd.SetAllowedMaxDynamicTableSize(size)
		var blk []byte
		for i, fields := range blocks {
			blk = e.AppendHeaderBlock(blk[:0], fields)
			got, err := d.Decode(nil, blk)
			if err != nil {
				if err == ErrHeaderListTooLarge && len(fields) > defaultMaxFields {
					return
				}
				t.Fatalf("block %d: %v", i, err)
			}
			if !fieldsEqual(got, fields) {
				t.Fatalf("block %d: decoded %s, want %s", i, fmtFields(got), fmtFields(fields))
			}
			xf, err := xd.DecodeFull(blk)
			if err != nil {
				t.Fatalf("block %d: x/net: %v", i, err)
			}
			if got := fromXNet(xf); !fieldsEqual(got, fields) {
				t.Fatalf("block %d: x/net decoded %s, want %s", i, fmtFields(got), fmtFields(fields))
			}
			if d.DynamicTableSize() != e.DynamicTableSize() {
				t.Fatalf("block %d: table sizes %d != %d", i, d.DynamicTableSize(), e.DynamicTableSize())
			}
			// The encoder's lookup chains stay sound: a cycle would hang a
			// later lookup, which a round trip only notices by hanging.
			if err := chainsOK(e); err != nil {
				t.Fatalf("block %d: %v", i, err)
			}
		}
	})
}
