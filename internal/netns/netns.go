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

// Target is the network namespace a reader works in: the current one (the
// zero value), a name under RunDir, a path to a namespace file, or the
// namespace of a process. Parse reads it from the form users type.
type Target struct {
	kind targetKind
	name string // the name or path
	pid  int
}

type targetKind uint8

const (
	current targetKind = iota
	named
	atPath
	ofPID
)

// Current is the namespace of the calling thread.
func Current() Target { return Target{} }

// Named is a namespace under RunDir, as `ip netns add NAME` makes it.
func Named(name string) Target { return Target{kind: named, name: name} }

// AtPath is the namespace a file refers to (a bind mount or /proc/N/ns/net).
func AtPath(path string) Target { return Target{kind: atPath, name: path} }

// OfPID is the namespace of process pid.
func OfPID(pid int) Target { return Target{kind: ofPID, pid: pid} }

// Parse reads a target as users type it: "" for the current namespace,
// pid:N, a path (anything with a slash) or a name under RunDir.
func Parse(spec string) (Target, error) {
	switch {
	case spec == "":
		return Current(), nil
	case strings.HasPrefix(spec, "pid:"):
		pid, err := strconv.Atoi(strings.TrimPrefix(spec, "pid:"))
		if err != nil || pid <= 0 {
			return Target{}, fmt.Errorf("netns %q: pid:N needs a process id", spec)
		}
		return OfPID(pid), nil
	case strings.ContainsRune(spec, '/'):
		return AtPath(spec), nil
	default:
		return Named(spec), nil
	}
}

// IsCurrent reports whether t is the calling thread's own namespace.
func (t Target) IsCurrent() bool { return t.kind == current }

// Spec is t in the form Parse reads, "" for the current namespace.
func (t Target) Spec() string {
	switch t.kind {
	case named, atPath:
		return t.name
	case ofPID:
		return "pid:" + strconv.Itoa(t.pid)
	}
	return ""
}

// String is t for display and JSON labels: "current" for the current
// namespace, else its spec.
func (t Target) String() string {
	if t.kind == current {
		return "current"
	}
	return t.Spec()
}

// Path is the namespace file of t, "" for the current namespace.
func (t Target) Path() string {
	switch t.kind {
	case named:
		return filepath.Join(RunDir, t.name)
	case atPath:
		return t.name
	case ofPID:
		return fmt.Sprintf("/proc/%d/ns/net", t.pid)
	}
	return ""
}

// Set parses s into t, so a Target can be a command-line flag.
func (t *Target) Set(s string) error {
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Type names the flag's value in help text.
func (t Target) Type() string { return "netns" }

// Do runs fn inside t, as Do does for a spec.
func (t Target) Do(fn func() error) error { return do(t, fn) }

// Path resolves spec to the path of a namespace file. An empty spec means the
// current namespace and resolves to "".
func Path(spec string) (string, error) {
	t, err := Parse(spec)
	if err != nil {
		return "", err
	}
	return t.Path(), nil
}

// Do runs fn inside the namespace named by spec. With an empty spec it runs
// fn on the current thread in the current namespace, still locked, so fn can
// rely on thread-local state either way.
func Do(spec string, fn func() error) error {
	t, err := Parse(spec)
	if err != nil {
		return err
	}
	return do(t, fn)
}

func do(t Target, fn func() error) error {
	path, spec := t.Path(), t.Spec()
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
