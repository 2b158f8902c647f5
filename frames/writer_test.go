package frames

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// countingWriter records each Write call.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestWriter_OneWritePerBatch(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	w.WriteSettings([]Setting{{SettingInitialWindowSize, 1 << 20}})
	w.WriteSettingsAck()
	w.WriteWindowUpdate(0, 1<<20)
	w.WriteData(1, false, make([]byte, 16384))
	w.WritePing(true, [8]byte{})
	if cw.writes != 0 {
		t.Fatalf("%d writes before Flush", cw.writes)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if cw.writes != 1 {
		t.Fatalf("Flush made %d writes, want 1", cw.writes)
	}
	if err := w.Flush(); err != nil || cw.writes != 1 {
		t.Fatalf("empty Flush wrote: %d, %v", cw.writes, err)
	}
	if w.pb == nil {
		t.Fatal("batch buffer not kept across Flush")
	}
	if err := w.Release(); err != nil || w.pb != nil {
		t.Fatalf("Release: %v, buffer held: %v", err, w.pb != nil)
	}
	if cw.writes != 1 {
		t.Fatal("Release of an empty batch wrote")
	}
	w.WritePing(false, [8]byte{})
	if err := w.Release(); err != nil || cw.writes != 2 || w.pb != nil {
		t.Fatalf("Release with a pending frame: %v, %d writes", err, cw.writes)
	}
	got := readAllOurs(t, cw.Bytes(), DefaultMaxFrameSize)
	if len(got) != 6 || got[3].Length != 16384 {
		t.Fatalf("read back %d frames", len(got))
	}
}

func TestWriter_FlushesPastMaxBatch(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	w.SetMaxBatch(64 << 10)
	for i := 0; i < 10; i++ {
		if err := w.WriteData(1, false, make([]byte, 16384)); err != nil {
			t.Fatal(err)
		}
		if w.Buffered() > 64<<10 {
			t.Fatalf("batch grew to %d past its limit", w.Buffered())
		}
	}
	w.Flush()
	if cw.writes < 3 {
		t.Fatalf("%d writes for 160 KiB under a 64 KiB batch limit", cw.writes)
	}
	if got := readAllOurs(t, cw.Bytes(), DefaultMaxFrameSize); len(got) != 10 {
		t.Fatalf("read back %d frames", len(got))
	}
}

func TestWriter_ArgumentChecks(t *testing.T) {
	w := NewWriter(io.Discard)
	big := make([]byte, DefaultMaxFrameSize+1)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"DATA stream 0", w.WriteData(0, false, nil), ErrInvalidStreamID},
		{"DATA stream 2^31", w.WriteData(1<<31, false, nil), ErrInvalidStreamID},
		{"DATA too large", w.WriteData(1, false, big), ErrFrameTooLarge},
		{"DATA padded too large", w.WriteDataPadded(1, false, big[:DefaultMaxFrameSize-1], 1), ErrFrameTooLarge},
		{"HEADERS stream 0", w.WriteHeaders(HeadersParam{}), ErrInvalidStreamID},
		{"HEADERS bad dependency", w.WriteHeaders(HeadersParam{StreamID: 1, HasPriority: true, Priority: PriorityParam{StreamDep: 1 << 31}}), ErrInvalidDependency},
		{"PRIORITY stream 0", w.WritePriority(0, PriorityParam{}), ErrInvalidStreamID},
		{"RST_STREAM stream 0", w.WriteRSTStream(0, ErrCodeCancel), ErrInvalidStreamID},
		{"SETTINGS bad value", w.WriteSettings([]Setting{{SettingMaxFrameSize, 100}}), ErrInvalidSetting},
		{"PUSH_PROMISE promise 0", w.WritePushPromise(PushPromiseParam{StreamID: 1}), ErrInvalidStreamID},
		{"GOAWAY last id 2^31", w.WriteGoAway(1<<31, 0, nil), ErrInvalidStreamID},
		{"WINDOW_UPDATE 0", w.WriteWindowUpdate(1, 0), ErrInvalidIncrement},
		{"WINDOW_UPDATE 2^31", w.WriteWindowUpdate(1, 1<<31), ErrInvalidIncrement},
		{"CONTINUATION stream 0", w.WriteContinuation(0, true, nil), ErrInvalidStreamID},
		{"reserved frame too short", w.WriteDataReserved(1, false, make([]byte, 8)), ErrReservedHeader},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
		}
	}
	if w.Buffered() != 0 {
		t.Fatalf("refused frames left %d bytes pending", w.Buffered())
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("broken pipe")
}

func TestWriter_StickyError(t *testing.T) {
	fw := &failWriter{}
	w := NewWriter(fw)
	w.WritePing(false, [8]byte{})
	if err := w.Flush(); err == nil {
		t.Fatal("no error from a failing writer")
	}
	if err := w.WritePing(false, [8]byte{}); err == nil {
		t.Fatal("write after failure accepted")
	}
	if err := w.Flush(); err == nil || fw.n != 1 {
		t.Fatalf("flush after failure: %v, %d writes", err, fw.n)
	}
}

