//go:build !linux

package redistest

import "syscall"

// procAttr: outside Linux there is no Pdeathsig, so a test binary that dies
// without its cleanups leaves redis-server running.
func procAttr() *syscall.SysProcAttr { return nil }
