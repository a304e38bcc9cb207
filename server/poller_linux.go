//go:build linux

package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// epollPoller watches idle connections with one epoll instance, so that an
// idle connection has no goroutine at all. Registrations are one-shot: when
// a connection becomes readable it is disarmed and handed to onReady, which
// reads what is there on a short-lived goroutine and re-arms it.
type epollPoller struct {
	epfd    int
	wake    int // eventfd that interrupts EpollWait at close
	onReady func(*conn)

	mu    sync.RWMutex
	conns map[uint64]*conn
	fds   map[uint64]int
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
	p := &epollPoller{epfd: epfd, wake: wake, onReady: onReady, conns: make(map[uint64]*conn), fds: make(map[uint64]int), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// Connection ids are split over the two 32-bit words of epoll_event's data;
// id 0 is the wake-up eventfd.
func splitID(id uint64) (int32, int32) { return int32(uint32(id)), int32(uint32(id >> 32)) }
func joinID(fd, pad int32) uint64      { return uint64(uint32(fd)) | uint64(uint32(pad))<<32 }

// fdOf returns the file descriptor of a TCP connection. The descriptor
// stays valid while the connection is open.
func fdOf(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

func (p *epollPoller) add(c *conn) error {
	fd, err := fdOf(c.nc)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.conns[c.id] = c
	p.fds[c.id] = fd
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: epollEvents}
	ev.Fd, ev.Pad = splitID(c.id)
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.forget(c)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// rearm watches c again after its pending data was read.
func (p *epollPoller) rearm(c *conn) error {
	p.mu.RLock()
	fd, ok := p.fds[c.id]
	p.mu.RUnlock()
	if !ok {
		return errors.New("connection not registered")
	}
	ev := unix.EpollEvent{Events: epollEvents}
	ev.Fd, ev.Pad = splitID(c.id)
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// forget stops watching c; the caller closes the socket afterwards.
func (p *epollPoller) forget(c *conn) {
	p.mu.Lock()
	fd, ok := p.fds[c.id]
	delete(p.conns, c.id)
	delete(p.fds, c.id)
	p.mu.Unlock()
	if ok {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

func (p *epollPoller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
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
	unix.Close(p.epfd)
}
