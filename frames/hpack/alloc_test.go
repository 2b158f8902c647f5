//go:build !race

package hpack

import (
	"fmt"
	"testing"
)

// Steady-state allocation checks. The race detector instruments
// allocations, hence the build tag.

func TestAllocs_DecodeBrowserWarm(t *testing.T) {
	cold, warm := browserBlocks()
	d := NewDecoder(4096)
	dst, err := d.Decode(nil, cold)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if dst, err = d.Decode(dst, warm); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode: %v allocs per block", allocs)
	}
	if !fieldsEqual(dst, browserFields()) {
		t.Fatalf("decoded %s", fmtFields(dst))
	}
}

func TestAllocs_EncodeBrowserWarm(t *testing.T) {
	fields := browserFields()
	for _, policy := range []IndexPolicy{IndexDefault, IndexAll, IndexNone} {
		e := NewEncoder()
		e.SetIndexPolicy(policy)
		buf := e.AppendHeaderBlock(nil, fields)
		allocs := testing.AllocsPerRun(1000, func() {
			buf = e.AppendHeaderBlock(buf[:0], fields)
		})
		if allocs != 0 {
			t.Fatalf("policy %d: AppendHeaderBlock: %v allocs per block", policy, allocs)
		}
	}
}

// Every block inserts a new entry and evicts old ones, on both sides; the
// arenas are compacted from time to time. None of it allocates once warm.
func TestAllocs_InsertAndEvictEveryBlock(t *testing.T) {
	for _, tc := range []struct {
		valueLen  int
		tableSize uint32
	}{{8, 4096}, {300, 4096}, {1500, 4096}, {40, 256}} {
		t.Run(fmt.Sprint(tc.valueLen, "/", tc.tableSize), func(t *testing.T) {
			fields := append(browserFields(), pf("x-request-id", string(make([]byte, tc.valueLen))))
			changing := fields[len(fields)-1].Value
			for i := range changing {
				changing[i] = 'a'
			}
			e := NewEncoder()
			e.SetMaxDynamicTableSize(tc.tableSize)
			d := NewDecoder(4096)
			d.SetMaxDynamicTableSize(tc.tableSize)
			var buf []byte
			var dst []HeaderField
			n := 0
			step := func() {
				n++
				changing[0], changing[1], changing[2] = byte('a'+n%26), byte('a'+n/26%26), byte('a'+n/676%26)
				buf = e.AppendHeaderBlock(buf[:0], fields)
				var err error
				if dst, err = d.Decode(dst, buf); err != nil {
					t.Fatal(err)
				}
			}
			for range 2000 {
				step()
			}
			evicted := d.dt.firstID
			allocs := testing.AllocsPerRun(5000, step)
			if allocs != 0 {
				t.Fatalf("%v allocs per block", allocs)
			}
			if d.dt.firstID-evicted < 1000 {
				t.Fatalf("only %d evictions", d.dt.firstID-evicted)
			}
			if !fieldsEqual(dst, fields) {
				t.Fatalf("decoded %s", fmtFields(dst))
			}
		})
	}
}

// A block that exposes the arena and then inserts far more than the table
// holds moves the table to a new arena once, then works in copy mode: one
// allocation per block at most, however much it inserts.
func TestAllocs_ArenaMovesAtMostOncePerBlock(t *testing.T) {
	d := NewDecoder(4096)
	blk := rawLiteral(0x40, "x-first", "v", false)
	if _, err := d.Decode(nil, blk); err != nil {
		t.Fatal(err)
	}
	blk = []byte{0x80 | 62} // a hit exposes the arena
	value := string(make([]byte, 1000))
	for i := range 50 {
		blk = append(blk, rawLiteral(0x40, fmt.Sprint("x-", i), value, false)...)
		blk = append(blk, 0x80|62, 0x80|63) // hits in copy mode
	}
	dst := make([]HeaderField, 0, 200)
	for range 10 {
		if _, err := d.Decode(dst, blk); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		got, err := d.Decode(dst, blk)
		if err != nil || len(got) != 151 {
			t.Fatalf("%d fields, %v", len(got), err)
		}
		if string(got[len(got)-1].Name) != "x-48" || string(got[len(got)-2].Name) != "x-49" {
			t.Fatalf("last fields %s", fmtFields(got[len(got)-2:]))
		}
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per block", allocs)
	}
}
