//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const pollerAvailable = true

// epollReader reads links with a few epoll loops, one goroutine each: a
// link belongs to one loop, which waits for it to be readable, reads what
// the socket has (non-blocking), handles every complete message and keeps
// the start of an incomplete frame with the link. An idle socket has no
// goroutine and no read buffer, and the deep work (decoding, verification)
// runs on the loops' few stacks. A loop reads its links one after the
// other: no hand-off between goroutines, no lock per read.
//
// Registrations are edge-triggered and made once: every arrival of data
// makes an event, so a loop stops reading a socket at the first short read
// (its queue was emptied) and no system call re-arms it.
type epollReader struct {
	loops []*epollLoop

	mu     sync.Mutex
	links  map[uint64]*wsLink
	nextID uint64
	closed bool

	wg sync.WaitGroup // the loops
}

// epollLoop is one epoll instance and the goroutine that waits on it. The
// goroutine does not block in epoll_wait: the epoll descriptor is itself
// readable when it has events, so Go's netpoller waits for it (nested
// epoll), and a ready socket wakes a goroutine inside the scheduler rather
// than a thread parked in a system call.
type epollLoop struct {
	p    *epollReader
	epfd int
	file *os.File        // epfd, watched by Go's netpoller
	raw  syscall.RawConn // of file
	wake int             // eventfd that ends the loop at close
	buf  []byte
	r    reader
}

const epollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// Link ids are split over the two 32-bit words of epoll_event's data; id 0
// is the wake-up eventfd.
func splitID(id uint64) (int32, int32) { return int32(uint32(id)), int32(uint32(id >> 32)) }
func joinID(fd, pad int32) uint64      { return uint64(uint32(fd)) | uint64(uint32(pad))<<32 }

func newEpollReader(loops int) (linkPoller, error) {
	p := &epollReader{links: make(map[uint64]*wsLink)}
	for range loops {
		lp, err := newEpollLoop(p)
		if err != nil {
			for _, lp := range p.loops {
				lp.closeFDs()
			}
			return nil, err
		}
		p.loops = append(p.loops, lp)
	}
	p.wg.Add(len(p.loops))
	for _, lp := range p.loops {
		go lp.run()
	}
	return p, nil
}

func newEpollLoop(p *epollReader) (*epollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl wake: %w", err)
	}
	lp := &epollLoop{p: p, epfd: epfd, wake: wake, buf: make([]byte, 32<<10)}
	if err := unix.SetNonblock(epfd, true); err != nil {
		lp.closeFDs()
		return nil, fmt.Errorf("epoll fd non-blocking: %w", err)
	}
	lp.file = os.NewFile(uintptr(epfd), "epoll")
	// A file Go cannot poll has no deadlines: its wait would fail at once.
	if err := lp.file.SetReadDeadline(time.Time{}); err != nil {
		lp.closeFDs()
		return nil, fmt.Errorf("epoll fd not pollable by the runtime: %w", err)
	}
	raw, err := lp.file.SyscallConn()
	if err != nil {
		lp.closeFDs()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	lp.raw = raw
	return lp, nil
}

func (lp *epollLoop) closeFDs() {
	unix.Close(lp.wake)
	if lp.file != nil {
		lp.file.Close() // closes epfd
	} else {
		unix.Close(lp.epfd)
	}
}

func (p *epollReader) add(l *wsLink) error {
	sc, ok := l.tcp.(syscall.Conn)
	if !ok {
		return errors.New("connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// Bytes read with the greeting may hold whole messages: handle them
	// now, on the caller's goroutine.
	if pend := l.in.Pending(); len(pend) > 0 {
		var r reader
		if err := l.process(&r, pend); err != nil {
			return err
		}
	}
	// The descriptor stays valid until the link ends: only wsLink.end
	// closes it, on the loop, after its last read.
	if err := raw.Control(func(fd uintptr) { l.fd = int(fd) }); err != nil {
		return err
	}
	p.mu.Lock() // publishes l to the loop that finds it in links
	if p.closed {
		p.mu.Unlock()
		return errors.New("reader closed")
	}
	p.nextID++
	l.id = p.nextID
	p.links[l.id] = l
	p.mu.Unlock()
	lp := p.loops[l.id%uint64(len(p.loops))]
	var cerr error
	err = raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: epollEvents}
		ev.Fd, ev.Pad = splitID(l.id)
		cerr = unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.forget(l)
		l.id = 0
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

func (p *epollReader) forget(l *wsLink) {
	p.mu.Lock()
	delete(p.links, l.id)
	p.mu.Unlock()
}

func (lp *epollLoop) run() {
	p := lp.p
	defer p.wg.Done()
	events := make([]unix.EpollEvent, 256)
	ready := make([]*wsLink, 0, len(events))
	var n int
	var werr error
	poll := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		// Nothing ready: returning false makes the runtime wait until the
		// epoll descriptor is readable, then call poll again.
		return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
	}
	for {
		if err := lp.raw.Read(poll); err != nil || werr != nil {
			return
		}
		ready = ready[:0]
		stop := false
		p.mu.Lock()
		for i := range n {
			id := joinID(events[i].Fd, events[i].Pad)
			if id == 0 {
				stop = true
			} else if l := p.links[id]; l != nil {
				ready = append(ready, l)
			}
		}
		p.mu.Unlock()
		if stop {
			return
		}
		for i, l := range ready {
			ready[i] = nil
			if lp.readReady(l) {
				p.forget(l)
				l.end()
			}
		}
	}
}

func (p *epollReader) close() {
	p.mu.Lock()
	p.closed = true
	rest := make([]*wsLink, 0, len(p.links))
	for _, l := range p.links {
		rest = append(rest, l)
	}
	p.links = nil
	p.mu.Unlock()
	one := [8]byte{1}
	for _, lp := range p.loops {
		_, _ = unix.Write(lp.wake, one[:])
	}
	p.wg.Wait()
	for _, lp := range p.loops {
		lp.closeFDs()
	}
	for _, l := range rest {
		l.cut.Store(true)
		_ = l.ws.Close()
	}
}

// readReady reads what the link has and handles it. It reports whether the
// link ended (end of stream, an error, cut by the generator).
func (lp *epollLoop) readReady(l *wsLink) bool {
	for {
		if l.cut.Load() {
			return true
		}
		fromPend := len(l.in.Pending()) > 0
		buf := lp.buf[:0]
		if fromPend {
			buf = l.in.Room()
		}
		space := cap(buf) - len(buf)
		n, err := unix.Read(l.fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil || n <= 0:
			return true // n == 0: end of stream
		}
		data := buf[:len(buf)+n]
		if fromPend {
			l.in.SetPending(data)
		}
		if l.process(&lp.r, data) != nil {
			return true
		}
		if n < space {
			return false // the socket's queue was emptied
		}
	}
}
