//go:build unix

package server

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// readNow reads what the socket raw has into p without waiting:
// errWouldBlock when it has nothing, 0 bytes and no error at the end of
// the stream.
func (r *readScratch) readNow(raw syscall.RawConn, p []byte) (int, error) {
	r.p = p
	err := raw.Read(r.fn)
	n, rerr := r.n, r.err
	r.p, r.err = nil, nil
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, unix.EAGAIN):
		return 0, errWouldBlock
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}

func (r *readScratch) read(fd uintptr) bool {
	for {
		r.n, r.err = unix.Read(int(fd), r.p)
		if r.err != unix.EINTR {
			return true // done: never wait for the socket here
		}
	}
}
