package tunnel

import (
	"time"

	"github.com/culvert-tunnel/culvert/dataplane"
)

// Engine settings both ends of a tunnel connection use. The peers are
// authenticated to each other (mTLS and token), carry the traffic of many
// visitors, and live for days, so the visitor-facing defaults change:
//   - MaxConcurrentStreams 8192: a tunnel connection carries every request,
//     SSE stream and websocket of a hostname; 256 would cap a site at 256
//     open websockets per connection.
//   - IdleTimeout off: an idle tunnel must stay up; the heartbeat (PING
//     after 5 s of silence, closed after 5 misses) finds dead peers.
//   - Abuse bucket 100 000 burst, 50 000/s: visitors who give up reset
//     streams on the connector's side in bursts under load; a tunnel must
//     not be torn down for that. The bucket still bounds a broken peer.
const (
	MaxConcurrentStreams = 8192
	AbuseBurst           = 100_000
	AbuseRate            = 50_000
)

// EngineConfig returns the dataplane.Config of a tunnel connection;
// pingInterval and pingMisses of zero keep the engine's defaults.
func EngineConfig(pingInterval time.Duration, pingMisses int) dataplane.Config {
	return dataplane.Config{
		MaxConcurrentStreams:  MaxConcurrentStreams,
		EnableConnectProtocol: true,
		IdleTimeout:           -1,
		PingInterval:          pingInterval,
		PingMisses:            pingMisses,
		AbuseBurst:            AbuseBurst,
		AbuseRate:             AbuseRate,
		MaxControlFrames:      4 * MaxConcurrentStreams,
	}
}
