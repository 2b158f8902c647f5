//go:build linux

package origin

import (
	"syscall"
	"unsafe"
)

const probeSupported = true

// probe is the raw-socket callback of alive: a non-blocking one-byte
// MSG_PEEK recv. It returns true so that RawConn.Read does not wait for
// readability. Raw syscall rather than syscall.Recvfrom, which would
// allocate the peer address of a unix socket.
func (c *originConn) probe(fd uintptr) bool {
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd,
		uintptr(unsafe.Pointer(&c.probeBuf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.probeN, c.probeErr = int(n), errno
	return true
}
