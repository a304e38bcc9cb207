//go:build unix

package server

import (
	"errors"
	"net"
	"sync"
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
	if c.nc == nil {
		return c.sock.write(buf)
	}
	// RawConn.Write fails once the write deadline has passed: keep it ahead.
	if err := c.setWriteDeadline(time.Now()); err != nil {
		return nil, err
	}
	w := rawWriters.Get().(*rawWriter)
	w.buf = buf
	err = c.raw.Write(w.fn)
	n, werr := w.n, w.err
	w.buf, w.err = nil, nil
	rawWriters.Put(w)
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

// rawWriter is the callback of a non-blocking write with its arguments and
// results, recycled: a closure per write would be an allocation per write.
type rawWriter struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

var rawWriters = sync.Pool{New: func() any {
	w := &rawWriter{}
	w.fn = w.write
	return w
}}

func (w *rawWriter) write(fd uintptr) bool {
	for {
		w.n, w.err = unix.Write(int(fd), w.buf)
		if w.err != unix.EINTR {
			return true // done: never wait for the socket here
		}
	}
}

// waitWrite writes buf to the runtime's socket (goroutine mode), waiting
// while it is full for as long as it keeps taking bytes: it gives up with
// os.ErrDeadlineExceeded and the unwritten rest once the socket has taken
// nothing for wt. Called under wmu, by a writer goroutine only.
func (c *conn) waitWrite(buf []byte, wt time.Duration) ([]byte, error) {
	var n int
	var werr error
	step := func(fd uintptr) bool { // one write; false: wait until writable
		for {
			n, werr = unix.Write(int(fd), buf)
			if werr != unix.EINTR {
				return werr != unix.EAGAIN
			}
		}
	}
	for len(buf) > 0 {
		c.wdeadline = time.Now().Add(wt) // each write that takes bytes buys another wt
		if err := c.nc.SetWriteDeadline(c.wdeadline); err != nil {
			return buf, err
		}
		if err := c.raw.Write(step); err != nil {
			return buf, err
		}
		if werr != nil {
			return buf, werr
		}
		buf = buf[n:]
	}
	return nil, nil
}
