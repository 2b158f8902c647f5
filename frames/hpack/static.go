package hpack

import (
	"bytes"
	"hash/maphash"
	"unsafe"
)

// staticTableLen is the number of entries in the static table (Appendix A).
const staticTableLen = 61

// staticTable is the static table of RFC 7541 Appendix A. Index 0 is
// unused: HPACK indices start at 1 (§2.3.3).
var staticTable = [staticTableLen + 1]struct{ name, value string }{
	{"", ""},
	{":authority", ""},
	{":method", "GET"},
	{":method", "POST"},
	{":path", "/"},
	{":path", "/index.html"},
	{":scheme", "http"},
	{":scheme", "https"},
	{":status", "200"},
	{":status", "204"},
	{":status", "206"},
	{":status", "304"},
	{":status", "400"},
	{":status", "404"},
	{":status", "500"},
	{"accept-charset", ""},
	{"accept-encoding", "gzip, deflate"},
	{"accept-language", ""},
	{"accept-ranges", ""},
	{"accept", ""},
	{"access-control-allow-origin", ""},
	{"age", ""},
	{"allow", ""},
	{"authorization", ""},
	{"cache-control", ""},
	{"content-disposition", ""},
	{"content-encoding", ""},
	{"content-language", ""},
	{"content-length", ""},
	{"content-location", ""},
	{"content-range", ""},
	{"content-type", ""},
	{"cookie", ""},
	{"date", ""},
	{"etag", ""},
	{"expect", ""},
	{"expires", ""},
	{"from", ""},
	{"host", ""},
	{"if-match", ""},
	{"if-modified-since", ""},
	{"if-none-match", ""},
	{"if-range", ""},
	{"if-unmodified-since", ""},
	{"last-modified", ""},
	{"link", ""},
	{"location", ""},
	{"max-forwards", ""},
	{"proxy-authenticate", ""},
	{"proxy-authorization", ""},
	{"range", ""},
	{"referer", ""},
	{"refresh", ""},
	{"retry-after", ""},
	{"server", ""},
	{"set-cookie", ""},
	{"strict-transport-security", ""},
	{"transfer-encoding", ""},
	{"user-agent", ""},
	{"vary", ""},
	{"via", ""},
	{"www-authenticate", ""},
}

// staticFields holds the static table as decoded fields. The slices point
// at the string constants above, which live in read-only memory: a caller
// that writes to a decoded static field faults instead of silently
// corrupting the table for every connection.
var staticFields [staticTableLen + 1]HeaderField

// hashSeed seeds every name and value hash of the package, so the static
// name index below and the encoders' dynamic indexes agree on hashes. It is
// random per process, which keeps the buckets safe from crafted collisions.
var hashSeed = maphash.MakeSeed()

func hashBytes(b []byte) uint64 { return maphash.Bytes(hashSeed, b) }

// staticNameSlot is one slot of the open-addressing index from name hash to
// the static entries with that name: first is the lowest index, n the number
// of consecutive entries sharing the name (n == 0 marks an empty slot).
type staticNameSlot struct {
	h     uint64
	first uint8
	n     uint8
}

const staticNameSlots = 128 // power of two, > 2x the 52 distinct names

var staticNameIndex [staticNameSlots]staticNameSlot

func init() {
	for i := 1; i <= staticTableLen; i++ {
		s := staticTable[i]
		staticFields[i] = HeaderField{Name: readOnlyBytes(s.name), Value: readOnlyBytes(s.value)}
	}
	for i := 1; i <= staticTableLen; {
		n := 1
		for i+n <= staticTableLen && staticTable[i+n].name == staticTable[i].name {
			n++
		}
		h := hashBytes(staticFields[i].Name)
		slot := h & (staticNameSlots - 1)
		for staticNameIndex[slot].n != 0 {
			slot = (slot + 1) & (staticNameSlots - 1)
		}
		staticNameIndex[slot] = staticNameSlot{h: h, first: uint8(i), n: uint8(n)}
		i += n
	}
}

// lookupStaticName returns the first static index whose name is name and
// the number of consecutive entries sharing it, or (0, 0). h is
// hashBytes(name).
func lookupStaticName(h uint64, name []byte) (first, n int) {
	for slot := h & (staticNameSlots - 1); ; slot = (slot + 1) & (staticNameSlots - 1) {
		s := &staticNameIndex[slot]
		if s.n == 0 {
			return 0, 0
		}
		if s.h == h && bytes.Equal(staticFields[s.first].Name, name) {
			return int(s.first), int(s.n)
		}
	}
}

// readOnlyBytes returns the bytes of s without copying them. The result
// must never be written to.
func readOnlyBytes(s string) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
