//go:build unix && !linux

package loadgen

import "syscall"

// childProcAttr keeps the child server out of our process group's
// foreground signals (Ctrl-C reaches the load generator, which stops the
// server itself after writing its results).
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
