package edge

import (
	"bytes"
	"errors"
	"github.com/culvert-tunnel/culvert/frames"
	"net"
	"sync"
	"time"
)

// h2Preface is the HTTP/2 client connection preface (RFC 9113, 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Defaults of sniffH2C.
const (
	defaultSniffTimeout = 30 * time.Second
	maxSniffing         = 10000
)

// sniffH2C wraps ln. Its Accept returns the connections that do not start
// with the HTTP/2 preface (the bytes read to decide are replayed to the
// reader); those that do are handed to onH2 (on a goroutine of their own;
// the preface is replayed too). timeout bounds how long a new connection
// may take to send enough bytes to decide (then it is closed); a
// non-positive one means 30 s.
//
// The decision is made as the bytes arrive: the first one that differs
// from the preface means HTTP/1, so a short HTTP/1 request is handed over
// at once. Accepting and sniffing run on goroutines of their own, so a
// slow client never holds up Accept; at most 10000 connections are sniffed
// at once, and new ones beyond are closed. Close closes ln, makes Accept
// return net.ErrClosed and closes the connections still being sniffed or
// waiting for Accept; it does not touch those already handed over. If ln
// itself fails (it was closed elsewhere), Accept returns its error.
//
// The returned connections keep their addresses and deadlines (the read
// deadline set for sniffing is cleared); NetConn returns the accepted one
// (a *net.TCPConn for a TCP listener), for what only it offers, bypassing
// the replayed bytes.
func sniffH2C(ln net.Listener, timeout time.Duration, onH2 func(net.Conn)) net.Listener {
	return newSniffListener(ln, timeout, onH2, maxSniffing)
}

// sniffListener is the listener sniffH2C returns.
type sniffListener struct {
	ln       net.Listener
	timeout  time.Duration
	onH2     func(net.Conn)
	max      int
	conns    chan net.Conn // HTTP/1 connections for Accept
	done     chan struct{} // closed by shutdown
	acceptWG sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	err      error                 // what Accept returns once done
	sniffing map[net.Conn]struct{} // being read to decide
	active   int                   // sniffing goroutines: deciding or delivering
	wg       sync.WaitGroup        // of the sniffing goroutines
}

func newSniffListener(ln net.Listener, timeout time.Duration, onH2 func(net.Conn), max int) *sniffListener {
	if timeout <= 0 {
		timeout = defaultSniffTimeout
	}
	l := &sniffListener{
		ln:       ln,
		timeout:  timeout,
		onH2:     onH2,
		max:      max,
		conns:    make(chan net.Conn),
		done:     make(chan struct{}),
		sniffing: map[net.Conn]struct{}{},
	}
	l.acceptWG.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next HTTP/1 connection.
func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

// Close closes the listener and the connections being sniffed, and waits
// for the goroutines of both to end.
func (l *sniffListener) Close() error {
	err := l.ln.Close()
	if !l.shutdown(net.ErrClosed) {
		err = nil
	}
	l.acceptWG.Wait()
	l.wg.Wait()
	return err
}

// Addr is the address of the wrapped listener.
func (l *sniffListener) Addr() net.Addr { return l.ln.Addr() }

// shutdown ends the listener with err for Accept, closing the connections
// being sniffed; it reports whether it was the first to.
func (l *sniffListener) shutdown(err error) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	l.err = err
	pending := make([]net.Conn, 0, len(l.sniffing))
	for c := range l.sniffing {
		pending = append(pending, c)
	}
	l.mu.Unlock()
	close(l.done)
	for _, c := range pending {
		c.Close()
	}
	return true
}

// acceptLoop accepts raw connections and starts sniffing each.
func (l *sniffListener) acceptLoop() {
	defer l.acceptWG.Done()
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if transientAcceptError(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.shutdown(err)
			return
		}
		delay = 0
		l.mu.Lock()
		if l.closed || l.active >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.sniffing[c] = struct{}{}
		l.active++
		l.wg.Add(1)
		l.mu.Unlock()
		go l.sniff(c)
	}
}

