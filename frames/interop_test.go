package frames

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

// norm is a frame reduced to comparable values, built from ours or x/net's.
type norm struct {
	Type      FrameType
	Flags     Flags
	StreamID  uint32
	Length    uint32
	Payload   string // data, block fragment or debug data
	Prio      PriorityParam
	HasPrio   bool
	Code      ErrCode
	Settings  []Setting
	PromiseID uint32
	Ping      [8]byte
	LastID    uint32
	Incr      uint32
}

func normOurs(f Frame) norm {
	h := f.Header()
	n := norm{Type: h.Type, Flags: h.Flags, StreamID: h.StreamID, Length: h.Length}
	switch f := f.(type) {
	case *DataFrame:
		n.Payload = string(f.Data())
	case *HeadersFrame:
		n.Payload, n.HasPrio, n.Prio = string(f.BlockFragment()), f.HasPriority, f.Priority
	case *PriorityFrame:
		n.Prio, n.HasPrio = f.PriorityParam, true
	case *RSTStreamFrame:
		n.Code = f.ErrCode
	case *SettingsFrame:
		for i := 0; i < f.NumSettings(); i++ {
			n.Settings = append(n.Settings, f.Setting(i))
		}
	case *PushPromiseFrame:
		n.PromiseID, n.Payload = f.PromiseID, string(f.BlockFragment())
	case *PingFrame:
		n.Ping = f.Data
	case *GoAwayFrame:
		n.LastID, n.Code, n.Payload = f.LastStreamID, f.ErrCode, string(f.DebugData())
	case *WindowUpdateFrame:
		n.Incr = f.Increment
	case *ContinuationFrame:
		n.Payload = string(f.BlockFragment())
	default:
		panic(fmt.Sprintf("unexpected frame %T", f))
	}
	return n
}

func normXnet(f http2.Frame) norm {
	h := f.Header()
	n := norm{Type: FrameType(h.Type), Flags: Flags(h.Flags), StreamID: h.StreamID, Length: h.Length}
	xp := func(p http2.PriorityParam) PriorityParam {
		return PriorityParam{StreamDep: p.StreamDep, Exclusive: p.Exclusive, Weight: p.Weight}
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		n.Payload = string(f.Data())
	case *http2.HeadersFrame:
		n.Payload, n.HasPrio = string(f.HeaderBlockFragment()), f.HasPriority()
		if n.HasPrio {
			n.Prio = xp(f.Priority)
		}
	case *http2.PriorityFrame:
		n.Prio, n.HasPrio = xp(f.PriorityParam), true
	case *http2.RSTStreamFrame:
		n.Code = ErrCode(f.ErrCode)
	case *http2.SettingsFrame:
		for i := 0; i < f.NumSettings(); i++ {
			s := f.Setting(i)
			n.Settings = append(n.Settings, Setting{ID: SettingID(s.ID), Val: s.Val})
		}
	case *http2.PushPromiseFrame:
		n.PromiseID, n.Payload = f.PromiseID, string(f.HeaderBlockFragment())
	case *http2.PingFrame:
		n.Ping = f.Data
	case *http2.GoAwayFrame:
		n.LastID, n.Code, n.Payload = f.LastStreamID, ErrCode(f.ErrCode), string(f.DebugData())
	case *http2.WindowUpdateFrame:
		n.Incr = f.Increment
	case *http2.ContinuationFrame:
		n.Payload = string(f.HeaderBlockFragment())
	default:
		panic(fmt.Sprintf("unexpected x/net frame %T", f))
	}
	return n
}

// readAllOurs reads every frame of b with header-block assembly off.
func readAllOurs(t testing.TB, b []byte, maxFrame uint32) []norm {
	t.Helper()
	r := NewReader(bytes.NewReader(b))
	r.SetMaxReadFrameSize(maxFrame)
	r.SetAssembleHeaderBlocks(false)
	r.SetDebugPoison(true)
	var out []norm
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ours: frame %d: %v", len(out), err)
		}
		out = append(out, normOurs(f))
	}
}

func readAllXnet(t testing.TB, b []byte, maxFrame uint32, noOrderCheck bool) []norm {
	t.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.SetMaxReadFrameSize(maxFrame)
	fr.AllowIllegalReads = noOrderCheck
	var out []norm
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("x/net: frame %d: %v", len(out), err)
		}
		out = append(out, normXnet(f))
	}
}