// TestWriter_ReservedZeroCopy sends reserved-header DATA frames over a real
// TCP connection: on the vectored path the payload is queued, not copied,
// and it arrives interleaved correctly with copied frames.
func TestWriter_ReservedZeroCopy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []norm, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- readAllOurs(t, b, DefaultMaxFrameSize)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(c)
	if !w.Vectored() {
		t.Fatal("a TCP conn should take vectored writes")
	}
	frame1 := make([]byte, HeaderLen+16384)
	for i := range frame1[HeaderLen:] {
		frame1[HeaderLen+i] = byte(i)
	}
	frame2 := append(make([]byte, HeaderLen), "tail"...)
	w.WritePing(false, [8]byte{1})
	if err := w.WriteDataReserved(1, false, frame1); err != nil {
		t.Fatal(err)
	}
	if w.n != 17 || len(w.segs) != 1 || &w.segs[0].ext[0] != &frame1[0] {
		t.Fatalf("16 KiB reserved frame was copied into the batch (batch %d bytes, %d segments)", w.n, len(w.segs))
	}
	w.WriteWindowUpdate(0, 100)
	w.WriteDataReserved(1, true, frame2) // small: copied
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	frames := <-got
	if len(frames) != 4 || frames[0].Type != FramePing || frames[1].Payload != string(frame1[HeaderLen:]) ||
		frames[2].Type != FrameWindowUpdate || frames[3].Payload != "tail" || frames[3].Flags != FlagDataEndStream {
		t.Fatalf("frames read back out of order or damaged: %d frames", len(frames))
	}
}

func TestWriter_ReservedOnNonVectoredCopies(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	frame := append(make([]byte, HeaderLen), bytes.Repeat([]byte("z"), 5000)...)
	if err := w.WriteDataReserved(3, true, frame); err != nil {
		t.Fatal(err)
	}
	frame[HeaderLen] = 'Q' // the caller may reuse it: it was copied
	w.Flush()
	got := readAllOurs(t, buf.Bytes(), DefaultMaxFrameSize)
	if len(got) != 1 || got[0].Payload != string(bytes.Repeat([]byte("z"), 5000)) {
		t.Fatal("reserved frame on a non-vectored writer not copied intact")
	}
}

// vectoredBuffer is a VectoredWriter over a bytes.Buffer that counts the
// calls of each kind.
type vectoredBuffer struct {
	bytes.Buffer
	vectored, plain int
}

func (v *vectoredBuffer) WriteBuffers(b *net.Buffers) (int64, error) {
	v.vectored++
	var n int64
	for _, p := range *b {
		m, _ := v.Buffer.Write(p)
		n += int64(m)
	}
	*b = (*b)[len(*b):]
	return n, nil
}

func (v *vectoredBuffer) Write(p []byte) (int, error) {
	v.plain++
	return v.Buffer.Write(p)
}

// TestWriter_VectoredWrapper: a destination that implements VectoredWriter
// (a wrapper around a connection) gets zero-copy frames in place, in one
// WriteBuffers call per batch.
func TestWriter_VectoredWrapper(t *testing.T) {
	var v vectoredBuffer
	w := NewWriter(&v)
	if !w.Vectored() {
		t.Fatal("a VectoredWriter should count as vectored")
	}
	frame := append(make([]byte, HeaderLen), bytes.Repeat([]byte("v"), 16384)...)
	w.WritePing(false, [8]byte{2})
	if err := w.WriteDataReserved(5, true, frame); err != nil {
		t.Fatal(err)
	}
	if len(w.segs) != 1 || &w.segs[0].ext[0] != &frame[0] {
		t.Fatal("reserved frame copied into the batch")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if v.vectored != 1 || v.plain != 0 {
		t.Fatalf("Flush made %d WriteBuffers and %d Write calls, want 1 and 0", v.vectored, v.plain)
	}
	got := readAllOurs(t, v.Bytes(), DefaultMaxFrameSize)
	if len(got) != 2 || got[0].Type != FramePing || got[1].Payload != string(frame[HeaderLen:]) {
		t.Fatalf("frames read back damaged: %d frames", len(got))
	}
}

func TestWriter_HeaderBlockSplitsByPeerMaxFrameSize(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetMaxFrameSize(20000)
	block := bytes.Repeat([]byte{0x82}, 50000)
	if err := w.WriteHeaderBlock(1, false, block); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got := readAllOurs(t, buf.Bytes(), 20000)
	if len(got) != 3 || got[0].Length != 20000 || got[1].Length != 20000 || got[2].Length != 10000 ||
		got[2].Flags != FlagContinuationEndHeaders || got[0].Flags != 0 {
		t.Fatalf("split: %+v", truncNorm(got))
	}
	buf.Reset()
	w.WriteHeaderBlock(1, true, nil)
	w.Flush()
	if got := readAllOurs(t, buf.Bytes(), 20000); len(got) != 1 || got[0].Flags != FlagHeadersEndHeaders|FlagHeadersEndStream {
		t.Fatalf("empty block: %+v", got)
	}
}
