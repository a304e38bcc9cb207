package loadgen

import (
	"fmt"
	"runtime"
)

// Readers: how the generator reads its sockets (Scenario.Reader).
const (
	// ReaderAuto is the poller where the system has one (Linux), else a
	// goroutine per socket.
	ReaderAuto = "auto"
	// ReaderPoller watches the sockets with a few epoll loops (one
	// goroutine each) that read the ready ones: a socket with nothing to
	// read has no goroutine and no read buffer. Linux only.
	ReaderPoller = "poller"
	// ReaderGoroutine gives every socket a goroutine blocked in its read
	// (portable; a parked goroutine and its stack per socket).
	ReaderGoroutine = "goroutine"
)

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
	switch mode {
	case ReaderGoroutine:
		return nil, nil
	case "", ReaderAuto:
		if !pollerAvailable {
			return nil, nil
		}
	case ReaderPoller:
		if !pollerAvailable {
			return nil, fmt.Errorf("reader %q needs Linux (epoll), this is %s", mode, runtime.GOOS)
		}
	default:
		return nil, fmt.Errorf("unknown reader %q (want %q, %q or %q)", mode, ReaderAuto, ReaderPoller, ReaderGoroutine)
	}
	return newEpollReader(pollWorkers())
}

// pollWorkers is the number of epoll loops (goroutines that read ready
// sockets).
func pollWorkers() int { return runtime.GOMAXPROCS(0) }
