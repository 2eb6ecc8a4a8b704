package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/safefile"
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
	// The journal in it names settings to restore as root: only a
	// directory nobody else can write is trusted.
	if err := safefile.CheckDir(StateDir); err != nil {
		return nil, fmt.Errorf("lab state directory refused: %w", err)
	}
	path := filepath.Join(StateDir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
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

// journalScope lists the host-wide settings the lab changes (Env.SetGlobal),
// the only names a journal may hold: the journal is a file root acts on
// after a crash, so it restores what the lab changed and nothing else.
var journalScope = map[string]bool{
	"net.core.netdev_max_backlog":    true,
	"net.netfilter.nf_conntrack_max": true,
	"kernel.bpf_stats_enabled":       true, // xdp-drop: the program's run count as evidence
	// Host-wide limits a fix may raise on the host (lab run --fix): a
	// child namespace sees them read-only.
	"net.core.rmem_max":     true,
	"net.core.wmem_max":     true,
	"net.core.rmem_default": true,
	"net.core.wmem_default": true,
}

// maxSets bounds the values journalled per setting (a scenario sets one or
// two).
const maxSets = 16

// maxJournal bounds the journal a restore reads; a real one holds a few
// entries.
const maxJournal = 64 << 10

// savedSysctl is one global setting the lab changed.
type savedSysctl struct {
	Name string `json:"name"`
	// Value is the setting before the lab changed it, the value to restore.
	Value string `json:"value"`
	// Set lists the values the lab wrote, the last one last. A restore
	// writes Value back only while the setting reads one of them: anything
	// else means someone changed it since, and their value stays. All are
	// kept because a kill between journalling a value and writing it
	// leaves the one before in place.
	Set []string `json:"set"`
}

// KeptSysctl is a journalled setting a restore left alone because it no
// longer holds the value the lab set.
type KeptSysctl struct {
	Name string
	// Now is the value found, LabSet the value the lab had written, and
	// Before the value from before the lab.
	Now, LabSet, Before string
}

func (k KeptSysctl) String() string {
	return fmt.Sprintf("%s is %s, not the %s the lab set: changed since the lab ran, left as is (it was %s before the lab)", k.Name, k.Now, k.LabSet, k.Before)
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

// load reads the journal. Only a file this user (root) wrote and nobody
// else can write is trusted: the journal names settings to write as root.
func (j *journal) load() ([]savedSysctl, error) {
	b, err := safefile.ReadOwned(j.path, maxJournal)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab journal refused (remove it after checking the sysctls it names): %w", err)
	}
	out, err := parseJournal(b)
	if err != nil {
		return nil, fmt.Errorf("lab journal %s is corrupt (remove it after checking the sysctls it names): %w", j.path, err)
	}
	return out, nil
}

// parseJournal decodes a journal and checks every entry is one the lab
// writes: a setting in journalScope, with numbers for values, so a damaged
// or forged file can neither name another setting nor write text into one.
func parseJournal(b []byte) ([]savedSysctl, error) {
	var out []savedSysctl
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	for _, e := range out {
		if !validSysctlName(e.Name) || !journalScope[e.Name] {
			return nil, fmt.Errorf("entry %q is not a setting the lab changes", e.Name)
		}
		if !numeric(e.Value) || len(e.Set) == 0 || len(e.Set) > maxSets {
			return nil, fmt.Errorf("entry %s: value %q, %d values set: not a journal entry", e.Name, e.Value, len(e.Set))
		}
		for _, v := range e.Set {
			if !numeric(v) {
				return nil, fmt.Errorf("entry %s: value %q set is not a number", e.Name, v)
			}
		}
	}
	return out, nil
}

// numeric accepts the decimal values of the settings in journalScope.
func numeric(v string) bool {
	if v == "" || len(v) > 20 {
		return false
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
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
// any moment leaves either the old or the new journal, never half of one;
// the new file is created beside it, never through a symlink.
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
	if err := safefile.Write(j.path, b, 0o644); err != nil {
		return fmt.Errorf("lab journal: %w", err)
	}
	return nil
}

// save records that the lab is about to write set into name, whose value
// is now old. The first value is the one to restore; set is always the
// latest, so the journal is on disk before the value changes.
func (j *journal) save(name, old, set string) error {
	if !journalScope[name] {
		return fmt.Errorf("lab journal: %s is not a setting the lab changes host-wide", name)
	}
	if !numeric(old) || !numeric(set) {
		return fmt.Errorf("lab journal: %s: values %q and %q are not numbers", name, old, set)
	}
	entries, err := j.load()
	if err != nil {
		return err
	}
	for i, e := range entries {
		if e.Name == name {
			if slices.Contains(e.Set, set) {
				return nil
			}
			if len(e.Set) >= maxSets {
				return fmt.Errorf("lab journal: %s set more than %d times", name, maxSets)
			}
			entries[i].Set = append(e.Set, set)
			return j.store(entries)
		}
	}
	return j.store(append(entries, savedSysctl{Name: name, Value: old, Set: []string{set}}))
}

// restore puts back every journalled value that still reads as the lab set
// it, and forgets every entry it settled: restored, found back at its old
// value already (a kill before the write), or changed by someone since
// (kept, and returned, so the caller can say so). Entries it could not
// write stay for the next attempt.
func (j *journal) restore() (restored []savedSysctl, kept []KeptSysctl, err error) {
	entries, err := j.load()
	if err != nil {
		return nil, nil, err
	}
	var left []savedSysctl
	var errs []error
	for _, e := range entries {
		now, err := readSysctlAt(j.root, e.Name)
		if errors.Is(err, fs.ErrNotExist) {
			// The setting is gone with its module (nf_conntrack
			// unloaded); it comes back at its default, nothing to
			// restore.
			continue
		}
		if err != nil {
			left = append(left, e)
			errs = append(errs, err)
			continue
		}
		switch {
		case now == e.Value:
			continue
		case !slices.Contains(e.Set, now):
			kept = append(kept, KeptSysctl{Name: e.Name, Now: now, LabSet: e.Set[len(e.Set)-1], Before: e.Value})
			continue
		}
		if err := writeSysctlAt(j.root, e.Name, e.Value); err != nil {
			left = append(left, e)
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", e.Name, e.Value, err))
			continue
		}
		restored = append(restored, e)
	}
	if err := j.store(left); err != nil {
		errs = append(errs, err)
	}
	return restored, kept, errors.Join(errs...)
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
	// Sysctls are the settings restored; Kept those left alone because
	// someone changed them after the lab did.
	Sysctls []savedSysctl
	Kept    []KeptSysctl
}

// Empty reports whether nothing was left behind.
func (l Leftovers) Empty() bool {
	return len(l.Namespaces) == 0 && len(l.Links) == 0 && len(l.Sysctls) == 0 && len(l.Kept) == 0
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
	return l, nil
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
	var err2 error
	l.Sysctls, l.Kept, err2 = newJournal().restore()
	if err2 != nil {
		errs = append(errs, err2)
	}
	if err := removeStaleRollbacks(); err != nil {
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
