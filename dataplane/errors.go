package dataplane

import (
	"errors"

	"github.com/culvert-tunnel/culvert/frames"
)

// Errors returned to stream and connection users.
var (
	// ErrConnClosed: the connection is gone; a request that got this before
	// its HEADERS were written may be retried on another connection.
	ErrConnClosed = errors.New("dataplane: connection closed")
	// ErrGoAway: the peer sent GOAWAY and this stream was not processed
	// (its id is above the peer's last stream id): safe to retry elsewhere.
	ErrGoAway = errors.New("dataplane: stream refused by GOAWAY, safe to retry")
	// ErrNoNewStreams: the connection takes no new streams (GOAWAY either
	// way, shutdown, or stream ids nearly exhausted): open a new one.
	ErrNoNewStreams = errors.New("dataplane: connection accepts no new streams")
	// ErrReadClosed: reading a stream after CloseRead.
	ErrReadClosed = errors.New("dataplane: stream closed for reading")
	// ErrStreamClosed: writing to a stream whose send side is done.
	ErrStreamClosed = errors.New("dataplane: stream closed for writing")
	// ErrHeadersSent / ErrNoHeaders: headers were already sent / not yet sent.
	ErrHeadersSent = errors.New("dataplane: headers already sent")
	ErrNoHeaders   = errors.New("dataplane: body written before headers")
	// ErrNoConnectProtocol: extended CONNECT needs the peer's
	// SETTINGS_ENABLE_CONNECT_PROTOCOL.
	ErrNoConnectProtocol = errors.New("dataplane: peer does not allow extended CONNECT")
)

// ResetError is how a stream reports that it was reset, by the peer
// (Remote) or by us.
type ResetError struct {
	Code   frames.ErrCode
	Remote bool
}

func (e ResetError) Error() string {
	if e.Remote {
		return "dataplane: stream reset by peer: " + e.Code.String()
	}
	return "dataplane: stream reset: " + e.Code.String()
}

// ReasonHeartbeat is the Reason of the ConnError that ends a connection
// whose peer stopped answering heartbeat PINGs.
const ReasonHeartbeat = "peer did not answer heartbeat PINGs"

// ConnError is how a connection reports why it ended: the code we sent or
// received in GOAWAY, with a fixed reason.
type ConnError struct {
	Code   frames.ErrCode
	Remote bool
	Reason string
}

func (e ConnError) Error() string {
	side := "local"
	if e.Remote {
		side = "peer"
	}
	return "dataplane: connection closed (" + side + "): " + e.Code.String() + ": " + e.Reason
}
