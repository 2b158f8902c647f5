// Package bufpool holds size-class pools of byte buffers for the frame
// reader, the frame writer and the data plane's body pipes.
//
// Ownership: Get hands the caller a *Buf that it owns exclusively until it
// calls Put. After Put the caller must not touch b.B (or any slice of it)
// again: the next Get, on any goroutine, may hand the same memory out. Put
// on a nil *Buf is a no-op. A *Buf must be Put at most once.
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
}

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

// Put returns b to its pool. b must not be used afterwards.
func Put(b *Buf) {
	if b == nil || b.class < 0 {
		return
	}
	pools[b.class].Put(b)
}
