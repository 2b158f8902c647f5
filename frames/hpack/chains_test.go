package hpack

import (
	"fmt"
	"testing"
)

// chainsOK walks every hash chain of e and reports a chain that does not
// end within the number of live entries (a cycle), or a live entry that is
// missing from the chains of its own hashes.
func chainsOK(e *Encoder) error {
	if e.nBuckets == nil {
		return nil
	}
	live := int(e.dt.len())
	walk := func(head uint64, next func(*entry) uint64) (map[uint64]bool, error) {
		seen := map[uint64]bool{}
		for id := head; id >= e.dt.firstID; {
			if len(seen) > live || seen[id] {
				return nil, fmt.Errorf("chain from %d does not end (cycle at %d)", head, id)
			}
			seen[id] = true
			id = next(&e.dt.ring[id&e.dt.mask])
		}
		return seen, nil
	}
	for id := e.dt.firstID; id < e.dt.nextID; id++ {
		en := &e.dt.ring[id&e.dt.mask]
		n, err := walk(e.nBuckets[en.hN&e.bmask], func(x *entry) uint64 { return x.nextN })
		if err != nil {
			return err
		}
		nv, err := walk(e.nvBuckets[en.hNV&e.bmask], func(x *entry) uint64 { return x.nextNV })
		if err != nil {
			return err
		}
		if !n[id] || !nv[id] {
			return fmt.Errorf("entry %d missing from its own chains", id)
		}
	}
	return nil
}

// TestEncoder_FirstInsertChains: the first entry a fresh encoder inserts
// builds the hash buckets. It must be linked exactly once with its real
// hashes: linking it twice made it point at itself whenever its bucket was
// the one it had just been put at the head of, and a later lookup in that
// bucket never ended. Hashes are seeded per process, so many values are
// tried to hit every bucket.
func TestEncoder_FirstInsertChains(t *testing.T) {
	for i := range 5000 {
		e := NewEncoder()
		dst := e.AppendFieldString(nil, ":authority", fmt.Sprintf("host-%d.example", i), false)
		if e.dt.len() != 1 {
			t.Fatalf("value %d: not inserted", i)
		}
		if err := chainsOK(e); err != nil {
			t.Fatalf("value %d after the first insert: %v", i, err)
		}
		// More inserts and lookups keep the chains sound.
		for j := range 20 {
			dst = e.AppendFieldString(dst[:0], fmt.Sprintf("x-%d", j), "v", false)
		}
		if err := chainsOK(e); err != nil {
			t.Fatalf("value %d after more inserts: %v", i, err)
		}
	}
}
