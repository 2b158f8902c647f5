package dataplane

import (
	"sync"
	"time"
)

// Handler goroutines are reused: a handler's goroutine has grown its stack
// to what a proxy's call chain needs, and starting a fresh one per stream
// costs a goroutine creation and the stack growth again on every request.
// Idle workers wait on their own channel, most recently used first (their
// stacks and caches are warm); a cleaner ends those idle for longer than
// workerIdle.
const workerIdle = 10 * time.Second

type handlerJob struct {
	c *Conn
	s *Stream
}

type worker struct {
	jobs     chan handlerJob
	lastUsed time.Time
}

var workers struct {
	mu       sync.Mutex
	idle     []*worker // LIFO
	cleaning bool
}

// startHandler runs c's handler for s on an idle worker, or a new one.
func startHandler(c *Conn, s *Stream) {
	workers.mu.Lock()
	if n := len(workers.idle); n > 0 {
		w := workers.idle[n-1]
		workers.idle[n-1] = nil
		workers.idle = workers.idle[:n-1]
		workers.mu.Unlock()
		w.jobs <- handlerJob{c, s}
		return
	}
	if !workers.cleaning {
		workers.cleaning = true
		go cleanWorkers()
	}
	workers.mu.Unlock()
	w := &worker{jobs: make(chan handlerJob, 1)}
	go w.run(handlerJob{c, s})
}

func (w *worker) run(j handlerJob) {
	for {
		j.c.runHandler(j.s)
		j = handlerJob{}
		w.lastUsed = time.Now()
		workers.mu.Lock()
		workers.idle = append(workers.idle, w)
		workers.mu.Unlock()
		j = <-w.jobs
		if j.c == nil {
			return // retired by the cleaner
		}
	}
}

// cleanWorkers retires workers idle for longer than workerIdle; it ends
// when none is left.
func cleanWorkers() {
	for {
		time.Sleep(workerIdle)
		cutoff := time.Now().Add(-workerIdle)
		workers.mu.Lock()
		// The oldest are at the bottom of the stack.
		n := 0
		for n < len(workers.idle) && workers.idle[n].lastUsed.Before(cutoff) {
			workers.idle[n].jobs <- handlerJob{}
			n++
		}
		rest := copy(workers.idle, workers.idle[n:])
		clear(workers.idle[rest:])
		workers.idle = workers.idle[:rest]
		if len(workers.idle) == 0 {
			workers.cleaning = false
			workers.mu.Unlock()
			return
		}
		workers.mu.Unlock()
	}
}