// transientAcceptError reports whether Accept may succeed again after err
// (a timeout, or too many open files).
func transientAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// sniff reads the first bytes of c and hands it over.
func (l *sniffListener) sniff(c net.Conn) {
	buf, h2, ok := readPreface(c, l.timeout)
	l.mu.Lock()
	delete(l.sniffing, c)
	closed := l.closed
	l.mu.Unlock()
	if !ok || closed {
		c.Close()
		l.release()
		return
	}
	sc := &sniffedConn{Conn: c, buf: buf}
	if h2 {
		l.release()
		l.onH2(sc)
		return
	}
	select {
	case l.conns <- sc:
	case <-l.done:
		c.Close()
	}
	l.release()
}

// release ends a sniffing goroutine's claim on the bound.
func (l *sniffListener) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
	l.wg.Done()
}

// readPreface reads from c until its bytes differ from the HTTP/2 preface
// (h2 false) or match all of it (h2 true), within timeout. It returns the
// bytes read, and ok false if c failed or timed out before deciding. The
// read deadline is cleared when it decides.
func readPreface(c net.Conn, timeout time.Duration) (buf []byte, h2, ok bool) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, false, false
	}
	buf = make([]byte, len(h2Preface))
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		for i := n; i < n+m; i++ {
			if buf[i] != h2Preface[i] {
				buf, ok = readRequestLine(c, buf[:n+m])
				if !ok || c.SetReadDeadline(time.Time{}) != nil {
					return nil, false, false
				}
				return buf, false, true
			}
		}
		n += m
		if err != nil && n < len(buf) {
			return nil, false, false
		}
	}
	if c.SetReadDeadline(time.Time{}) != nil {
		return nil, false, false
	}
	return buf, true, true
}

// maxRequestLine bounds how much of an HTTP/1 request line the sniffer
// reads before handing the connection over.
const maxRequestLine = 8 << 10

// readRequestLine reads on (under the sniffing deadline) until buf holds
// the first line, and refuses a line of three fields whose version is not
// HTTP/1.x: the peer speaks something else (a broken HTTP/2 preface such
// as "INVALID CONNECTION PREFACE"), and an HTTP/1 error page would be
// garbage to it; the connection is closed instead (RFC 9113 §3.4). A line
// longer than maxRequestLine, or malformed otherwise, is left to the
// HTTP/1 server to answer.
func readRequestLine(c net.Conn, buf []byte) ([]byte, bool) {
	for bytes.IndexByte(buf, '\n') < 0 && len(buf) < maxRequestLine {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, 512)...)[:len(buf)]
		}
		m, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, false
		}
	}
	line := buf
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else {
		return buf, true
	}
	f := bytes.Fields(line)
	if len(f) == 3 && !bytes.HasPrefix(f[2], []byte("HTTP/1.")) {
		return nil, false
	}
	return buf, true
}

// sniffedConn is an accepted connection whose first bytes, read to sniff
// it, are replayed to its reader.
type sniffedConn struct {
	net.Conn
	buf []byte
}

// CloseWrite half-closes the connection when the accepted one can (a TCP
// connection can): the HTTP/2 engine closes by half-closing and draining
// what the peer still sends, so that the peer reads our GOAWAY instead of a
// reset provoked by unread input.
var _ interface{ CloseWrite() error } = (*sniffedConn)(nil)

func (c *sniffedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// WriteBuffers writes b with one vectored write on the connection when it
// takes them (a TCP connection does): the HTTP/2 engine's zero-copy DATA
// frames stay zero-copy through the sniffing wrapper.
func (c *sniffedConn) WriteBuffers(b *net.Buffers) (int64, error) { return b.WriteTo(c.Conn) }

var _ frames.VectoredWriter = (*sniffedConn)(nil)

// Read returns the replayed bytes first, then reads from the connection.
func (c *sniffedConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the accepted connection (for a TCP listener, its
// *net.TCPConn). Reading from it skips the bytes still to be replayed.
func (c *sniffedConn) NetConn() net.Conn { return c.Conn }
