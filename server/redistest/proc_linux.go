package redistest

import "syscall"

// procAttr puts redis-server in a process group of its own, out of the
// terminal's Ctrl-C (the test binary stops it), and has the kernel kill it
// if the thread that started it dies, which for a Go program means the
// test binary (the runtime does not end threads, except one whose
// goroutine exits while locked to it, which this package never does).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
