package dataplane

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

func wsConnect(path string) []string {
	return []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", path, ":authority", "x"}
}

// Extended CONNECT (RFC 8441) between our two roles: the server advertises
// SETTINGS_ENABLE_CONNECT_PROTOCOL, the client opens a websocket stream,
// and bytes flow both ways until each side closes.
func TestExtendedConnect_Echo(t *testing.T) {
	addr, _ := startServer(t, &Config{EnableConnectProtocol: true, Handler: HandlerFunc(func(s *Stream) {
		h := s.Headers()
		if string(h.Get(":protocol")) != "websocket" || string(h.Get(":method")) != "CONNECT" {
			s.WriteHeaders(fields(":status", "400"), true)
			return
		}
		s.WriteHeaders(fields(":status", "200"), false)
		io.Copy(s, s) // echo until the client closes its side
	})})
	c := dialClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx, fields(wsConnect("/chat")...), false)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.ReadHeaders(ctx)
	if err != nil || string(h.Get(":status")) != "200" {
		t.Fatalf("CONNECT response: %v %v", err, h)
	}
	msg := bytes.Repeat([]byte("frame"), 10000)
	go func() {
		s.Write(msg)
		s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d of %d bytes, %v", len(got), len(msg), err)
	}
}

// Without the server's SETTINGS_ENABLE_CONNECT_PROTOCOL our client refuses
// to send :protocol, and our server refuses a :protocol it did not allow.
func TestExtendedConnect_NotAllowed(t *testing.T) {
	addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
	c := dialClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.OpenStream(ctx, fields(wsConnect("/chat")...), false); !errors.Is(err, ErrNoConnectProtocol) {
		t.Fatalf("OpenStream: %v, want ErrNoConnectProtocol", err)
	}
	// A peer that sends :protocol anyway gets the stream reset.
	p := dialPeer(t, addr, peerOpts{})
	p.fw.WriteHeaderBlock(1, false, p.enc.AppendHeaderBlock(nil, fields(wsConnect("/chat")...)))
	p.flush()
	p.expectRST(1, frames.ErrCodeProtocol, 5*time.Second)
}

// A peer that stops answering PINGs (a frozen process, a dead path) is
// dropped after PingInterval x PingMisses; the RTT of answered PINGs is
// measured.
func TestHeartbeat(t *testing.T) {
	t.Run("RTT", func(t *testing.T) {
		addr, _ := startServer(t, &Config{Handler: HandlerFunc(testApp)})
		c := dialClient(t, addr, &Config{PingInterval: 20 * time.Millisecond})
		rtt, err := c.Ping(t.Context())
		if err != nil || rtt <= 0 {
			t.Fatalf("Ping: %v, %v", rtt, err)
		}
		waitFor(t, "heartbeat RTT recorded", func() bool { return c.Stats().LastPingRTT > 0 })
		time.Sleep(200 * time.Millisecond) // several heartbeats, all answered
		if c.Stats().HeartbeatMisses != 0 {
			t.Fatalf("misses with a live peer: %d", c.Stats().HeartbeatMisses)
		}
	})
	t.Run("FrozenPeer", func(t *testing.T) {
		// A peer that completes the handshake, then never reads again.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			fr := frames.NewReader(nc)
			fr.ReadPreface()
			fr.ReadFrame() // the client's SETTINGS
			fw := frames.NewWriter(nc)
			fw.WriteSettings(nil)
			fw.WriteSettingsAck()
			fw.Flush()
			time.Sleep(10 * time.Second)
		}()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		const interval, misses = 30 * time.Millisecond, 3
		start := time.Now()
		c := NewClientConn(nc, &Config{PingInterval: interval, PingMisses: misses})
		defer c.Close()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("connection to a frozen peer still open after 5s")
		}
		if took := time.Since(start); took < interval*misses {
			t.Fatalf("closed after %v, before %d missed heartbeats of %v", took, misses, interval)
		}
		if err := c.Err(); err == nil {
			t.Fatal("no error for a dead peer")
		}
	})
}
