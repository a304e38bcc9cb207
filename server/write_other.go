//go:build !unix

package server

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf returns nil: without non-blocking writes every queue is written
// by a writer goroutine.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (c *conn) tryWrite([]byte) ([]byte, error) {
	return nil, errors.New("server: non-blocking writes are not supported on this system")
}
