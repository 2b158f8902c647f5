package hpack

// HeaderField is one decoded or to-be-encoded header field. Name and Value
// are byte slices; for a decoded field they alias memory owned by the
// Decoder (see Decoder.Decode and the package documentation).
type HeaderField struct {
	Name, Value []byte
	// Sensitive marks a field decoded from, or to be encoded as, a literal
	// "never indexed" representation (RFC 7541 §6.2.3). Intermediaries must
	// forward such fields with the same representation (§7.1.3).
	Sensitive bool
}

// entryOverhead is the per-entry overhead of RFC 7541 §4.1.
const entryOverhead = 32

// Size returns the size of the field as defined by RFC 7541 §4.1: the
// length of the name and the value in bytes plus 32.
func (f HeaderField) Size() uint32 {
	return uint32(len(f.Name)) + uint32(len(f.Value)) + entryOverhead
}
