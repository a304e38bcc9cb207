package localserver

import "syscall"

// procAttr: no process groups to separate on Windows.
func procAttr() *syscall.SysProcAttr { return nil }
