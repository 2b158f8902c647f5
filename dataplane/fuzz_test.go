package dataplane

import (
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// FuzzServerConn drives our server role with arbitrary frame sequences,
// written after a valid preface and SETTINGS over net.Pipe. The server
// must not panic, Serve must return once the peer hangs up, and every
// goroutine the connection started must go away.
//
// The input is a sequence of operations, each starting with an op byte:
//
//	op%16 < 10:  a raw frame of type op%16: flags, stream, length L, then
//	             L payload bytes
//	op%16 == 10: a request HEADERS block from a real HPACK encoder: flags
//	             (bit 0 END_STREAM, bit 1 a content-length, the rest pick
//	             the method and path), stream
//	op%16 == 11: trailers (a HEADERS block with END_STREAM): stream
//	op%16 == 12: a DATA frame of 64*L zero bytes: flags, stream, L
//	op%16 == 13: a frame of an unknown type: flags, stream, L, payload
//	otherwise:   a flush (the bytes so far go out in one write)
//
// Stream bytes map to ids 0-31 (the low five bits), so that frames meet
// the streams the requests opened.
func FuzzServerConn(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzServerConn(t, data)
	})
}

// fuzzPaths are the requests the encoder op can make, all served by
// testApp within the fuzz configuration's limits.
var fuzzPaths = []struct{ method, path string }{
	{"GET", "/bytes/0"},
	{"GET", "/bytes/10"},
	{"GET", "/bytes/20000"},
	{"GET", "/bytes/100000"},
	{"POST", "/sha"},
	{"POST", "/echo"},
	{"GET", "/hang"},
	{"HEAD", "/bytes/10"},
}

// fuzzOps builds fuzz input, for the seeds.
type fuzzOps []byte

func (o fuzzOps) frame(typ frames.FrameType, flags frames.Flags, stream uint32, payload []byte) fuzzOps {
	o = append(o, byte(typ), byte(flags), byte(stream), byte(len(payload)))
	return append(o, payload...)
}

func (o fuzzOps) request(stream uint32, endStream, contentLength bool, path int) fuzzOps {
	fl := byte(path << 2)
	if endStream {
		fl |= 1
	}
	if contentLength {
		fl |= 2
	}
	return append(o, 10, fl, byte(stream))
}

func (o fuzzOps) trailers(stream uint32) fuzzOps        { return append(o, 11, byte(stream)) }
func (o fuzzOps) bigData(stream uint32, l byte) fuzzOps { return append(o, 12, 0, byte(stream), l) }
func (o fuzzOps) flush() fuzzOps                        { return append(o, 15) }

func fuzzSeeds() [][]byte {
	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	var o fuzzOps
	seeds := [][]byte{
		// A GET.
		o.request(1, true, false, 1),
		// A POST with DATA.
		o.request(1, false, false, 4).frame(frames.FrameData, frames.FlagDataEndStream, 1, []byte("hello")),
		// A POST with a body, content-length and trailers.
		o.request(1, false, true, 5).frame(frames.FrameData, 0, 1, []byte("12345")).flush().trailers(1),
		// A request reset by the client.
		o.request(1, false, false, 6).flush().frame(frames.FrameRSTStream, 0, 1, u32(uint32(frames.ErrCodeCancel))),
		// PING, SETTINGS, WINDOW_UPDATE around a download.
		o.frame(frames.FramePing, 0, 0, []byte("12345678")).
			frame(frames.FrameSettings, 0, 0, append([]byte{0, byte(frames.SettingInitialWindowSize)}, u32(100)...)).
			request(3, true, false, 2).flush().
			frame(frames.FrameWindowUpdate, 0, 3, u32(50000)).
			frame(frames.FrameWindowUpdate, 0, 0, u32(1<<20)),
		// A large upload, echoed.
		o.request(1, false, false, 5).bigData(1, 255).bigData(1, 255).flush().bigData(1, 255).
			frame(frames.FrameData, frames.FlagDataEndStream, 1, nil),
		// Several streams, PRIORITY and GOAWAY.
		o.request(1, true, false, 0).request(3, true, false, 3).
			frame(frames.FramePriority, 0, 5, []byte{0, 0, 0, 1, 16}).
			request(5, true, false, 7).flush().
			frame(frames.FrameGoAway, 0, 0, append(u32(5), u32(0)...)),
		// A field block split over CONTINUATION frames is made by the
		// encoder op only when large; a raw one here.
		o.frame(frames.FrameHeaders, 0, 1, []byte{0x82, 0x86}).
			frame(frames.FrameContinuation, frames.FlagContinuationEndHeaders, 1, []byte{0x84, 0x41, 0x01, 'x'}),
	}
	return seeds
}

