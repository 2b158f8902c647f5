package dataplane

import "github.com/culvert-tunnel/culvert/frames"

// Flow control (RFC 9113 §5.2, §6.9) as plain arithmetic: no locks, no I/O.
// The connection state that owns a window guards it.

// inflow is a receive window: what the peer may still send us, plus the
// credit the application has given back but we have not yet announced.
type inflow struct {
	avail  int32 // bytes the peer may send before we announce more
	unsent int32 // credit returned by the application, not yet sent
	size   int32 // the window we aim to keep open
}

func (f *inflow) init(size int32) { f.avail, f.unsent, f.size = size, 0, size }

// take accounts for n bytes received (a DATA frame's full length, padding
// included). It reports false when the peer overran the window: a
// FLOW_CONTROL_ERROR.
func (f *inflow) take(n uint32) bool {
	if n > uint32(f.avail) {
		return false
	}
	f.avail -= int32(n)
	return true
}

// add returns n bytes of credit (the application consumed them, or they
// were padding). It returns the WINDOW_UPDATE increment to send now, or 0
// to keep batching: an update goes out once the returned credit reaches a
// quarter of the window, so a bulk transfer costs one WINDOW_UPDATE per
// quarter window and never a frame per DATA frame (CVE-2019-9511 in reverse:
// we do not dribble).
func (f *inflow) add(n int) uint32 {
	if n <= 0 {
		return 0
	}
	f.unsent += int32(n)
	if f.unsent < f.size/4 && f.avail > f.size/4 {
		return 0
	}
	inc := f.unsent
	f.unsent = 0
	f.avail += inc
	return uint32(inc)
}

// outflow is a send window: what we may still send. A stream's sends are
// limited by the minimum of its window and the connection's.
type outflow struct {
	n int32 // may go negative after a SETTINGS_INITIAL_WINDOW_SIZE decrease
}

func (f *outflow) available() int32 { return max(f.n, 0) }

func (f *outflow) take(n int32) { f.n -= n }

// add applies a WINDOW_UPDATE increment, or a SETTINGS_INITIAL_WINDOW_SIZE
// change (which may be negative). It reports false if the window would
// pass 2^31-1: a FLOW_CONTROL_ERROR (§6.9.1).
func (f *outflow) add(n int32) bool {
	sum := int64(f.n) + int64(n)
	if sum > frames.MaxWindowSize {
		return false
	}
	f.n = int32(sum)
	return true
}
