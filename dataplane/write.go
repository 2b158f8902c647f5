package dataplane

import (
	"runtime"
	"time"

	"github.com/culvert-tunnel/culvert/bufpool"
	"github.com/culvert-tunnel/culvert/frames"
)

const (
	// batchBudget bounds one batch: the writer stops adding stream frames
	// once this much is pending, flushes, and goes round again.
	batchBudget = 256 << 10

	// Dribble guard (CVE-2019-9511). A DATA frame that the peer's windows
	// limit to less than minDataFrame, and that does not finish what the
	// stream has queued, is "tiny": a stream may send maxTinyFrames of
	// them, after which it waits until its window allows a real frame. A
	// peer that grants a few bytes at a time thus gets a few tiny frames
	// and then nothing until it opens the window properly.
	minDataFrame  = 1024
	maxTinyFrames = 8
)

// writeLoop turns queued work into batches until the connection closes.
func (c *Conn) writeLoop() {
	c.mu.Lock()
	if c.role == RoleClient {
		c.fw.WritePreface()
	}
	c.fw.WriteSettings(c.localSettings())
	c.mu.Unlock()
	for {
		select {
		case <-c.wake:
		case <-c.done:
			c.releaseInflight()
			return
		}
		// Let the goroutines that are ready to run (handlers finishing
		// their responses, the reader applying a burst of frames) queue
		// their work first: one bigger batch instead of several small
		// ones, one write call instead of several.
		runtime.Gosched()
		for {
			c.mu.Lock()
			c.buildBatchLocked()
			closeNow := c.closeAfter && len(c.ctrl) == 0
			if len(c.ctrl) <= c.cfg.MaxControlFrames/2 {
				c.readers.Broadcast()
			}
			c.mu.Unlock()
			if c.fw.Buffered() == 0 {
				if closeNow {
					c.closeAfterGoAway()
					return
				}
				break
			}
			if c.cfg.WriteTimeout > 0 {
				c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			}
			err := c.fw.Flush()
			c.releaseInflight()
			c.mu.Lock()
			c.stats.Batches++
			if err != nil {
				c.closeLocked(err)
			}
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return
			}
			if closeNow {
				c.closeAfterGoAway()
				return
			}
		}
		c.fw.Release()
	}
}

func (c *Conn) closeAfterGoAway() {
	c.mu.Lock()
	err := c.closeErr
	if err == nil {
		err = errGracefulClose
		c.drainedClose = true
	}
	c.closeLocked(err)
	c.mu.Unlock()
}

func (c *Conn) releaseInflight() {
	for i, b := range c.inflight {
		bufpool.Put(b)
		c.inflight[i] = nil
	}
	c.inflight = c.inflight[:0]
}

// buildBatchLocked writes control frames, then stream frames round-robin
// (one frame per stream per round), into c.fw until the batch budget is
// spent or nothing is ready.
func (c *Conn) buildBatchLocked() {
	fw := c.fw
	if fw.MaxFrameSize() != c.peer.maxFrameSize {
		fw.SetMaxFrameSize(c.peer.maxFrameSize)
	}
	if c.peer.tableSizeDirty {
		c.enc.SetMaxDynamicTableSize(c.peer.headerTable)
		c.peer.tableSizeDirty = false
	}
	for i := range c.ctrl {
		c.writeCtrl(&c.ctrl[i])
	}
	clear(c.ctrl)
	c.ctrl = c.ctrl[:0]
	if c.closed {
		return
	}
	for fw.Buffered() < batchBudget && len(c.ready) > 0 {
		cur := c.ready
		c.ready = c.readySpare[:0]
		for i, s := range cur {
			if fw.Buffered() >= batchBudget {
				c.ready = append(c.ready, cur[i:]...)
				break
			}
			s.queued = false
			// A stream that could not move (no connection window, or held
			// by the dribble guard) leaves the queue; a WINDOW_UPDATE
			// brings it back. c.writing keeps s from being recycled while
			// it is being written.
			c.writing = s
			wrote := c.writeStreamLocked(s)
			c.writing = nil
			if wrote && s.sendable() && !s.removed {
				s.queued = true
				c.ready = append(c.ready, s)
			} else {
				c.maybeRecycleLocked(s)
			}
		}
		clear(cur)
		c.readySpare = cur[:0]
	}
}