// fuzzConfig keeps one execution short and small.
func fuzzConfig() *Config {
	return &Config{
		Handler:              HandlerFunc(testApp),
		MaxConcurrentStreams: 8,
		InitialStreamWindow:  64 << 10,
		InitialConnWindow:    256 << 10,
		SendBuffer:           32 << 10,
		AbuseBurst:           100,
		MaxControlFrames:     100,
		PrefaceTimeout:       2 * time.Second,
		SettingsTimeout:      2 * time.Second,
		FrameTimeout:         time.Second,
		IdleTimeout:          2 * time.Second,
		WriteTimeout:         2 * time.Second,
	}
}

func fuzzServerConn(t *testing.T, data []byte) {
	base := runtime.NumGoroutine()
	cli, srv := net.Pipe()
	c := NewServerConn(srv, fuzzConfig())
	served := make(chan struct{})
	go func() {
		defer close(served)
		c.Serve()
	}()
	// The peer reads everything the server writes, and notes the ACK of
	// the PING it sends last.
	const lastPing = "fuzzdone"
	acked := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		fr := frames.NewReader(cli)
		for {
			f, err := fr.ReadFrame()
			if err != nil && f == nil {
				return
			}
			if p, ok := f.(*frames.PingFrame); ok && p.IsAck() && string(p.Data[:]) == lastPing {
				close(acked)
			}
		}
	}()

	fw := frames.NewWriter(cli)
	fw.WritePreface()
	fw.WriteSettings(nil)
	fw.WriteSettingsAck()
	enc := hpack.NewEncoder()
	var hb []byte
	for len(data) > 0 {
		op := data[0] % 16
		data = data[1:]
		arg := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		switch {
		case op < 10 || op == 13:
			typ := frames.FrameType(op)
			if op == 13 {
				typ = 0x20
			}
			fl, sid, n := frames.Flags(arg()), uint32(arg()&31), int(arg())
			n = min(n, len(data))
			fw.WriteRawFrame(typ, fl, sid, data[:n])
			data = data[n:]
		case op == 10:
			fl, sid := arg(), uint32(arg()&31)
			req := fuzzPaths[int(fl>>2)%len(fuzzPaths)]
			kv := []string{":method", req.method, ":scheme", "http", ":path", req.path, ":authority", "fuzz"}
			if fl&2 != 0 {
				kv = append(kv, "content-length", strconv.Itoa(int(fl)))
			}
			hb = enc.AppendHeaderBlock(hb[:0], fields(kv...))
			fw.WriteRawFrame(frames.FrameHeaders, frames.FlagHeadersEndHeaders|frames.Flags(fl&1), sid, hb)
		case op == 11:
			sid := uint32(arg() & 31)
			hb = enc.AppendHeaderBlock(hb[:0], fields("x-trailer", "fuzz"))
			fw.WriteRawFrame(frames.FrameHeaders, frames.FlagHeadersEndHeaders|frames.FlagHeadersEndStream, sid, hb)
		case op == 12:
			fl, sid, n := frames.Flags(arg()), uint32(arg()&31), 64*int(arg())
			fw.WriteRawFrame(frames.FrameData, fl, sid, make([]byte, n))
		default:
			fw.Flush()
		}
	}
	var ping [8]byte
	copy(ping[:], lastPing)
	fw.WritePing(false, ping)
	fw.Flush()
	// Let the server answer what it can, then hang up.
	select {
	case <-acked:
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	cli.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve did not return after the peer hung up (stats %+v)", c.Stats())
	}
	<-drained
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapInuse > 512<<20 {
		t.Fatalf("heap in use %d MiB", m.HeapInuse>>20)
	}
}
