//go:build !unix

package server

import (
	"errors"
	"net"
	"time"
)

// rawSock is not used without epoll: every connection keeps its net.Conn.
type rawSock struct{ fd int32 }

var errNoRawSock = errors.New("server: raw sockets are not supported on this system")

func detachSocket(net.Conn) (int, error)                           { return -1, errNoRawSock }
func (s *rawSock) close()                                          {}
func (s *rawSock) read([]byte) (int, error)                        { return 0, errNoRawSock }
func (s *rawSock) write([]byte) ([]byte, error)                    { return nil, errNoRawSock }
func (s *rawSock) writeWait([]byte, time.Duration) ([]byte, error) { return nil, errNoRawSock }
