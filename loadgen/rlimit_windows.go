package loadgen

// EnsureFileLimit does nothing on Windows, which has no RLIMIT_NOFILE: a run
// that needs more sockets than the system allows sees its dials fail, and
// they are counted.
func EnsureFileLimit(need int) error { return nil }
