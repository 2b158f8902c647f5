package hpack

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// dehex decodes hex digits, ignoring white space.
func dehex(s string) []byte {
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// pf builds a field from strings.
func pf(name, value string) HeaderField {
	return HeaderField{Name: []byte(name), Value: []byte(value)}
}

// sf builds a sensitive field from strings.
func sf(name, value string) HeaderField {
	f := pf(name, value)
	f.Sensitive = true
	return f
}

func fieldsEqual(a, b []HeaderField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Name, b[i].Name) || !bytes.Equal(a[i].Value, b[i].Value) || a[i].Sensitive != b[i].Sensitive {
			return false
		}
	}
	return true
}

func fmtFields(fs []HeaderField) string {
	var sb strings.Builder
	sb.WriteString("[")
	for i, f := range fs {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%q: %q", f.Name, f.Value)
		if f.Sensitive {
			sb.WriteString(" (sensitive)")
		}
	}
	sb.WriteString("]")
	return sb.String()
}

// entries lists the dynamic table, newest first.
func (t *table) entries() []HeaderField {
	var out []HeaderField
	for i := uint64(1); i <= t.len(); i++ {
		e := t.at(i)
		out = append(out, HeaderField{Name: t.name(e), Value: t.value(e)})
	}
	return out
}

// checkTable verifies the live entries and their accounted size.
func checkTable(t *testing.T, what string, tab *table, want []HeaderField, wantSize uint32) {
	t.Helper()
	got := tab.entries()
	if !fieldsEqual(got, want) {
		t.Errorf("%s: dynamic table = %s, want %s", what, fmtFields(got), fmtFields(want))
	}
	if tab.size != wantSize {
		t.Errorf("%s: dynamic table size = %d, want %d", what, tab.size, wantSize)
	}
	var sum uint32
	for _, f := range got {
		sum += f.Size()
	}
	if sum != tab.size {
		t.Errorf("%s: table size %d does not match its entries (%d)", what, tab.size, sum)
	}
}

// browserFields returns BrowserRequestFields as HeaderFields.
func browserFields() []HeaderField {
	out := make([]HeaderField, len(BrowserRequestFields))
	for i, f := range BrowserRequestFields {
		out[i] = pf(f.Name, f.Value)
	}
	return out
}

// newVectorEncoder returns an encoder set up like the examples of RFC 7541
// Appendix C: a table of size bytes in effect from the start (no size
// update), every field indexed.
func newVectorEncoder(size uint32, huff huffmanMode) *Encoder {
	e := NewEncoder()
	e.limit, e.peerMax = size, size
	e.dt.setMaxSize(size)
	e.policy = IndexAll
	e.huffman = huff
	return e
}
