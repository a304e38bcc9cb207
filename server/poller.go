package server

// poller is the seam between the two ways of reading connections:
//
//   - "goroutine": one goroutine per connection blocks in a read. Portable,
//     simple; an idle connection costs a parked goroutine and its stack.
//   - "epoll" (Linux): connections are watched by one epoll instance and a
//     goroutine exists only while a connection has data to read; an idle
//     connection costs its socket, its gorilla state and its read buffer.
//
// Both run the same code on a readable connection (conn.readReady), under
// the connection's read lock, so the protocol handling cannot tell them
// apart.
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
