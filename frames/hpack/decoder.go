package hpack

const (
	defaultMaxHeaderListSize = 1 << 20
	defaultMaxFields         = 1000

	// maxRetainedScratch is the largest scratch buffer kept between blocks;
	// a larger one, left by an unusually big block, is dropped.
	maxRetainedScratch = 256 << 10
)

// Decoder decodes the header blocks received on one HTTP/2 connection. It
// is not safe for concurrent use. See the package documentation for the
// lifetime of the decoded bytes and for the limits.
type Decoder struct {
	dt table

	// limit is the SETTINGS_HEADER_TABLE_SIZE we advertise: the largest
	// size a dynamic table size update may ask for.
	limit uint32
	// needUpdate is set when limit was lowered below the size the peer's
	// table currently has: the next block must start with a size update.
	needUpdate bool

	maxListSize uint32 // 0: defaultMaxHeaderListSize
	maxFields   int    // 0: defaultMaxFields

	// scratch receives the Huffman-decoded strings of the current block
	// (and, in copy mode, its dynamic table hits).
	scratch []byte

	// Dynamic table hits are normally returned as slices of the table
	// arena. exposed is set once the current block has done so: from then
	// on the arena must not be compacted in place, and an insertion that
	// does not fit moves the table to a new arena instead. After such a
	// move (at most one per block), copyHits makes the rest of the block
	// copy its hits into scratch, so the new arena is never exposed and a
	// block cannot make the decoder allocate arena after arena.
	exposed  bool
	copyHits bool
}

// NewDecoder returns a Decoder whose dynamic table may grow up to
// maxDynamicTableSize bytes, the SETTINGS_HEADER_TABLE_SIZE we advertise.
// The peer's table is assumed to start at that size, so on a new HTTP/2
// connection pass the protocol default of 4096 and call
// SetMaxDynamicTableSize once the peer has acknowledged a different value.
func NewDecoder(maxDynamicTableSize uint32) *Decoder {
	d := &Decoder{limit: maxDynamicTableSize}
	d.dt.init(maxDynamicTableSize)
	return d
}

// SetMaxDynamicTableSize records that we now advertise n as
// SETTINGS_HEADER_TABLE_SIZE (call it when the peer acknowledged the
// setting). Later size updates must not exceed n. If n is below the size
// the peer's table currently has, the peer has to shrink its table, and RFC
// 7541 §4.2 requires it to signal that with a dynamic table size update at
// the beginning of the next header block: a next block without one is an
// ErrTableSizeUpdate.
func (d *Decoder) SetMaxDynamicTableSize(n uint32) {
	d.limit = n
	if d.dt.maxSize > n {
		d.needUpdate = true
	}
}

// SetMaxHeaderListSize limits the sum of HeaderField.Size of the fields of
// one block to n bytes (0 restores the default of 1 MiB). The limit also
// bounds the bytes Huffman-coded strings may expand to.
func (d *Decoder) SetMaxHeaderListSize(n uint32) { d.maxListSize = n }

// SetMaxFields limits the number of fields in one block to n (0 restores
// the default of 1000).
func (d *Decoder) SetMaxFields(n int) { d.maxFields = n }

// DynamicTableSize returns the current size of the dynamic table as
// defined by RFC 7541 §4.1.
func (d *Decoder) DynamicTableSize() uint32 { return d.dt.size }

