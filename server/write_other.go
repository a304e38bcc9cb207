//go:build !unix

package server

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// rawConnOf returns nil: without non-blocking writes every queue is written
// by a writer goroutine.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (c *conn) tryWrite([]byte) ([]byte, error) {
	return nil, errors.New("server: non-blocking writes are not supported on this system")
}

// waitWrite is not called: without a RawConn the writer uses net.Conn.Write.
func (c *conn) waitWrite(buf []byte, _ time.Duration) ([]byte, error) {
	return buf, errors.New("server: non-blocking writes are not supported on this system")
}