type interopCase struct {
	name     string
	maxFrame uint32 // both sides' max frame size; 0 = default
	ours     func(w *Writer) error
	xnet     func(fr *http2.Framer) error
	want     []norm
	// x/net's Framer only tracks field blocks opened by HEADERS: it takes
	// the CONTINUATION of a PUSH_PROMISE for a protocol error.
	xnetNoOrderCheck bool
}

func interopCases() []interopCase {
	max16 := strings.Repeat("d", DefaultMaxFrameSize)
	huge := strings.Repeat("h", MaxMaxFrameSize)
	block := "\x82\x86\x84\x41\x8a\x08\x9d\x5c\x0b\x81\x70\xdc\x78\x0f\x03"
	xprio := func(p PriorityParam) http2.PriorityParam {
		return http2.PriorityParam{StreamDep: p.StreamDep, Exclusive: p.Exclusive, Weight: p.Weight}
	}
	allSettings := []Setting{
		{SettingHeaderTableSize, 0}, {SettingEnablePush, 1}, {SettingMaxConcurrentStreams, 1<<32 - 1},
		{SettingInitialWindowSize, MaxWindowSize}, {SettingMaxFrameSize, MaxMaxFrameSize},
		{SettingMaxHeaderListSize, 1 << 20}, {SettingEnableConnectProtocol, 1}, {0xffff, 42},
	}
	xs := func(s []Setting) []http2.Setting {
		var o []http2.Setting
		for _, v := range s {
			o = append(o, http2.Setting{ID: http2.SettingID(v.ID), Val: v.Val})
		}
		return o
	}
	cs := []interopCase{
		{name: "DATA/empty",
			ours: func(w *Writer) error { return w.WriteData(1, false, nil) },
			xnet: func(f *http2.Framer) error { return f.WriteData(1, false, nil) },
			want: []norm{{Type: FrameData, StreamID: 1}}},
		{name: "DATA/end_stream",
			ours: func(w *Writer) error { return w.WriteData(3, true, []byte("hello")) },
			xnet: func(f *http2.Framer) error { return f.WriteData(3, true, []byte("hello")) },
			want: []norm{{Type: FrameData, Flags: FlagDataEndStream, StreamID: 3, Length: 5, Payload: "hello"}}},
		{name: "DATA/max_stream_id_full_frame",
			ours: func(w *Writer) error { return w.WriteData(maxStreamID, false, []byte(max16)) },
			xnet: func(f *http2.Framer) error { return f.WriteData(maxStreamID, false, []byte(max16)) },
			want: []norm{{Type: FrameData, StreamID: maxStreamID, Length: DefaultMaxFrameSize, Payload: max16}}},
		{name: "DATA/padded_zero",
			ours: func(w *Writer) error { return w.WriteDataPadded(5, false, []byte("x"), 0) },
			xnet: func(f *http2.Framer) error { return f.WriteDataPadded(5, false, []byte("x"), []byte{}) },
			want: []norm{{Type: FrameData, Flags: FlagDataPadded, StreamID: 5, Length: 2, Payload: "x"}}},
		{name: "DATA/padded_255_end",
			ours: func(w *Writer) error { return w.WriteDataPadded(5, true, []byte("abc"), 255) },
			xnet: func(f *http2.Framer) error { return f.WriteDataPadded(5, true, []byte("abc"), make([]byte, 255)) },
			want: []norm{{Type: FrameData, Flags: FlagDataPadded | FlagDataEndStream, StreamID: 5, Length: 259, Payload: "abc"}}},
		{name: "DATA/padded_at_limit",
			ours: func(w *Writer) error {
				return w.WriteDataPadded(7, false, []byte(max16[:DefaultMaxFrameSize-256]), 255)
			},
			xnet: func(f *http2.Framer) error {
				return f.WriteDataPadded(7, false, []byte(max16[:DefaultMaxFrameSize-256]), make([]byte, 255))
			},
			want: []norm{{Type: FrameData, Flags: FlagDataPadded, StreamID: 7, Length: DefaultMaxFrameSize, Payload: max16[:DefaultMaxFrameSize-256]}}},
		{name: "DATA/max_frame_size_2^24-1", maxFrame: MaxMaxFrameSize,
			ours: func(w *Writer) error { return w.WriteData(1, true, []byte(huge)) },
			xnet: func(f *http2.Framer) error { return f.WriteData(1, true, []byte(huge)) },
			want: []norm{{Type: FrameData, Flags: FlagDataEndStream, StreamID: 1, Length: MaxMaxFrameSize, Payload: huge}}},
		{name: "HEADERS/end_headers",
			ours: func(w *Writer) error {
				return w.WriteHeaders(HeadersParam{StreamID: 1, BlockFragment: []byte(block), EndHeaders: true})
			},
			xnet: func(f *http2.Framer) error {
				return f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(block), EndHeaders: true})
			},
			want: []norm{{Type: FrameHeaders, Flags: FlagHeadersEndHeaders, StreamID: 1, Length: uint32(len(block)), Payload: block}}},
		{name: "HEADERS/end_stream_padded_priority",
			ours: func(w *Writer) error {
				return w.WriteHeaders(HeadersParam{StreamID: 9, BlockFragment: []byte(block), EndStream: true, EndHeaders: true,
					Padded: true, PadLength: 17, HasPriority: true, Priority: PriorityParam{StreamDep: 3, Exclusive: true, Weight: 255}})
			},
			xnet: func(f *http2.Framer) error {
				return f.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: []byte(block), EndStream: true, EndHeaders: true,
					PadLength: 17, Priority: xprio(PriorityParam{StreamDep: 3, Exclusive: true, Weight: 255})})
			},
			want: []norm{{Type: FrameHeaders, Flags: FlagHeadersEndHeaders | FlagHeadersEndStream | FlagHeadersPadded | FlagHeadersPriority,
				StreamID: 9, Length: uint32(1 + 5 + len(block) + 17), Payload: block, HasPrio: true,
				Prio: PriorityParam{StreamDep: 3, Exclusive: true, Weight: 255}}}},
		{name: "HEADERS/priority_max_dep",
			ours: func(w *Writer) error {
				return w.WriteHeaders(HeadersParam{StreamID: 1, BlockFragment: []byte(block), EndHeaders: true,
					HasPriority: true, Priority: PriorityParam{StreamDep: maxStreamID, Weight: 15}})
			},
			xnet: func(f *http2.Framer) error {
				return f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(block), EndHeaders: true,
					Priority: http2.PriorityParam{StreamDep: maxStreamID, Weight: 15}})
			},
			want: []norm{{Type: FrameHeaders, Flags: FlagHeadersEndHeaders | FlagHeadersPriority, StreamID: 1,
				Length: uint32(5 + len(block)), Payload: block, HasPrio: true, Prio: PriorityParam{StreamDep: maxStreamID, Weight: 15}}}},
		{name: "HEADERS+CONTINUATION",
			ours: func(w *Writer) error {
				if err := w.WriteHeaders(HeadersParam{StreamID: 1, BlockFragment: []byte(block[:4]), EndStream: true}); err != nil {
					return err
				}
				if err := w.WriteContinuation(1, false, nil); err != nil {
					return err
				}
				return w.WriteContinuation(1, true, []byte(block[4:]))
			},
			xnet: func(f *http2.Framer) error {
				if err := f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(block[:4]), EndStream: true}); err != nil {
					return err
				}
				if err := f.WriteContinuation(1, false, nil); err != nil {
					return err
				}
				return f.WriteContinuation(1, true, []byte(block[4:]))
			},
			want: []norm{
				{Type: FrameHeaders, Flags: FlagHeadersEndStream, StreamID: 1, Length: 4, Payload: block[:4]},
				{Type: FrameContinuation, StreamID: 1},
				{Type: FrameContinuation, Flags: FlagContinuationEndHeaders, StreamID: 1, Length: uint32(len(block) - 4), Payload: block[4:]},
			}},
		{name: "PRIORITY",
			ours: func(w *Writer) error {
				return w.WritePriority(5, PriorityParam{StreamDep: maxStreamID, Exclusive: true, Weight: 0})
			},
			xnet: func(f *http2.Framer) error {
				return f.WritePriority(5, http2.PriorityParam{StreamDep: maxStreamID, Exclusive: true, Weight: 0})
			},
			want: []norm{{Type: FramePriority, StreamID: 5, Length: 5, HasPrio: true, Prio: PriorityParam{StreamDep: maxStreamID, Exclusive: true}}}},
		{name: "RST_STREAM/cancel",
			ours: func(w *Writer) error { return w.WriteRSTStream(3, ErrCodeCancel) },
			xnet: func(f *http2.Framer) error { return f.WriteRSTStream(3, http2.ErrCodeCancel) },
			want: []norm{{Type: FrameRSTStream, StreamID: 3, Length: 4, Code: ErrCodeCancel}}},
		{name: "RST_STREAM/unknown_code",
			ours: func(w *Writer) error { return w.WriteRSTStream(3, 0xdeadbeef) },
			xnet: func(f *http2.Framer) error { return f.WriteRSTStream(3, 0xdeadbeef) },
			want: []norm{{Type: FrameRSTStream, StreamID: 3, Length: 4, Code: 0xdeadbeef}}},
		{name: "SETTINGS/empty",
			ours: func(w *Writer) error { return w.WriteSettings(nil) },
			xnet: func(f *http2.Framer) error { return f.WriteSettings() },
			want: []norm{{Type: FrameSettings}}},
		{name: "SETTINGS/all_at_limits_and_unknown",
			ours: func(w *Writer) error { return w.WriteSettings(allSettings) },
			xnet: func(f *http2.Framer) error { return f.WriteSettings(xs(allSettings)...) },
			want: []norm{{Type: FrameSettings, Length: uint32(6 * len(allSettings)), Settings: allSettings}}},
		{name: "SETTINGS/ack",
			ours: func(w *Writer) error { return w.WriteSettingsAck() },
			xnet: func(f *http2.Framer) error { return f.WriteSettingsAck() },
			want: []norm{{Type: FrameSettings, Flags: FlagSettingsAck}}},
		{name: "PUSH_PROMISE/end_headers",
			ours: func(w *Writer) error {
				return w.WritePushPromise(PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: []byte(block), EndHeaders: true})
			},
			xnet: func(f *http2.Framer) error {
				return f.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: []byte(block), EndHeaders: true})
			},
			want: []norm{{Type: FramePushPromise, Flags: FlagPushPromiseEndHeaders, StreamID: 1, Length: uint32(4 + len(block)), PromiseID: 2, Payload: block}}},
		{name: "PUSH_PROMISE/padded_continued", xnetNoOrderCheck: true,
			ours: func(w *Writer) error {
				if err := w.WritePushPromise(PushPromiseParam{StreamID: 1, PromiseID: maxStreamID - 1, BlockFragment: []byte(block[:3]),
					Padded: true, PadLength: 255}); err != nil {
					return err
				}
				return w.WriteContinuation(1, true, []byte(block[3:]))
			},
			xnet: func(f *http2.Framer) error {
				if err := f.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: maxStreamID - 1, BlockFragment: []byte(block[:3]),
					PadLength: 255}); err != nil {
					return err
				}
				return f.WriteContinuation(1, true, []byte(block[3:]))
			},
			want: []norm{
				{Type: FramePushPromise, Flags: FlagPushPromisePadded, StreamID: 1, Length: 1 + 4 + 3 + 255, PromiseID: maxStreamID - 1, Payload: block[:3]},
				{Type: FrameContinuation, Flags: FlagContinuationEndHeaders, StreamID: 1, Length: uint32(len(block) - 3), Payload: block[3:]},
			}},
		{name: "PING",
			ours: func(w *Writer) error { return w.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}) },
			xnet: func(f *http2.Framer) error { return f.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}) },
			want: []norm{{Type: FramePing, Length: 8, Ping: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}}},
		{name: "PING/ack",
			ours: func(w *Writer) error { return w.WritePing(true, [8]byte{0xff}) },
			xnet: func(f *http2.Framer) error { return f.WritePing(true, [8]byte{0xff}) },
			want: []norm{{Type: FramePing, Flags: FlagPingAck, Length: 8, Ping: [8]byte{0xff}}}},
		{name: "GOAWAY/no_debug",
			ours: func(w *Writer) error { return w.WriteGoAway(maxStreamID, ErrCodeNo, nil) },
			xnet: func(f *http2.Framer) error { return f.WriteGoAway(maxStreamID, http2.ErrCodeNo, nil) },
			want: []norm{{Type: FrameGoAway, Length: 8, LastID: maxStreamID}}},
		{name: "GOAWAY/debug",
			ours: func(w *Writer) error { return w.WriteGoAway(7, ErrCodeEnhanceYourCalm, []byte("calm down")) },
			xnet: func(f *http2.Framer) error {
				return f.WriteGoAway(7, http2.ErrCodeEnhanceYourCalm, []byte("calm down"))
			},
			want: []norm{{Type: FrameGoAway, Length: 17, LastID: 7, Code: ErrCodeEnhanceYourCalm, Payload: "calm down"}}},
		{name: "WINDOW_UPDATE/connection_max",
			ours: func(w *Writer) error { return w.WriteWindowUpdate(0, MaxWindowSize) },
			xnet: func(f *http2.Framer) error { return f.WriteWindowUpdate(0, MaxWindowSize) },
			want: []norm{{Type: FrameWindowUpdate, Length: 4, Incr: MaxWindowSize}}},
		{name: "WINDOW_UPDATE/stream_1",
			ours: func(w *Writer) error { return w.WriteWindowUpdate(maxStreamID, 1) },
			xnet: func(f *http2.Framer) error { return f.WriteWindowUpdate(maxStreamID, 1) },
			want: []norm{{Type: FrameWindowUpdate, StreamID: maxStreamID, Length: 4, Incr: 1}}},
	}
	return cs
}

