package hpack

import (
	"bytes"
	"math/bits"
)

// defaultTableSize is the initial dynamic table size of both ends of an
// HTTP/2 connection (RFC 9113 §6.5.2, SETTINGS_HEADER_TABLE_SIZE).
const defaultTableSize = 4096

// IndexPolicy chooses which fields an Encoder adds to the dynamic table.
// Whatever the policy, sensitive fields are never indexed (§6.2.3) and a
// field larger than the whole table is not inserted, since it would only
// empty the table (§4.4).
type IndexPolicy uint8

const (
	// IndexDefault indexes every field except:
	//   - fields larger than half the table, which would evict most of it;
	//   - fields whose values rarely repeat from one message to the next:
	//     :path, age, content-length, etag, if-modified-since,
	//     if-none-match, location and set-cookie (the list nghttp2 uses).
	//     Indexing them would only push useful entries out of the table;
	//     they are sent as literals without indexing, still referring to
	//     the static table for their names.
	IndexDefault IndexPolicy = iota
	// IndexAll indexes every field that fits in the table, like
	// golang.org/x/net/http2/hpack and the examples of RFC 7541 Appendix C.
	IndexAll
	// IndexNone never inserts into the dynamic table; fields are still
	// matched against the static table.
	IndexNone
)

// volatileStatic marks the static name indices that IndexDefault does not
// index (only the first index of each name is ever looked up).
var volatileStatic = [staticTableLen + 1]bool{
	4:  true, // :path
	21: true, // age
	28: true, // content-length
	34: true, // etag
	40: true, // if-modified-since
	41: true, // if-none-match
	46: true, // location
	55: true, // set-cookie
}

type huffmanMode uint8

const (
	huffmanShorter huffmanMode = iota // Huffman when strictly shorter
	huffmanNever
	huffmanAlways
)

// Encoder encodes the header blocks sent on one HTTP/2 connection. It is not
// safe for concurrent use.
//
// Its dynamic table is indexed by two hash tables, one on names and one on
// name/value pairs. Each bucket holds the id of the newest entry that hashes
// to it, and each entry the id of the next older entry of its bucket, so a
// bucket is a chain ordered from newest to oldest. Ids only grow; entries
// are evicted oldest first, so a chain ends at the first id older than the
// oldest live entry and eviction needs no bookkeeping. Lookups and
// insertions do not allocate.
type Encoder struct {
	dt table

	nBuckets  []uint64 // name hash -> newest entry id (0: none)
	nvBuckets []uint64 // name/value hash -> newest entry id
	bmask     uint64

	limit   uint32 // our own cap on the table size
	peerMax uint32 // the peer's SETTINGS_HEADER_TABLE_SIZE

	// A table size change not yet announced to the peer (§4.2, §6.3):
	// minPending is the smallest size the table had since the last
	// announcement.
	pending    bool
	minPending uint32

	policy  IndexPolicy
	huffman huffmanMode
}

// NewEncoder returns an Encoder for a peer with the default dynamic table
// size of 4096 bytes, which is also the default cap on the table size (see
// SetMaxDynamicTableSizeLimit).
func NewEncoder() *Encoder {
	e := &Encoder{limit: defaultTableSize, peerMax: defaultTableSize}
	e.dt.init(defaultTableSize)
	return e
}

// SetIndexPolicy changes which fields are added to the dynamic table.
func (e *Encoder) SetIndexPolicy(p IndexPolicy) { e.policy = p }

// SetMaxDynamicTableSize records the peer's SETTINGS_HEADER_TABLE_SIZE. The
// table uses min(n, the limit set by SetMaxDynamicTableSizeLimit). If that
// changes the table size, the change is announced by a dynamic table size
// update at the beginning of the next block (§4.2), and if the size changed
// more than once since the last block, the smallest size is announced first
// and then the final one.
func (e *Encoder) SetMaxDynamicTableSize(n uint32) {
	e.peerMax = n
	e.applyMaxSize()
}

// SetMaxDynamicTableSizeLimit caps the dynamic table size the encoder uses,
// whatever the peer allows (4096 by default). Larger tables improve the
// compression of large or varied header lists at the cost of memory.
func (e *Encoder) SetMaxDynamicTableSizeLimit(n uint32) {
	e.limit = n
	e.applyMaxSize()
	if e.nBuckets != nil && bucketCount(e.limit) != len(e.nBuckets) {
		e.rebuildBuckets()
	}
}

