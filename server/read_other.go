//go:build !unix

package server

import (
	"errors"
	"syscall"
)

// readNow is not used without epoll (every connection has a reading
// goroutine).
func (r *readScratch) readNow(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("server: non-blocking reads are not supported on this system")
}

func (r *readScratch) read(uintptr) bool { return true }
