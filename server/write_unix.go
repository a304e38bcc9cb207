//go:build unix

package server

import (
	"errors"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rawConnOf returns the socket of nc for writes that must not block, or nil.
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tryWrite writes what the socket takes of buf at once and returns the
// rest (empty when all was written). Called under wmu.
func (c *conn) tryWrite(buf []byte) (rest []byte, err error) {
	// RawConn.Write fails once the write deadline has passed: keep it ahead.
	if err := c.setWriteDeadline(time.Now()); err != nil {
		return nil, err
	}
	var n int
	var werr error
	err = c.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), buf)
			if werr != unix.EINTR {
				return true // done: never wait for the socket here
			}
		}
	})
	switch {
	case err != nil:
		return nil, err
	case errors.Is(werr, unix.EAGAIN):
		return buf, nil
	case werr != nil:
		return nil, werr
	}
	return buf[n:], nil
}
