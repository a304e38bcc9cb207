package server

// poller is the seam between the two ways of reading connections:
//
//   - "goroutine": one goroutine per connection blocks in a read (Go's
//     netpoller wakes it), with a read buffer of its own, and passes each
//     message to a worker. Portable, simple; an idle connection costs a
//     parked goroutine, its stack and its buffer.
//   - "epoll" (Linux): connections are watched by one epoll instance; a
//     readable connection is handed to a worker, which reads it into the
//     worker's buffer, handles its messages, writes what they produced and
//     re-arms it. An idle connection costs its socket and its state: no
//     goroutine and no buffer.
//
// Both handle frames with the same code (conn.process), under the
// connection's read lock, so the protocol handling cannot tell them apart.
type poller interface {
	add(c *conn) error   // watch c; onReady is called when it is readable
	rearm(c *conn) error // watch c again after a read
	forget(c *conn)      // stop watching c
	close()              // stop the poller
}

// Reader modes for Config.Reader.
const (
	ReaderAuto      = "auto"      // epoll where available, else goroutine
	ReaderEpoll     = "epoll"     // fail on systems without epoll
	ReaderGoroutine = "goroutine" // one goroutine per connection
)