// MaxDynamicTableSize returns the maximum size of the dynamic table in use.
func (e *Encoder) MaxDynamicTableSize() uint32 { return e.dt.maxSize }

func (e *Encoder) applyMaxSize() {
	n := min(e.peerMax, e.limit)
	if n == e.dt.maxSize {
		return
	}
	if !e.pending || n < e.minPending {
		e.minPending = n
	}
	e.pending = true
	// The table shrinks now: nothing is encoded until the next block, whose
	// size updates will make the peer evict the same entries.
	e.dt.setMaxSize(n)
}

// DynamicTableSize returns the current size of the dynamic table as defined
// by RFC 7541 §4.1.
func (e *Encoder) DynamicTableSize() uint32 { return e.dt.size }

// AppendTableSizeUpdate appends the pending dynamic table size updates, if
// any (§6.3): the smallest size since the last block if it is below the
// current one, then the current one (§4.2). Callers that build blocks with
// AppendField must call it at the beginning of every block.
//
// When two updates are needed and entries survived the smallest size, the
// first update is 0 and the table is emptied: golang.org/x/net's decoder,
// which Go peers use, rejects a second update while its table is not empty.
// Choosing size 0 for a moment is within the encoder's rights and only
// costs the entries that survived the dip.
func (e *Encoder) AppendTableSizeUpdate(dst []byte) []byte {
	if !e.pending {
		return dst
	}
	e.pending = false
	if e.minPending < e.dt.maxSize {
		if e.dt.len() > 0 {
			e.dt.evictAll()
			dst = appendInt(dst, 5, 0x20, 0)
		} else {
			dst = appendInt(dst, 5, 0x20, uint64(e.minPending))
		}
	}
	return appendInt(dst, 5, 0x20, uint64(e.dt.maxSize))
}

// AppendHeaderBlock appends a complete header block: any pending table size
// update, then the representations of fields.
func (e *Encoder) AppendHeaderBlock(dst []byte, fields []HeaderField) []byte {
	dst = e.AppendTableSizeUpdate(dst)
	for i := range fields {
		f := &fields[i]
		dst = e.appendField(dst, f.Name, f.Value, f.Sensitive)
	}
	return dst
}

// AppendField appends the representation of f to dst:
//   - an indexed field (§6.1) if the table holds f's name and value, unless
//     f is sensitive;
//   - otherwise a literal (§6.2) naming f's name by index if the table holds
//     it, never indexed if f is sensitive, with incremental indexing if the
//     index policy says so, and without indexing otherwise.
//
// Strings are Huffman-coded when that is shorter. AppendField does not emit
// pending table size updates: see AppendTableSizeUpdate.
func (e *Encoder) AppendField(dst []byte, f HeaderField) []byte {
	return e.appendField(dst, f.Name, f.Value, f.Sensitive)
}

// AppendFieldString is AppendField for a name and value held in strings.
func (e *Encoder) AppendFieldString(dst []byte, name, value string, sensitive bool) []byte {
	return e.appendField(dst, readOnlyBytes(name), readOnlyBytes(value), sensitive)
}

