package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// StateDir holds the lab's lock and its journal of global settings. It is
// on tmpfs (/run) so a reboot, which also resets every sysctl, clears it.
const StateDir = "/run/netdrop-lab"

const (
	lockFile    = "lock"
	journalFile = "sysctls.json"
)

// sysctlRoot is where sysctls are read and written; tests never change it,
// it only keeps the path out of the logic.
const sysctlRoot = "/proc/sys"

// lock is the exclusive right to build lab networks on this host. Two runs
// at once would delete each other's namespaces as stale and fight over the
// same global settings. The kernel drops the lock when its holder dies, even
// by SIGKILL.
type lock struct{ f *os.File }

// acquireLock takes the lab lock, waiting up to wait for a running lab to
// finish.
func acquireLock(wait time.Duration) (*lock, error) {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab state directory: %w", err)
	}
	path := filepath.Join(StateDir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("another netdrop lab run holds %s; wait for it to finish", path)
			}
			return nil, fmt.Errorf("lab lock %s: %w", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The pid is for people looking at the file; the flock is the lock.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	return &lock{f: f}, nil
}

func (l *lock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// savedSysctl is one global setting as it was before the lab changed it.
type savedSysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// journal records global settings before they change, on disk, so that the
// next run can put them back if this one is killed before it does.
type journal struct {
	path string
	// root is where the sysctls it restores live: /proc/sys.
	root string
}

func newJournal() *journal {
	return &journal{path: filepath.Join(StateDir, journalFile), root: sysctlRoot}
}

func (j *journal) load() ([]savedSysctl, error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab journal: %w", err)
	}
	out, err := parseJournal(b)
	if err != nil {
		return nil, fmt.Errorf("lab journal %s is corrupt (remove it after checking the sysctls it names): %w", j.path, err)
	}
	return out, nil
}

// parseJournal decodes a journal and checks every entry names a sysctl the
// way the lab writes them, so a damaged file cannot make restore write
// outside /proc/sys.
func parseJournal(b []byte) ([]savedSysctl, error) {
	var out []savedSysctl
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	for _, e := range out {
		if !validSysctlName(e.Name) {
			return nil, fmt.Errorf("entry %q is not a sysctl name", e.Name)
		}
	}
	return out, nil
}

// validSysctlName accepts dotted names of letters, digits, '_' and '-'.
func validSysctlName(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}

// store writes the journal atomically: a rename after fsync, so a kill at
// any moment leaves either the old or the new journal, never half of one.
func (j *journal) store(entries []savedSysctl) error {
	if len(entries) == 0 {
		err := os.Remove(j.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("lab journal: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("lab journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("lab journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("lab journal: %w", err)
	}
	return os.Rename(tmp, j.path)
}

// save records name's current value unless the journal already holds it
// (the oldest value is the one to restore).
func (j *journal) save(name, value string) error {
	entries, err := j.load()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == name {
			return nil
		}
	}
	return j.store(append(entries, savedSysctl{Name: name, Value: value}))
}

// restore writes every journalled value back and forgets those it wrote.
func (j *journal) restore() error {
	entries, err := j.load()
	if err != nil {
		return err
	}
	var left []savedSysctl
	var errs []error
	for _, e := range entries {
		err := writeSysctlAt(j.root, e.Name, e.Value)
		if errors.Is(err, fs.ErrNotExist) {
			// The setting is gone with its module (nf_conntrack
			// unloaded); it comes back at its default, nothing to
			// restore.
			continue
		}
		if err != nil {
			left = append(left, e)
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", e.Name, e.Value, err))
		}
	}
	if err := j.store(left); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sysctlPath turns a dotted name into its file under root (/proc/sys).
// Names are the lab's own constants, never user input.
func sysctlPath(root, name string) string {
	return filepath.Join(root, strings.ReplaceAll(name, ".", "/"))
}

// readSysctl reads a sysctl in the calling thread's namespace.
func readSysctl(name string) (string, error) { return readSysctlAt(sysctlRoot, name) }

// writeSysctl writes a sysctl in the calling thread's namespace. /proc/sys/net
// follows the namespace of the thread that opens the file, so callers that
// mean a lab namespace run this inside netns.Do.
func writeSysctl(name, value string) error { return writeSysctlAt(sysctlRoot, name, value) }

func readSysctlAt(root, name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(root, name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctlAt(root, name, value string) error {
	if err := os.WriteFile(sysctlPath(root, name), []byte(value), 0o644); err != nil {
		return fmt.Errorf("write sysctl %s=%q: %w", name, value, err)
	}
	return nil
}

// Leftovers is what a killed run left behind.
type Leftovers struct {
	Namespaces []string
	Links      []string
	Sysctls    []savedSysctl
}

// Empty reports whether nothing was left behind.
func (l Leftovers) Empty() bool {
	return len(l.Namespaces) == 0 && len(l.Links) == 0 && len(l.Sysctls) == 0
}

// findLeftovers lists lab namespaces under /run/netns, lab interfaces in
// the current namespace (the lab creates its veth ends directly inside its
// namespaces, but a future scenario or an interrupted move could leave one
// here) and journalled sysctls.
func findLeftovers() (Leftovers, error) {
	var l Leftovers
	ents, err := os.ReadDir(netns.RunDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return l, fmt.Errorf("list %s: %w", netns.RunDir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), Prefix) {
			l.Namespaces = append(l.Namespaces, e.Name())
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return l, fmt.Errorf("list links: %w", err)
	}
	for _, k := range links {
		if strings.HasPrefix(k.Attrs().Name, Prefix) {
			l.Links = append(l.Links, k.Attrs().Name)
		}
	}
	sort.Strings(l.Links)
	l.Sysctls, err = newJournal().load()
	return l, err
}

// Clean removes what earlier lab runs left: namespaces, interfaces, and
// global settings not yet restored. It takes the lab lock, so it never
// removes the namespaces of a run in progress.
func Clean() (Leftovers, error) {
	lk, err := acquireLock(5 * time.Second)
	if err != nil {
		return Leftovers{}, err
	}
	defer lk.release()
	return cleanLocked()
}

func cleanLocked() (Leftovers, error) {
	l, err := findLeftovers()
	if err != nil {
		return l, err
	}
	var errs []error
	if err := newJournal().restore(); err != nil {
		errs = append(errs, err)
	}
	for _, name := range l.Links {
		if k, err := netlink.LinkByName(name); err == nil {
			if err := netlink.LinkDel(k); err != nil {
				errs = append(errs, fmt.Errorf("delete link %s: %w", name, err))
			}
		}
	}
	for _, name := range l.Namespaces {
		if err := deleteNamedNS(name); err != nil {
			errs = append(errs, err)
		}
	}
	return l, errors.Join(errs...)
}
