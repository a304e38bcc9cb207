package loadgen

import (
	"fmt"
	"runtime"
)

// Readers: how the generator reads its sockets (Scenario.Reader).
const (
	// ReaderAuto is ReaderEpoll where the system has epoll (Linux), else
	// ReaderGoroutine.
	ReaderAuto = "auto"
	// ReaderEpoll watches the sockets with a few epoll loops (one
	// goroutine each) that read the ready ones: a socket with nothing to
	// read has no goroutine and no read buffer. Linux only. The server's
	// reader of the same kind has the same name (server.ReaderEpoll).
	ReaderEpoll = "epoll"
	// ReaderGoroutine gives every socket a goroutine blocked in its read
	// (portable; a parked goroutine and its stack per socket).
	ReaderGoroutine = "goroutine"

	// readerPollerOld is what ReaderEpoll was called until the server's
	// word was used for both: refused with an error that names the new one.
	readerPollerOld = "poller"
)

// checkReader says whether mode names a reader, and whether this system has
// it.
func checkReader(mode string) error {
	switch mode {
	case "", ReaderAuto, ReaderGoroutine:
		return nil
	case ReaderEpoll:
		if !pollerAvailable {
			return fmt.Errorf("reader %q needs Linux (epoll), this is %s", mode, runtime.GOOS)
		}
		return nil
	case readerPollerOld:
		return fmt.Errorf("reader %q is now called %q (the same word as imload serve --reader)", mode, ReaderEpoll)
	default:
		return fmt.Errorf("unknown reader %q (want %q, %q or %q)", mode, ReaderAuto, ReaderEpoll, ReaderGoroutine)
	}
}

// linkPoller reads the links registered with it when they are readable, on
// a few goroutines of its own, and ends them (wsLink.end) when they close.
type linkPoller interface {
	// add watches l (a link that is up); its pending bytes, if any, are
	// read first. On an error the caller still owns l.
	add(l *wsLink) error
	// close stops the poller's goroutines; links still registered are
	// closed without going down.
	close()
}

// newReader returns the poller for the scenario's reader, or nil when
// sockets are read by goroutines.
func newReader(mode string) (linkPoller, error) {
	if err := checkReader(mode); err != nil {
		return nil, err
	}
	if mode == ReaderGoroutine || !pollerAvailable {
		return nil, nil
	}
	return newEpollReader(pollWorkers())
}

// pollWorkers is the number of epoll loops (goroutines that read ready
// sockets).
func pollWorkers() int { return runtime.GOMAXPROCS(0) }
