package hpack

// entry is one dynamic table entry. Its name and value are stored back to
// back in the table's arena at off.
type entry struct {
	off     int
	nameLen uint32
	valLen  uint32

	// Encoder-only lookup data: the hashes of the name and of the
	// name/value pair, and the ids of the next older entries in the same
	// hash buckets (see Encoder).
	hN, hNV       uint64
	nextN, nextNV uint64
}

func (e *entry) size() uint32 { return e.nameLen + e.valLen + entryOverhead }

// table is the dynamic table of §2.3.2 shared by the Decoder and the
// Encoder. Every inserted entry gets the next id; the live entries are the
// ids [firstID, nextID), the newest having HPACK index staticTableLen+1 and
// the oldest the highest index (§2.3.3). Entry id lives in ring[id&mask].
//
// Names and values live in one arena, appended at end in insertion order,
// so the live bytes are arena[start:end] and eviction (§4.4) only advances
// start. Neither insertions nor evictions allocate once the arena and the
// ring have grown to their working size; space freed at the front is
// reclaimed by moving the live bytes to the front (compaction), which copies
// at most the table size and happens at most once per that many inserted
// bytes.
type table struct {
	ring            []entry
	mask            uint64
	firstID, nextID uint64

	arena      []byte
	start, end int

	size    uint32 // §4.1: sum of the entries' sizes
	maxSize uint32 // current maximum size (§4.2)
}

func (t *table) init(maxSize uint32) {
	t.maxSize = maxSize
	// Ids start at 1 so that 0 can mean "no entry" in the encoder's
	// buckets and chains.
	t.firstID, t.nextID = 1, 1
}

func (t *table) len() uint64 { return t.nextID - t.firstID }

// at returns the entry with the dynamic index i (1 = newest). The caller
// checks 1 <= i <= t.len().
func (t *table) at(i uint64) *entry { return &t.ring[(t.nextID-i)&t.mask] }

func (t *table) evictOldest() {
	e := &t.ring[t.firstID&t.mask]
	t.size -= e.size()
	t.start = e.off + int(e.nameLen) + int(e.valLen)
	t.firstID++
}

func (t *table) evictAll() {
	for t.firstID < t.nextID {
		t.evictOldest()
	}
}

// setMaxSize changes the maximum size and evicts entries until the table
// fits in it (§4.3).
func (t *table) setMaxSize(n uint32) {
	t.maxSize = n
	for t.size > t.maxSize {
		t.evictOldest()
	}
}

// add inserts (name, value) as the newest entry (§4.4): it first evicts
// entries until the new one fits, then copies the bytes. An entry larger
// than the maximum size empties the table and is not inserted, which is not
// an error; ok reports whether it was inserted and id is its id. moved
// reports that the entries were moved to a new arena.
//
// §4.4 allows the new entry to reuse the name of an entry that this very
// insertion evicts. name may therefore alias the arena: eviction never
// overwrites bytes, and moving to a new arena leaves the old one intact.
// inPlaceOK allows makeRoom to compact the current arena instead, which
// does overwrite bytes: callers pass false while name, or any slice handed
// out to their callers, aliases the arena.
func (t *table) add(name, value []byte, inPlaceOK bool) (id uint64, ok, moved bool) {
	need := len(name) + len(value)
	if uint64(need)+entryOverhead > uint64(t.maxSize) {
		t.evictAll()
		return 0, false, false
	}
	sz := uint32(need) + entryOverhead
	for t.size+sz > t.maxSize || t.size+sz < t.size {
		t.evictOldest()
	}
	if t.end+need > len(t.arena) {
		moved = t.makeRoom(need, inPlaceOK)
	}
	if t.len() == uint64(len(t.ring)) {
		t.growRing()
	}
	off := t.end
	copy(t.arena[off:], name)
	copy(t.arena[off+len(name):], value)
	t.end = off + need
	id = t.nextID
	t.ring[id&t.mask] = entry{off: off, nameLen: uint32(len(name)), valLen: uint32(len(value))}
	t.nextID++
	t.size += sz
	return id, true, moved
}

// makeRoom makes need bytes available at t.end: by compacting in place when
// allowed and the arena is at most half full afterwards (so compactions
// stay amortized), or else by moving the live bytes to a new arena of four
// times the live bytes plus need (and, when compaction was not allowed, at
// least as large as the current one). The caller has already evicted, so
// live+need <= maxSize and the arena stays below 4*maxSize. It reports
// whether it moved to a new arena.
func (t *table) makeRoom(need int, inPlaceOK bool) bool {
	live := t.end - t.start
	if inPlaceOK && 2*(live+need) <= len(t.arena) {
		t.compact()
		return false
	}
	n := max(4*(live+need), 256)
	if !inPlaceOK {
		n = max(n, len(t.arena))
	}
	arena := make([]byte, n)
	copy(arena, t.arena[t.start:t.end])
	t.shiftOffsets(t.start)
	t.arena, t.start, t.end = arena, 0, live
	return true
}

// compact moves the live bytes to the front of the arena. It overwrites
// bytes still referenced by slices handed out earlier, so the decoder only
// calls it when none are valid.
func (t *table) compact() {
	if t.start == 0 {
		return
	}
	copy(t.arena, t.arena[t.start:t.end])
	t.shiftOffsets(t.start)
	t.end -= t.start
	t.start = 0
}

func (t *table) shiftOffsets(by int) {
	for id := t.firstID; id < t.nextID; id++ {
		t.ring[id&t.mask].off -= by
	}
}

func (t *table) growRing() {
	n := max(2*len(t.ring), 16)
	ring := make([]entry, n)
	mask := uint64(n - 1)
	for id := t.firstID; id < t.nextID; id++ {
		ring[id&mask] = t.ring[id&t.mask]
	}
	t.ring, t.mask = ring, mask
}

// name and value return the bytes of e, capacity clipped.
func (t *table) name(e *entry) []byte {
	n := e.off + int(e.nameLen)
	return t.arena[e.off:n:n]
}

func (t *table) value(e *entry) []byte {
	v := e.off + int(e.nameLen)
	n := v + int(e.valLen)
	return t.arena[v:n:n]
}
