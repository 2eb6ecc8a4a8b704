package memlock

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Raise sets RLIMIT_MEMLOCK to unlimited, or, without CAP_SYS_RESOURCE,
// the soft limit to the hard one (all an unprivileged process may do; on
// 5.11+ the load then succeeds anyway, before it the kernel's error says
// what is short). It changes the limit of the whole process, as loading
// needs.
func Raise() error {
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf); err == nil {
		return nil
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_MEMLOCK: %w", err)
	}
	if lim.Cur == lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_MEMLOCK to its hard limit: %w", err)
	}
	return nil
}