// Decode decodes one complete header block (the caller concatenates the
// fragments of a HEADERS or PUSH_PROMISE frame and its CONTINUATION
// frames), appends the fields to dst[:0] and returns the result. It does
// not allocate when dst has enough capacity and its internal buffers are
// warm.
//
// The Name and Value slices of the returned fields stay valid until the
// next call to any method of d, and, since literal strings without Huffman
// coding alias block, until the caller modifies or reuses block. Fields
// from the static table alias read-only memory and must not be written to.
// Fields from the dynamic table alias its arena, which is not modified
// before the next call even if later fields of the block evict them (a
// block that inserts more than the arena has room for moves the table to a
// new arena, leaving the old one to the returned fields, and copies its
// later table hits into the scratch buffer). Huffman-coded strings are
// decoded into that scratch buffer, which is reused by the next call.
//
// Errors:
//
//   - a DecodingError (COMPRESSION_ERROR) for malformed input, in which case
//     the decoder is unusable and the returned slice is empty;
//   - ErrHeaderListTooLarge when the fields exceed SetMaxHeaderListSize or
//     SetMaxFields. Decoding stops producing fields as soon as the limit is
//     passed; the returned slice holds the fields before that point. The
//     rest of the block is still parsed and validated, and its table
//     insertions are applied (strings that are neither returned nor
//     inserted are not copied, and only strings that fit in the table are
//     decoded), so the dynamic table stays in sync with the peer and the
//     connection remains usable. A DecodingError found in that rest takes
//     precedence.
func (d *Decoder) Decode(dst []HeaderField, block []byte) ([]HeaderField, error) {
	dst = dst[:0]
	if cap(d.scratch) > maxRetainedScratch {
		d.scratch = nil
	}
	d.scratch = d.scratch[:0]
	d.exposed, d.copyHits = false, false
	// Nothing handed out by the previous block is valid any more, so this
	// is the moment to compact the arena. Doing it only once its front half
	// is used up keeps the copy amortized, and leaves room for this block's
	// insertions without relocating the arena while it is exposed.
	if d.dt.start > 0 && (d.dt.start == d.dt.end || d.dt.end > len(d.dt.arena)/2) {
		d.dt.compact()
	}

	p := 0
	// §4.2: "This dynamic table size update MUST occur at the beginning of
	// the first header block following the change to the dynamic table
	// size." Several may follow each other (§6.3 via §4.2: the smallest
	// and the final size), each at most the advertised maximum.
	sawUpdate := false
	for p < len(block) && block[p]&0xe0 == 0x20 {
		v, np, err := readInt(block, p, 5)
		if err != nil {
			return dst, err
		}
		// §6.3: "The new maximum size MUST be lower than or equal to the
		// limit determined by the protocol using HPACK."
		if v > d.limit {
			return dst, errTableSizeUpdate
		}
		d.dt.setMaxSize(v)
		sawUpdate = true
		p = np
	}
	if d.needUpdate {
		if !sawUpdate {
			return dst, errTableSizeUpdate
		}
		d.needUpdate = false
	}

	listLimit := int(d.maxListSize)
	if listLimit == 0 {
		listLimit = defaultMaxHeaderListSize
	}
	maxFields := d.maxFields
	if maxFields <= 0 {
		maxFields = defaultMaxFields
	}
	used := 0     // sum of the returned fields' sizes
	over := false // a limit was passed: parse only, return no more fields

	for p < len(block) {
		b := block[p]
		if !over && len(dst) >= maxFields {
			over = true
		}

		if b&0x80 != 0 {
			// §6.1 Indexed Header Field.
			var idx uint32
			if b != 0xff {
				idx = uint32(b & 0x7f)
				p++
			} else {
				var err error
				if idx, p, err = readInt(block, p, 7); err != nil {
					return dst[:0], err
				}
			}
			if idx-1 < staticTableLen { // 1 <= idx <= 61; idx 0 wraps
				if over {
					continue
				}
				f := &staticFields[idx]
				if used += len(f.Name) + len(f.Value) + entryOverhead; used > listLimit {
					over = true
					continue
				}
				dst = append(dst, *f)
				continue
			}
			i := uint64(idx) - staticTableLen
			if idx == 0 || i > d.dt.len() {
				// §2.3.3: "Indices strictly greater than the sum of the
				// lengths of both tables MUST be treated as a decoding
				// error"; §6.1: "The index value of 0 is not used. It MUST
				// be treated as a decoding error".
				return dst[:0], errIndex
			}
			if over {
				continue
			}
			e := d.dt.at(i)
			off, n := e.off, e.off+int(e.nameLen)
			v := n + int(e.valLen)
			if used += v - off + entryOverhead; used > listLimit {
				over = true
				continue
			}
			if d.copyHits {
				var f *HeaderField
				dst, f = push(dst)
				f.Name, f.Value, f.Sensitive = d.entryName(e), d.entryValue(e), false
				continue
			}
			d.exposed = true
			a := d.dt.arena[:v]
			var f *HeaderField
			dst, f = push(dst)
			f.Name, f.Value, f.Sensitive = a[off:n:n], a[n:v:v], false
			continue
		}

		var prefix uint8
		var indexing, sensitive bool
		switch {
		case b&0xc0 == 0x40: // §6.2.1 Literal Header Field with Incremental Indexing
			prefix, indexing = 6, true
		case b&0xf0 == 0x00: // §6.2.2 Literal Header Field without Indexing
			prefix = 4
		case b&0xf0 == 0x10: // §6.2.3 Literal Header Field Never Indexed
			prefix, sensitive = 4, true
		default:
			// 001xxxxx: a dynamic table size update after a field (§4.2).
			return dst[:0], errTableSizeUpdate
		}
		if !over {
			f, np, err := d.literal(block, p, prefix, indexing, listLimit-used)
			if err == nil {
				p = np
				used += len(f.Name) + len(f.Value) + entryOverhead
				var df *HeaderField
				dst, df = push(dst)
				df.Name, df.Value, df.Sensitive = f.Name, f.Value, sensitive
				continue
			}
			if err != errOverBudget {
				return dst[:0], err
			}
			over = true
		}
		np, err := d.skipLiteral(block, p, prefix, indexing)
		if err != nil {
			return dst[:0], err
		}
		p = np
	}
	if over {
		return dst, ErrHeaderListTooLarge
	}
	return dst, nil
}

