//go:build !race

package frames

import (
	"bytes"
	"io"
	"testing"
)

// loopReader serves b over and over.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

func TestReader_NoAllocsSteadyState(t *testing.T) {
	stream := cat(
		raw(FrameData, 0, 1, make([]byte, 16384)),
		raw(FrameHeaders, FlagHeadersEndHeaders, 3, bytes.Repeat([]byte{0x82}, 40)),
		raw(FrameHeaders, 0, 5, []byte{0x82}), raw(FrameContinuation, FlagContinuationEndHeaders, 5, []byte{0x84}),
		raw(FrameSettings, 0, 0, setting(SettingMaxFrameSize, 1<<14)),
		raw(FramePing, 0, 0, make([]byte, 8)),
		raw(FrameWindowUpdate, 0, 0, u32(5)),
		raw(FrameGoAway, 0, 0, make([]byte, 8)),
		raw(FrameRSTStream, 0, 1, u32(8)),
	)
	r := NewReader(&loopReader{b: stream})
	for range 100 {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(10000, func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("ReadFrame: %v allocs/op, want 0", a)
	}
}

func TestWriter_NoAllocsSteadyState(t *testing.T) {
	w := NewWriter(io.Discard)
	data := make([]byte, 16384)
	reserved := make([]byte, HeaderLen+16384)
	block := bytes.Repeat([]byte{0x82}, 40)
	settings := []Setting{{SettingInitialWindowSize, 1 << 20}}
	round := func() {
		w.WriteData(1, false, data)
		w.WriteDataReserved(1, false, reserved)
		w.WriteHeaderBlock(3, true, block)
		w.WriteSettings(settings)
		w.WritePing(true, [8]byte{})
		w.WriteWindowUpdate(0, 1000)
		w.WriteRSTStream(3, ErrCodeCancel)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	round()
	if a := testing.AllocsPerRun(1000, round); a != 0 {
		t.Fatalf("write+flush: %v allocs/op, want 0", a)
	}
}
