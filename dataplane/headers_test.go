package dataplane

import (
	"fmt"
	"testing"

	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// TestHeaderListCopyFrom: the copy owns its bytes, keeps order and the
// never-indexed marks, survives later Adds that move the arena, and a
// shorter list copied over a longer one leaves nothing of it behind.
func TestHeaderListCopyFrom(t *testing.T) {
	src := []hpack.HeaderField{
		{Name: []byte(":method"), Value: []byte("GET")},
		{Name: []byte("authorization"), Value: []byte("secret"), Sensitive: true},
		{Name: []byte("x-empty"), Value: nil},
		{Name: []byte("x-long"), Value: []byte(fmt.Sprintf("%0300d", 7))},
	}
	var h HeaderList
	for round := range 3 {
		h.CopyFrom(src)
		for i := range src {
			src[i].Value = append([]byte(nil), src[i].Value...) // the caller's bytes may change
		}
		src[0].Value[0] = 'P'
		got := h.Fields()
		if len(got) != len(src) {
			t.Fatalf("round %d: %d fields, want %d", round, len(got), len(src))
		}
		for i, f := range got {
			want := src[i]
			if i == 0 {
				want.Value = []byte("GET")
			}
			if string(f.Name) != string(want.Name) || string(f.Value) != string(want.Value) || f.Sensitive != want.Sensitive {
				t.Errorf("round %d field %d: %q: %q (sensitive %v)", round, i, f.Name, f.Value, f.Sensitive)
			}
		}
		src[0].Value[0] = 'G'
		for i := range 40 { // grow the arena past its first size
			h.AddString(fmt.Sprintf("x-add-%d", i), "v")
		}
		if string(h.Get("authorization")) != "secret" || string(h.Get("x-add-39")) != "v" || h.Len() != len(src)+40 {
			t.Errorf("round %d: after Adds: %d fields, authorization %q", round, h.Len(), h.Get("authorization"))
		}
	}
	h.CopyFrom(src[:1])
	if h.Len() != 1 || h.Has("x-add-0") || string(h.Get(":method")) != "GET" {
		t.Errorf("a shorter copy over a longer list: %d fields", h.Len())
	}
}
