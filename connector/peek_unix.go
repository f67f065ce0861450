//go:build unix

package connector

import (
	"errors"
	"syscall"
)

// peekIdle looks at the socket without reading from it and without
// blocking: it reports false when there is data or the end of the stream.
//
// It peeks under Control, not Read: pgconn may have a read of its own
// pending on an idle connection (its background reader, started during a
// slow write, stops only once that read returns), which holds the read lock
// until data comes. A peek does not take the data from that read.
func peekIdle(raw syscall.RawConn) bool {
	open := true
	var buf [1]byte
	err := raw.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read. Anything else is an error, the end of
		// the stream or data.
		open = err != nil && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR))
	})
	if err != nil {
		return false
	}
	return open
}
