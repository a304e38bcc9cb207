package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"imload/server/servertest"
)

// TestMain runs the imload processes these tests start (imload serve, and
// imload run with its child server) with the reader IMLOAD_TEST_READER
// names, as every suite's test servers (servertest.Config): the binaries
// read IMLOAD_READER like any flag from the environment, and the server's
// and the generator's readers have the same names (epoll, goroutine,
// auto), so both sides of `imload run` read that way.
func TestMain(m *testing.M) {
	if rd := servertest.Reader(); rd != "" {
		if err := os.Setenv("IMLOAD_READER", rd); err != nil {
			panic(err)
		}
	}
	goleak.VerifyTestMain(m,
		// http.Get's idle connections to the servers close on their own.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
