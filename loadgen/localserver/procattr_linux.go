package localserver

import "syscall"

// procAttr keeps the server process out of our process group's
// foreground signals (Ctrl-C reaches the load generator, which stops the
// server itself after writing its results) and has the kernel stop it if
// the generator dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