func writeOurs(t testing.TB, maxFrame uint32, fn func(*Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetMaxFrameSize(maxFrame)
	if err := fn(w); err != nil {
		t.Fatalf("ours: write: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("ours: flush: %v", err)
	}
	return buf.Bytes()
}

func writeXnet(t testing.TB, fn func(*http2.Framer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := fn(http2.NewFramer(&buf, nil)); err != nil {
		t.Fatalf("x/net: write: %v", err)
	}
	return buf.Bytes()
}

// TestInterop_Framer checks, for every frame type: our Writer and x/net's
// Framer produce the same bytes; frames written by ours read identically
// with x/net's Framer and with ours; frames written by x/net read
// identically with ours.
func TestInterop_Framer(t *testing.T) {
	for _, c := range interopCases() {
		t.Run(c.name, func(t *testing.T) {
			mf := c.maxFrame
			if mf == 0 {
				mf = DefaultMaxFrameSize
			}
			ob := writeOurs(t, mf, c.ours)
			xb := writeXnet(t, c.xnet)
			if !bytes.Equal(ob, xb) {
				t.Fatalf("wire bytes differ:\nours %x\nxnet %x", trunc(ob), trunc(xb))
			}
			for _, got := range [][]norm{
				readAllXnet(t, ob, mf, c.xnetNoOrderCheck), // ours → x/net
				readAllOurs(t, xb, mf),                     // x/net → ours
				readAllOurs(t, ob, mf),                     // ours → ours
			} {
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("read:\n got %+v\nwant %+v", truncNorm(got), truncNorm(c.want))
				}
			}
		})
	}
}

// TestInterop_OneByteReads reads the whole interop corpus as one stream
// delivered a byte at a time, as a slow TCP peer would.
func TestInterop_OneByteReads(t *testing.T) {
	var all []byte
	var want []norm
	for _, c := range interopCases() {
		if c.maxFrame != 0 {
			continue
		}
		all = append(all, writeOurs(t, DefaultMaxFrameSize, c.ours)...)
		want = append(want, c.want...)
	}
	r := NewReader(&oneByteReader{b: all})
	r.SetAssembleHeaderBlocks(false)
	var got []norm
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, normOurs(f))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d frames, want %d; differ", len(got), len(want))
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

// TestInterop_AssembledHeaderBlock: x/net splits a block over HEADERS and
// CONTINUATION frames; our Reader returns one HEADERS frame with the whole
// block, and an x/net MetaHeadersFrame sees the same fields.
func TestInterop_AssembledHeaderBlock(t *testing.T) {
	block := bytes.Repeat([]byte("\x82"), 40000) // 40000 x ":method: GET"
	xb := writeXnet(t, func(f *http2.Framer) error {
		if err := f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:16384], EndStream: true}); err != nil {
			return err
		}
		if err := f.WriteContinuation(1, false, block[16384:32768]); err != nil {
			return err
		}
		if err := f.WriteContinuation(1, true, block[32768:]); err != nil {
			return err
		}
		return f.WritePing(false, [8]byte{9})
	})
	ob := writeOurs(t, DefaultMaxFrameSize, func(w *Writer) error {
		if err := w.WriteHeaderBlock(1, true, block); err != nil {
			return err
		}
		return w.WritePing(false, [8]byte{9})
	})
	if !bytes.Equal(ob, xb) {
		t.Fatal("WriteHeaderBlock does not split like three frames of 16384 bytes")
	}
	r := NewReader(bytes.NewReader(xb))
	r.SetDebugPoison(true)
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	hf := f.(*HeadersFrame)
	if !bytes.Equal(hf.BlockFragment(), block) || !hf.HeadersEnded() || !hf.StreamEnded() || hf.StreamID != 1 {
		t.Fatalf("assembled block: len %d ended %v", len(hf.BlockFragment()), hf.HeadersEnded())
	}
	if f, err = r.ReadFrame(); err != nil || f.Header().Type != FramePing {
		t.Fatalf("after block: %v %v", f, err)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func truncNorm(ns []norm) []norm {
	out := make([]norm, len(ns))
	for i, n := range ns {
		if len(n.Payload) > 32 {
			n.Payload = n.Payload[:32] + "…"
		}
		out[i] = n
	}
	return out
}
