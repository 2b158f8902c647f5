package dataplane

import (
	"io"
	"net"
	"time"

	"github.com/culvert-tunnel/culvert/bufpool"
	"github.com/culvert-tunnel/culvert/frames"
)

// spliceLinger is how long Splice lets one direction go on after the other
// ended before it stops both.
const spliceLinger = 5 * time.Second

// spliceBuf is the buffer of the stream-to-connection direction.
const spliceBuf = 32 << 10

// Splice copies bytes both ways between s and c until both directions end
// (a websocket or CONNECT tunnel): c's bytes go to the stream with
// ReadFromSource, the stream's to c. The end of one direction half-closes
// the other side (END_STREAM on s, CloseWrite on c when it has one); an
// error resets s with CANCEL and closes c. When one direction has ended,
// the other gets spliceLinger to end too. Splice leaves c open on a clean
// end; the caller closes it. It returns the bytes copied each way.
func Splice(s *Stream, c net.Conn) (toConn, toStream int64) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var readErr, streamErr error
		toStream, readErr, streamErr = s.ReadFromSource(c)
		switch {
		case readErr != nil:
			s.Reset(frames.ErrCodeCancel)
		case streamErr == nil:
			s.CloseWrite()
		}
	}()
	b := bufpool.Get(spliceBuf)
	for {
		n, err := s.Read(b.B[:spliceBuf])
		if n > 0 {
			if _, werr := c.Write(b.B[:n]); werr != nil {
				s.Reset(frames.ErrCodeCancel)
				c.Close()
				break
			}
			toConn += int64(n)
		}
		if err != nil {
			if err != io.EOF {
				c.Close()
			}
			break
		}
	}
	bufpool.Put(b)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	select {
	case <-done:
	case <-time.After(spliceLinger):
		s.Reset(frames.ErrCodeCancel)
		c.Close()
		<-done
	}
	return toConn, toStream
}
