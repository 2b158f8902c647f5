package dataplane

import (
	"sync"
	"time"
)

// Workers is a pool of goroutines that run stream handlers, for the
// connections whose Config.Workers names it. Without one, each
// peer-opened stream gets a new goroutine.
//
// Why: a new goroutine starts on a small stack, and a proxy handler's call
// chain (header parsing, an HTTP/1.1 round trip) outgrows it; growing it
// copies the stack and costs about a microsecond per stream, more than
// starting the goroutine. A worker keeps the stack it grew. Idle workers
// wait most recently used first (their stacks and caches are warm); at
// most MaxIdle wait, and those idle for IdleTimeout end (between one and
// two IdleTimeouts: idleness is counted in cleanup rounds, so that parking
// a worker reads no clock). Close ends the
// idle ones and lets the busy ones end after their stream.
//
// A Workers is safe for concurrent use by any number of connections.
type Workers struct {
	// MaxIdle bounds the idle workers; a handler returning while MaxIdle
	// wait ends its goroutine. Default 256.
	MaxIdle int
	// IdleTimeout ends workers idle for longer. Default 10s.
	IdleTimeout time.Duration

	mu       sync.Mutex
	idle     []*worker // oldest first; taken from the end
	round    uint64    // cleanup rounds run so far
	cleaning bool      // a cleanup is scheduled
	closed   bool
}

type handlerJob struct {
	c  *Conn
	s  *Stream
	fn func() // Go's jobs: instead of a handler
}

type worker struct {
	p        *Workers
	jobs     chan handlerJob // cap 1; a zero job ends the worker
	parkedIn uint64          // the cleanup round it went idle in
}

// Go runs fn on an idle worker, or on a new goroutine; it never blocks.
// It suits the work a handler hands over (see Stream.Detach).
func (p *Workers) Go(fn func()) { p.start(handlerJob{fn: fn}) }

// run starts c's handler for s on an idle worker, or on a new goroutine.
// The caller holds c.mu (onHeadersLocked); run never blocks.
func (p *Workers) run(c *Conn, s *Stream) { p.start(handlerJob{c: c, s: s}) }

func (p *Workers) start(j handlerJob) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.jobs <- j
		return
	}
	p.mu.Unlock()
	w := &worker{p: p, jobs: make(chan handlerJob, 1)}
	go w.loop(j)
}

func (w *worker) loop(j handlerJob) {
	for {
		if j.fn != nil {
			j.fn()
		} else {
			j.c.runHandler(j.s)
		}
		if !w.p.park(w) {
			return
		}
		if j = <-w.jobs; j.c == nil && j.fn == nil {
			return
		}
	}
}

// park adds w to the idle workers, or reports false when it should end.
func (p *Workers) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.maxIdle() {
		return false
	}
	w.parkedIn = p.round
	p.idle = append(p.idle, w)
	if !p.cleaning {
		p.cleaning = true
		time.AfterFunc(p.idleTimeout(), p.clean)
	}
	return true
}

// clean runs every IdleTimeout while any worker is idle: it ends the
// workers that went idle before the previous round, idle for at least
// IdleTimeout.
func (p *Workers) clean() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.round++
	n := 0
	for n < len(p.idle) && p.idle[n].parkedIn+1 < p.round {
		p.idle[n].jobs <- handlerJob{}
		n++
	}
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
	if len(p.idle) == 0 || p.closed {
		p.cleaning = false
		return
	}
	time.AfterFunc(p.idleTimeout(), p.clean)
}

// Close ends the idle workers; busy ones end when their handler returns.
// Connections may still use the pool afterwards: each stream then gets a
// goroutine of its own.
func (p *Workers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, w := range p.idle {
		w.jobs <- handlerJob{}
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
}

// Idle returns the number of idle workers.
func (p *Workers) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func (p *Workers) maxIdle() int {
	if p.MaxIdle > 0 {
		return p.MaxIdle
	}
	return 256
}

func (p *Workers) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return 10 * time.Second
}
