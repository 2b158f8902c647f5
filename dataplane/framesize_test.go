package dataplane

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
	"github.com/culvert-tunnel/culvert/frames/hpack"
)

// largestDataFrame requests /bytes/n from addr as a peer advertising
// SETTINGS_MAX_FRAME_SIZE maxFrame (and windows large enough not to
// matter), and returns the largest DATA frame and the body size received.
func largestDataFrame(t *testing.T, addr string, maxFrame uint32, n int) (largest, total int) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fw := frames.NewWriter(nc)
	fw.WritePreface()
	fw.WriteSettings([]frames.Setting{{ID: frames.SettingMaxFrameSize, Val: maxFrame}, {ID: frames.SettingInitialWindowSize, Val: 8 << 20}})
	fw.WriteWindowUpdate(0, 8<<20)
	fw.WriteSettingsAck()
	blk := hpack.NewEncoder().AppendHeaderBlock(nil, fields(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/bytes/"+strconv.Itoa(n)))
	fw.WriteHeaderBlock(1, true, blk)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	fr := frames.NewReader(nc)
	fr.SetMaxReadFrameSize(maxFrame)
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			t.Fatal("EOF before the end of the body")
		}
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*frames.DataFrame); ok && d.StreamID == 1 {
			largest = max(largest, len(d.Data()))
			total += len(d.Data())
			if d.StreamEnded() {
				return largest, total
			}
		}
	}
}

// DATA frames follow the peer's SETTINGS_MAX_FRAME_SIZE, up to
// maxChunkPayload; a peer that keeps the default gets 16 KiB frames.
func TestDataFramesFollowPeerMaxFrameSize(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	const n = 1 << 20
	if largest, total := largestDataFrame(t, addr, 1<<20, n); largest != maxChunkPayload || total != n {
		t.Fatalf("peer allows 1 MiB frames: largest DATA %d, body %d; want %d, %d", largest, total, maxChunkPayload, n)
	}
	if largest, total := largestDataFrame(t, addr, frames.DefaultMaxFrameSize, n); largest != frames.DefaultMaxFrameSize || total != n {
		t.Fatalf("default peer: largest DATA %d, body %d; want %d, %d", largest, total, frames.DefaultMaxFrameSize, n)
	}
	if largest, total := largestDataFrame(t, addr, 20000, n); largest != 20000 || total != n {
		t.Fatalf("peer allows 20000: largest DATA %d, body %d", largest, total)
	}
}
