// Package bufpool holds size-class pools of byte buffers for the frame
// reader, the frame writer and the data plane's body pipes.
//
// Ownership: Get hands the caller a *Buf that it owns exclusively until it
// calls Put. After Put the caller must not touch b.B (or any slice of it)
// again: the next Get, on any goroutine, may hand the same memory out. Put
// on a nil *Buf is a no-op. A *Buf must be Put at most once per reference:
// Share adds a reference (a second holder of the same bytes, typically of a
// part the first holder will not write again), and the buffer goes back to
// its pool at the last Put.
//
// Get and Put do not allocate once a class's pool is warm: the pools store
// *Buf pointers, so Put never boxes a slice header.
//
// What it is not: a general allocator. Buffers larger than MaxSize are
// allocated directly and dropped by Put; nothing here zeroes memory.
package bufpool

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

const (
	// Slack is added to every power-of-two class so that a full frame of a
	// power-of-two payload size plus its 9-byte header (and room for a
	// padding byte) fits in one class: a 16 KiB DATA frame needs 16393
	// bytes and lands in the 16 KiB class, not the 32 KiB one.
	Slack = 32

	minShift = 9  // smallest class: 512 B + Slack
	maxShift = 24 // largest class: 16 MiB + Slack (HTTP/2's largest frame)

	// MaxSize is the largest size served from a pool.
	MaxSize = 1<<maxShift + Slack
)

const numClasses = maxShift - minShift + 1

// Buf is a pooled buffer. B has the full capacity of its class; callers
// reslice it freely but must Put the *Buf, not a slice of it.
type Buf struct {
	B     []byte
	class int8 // index into pools, or -1 for an unpooled buffer

	refs  atomic.Int32  // references beyond the first (Share)
	tally *atomic.Int32 // counts this buffer while it is out (Track)
}

// Share adds a reference to b and returns it: each holder Puts it once,
// and the last Put returns it to the pool. Holders agree among themselves
// who may still write which bytes; Share only keeps the memory alive.
func (b *Buf) Share() *Buf {
	b.refs.Add(1)
	return b
}

// Shared reports whether b has more than one reference now. A lone holder
// that sees false owns b exclusively again.
func (b *Buf) Shared() bool { return b.refs.Load() > 0 }

// Track adds one to *t now and takes one off when b goes back to the pool
// (its last Put): a holder that shares buffers bounds how many of them are
// still alive. b must not be tracked already.
func (b *Buf) Track(t *atomic.Int32) {
	t.Add(1)
	b.tally = t
}

// Tracked reports whether b is counted by a Track tally.
func (b *Buf) Tracked() bool { return b.tally != nil }

var pools [numClasses]sync.Pool

func classFor(n int) int {
	if n <= 1<<minShift+Slack {
		return 0
	}
	// smallest k with 2^k + Slack >= n
	k := bits.Len(uint(n - Slack - 1))
	return k - minShift
}

// ClassSize reports the capacity Get(n) returns.
func ClassSize(n int) int {
	if n > MaxSize {
		return n
	}
	return 1<<(classFor(n)+minShift) + Slack
}

// Get returns a buffer with len(B) == cap(B) >= n. The caller owns it
// until Put.
func Get(n int) *Buf {
	if n > MaxSize {
		return &Buf{B: make([]byte, n), class: -1}
	}
	c := classFor(n)
	if v := pools[c].Get(); v != nil {
		b := v.(*Buf)
		b.B = b.B[:cap(b.B)]
		return b
	}
	return &Buf{B: make([]byte, 1<<(c+minShift)+Slack), class: int8(c)}
}

// Put drops a reference to b; the last one returns it to its pool. The
// caller must not use b afterwards.
func Put(b *Buf) {
	if b == nil {
		return
	}
	if b.refs.Load() > 0 && b.refs.Add(-1) >= 0 {
		return // another holder still has it
	}
	b.refs.Store(0)
	if b.tally != nil {
		b.tally.Add(-1)
		b.tally = nil
	}
	if b.class < 0 {
		return
	}
	pools[b.class].Put(b)
}