func (e *Encoder) appendField(dst, name, value []byte, sensitive bool) []byte {
	hN := hashBytes(name)
	sIdx, sN := lookupStaticName(hN, name)

	if !sensitive {
		// The static table first: its indices are never larger.
		for i := sIdx; i < sIdx+sN; i++ {
			if bytes.Equal(staticFields[i].Value, value) {
				return appendInt(dst, 7, 0x80, uint64(i))
			}
		}
	}

	var hNV uint64
	haveNV := false
	if !sensitive && e.dt.len() > 0 {
		hNV = pairHash(hN, hashBytes(value))
		haveNV = true
		for id := e.nvBuckets[hNV&e.bmask]; id >= e.dt.firstID; {
			en := &e.dt.ring[id&e.dt.mask]
			if en.hNV == hNV && bytes.Equal(e.dt.name(en), name) && bytes.Equal(e.dt.value(en), value) {
				return appendInt(dst, 7, 0x80, staticTableLen+e.dt.nextID-id)
			}
			id = en.nextNV
		}
	}

	nameIdx := uint64(sIdx)
	if nameIdx == 0 && e.dt.len() > 0 {
		for id := e.nBuckets[hN&e.bmask]; id >= e.dt.firstID; {
			en := &e.dt.ring[id&e.dt.mask]
			if en.hN == hN && bytes.Equal(e.dt.name(en), name) {
				nameIdx = staticTableLen + e.dt.nextID - id
				break
			}
			id = en.nextN
		}
	}

	switch {
	case sensitive:
		// §6.2.3 Literal Header Field Never Indexed.
		dst = appendInt(dst, 4, 0x10, nameIdx)
	case e.shouldIndex(sIdx, name, value):
		// §6.2.1 Literal Header Field with Incremental Indexing. The name
		// index refers to the table before the insertion.
		dst = appendInt(dst, 6, 0x40, nameIdx)
		if !haveNV {
			hNV = pairHash(hN, hashBytes(value))
		}
		e.insert(name, value, hN, hNV)
	default:
		// §6.2.2 Literal Header Field without Indexing.
		dst = appendInt(dst, 4, 0x00, nameIdx)
	}
	if nameIdx == 0 {
		dst = e.appendString(dst, name)
	}
	return e.appendString(dst, value)
}

func (e *Encoder) shouldIndex(sIdx int, name, value []byte) bool {
	size := uint64(len(name)) + uint64(len(value)) + entryOverhead
	if size > uint64(e.dt.maxSize) {
		return false
	}
	switch e.policy {
	case IndexAll:
		return true
	case IndexNone:
		return false
	}
	return size <= uint64(e.dt.maxSize)/2 && !volatileStatic[sIdx]
}

func (e *Encoder) insert(name, value []byte, hN, hNV uint64) {
	id, ok, _ := e.dt.add(name, value, true)
	if !ok {
		return
	}
	if e.nBuckets == nil {
		// The first insert builds the buckets, linking every live entry,
		// this one included: give it its hashes first and do not link it
		// again (a second link could make it point at itself).
		en := &e.dt.ring[id&e.dt.mask]
		en.hN, en.hNV = hN, hNV
		e.rebuildBuckets()
		return
	}
	e.link(id, hN, hNV)
}

func (e *Encoder) link(id, hN, hNV uint64) {
	en := &e.dt.ring[id&e.dt.mask]
	en.hN, en.hNV = hN, hNV
	bn, bnv := &e.nBuckets[hN&e.bmask], &e.nvBuckets[hNV&e.bmask]
	en.nextN, en.nextNV = *bn, *bnv
	*bn, *bnv = id, id
}

// bucketCount returns the number of hash buckets for a table limited to
// limit bytes: about two per possible entry, at least 64, at most 64Ki.
func bucketCount(limit uint32) int {
	n := uint64(limit) / entryOverhead * 2
	n = min(max(n, 64), 1<<16)
	return 1 << bits.Len64(n-1)
}

// rebuildBuckets sizes the hash buckets for the current limit and relinks
// the live entries, oldest first.
func (e *Encoder) rebuildBuckets() {
	n := bucketCount(e.limit)
	e.nBuckets = make([]uint64, n)
	e.nvBuckets = make([]uint64, n)
	e.bmask = uint64(n - 1)
	for id := e.dt.firstID; id < e.dt.nextID; id++ {
		en := &e.dt.ring[id&e.dt.mask]
		e.link(id, en.hN, en.hNV)
	}
}

// pairHash combines the hashes of a name and a value.
func pairHash(hN, hV uint64) uint64 {
	return hN ^ bits.RotateLeft64(hV*0x9e3779b97f4a7c15, 29)
}

// appendString appends the string literal (§5.2) for s, Huffman-coded when
// that is shorter.
func (e *Encoder) appendString(dst, s []byte) []byte {
	switch e.huffman {
	case huffmanShorter:
		if n := HuffmanEncodeLength(s); n < uint64(len(s)) {
			dst = appendInt(dst, 7, 0x80, n)
			return appendHuffman(dst, s, int(n))
		}
	case huffmanAlways:
		n := HuffmanEncodeLength(s)
		dst = appendInt(dst, 7, 0x80, n)
		return appendHuffman(dst, s, int(n))
	}
	dst = appendInt(dst, 7, 0x00, uint64(len(s)))
	return append(dst, s...)
}
