package dataplane

import (
	"log/slog"
	"time"

	"github.com/culvert-tunnel/culvert/frames"
)

// Config sets up one connection. The zero value of every field means its
// default; Config is copied by the constructors.
type Config struct {
	// Handler serves the streams the peer opens (server role). Nil refuses
	// every peer-opened stream with REFUSED_STREAM.
	Handler Handler
	// Workers, when set, runs the handlers on reused goroutines (see
	// Workers); nil starts a goroutine per stream.
	Workers *Workers

	// Settings this side advertises (§6.5.2).
	MaxConcurrentStreams uint32 // default 256
	InitialStreamWindow  uint32 // default 4 MiB (see DefaultInitialStreamWindow)
	InitialConnWindow    uint32 // default 16 MiB
	MaxFrameSize         uint32 // default 16384; raise only between culvert peers
	MaxHeaderListSize    uint32 // default 64 KiB
	HeaderTableSize      uint32 // default 4096
	// EnableConnectProtocol advertises RFC 8441 extended CONNECT.
	EnableConnectProtocol bool

	// SendBuffer bounds the body bytes a stream may queue before Write
	// blocks. Default 256 KiB.
	SendBuffer int

	// Timeouts. Negative disables one.
	PrefaceTimeout  time.Duration // preface and first SETTINGS (server); default 10s
	SettingsTimeout time.Duration // our SETTINGS unacknowledged; default 10s
	FrameTimeout    time.Duration // a frame or field block half-sent; default 10s
	IdleTimeout     time.Duration // no open stream and no frame (heartbeat ACKs aside); default 5m
	WriteTimeout    time.Duration // one batch stuck in Write; default 30s
	PingInterval    time.Duration // heartbeat PING after this much silence; default 5s
	PingMisses      int           // unanswered heartbeats before closing; default 5

	// Abuse bounds. Frames that cost us work but carry nothing (peer
	// RST_STREAM, resets the peer provokes, PING, SETTINGS, PRIORITY, empty
	// DATA) spend tokens from a bucket of AbuseBurst refilled at AbuseRate
	// per second; an empty bucket ends the connection with
	// ENHANCE_YOUR_CALM.
	AbuseBurst int     // default 1000
	AbuseRate  float64 // default 100
	// MaxControlFrames bounds the control frames (PING and SETTINGS ACKs,
	// RST_STREAM, WINDOW_UPDATE) queued but not yet written; past it the
	// peer is not reading and the connection is closed. Half of it stops
	// our reading until the writer catches up. Default 1000.
	MaxControlFrames int

	Logger *slog.Logger
}

// Defaults. The windows are far above RFC 9113's 65535 because one stream's
// throughput is capped at window / round trip. Measured with
// BenchmarkWindow (bench/window_test.go: one upload over a 20 ms round
// trip): 64 KiB 2.8 MB/s, 1 MiB 41 MB/s, 4 MiB 161 MB/s, 16 MiB 572 MB/s.
// 4 MiB per stream is the default: a fast upload or download over a
// continental round trip, while the memory one stream can make us buffer
// (its window) stays modest. Raise it for tunnels over long links. The
// connection window is four stream windows, so one stream whose reader
// stalls cannot starve the others.
const (
	DefaultMaxConcurrentStreams = 256
	DefaultInitialStreamWindow  = 4 << 20
	DefaultInitialConnWindow    = 16 << 20
	DefaultMaxHeaderListSize    = 64 << 10
	DefaultSendBuffer           = 256 << 10
)

func (c *Config) withDefaults() Config {
	d := *c
	def := func(v *uint32, x uint32) {
		if *v == 0 {
			*v = x
		}
	}
	def(&d.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	def(&d.InitialStreamWindow, DefaultInitialStreamWindow)
	def(&d.InitialConnWindow, DefaultInitialConnWindow)
	def(&d.MaxFrameSize, frames.DefaultMaxFrameSize)
	def(&d.MaxHeaderListSize, DefaultMaxHeaderListSize)
	def(&d.HeaderTableSize, 4096)
	d.InitialStreamWindow = min(d.InitialStreamWindow, frames.MaxWindowSize)
	d.InitialConnWindow = min(max(d.InitialConnWindow, 65535), frames.MaxWindowSize)
	d.MaxFrameSize = min(max(d.MaxFrameSize, frames.MinMaxFrameSize), frames.MaxMaxFrameSize)
	dur := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	dur(&d.PrefaceTimeout, 10*time.Second)
	dur(&d.SettingsTimeout, 10*time.Second)
	dur(&d.FrameTimeout, 10*time.Second)
	dur(&d.IdleTimeout, 5*time.Minute)
	dur(&d.WriteTimeout, 30*time.Second)
	dur(&d.PingInterval, 5*time.Second)
	if d.PingMisses == 0 {
		d.PingMisses = 5
	}
	if d.SendBuffer <= 0 {
		d.SendBuffer = DefaultSendBuffer
	}
	if d.AbuseBurst == 0 {
		d.AbuseBurst = 1000
	}
	if d.AbuseRate == 0 {
		d.AbuseRate = 100
	}
	if d.MaxControlFrames == 0 {
		d.MaxControlFrames = 1000
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}
