//go:build unix

package loadgen

import (
	"fmt"
	"syscall"
)

// EnsureFileLimit raises this process's open-files limit (RLIMIT_NOFILE) so
// that need descriptors fit: the soft limit up to the hard one, and the hard
// one too when the process may (root). It returns an error that says what to
// do when the limit cannot be raised far enough.
func EnsureFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // cannot tell: let the dials fail with EMFILE and be counted
	}
	if lim.Cur >= uint64(need) {
		return nil
	}
	want := lim
	want.Cur = uint64(need)
	if want.Max < want.Cur {
		want.Max = want.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return nil
	}
	// Raise the soft limit as far as the hard one allows, then report.
	if lim.Cur < lim.Max {
		soft := lim
		soft.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &soft); err == nil && soft.Cur >= uint64(need) {
			return nil
		}
	}
	return fmt.Errorf("this run needs about %d open files but the open-files limit is %d (hard %d) and cannot be raised: "+
		"raise it (as root: `ulimit -Hn %d; ulimit -n %d` in the shell that starts imload, or LimitNOFILE= in a systemd unit, "+
		"or nofile in /etc/security/limits.conf), or use fewer --clients/--tabs, or split the load over several machines "+
		"and merge the results with `imload report merge`", need, lim.Cur, lim.Max, need, need)
}