// push extends dst by one element and returns a pointer to it. Filling the
// element in place is much faster than appending a composite literal: that
// builds the 56-byte struct on the stack and copies it with wide loads that
// stall on store forwarding.
func push(dst []HeaderField) ([]HeaderField, *HeaderField) {
	k := len(dst)
	if k < cap(dst) {
		dst = dst[:k+1]
	} else {
		dst = append(dst, HeaderField{})
	}
	return dst, &dst[k]
}

// entryName and entryValue return the bytes of a dynamic table entry for
// a returned field: a slice of the arena, or a copy in scratch in copy mode.
func (d *Decoder) entryName(e *entry) []byte {
	if d.copyHits {
		return d.copyToScratch(d.dt.name(e))
	}
	d.exposed = true
	return d.dt.name(e)
}

func (d *Decoder) entryValue(e *entry) []byte {
	if d.copyHits {
		return d.copyToScratch(d.dt.value(e))
	}
	d.exposed = true
	return d.dt.value(e)
}

func (d *Decoder) copyToScratch(b []byte) []byte {
	start := len(d.scratch)
	d.scratch = append(d.scratch, b...)
	return d.scratch[start:len(d.scratch):len(d.scratch)]
}

// insert adds a literal with incremental indexing to the table (§6.2.1).
func (d *Decoder) insert(name, value []byte) {
	if _, _, moved := d.dt.add(name, value, !d.exposed); moved && d.exposed {
		// The old arena stays untouched for the fields returned so far;
		// the new one is private until the end of the block.
		d.exposed, d.copyHits = false, true
	}
}

// lookupName returns the entry at HPACK index idx, as a static field or a
// dynamic entry, or errIndex.
func (d *Decoder) lookupName(idx uint32) (static []byte, dyn *entry, err error) {
	if idx-1 < staticTableLen {
		return staticFields[idx].Name, nil, nil
	}
	i := uint64(idx) - staticTableLen
	if idx == 0 || i > d.dt.len() {
		return nil, nil, errIndex
	}
	return nil, d.dt.at(i), nil
}

// literal decodes the literal field representation (§6.2) at block[p],
// whose name index has a prefix-bit prefix, and inserts it into the
// dynamic table if indexing. budget is what is left of the list size
// limit: if the field's size would exceed it, literal returns errOverBudget
// before copying or inserting anything, and the caller re-parses the field
// with skipLiteral.
func (d *Decoder) literal(block []byte, p int, prefix uint8, indexing bool, budget int) (HeaderField, int, error) {
	idx, p, err := readInt(block, p, prefix)
	if err != nil {
		return HeaderField{}, p, err
	}
	var name []byte
	if idx != 0 {
		static, dyn, err := d.lookupName(idx)
		switch {
		case err != nil:
			return HeaderField{}, p, err
		case dyn == nil && len(static) > budget-entryOverhead,
			dyn != nil && int(dyn.nameLen) > budget-entryOverhead:
			return HeaderField{}, p, errOverBudget // checked before copying
		case dyn == nil:
			name = static
		default:
			name = d.entryName(dyn)
		}
	} else if name, p, err = d.readString(block, p, budget-entryOverhead); err != nil {
		return HeaderField{}, p, err
	}
	value, p, err := d.readString(block, p, budget-entryOverhead-len(name))
	if err != nil {
		return HeaderField{}, p, err
	}
	if indexing {
		d.insert(name, value)
	}
	return HeaderField{Name: name, Value: value}, p, nil
}