func (c *Conn) writeCtrl(f *ctrlFrame) {
	fw := c.fw
	switch f.typ {
	case frames.FrameSettings:
		fw.WriteSettingsAck()
	case frames.FramePing:
		fw.WritePing(f.flags.Has(frames.FlagPingAck), f.data)
	case frames.FrameRSTStream:
		fw.WriteRSTStream(f.streamID, frames.ErrCode(f.val))
	case frames.FrameWindowUpdate:
		fw.WriteWindowUpdate(f.streamID, f.val)
	case frames.FrameGoAway:
		fw.WriteGoAway(f.val, frames.ErrCode(f.streamID), []byte(f.debug))
	}
}

// writeStreamLocked writes at most one step for s: its headers, one DATA
// frame, its trailers, or its end. It reports whether it wrote anything.
func (c *Conn) writeStreamLocked(s *Stream) bool {
	fw := c.fw
	if s.err != nil {
		return false
	}
	if s.sendHdrsPending {
		end := s.sendEndPending && s.sq.n == 0 && !s.sendTrlPending
		c.hblock = c.enc.AppendHeaderBlock(c.hblock[:0], s.sendHdrs.Fields())
		fw.WriteHeaderBlock(s.id, end, c.hblock)
		s.sendHdrsPending, s.hdrsSent = false, true
		if end {
			c.endSendLocked(s)
		}
		return true
	}
	if s.sendEnd {
		if s.rstAfterEnd {
			s.rstAfterEnd = false
			if !s.recvEnd {
				fw.WriteRSTStream(s.id, frames.ErrCodeNo)
				c.stats.ResetsSent++
				c.noteResetLocked(s.id)
				s.err = ResetError{Code: frames.ErrCodeNo}
				s.wakeReaderLocked()
				c.removeStreamLocked(s)
				return true
			}
			c.maybeCloseStreamLocked(s)
		}
		return false
	}
	if s.sq.n > 0 {
		head := s.sq.front()
		pending := head.w - head.r
		allow := min(int(min(s.out.available(), c.out.available())), int(fw.MaxFrameSize()))
		n := min(allow, pending)
		if n <= 0 {
			return false
		}
		// Only the peer's windows make a frame tiny. The head chunk's
		// remainder (left by an earlier window-limited frame) is as
		// small as it happens to be: counting it would stall, for good,
		// a stream whose peer opens windows in amounts that do not match
		// our chunks, and it costs at most one small frame per chunk.
		if allow < minDataFrame && n < s.sq.n {
			if s.tinyFrames >= maxTinyFrames {
				return false // wait for a window worth a frame
			}
			s.tinyFrames++
		}
		end := n == s.sq.n && s.sendEndPending && !s.sendTrlPending
		if n == pending && head.r == frames.HeaderLen {
			ch := s.sq.take()
			fw.WriteDataReserved(s.id, end, ch.b.B[:ch.w])
			c.inflight = append(c.inflight, ch.b)
		} else {
			fw.WriteData(s.id, end, head.b.B[head.r:head.r+n])
			head.r += n
			s.sq.n -= n
			if head.r == head.w {
				s.sq.pop()
			}
		}
		s.out.take(int32(n))
		c.out.take(int32(n))
		s.writeWait.Broadcast()
		if end {
			c.endSendLocked(s)
		}
		return true
	}
	if s.sendTrlPending {
		c.hblock = c.enc.AppendHeaderBlock(c.hblock[:0], s.sendTrl.Fields())
		fw.WriteHeaderBlock(s.id, true, c.hblock)
		s.sendTrlPending = false
		c.endSendLocked(s)
		return true
	}
	if s.sendEndPending {
		fw.WriteData(s.id, true, nil)
		c.endSendLocked(s)
		return true
	}
	return false
}

// endSendLocked records that END_STREAM is in the batch.
func (c *Conn) endSendLocked(s *Stream) {
	s.sendEnd, s.sendEndPending = true, false
	c.maybeCloseStreamLocked(s)
}
