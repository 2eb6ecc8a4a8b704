// Package netns enters network namespaces for netdrop's readers.
//
// A namespace is named as a user names it elsewhere: a name under
// /run/netns (as `ip netns add` creates), a path to a namespace file, or
// pid:N for the namespace of a running process. Do runs a function on a
// locked OS thread that has entered the namespace, then returns the thread
// to the original namespace; if that fails the thread is left locked so the
// Go runtime discards it instead of reusing a thread in the wrong namespace.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces live, as iproute2 creates them.
const RunDir = "/run/netns"

// Path resolves spec to the path of a namespace file. An empty spec means the
// current namespace and resolves to "".
func Path(spec string) (string, error) {
	switch {
	case spec == "":
		return "", nil
	case strings.HasPrefix(spec, "pid:"):
		pid, err := strconv.Atoi(strings.TrimPrefix(spec, "pid:"))
		if err != nil || pid <= 0 {
			return "", fmt.Errorf("netns %q: pid:N needs a process id", spec)
		}
		return fmt.Sprintf("/proc/%d/ns/net", pid), nil
	case strings.ContainsRune(spec, '/'):
		return spec, nil
	default:
		return filepath.Join(RunDir, spec), nil
	}
}

// Do runs fn inside the namespace named by spec. With an empty spec it runs
// fn on the current thread in the current namespace, still locked, so fn can
// rely on thread-local state either way.
func Do(spec string, fn func() error) error {
	path, err := Path(spec)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if path == "" {
		defer runtime.UnlockOSThread()
		return fn()
	}
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("netns %q: no such namespace (looked for %s): %w", spec, path, err)
		}
		return fmt.Errorf("netns %q: %w", spec, err)
	}
	defer target.Close()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open current namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("netns %q: entering a namespace needs CAP_SYS_ADMIN (run as root): %w", spec, os.ErrPermission)
		}
		return fmt.Errorf("netns %q: setns: %w", spec, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime will throw it away when this
		// goroutine exits rather than reuse it in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("netns: return to original namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// ID returns an identifier of the namespace named by spec (its inode
// number, as `ls -i` and `lsns` show it), for labelling output.
func ID(spec string) (uint64, error) {
	path, err := Path(spec)
	if err != nil {
		return 0, err
	}
	if path == "" {
		path = "/proc/thread-self/ns/net"
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("netns %q: %w", spec, err)
	}
	return st.Ino, nil
}