// readString reads the string literal (§5.2) at block[p]. A plain string is
// returned in place; a Huffman-coded one is decoded into the scratch
// buffer. A string longer than limit bytes (decoded) is errOverBudget.
func (d *Decoder) readString(block []byte, p int, limit int) ([]byte, int, error) {
	raw, huffman, p, err := rawString(block, p)
	if err != nil {
		return nil, p, err
	}
	if !huffman {
		if len(raw) > limit {
			return nil, p, errOverBudget
		}
		return raw, p, nil
	}
	start := len(d.scratch)
	out, err := huffmanDecode(d.scratch, raw, limit)
	d.scratch = out[:start] // keep the grown buffer even on error
	if err != nil {
		if err == errHuffmanTooLong {
			err = errOverBudget
		}
		return nil, p, err
	}
	d.scratch = out
	return out[start:len(out):len(out)], p, nil
}

// rawString returns the undecoded bytes of the string literal at block[p],
// whether they are Huffman-coded, and the position after them. The length
// is checked against the rest of the block before anything else happens.
func rawString(block []byte, p int) (raw []byte, huffman bool, np int, err error) {
	if p >= len(block) {
		return nil, false, p, errTruncated
	}
	huffman = block[p]&0x80 != 0
	n, p, err := readInt(block, p, 7)
	if err != nil {
		return nil, false, p, err
	}
	if uint64(n) > uint64(len(block)-p) {
		return nil, false, p, errStringLength
	}
	end := p + int(n)
	return block[p:end:end], huffman, end, nil
}

// skipLiteral parses the literal field representation at block[p] after a
// list limit was passed. The field is not returned, so its strings are only
// validated, except that a field with incremental indexing must still be
// inserted to keep the table in sync with the peer: its Huffman-coded
// strings are decoded into the scratch buffer (and dropped after the
// insertion), but only as long as they could fit in the table; a longer one
// would empty the table anyway (§4.4), so it is only validated.
func (d *Decoder) skipLiteral(block []byte, p int, prefix uint8, indexing bool) (int, error) {
	mark := len(d.scratch)
	defer func() { d.scratch = d.scratch[:mark] }()

	idx, p, err := readInt(block, p, prefix)
	if err != nil {
		return p, err
	}
	room := int(d.dt.maxSize) - entryOverhead // name+value bytes that fit
	tooBig := false
	var name []byte
	if idx != 0 {
		static, dyn, err := d.lookupName(idx)
		switch {
		case err != nil:
			return p, err
		case dyn == nil:
			name = static
		case indexing:
			// A private copy: the insertion may compact the arena in
			// place, overwriting the entry the name comes from.
			name = d.copyToScratch(d.dt.name(dyn))
		}
	} else if name, tooBig, p, err = d.syncString(block, p, indexing, room); err != nil {
		return p, err
	}
	value, tooBig2, p, err := d.syncString(block, p, indexing && !tooBig, room-len(name))
	if err != nil {
		return p, err
	}
	if indexing {
		if tooBig || tooBig2 {
			// §4.4: an entry larger than the maximum size empties the table.
			d.dt.evictAll()
		} else {
			d.insert(name, value)
		}
	}
	return p, nil
}

// syncString reads the string literal at block[p] for skipLiteral. If keep
// is false or the string is longer than room, it is only validated and
// tooBig reports the latter.
func (d *Decoder) syncString(block []byte, p int, keep bool, room int) (s []byte, tooBig bool, np int, err error) {
	raw, huffman, p, err := rawString(block, p)
	if err != nil {
		return nil, false, p, err
	}
	if !huffman {
		return raw, keep && len(raw) > room, p, nil
	}
	if keep {
		start := len(d.scratch)
		out, err := huffmanDecode(d.scratch, raw, room)
		d.scratch = out[:start]
		if err == nil {
			d.scratch = out
			return out[start:], false, p, nil
		}
		if err != errHuffmanTooLong {
			return nil, false, p, err
		}
		tooBig = true
	}
	return nil, tooBig, p, huffmanValidate(raw)
}
