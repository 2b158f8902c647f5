package frames

import (
	"bytes"
	"testing"

	"github.com/culvert-tunnel/culvert/bufpool"
)

// TestReader_RetainData: DATA payloads handed out by reference stay intact
// while the Reader reads on (poisoning shows any reuse of their bytes), a
// padded frame's reference covers its data only, the share limit holds,
// and sharing resumes once the references are dropped.
func TestReader_RetainData(t *testing.T) {
	var in []byte
	var want [][]byte
	in = append(in, raw(FrameData, 0, 1, []byte("small, in the inline buffer"))...)
	want = append(want, []byte("small, in the inline buffer"))
	in = append(in, raw(FramePing, 0, 0, make([]byte, 8))...)
	want = append(want, nil)
	for i := range 96 { // 1.5 MiB: several pooled buffers
		p := bytes.Repeat([]byte{byte(i + 1)}, DefaultMaxFrameSize)
		if i%5 == 0 {
			in = append(in, raw(FrameData, FlagDataPadded, 1, cat([]byte{7}, p[:16000], make([]byte, 7)))...)
			want = append(want, p[:16000])
			continue
		}
		in = append(in, raw(FrameData, 0, 1, p)...)
		want = append(want, p)
	}
	r := NewReader(bytes.NewReader(in))
	r.SetDebugPoison(true)
	r.SetShareLimit(2)

	type held struct {
		ref  *bufpool.Buf
		a, b int
		want []byte
	}
	var hs []held
	refused := 0
	check := func(i int) {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		ref, a, b, ok := r.RetainData()
		if want[i] == nil {
			if ok {
				t.Fatalf("frame %d (%T): RetainData ok", i, f)
			}
			return
		}
		if !bytes.Equal(f.(*DataFrame).Data(), want[i]) {
			t.Fatalf("frame %d: wrong data", i)
		}
		if !ok {
			refused++
			return
		}
		if !bytes.Equal(ref.B[a:b], want[i]) {
			t.Fatalf("frame %d: retained bytes differ from the frame's data", i)
		}
		hs = append(hs, held{ref, a, b, want[i]})
	}
	for i := range 66 {
		check(i)
		if n := r.sharedOut.Load(); n > 2 {
			t.Fatalf("frame %d: %d buffers shared out, limit 2", i, n)
		}
	}
	if refused == 0 {
		t.Fatal("the share limit was never reached")
	}
	if len(hs) == 0 {
		t.Fatal("nothing was shared")
	}
	for i, h := range hs {
		if !bytes.Equal(h.ref.B[h.a:h.b], h.want) {
			t.Fatalf("held payload %d changed after the Reader moved on", i)
		}
		bufpool.Put(h.ref)
	}
	hs, refused = hs[:0], 0
	for i := 66; i < len(want); i++ {
		check(i)
	}
	if len(hs) == 0 {
		t.Fatal("sharing did not resume after the references were dropped")
	}
	for _, h := range hs {
		bufpool.Put(h.ref)
	}
}

// TestReader_RetainDataOff: without SetShareLimit nothing is shared.
func TestReader_RetainDataOff(t *testing.T) {
	p := bytes.Repeat([]byte("x"), DefaultMaxFrameSize)
	r := NewReader(bytes.NewReader(cat(raw(FrameData, 0, 1, p), raw(FrameData, 0, 1, p))))
	for range 2 {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if _, _, _, ok := r.RetainData(); ok {
			t.Fatal("RetainData ok with no share limit set")
		}
	}
}
