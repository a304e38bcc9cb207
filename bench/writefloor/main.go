//go:build unix

// Command writefloor measures what one small write to a loopback TCP socket
// costs the writing process on this machine: the floor under the CPU a chat
// server spends per delivery when each delivery is its own write (a room
// message to one-tab connections, as in bench/compare.sh's W1).
//
// It opens -sockets loopback connections to a child process (itself, run
// with -child) that reads them all with Go's netpoller, as a load generator
// does, then writes -size bytes to them round-robin in bursts of -burst
// writes every -gap (W1: 50 members per room message, 500 messages a second
// → a burst of 50 every 2 ms). The system calls are made directly, without a
// Go net.Conn, a WebSocket library or any buffering, so the figure is the
// kernel's share alone. It prints the writer's CPU (user + system) per write.
//
//	go run ./bench/writefloor -sockets 5000 -burst 50 -gap 2ms -duration 10s
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	child := flag.String("child", "", "internal: read the sockets of this address (the reading process)")
	sockets := flag.Int("sockets", 5000, "connections to write to")
	burst := flag.Int("burst", 50, "writes per burst (one per socket, round-robin)")
	gap := flag.Duration("gap", 2*time.Millisecond, "pause between bursts (0: none)")
	size := flag.Int("size", 200, "bytes per write")
	duration := flag.Duration("duration", 10*time.Second, "how long to write")
	flag.Parse()
	if *child != "" {
		if err := read(*child, *sockets, *duration+5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "writefloor child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sockets, *burst, *gap, *size, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "writefloor:", err)
		os.Exit(1)
	}
}

// read dials n connections to addr and reads them until they close or
// limit passes.
func read(addr string, n int, limit time.Duration) error {
	done := make(chan struct{}, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		go func() {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	deadline := time.After(limit)
	for range n {
		select {
		case <-done:
		case <-deadline:
			return nil
		}
	}
	return nil
}

func run(sockets, burst int, gap time.Duration, size int, duration time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-child", ln.Addr().String(), "-sockets", fmt.Sprint(sockets), "-duration", duration.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	fds := make([]int, 0, sockets)
	for range sockets {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
	}
	buf := make([]byte, size)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	writes, i := 0, 0
	for time.Since(start) < duration {
		for range burst {
			if _, err := syscall.Write(fds[i], buf); err != nil && err != syscall.EAGAIN {
				return err
			}
			i = (i + 1) % len(fds)
			writes++
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	user := time.Duration(after.Utime.Nano() - before.Utime.Nano())
	sys := time.Duration(after.Stime.Nano() - before.Stime.Nano())
	per := func(d time.Duration) string { return fmt.Sprintf("%.2f µs", float64(d)/float64(writes)/1e3) }
	fmt.Printf("sockets %d, bursts of %d every %v, %d bytes: %d writes in %v\n", sockets, burst, gap, size, writes, time.Since(start).Round(time.Millisecond))
	fmt.Printf("writer CPU per write: %s (system %s, user %s)\n", per(user+sys), per(sys), per(user))
	return nil
}
