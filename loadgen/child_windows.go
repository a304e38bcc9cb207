package loadgen

import "syscall"

// childProcAttr: no process groups to separate on Windows.
func childProcAttr() *syscall.SysProcAttr { return nil }
