//go:build linux

package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// epollPoller watches the connections with one epoll instance, so that an
// idle connection has no goroutine at all. Registrations are one-shot: when
// a connection becomes readable it is disarmed and handed to onReady (a
// worker reads what is there and re-arms it). The poller's own goroutine
// waits in Go's netpoller, not in epoll_wait (see newPoller).
type epollPoller struct {
	epfd    int
	file    *os.File        // epfd, watched by Go's own netpoller
	raw     syscall.RawConn // of file: waits for epfd to have events
	wake    int             // eventfd that interrupts the wait at close
	onReady func(*conn)

	mu    sync.RWMutex
	conns map[uint64]*conn
	done  chan struct{}
}

const epollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller(onReady func(*conn)) (poller, error) {
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
	ev.Fd, ev.Pad = splitID(0)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl wake: %w", err)
	}
	// The poller goroutine does not block in epoll_wait: the epoll instance
	// is itself a descriptor that is readable when it has events, so Go's
	// netpoller waits for it (nested epoll). A ready connection then wakes
	// a goroutine inside the scheduler, as a goroutine reader would be,
	// rather than a thread parked in a system call.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	// A file Go cannot poll has no deadlines: its wait would fail at once.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		unix.Close(wake)
		f.Close()
		return nil, fmt.Errorf("epoll fd not pollable by the runtime: %w", err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		unix.Close(wake)
		f.Close()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	p := &epollPoller{epfd: epfd, file: f, raw: raw, wake: wake, onReady: onReady, conns: make(map[uint64]*conn), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// Connection ids are split over the two 32-bit words of epoll_event's data;
// id 0 is the wake-up eventfd.
func splitID(id uint64) (int32, int32) { return int32(uint32(id)), int32(uint32(id >> 32)) }
func joinID(fd, pad int32) uint64      { return uint64(uint32(fd)) | uint64(uint32(pad))<<32 }

// ctl runs an epoll_ctl operation on the socket of c, unless it is closing.
func (p *epollPoller) ctl(c *conn, op int, ev *unix.EpollEvent) error {
	if !c.sock.acquire() {
		return net.ErrClosed
	}
	defer c.sock.release()
	return unix.EpollCtl(p.epfd, op, int(c.sock.fd), ev)
}

func (p *epollPoller) add(c *conn) error {
	p.mu.Lock()
	p.conns[c.id] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: epollEvents}
	ev.Fd, ev.Pad = splitID(c.id)
	if err := p.ctl(c, unix.EPOLL_CTL_ADD, &ev); err != nil {
		p.forget(c)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// rearm watches c again after its pending data was read.
func (p *epollPoller) rearm(c *conn) error {
	ev := unix.EpollEvent{Events: epollEvents}
	ev.Fd, ev.Pad = splitID(c.id)
	return p.ctl(c, unix.EPOLL_CTL_MOD, &ev)
}

// forget stops watching c; the caller closes the socket afterwards.
func (p *epollPoller) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c.id)
	p.mu.Unlock()
	_ = p.ctl(c, unix.EPOLL_CTL_DEL, nil)
}

func (p *epollPoller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	poll := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		// Nothing ready: returning false makes the runtime wait until the
		// epoll descriptor is readable, then call poll again.
		return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
	}
	for {
		if err := p.raw.Read(poll); err != nil || werr != nil {
			return
		}
		for i := range n {
			id := joinID(events[i].Fd, events[i].Pad)
			if id == 0 {
				return // woken by close
			}
			p.mu.RLock()
			c := p.conns[id]
			p.mu.RUnlock()
			if c != nil {
				p.onReady(c)
			}
		}
	}
}

func (p *epollPoller) close() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.wake)
	p.file.Close() // closes epfd
}
