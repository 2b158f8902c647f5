package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsMessage is message i of the websocket test: text or binary, mostly
// small, every 97th one 64 KiB; its content depends on i only.
func wsMessage(i int) (websocket.MessageType, []byte) {
	rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	size := 1 + rng.IntN(512)
	if i%97 == 0 {
		size = 64 << 10
	}
	if i%2 == 0 {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
		b := []byte(fmt.Sprintf("%d:", i))
		for len(b) < size {
			b = append(b, letters[rng.IntN(len(letters))])
		}
		return websocket.MessageText, b
	}
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return websocket.MessageBinary, b
}

// TestWebsocketEcho opens a websocket through the tunnel to the origin's
// /ws echo and sends 10 000 messages (text and binary, some 64 KiB) while
// reading the echoes: each comes back whole, with its type, in order.
func TestWebsocketEcho(t *testing.T) {
	tn := startTunnel(t, connOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, tn.url("/ws"), &websocket.DialOptions{HTTPClient: tn.client})
	if err != nil {
		t.Fatalf("websocket.Dial: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 {
		t.Fatalf("handshake status %d, want 101", resp.StatusCode)
	}
	c.SetReadLimit(1 << 20)

	const n = 10000
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			typ, msg := wsMessage(i)
			if err := c.Write(ctx, typ, msg); err != nil {
				sent <- fmt.Errorf("writing message %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	var bytesBack int
	for i := range n {
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading echo %d: %v", i, err)
		}
		wantTyp, want := wsMessage(i)
		if typ != wantTyp || !bytes.Equal(got, want) {
			t.Fatalf("echo %d: %v of %d bytes, want %v of %d bytes (equal: %v)", i, typ, len(got), wantTyp, len(want), bytes.Equal(got, want))
		}
		bytesBack += len(got)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("closing: %v", err)
	}
	t.Logf("%d messages, %d bytes echoed", n, bytesBack)

	// The edge counted the websocket and its 101.
	waitFor(t, 10*time.Second, "the edge to count the websocket", func() bool {
		m := tn.edge.scrape()
		return m.get("culvert_edge_websockets_total") == 1 && m.get("culvert_edge_responses_total", "status", "101") == 1
	})
}
