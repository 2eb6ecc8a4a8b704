package tune

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/safefile"
)

// A rollback file names settings that root will write. Whoever can write
// one, or slip one in place of another, could make netdrop write any value
// anywhere (kernel.core_pattern runs a program as root), so a rollback file
// is trusted only as far as netdrop itself could have written it:
//
//   - it is read without following a symlink, and must be a regular file
//     owned by the user netdrop runs as, writable by nobody else, with one
//     name (safefile.ReadOwned);
//   - every entry must be a setting tune plans: a networking sysctl tune
//     knows (knownSysctl), or an interface's txqueuelen, ring, channels or
//     RPS mask, with values of the right shape;
//   - a value is restored only while it still reads as what netdrop set;
//     a value someone changed since is theirs and stays;
//   - a used file is marked done and refuses a second run, so an old file
//     cannot write its old values again later.

// RollbackVersion is the version of the rollback file format.
const RollbackVersion = 1

// maxRollback bounds the file a rollback reads: a plan has a few dozen
// entries at most.
const maxRollback = 1 << 20

// Rollback is the content of a rollback file: every value Apply was about
// to change, as the kernel printed it before the change.
type Rollback struct {
	Version int       `json:"version"`
	Netns   string    `json:"netns"`
	Created time.Time `json:"created"`
	Entries []Entry   `json:"entries"`
	// Done is when the file was used to roll back; a used file refuses a
	// second run.
	Done *time.Time `json:"done,omitempty"`

	// path is the file it was read from, marked done after a rollback.
	path string
}

// Outcome says what a rollback did with one entry.
type Outcome string

const (
	// Restored: the value read as netdrop set it and was written back.
	Restored Outcome = "restored"
	// AlreadyRestored: the value already read as it was before netdrop.
	AlreadyRestored Outcome = "already-restored"
	// ChangedSince: the value is neither netdrop's nor the original, so
	// someone changed it after netdrop did; it is left as it is.
	ChangedSince Outcome = "changed-since"
)

// RolledBack is one entry of a rollback and what became of it.
type RolledBack struct {
	Entry
	Outcome Outcome `json:"outcome"`
	// Now is the value found before the rollback, for ChangedSince.
	Now string `json:"now,omitempty"`
}

// extraSysctls are sysctls the fixes propose that counters does not read.
var extraSysctls = []string{"net.ipv4.tcp_timestamps"}

// knownSysctls are the sysctls tune may plan, and so the only ones a
// rollback file may name: the networking settings the fixes refer to
// (counters.SysctlNames, which the diagnosis reads to quote their values).
var knownSysctls = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range slices.Concat(counters.SysctlNames, extraSysctls) {
		m[n] = true
	}
	return m
}()

// perIfaceRPFilter returns the interface of a per-interface rp_filter
// sysctl: net.ipv4.conf.eth0.rp_filter, or net/ipv4/conf/eth0.100/rp_filter
// when the name holds a dot (in the dotted form a dot would be ambiguous,
// so it is refused there). Plain prefix and suffix cuts: the name is the
// whole grammar, and a regular expression here would be the only one tune
// compiles.
func perIfaceRPFilter(name string) (ifname string, ok bool) {
	if rest, found := strings.CutPrefix(name, "net.ipv4.conf."); found {
		ifname, ok = strings.CutSuffix(rest, ".rp_filter")
		return ifname, ok && !strings.Contains(ifname, ".")
	}
	if rest, found := strings.CutPrefix(name, "net/ipv4/conf/"); found {
		ifname, ok = strings.CutSuffix(rest, "/rp_filter")
		return ifname, ok && !strings.Contains(ifname, "/")
	}
	return "", false
}

// knownSysctl says whether tune may change the sysctl name.
func knownSysctl(name string) bool {
	if knownSysctls[name] {
		return true
	}
	ifname, ok := perIfaceRPFilter(name)
	return ok && validIfaceName(ifname) && ifname != "." && ifname != ".."
}

// Params of the ethtool kinds, as ethtool -G and -L name them.
var (
	ringParams    = []string{"rx", "tx"}
	channelParams = []string{"rx", "tx", "combined", "other"}
)

// isCount says whether s is a decimal count of 1 to 10 digits.
func isCount(s string) bool { return spanOf(s, "0123456789", 10) }

// isCPUMask says whether s is a CPU mask as rps_cpus shows it: hex digits
// in comma-separated groups, at most 1000 characters. It is a loop, not a
// regular expression: `[0-9a-fA-F,]{1,1000}` compiles to a thousand
// states, which cost every start of netdrop 11 ms at package init.
func isCPUMask(s string) bool { return spanOf(s, "0123456789abcdefABCDEF,", 1000) }

// spanOf says whether s is 1 to max characters, all of them in set.
func spanOf(s, set string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Known says whether s is a setting tune plans, with a value v of its
// shape (v may be empty to check the setting alone). Build skips, Apply
// refuses and a rollback file may not name anything else.
func Known(s Setting, v string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s: %s", ErrRefused, s, why) }
	val := strings.TrimSpace(v)
	switch s.Kind {
	case diagnose.ChangeSysctl:
		if s.Param != "" {
			return bad("a sysctl has no parameter")
		}
		if _, err := sysctlPath(s.Target); err != nil || !knownSysctl(s.Target) {
			return bad("not a networking sysctl tune changes")
		}
		if len(v) > 4096 || strings.ContainsRune(v, 0) {
			return bad("not a sysctl value")
		}
		return nil
	case diagnose.ChangeRing, diagnose.ChangeChannels, diagnose.ChangeTxQueueLen:
		if !validIfaceName(s.Target) || s.Target == "." || s.Target == ".." {
			return bad("not an interface name")
		}
		switch {
		case s.Kind == diagnose.ChangeRing && !slices.Contains(ringParams, s.Param),
			s.Kind == diagnose.ChangeChannels && !slices.Contains(channelParams, s.Param),
			s.Kind == diagnose.ChangeTxQueueLen && s.Param != "":
			return bad(fmt.Sprintf("parameter %q", s.Param))
		}
		if v != "" && !isCount(val) {
			return bad(fmt.Sprintf("value %q is not a count", v))
		}
		return nil
	case diagnose.ChangeRPSCPUs:
		if _, _, err := splitQueue(s.Target); err != nil || s.Param != "" {
			return bad("not \"IFACE rx-N\"")
		}
		if v != "" && !isCPUMask(val) {
			return bad(fmt.Sprintf("value %q is not a CPU mask", v))
		}
		return nil
	}
	return bad("not a kind of setting tune changes")
}

// ReadRollback reads and validates a rollback file: see the rules above.
// A file already used is refused.
func ReadRollback(path string) (*Rollback, error) {
	b, err := safefile.ReadOwned(path, maxRollback)
	if err != nil {
		return nil, fmt.Errorf("rollback file refused: %w", err)
	}
	rb, err := parseRollback(b)
	if err != nil {
		return nil, err
	}
	if rb.Done != nil {
		return nil, fmt.Errorf("rollback file %s was used on %s: it restores nothing twice (the values may have been changed on purpose since)", path, rb.Done.UTC().Format(time.RFC3339))
	}
	rb.path = path
	return rb, nil
}

func parseRollback(b []byte) (*Rollback, error) {
	var rb Rollback
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rb); err != nil {
		return nil, fmt.Errorf("rollback file: not a netdrop rollback file: %w", err)
	}
	if rb.Version != RollbackVersion {
		return nil, fmt.Errorf("rollback file: version %d, this netdrop reads version %d", rb.Version, RollbackVersion)
	}
	for i, e := range rb.Entries {
		// Unknown kind names fail in decoding; a missing one is zero.
		if !e.Setting.Kind.Valid() {
			return nil, fmt.Errorf("rollback file: entry %d: no kind", i+1)
		}
		if e.Setting.Target == "" {
			return nil, fmt.Errorf("rollback file: entry %d: no target", i+1)
		}
		if err := Known(e.Setting, string(e.Raw)); err != nil {
			return nil, fmt.Errorf("rollback file: entry %d: %w", i+1, err)
		}
		if e.Applied == "" {
			return nil, fmt.Errorf("rollback file: entry %d: no applied value to compare with", i+1)
		}
		if err := Known(e.Setting, e.Applied); err != nil {
			return nil, fmt.Errorf("rollback file: entry %d: %w", i+1, err)
		}
	}
	return &rb, nil
}

// writeRollback saves rb durably before anything changes: the file is
// created exclusively (never through a symlink, never over an existing
// file), written, synced, and its directory synced, so a crash right after
// the first change still leaves the originals on disk.
func writeRollback(path string, rb *Rollback) error {
	b, err := json.MarshalIndent(rb, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Create(path, append(b, '\n'), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("rollback file %s exists: roll back with it first, or choose another name", path)
		}
		return fmt.Errorf("rollback file: %w", err)
	}
	return nil
}

// RollbackFrom restores the values saved in rb, last change first. sys
// must act on the namespace named in the file (rb.Netns). An entry is
// restored only while its setting still reads as the value netdrop set;
// one already at its original value is left, and so is one someone changed
// since: the outcomes say which. When rb was read from a file, the file is
// marked done once nothing failed, so it never runs again.
func RollbackFrom(sys System, rb *Rollback) ([]RolledBack, error) {
	var out []RolledBack
	var errs []error
	for i := len(rb.Entries) - 1; i >= 0; i-- {
		e := rb.Entries[i]
		if err := Known(e.Setting, string(e.Raw)); err != nil {
			// parseRollback checked it; a Rollback built in code is
			// held to the same rule.
			errs = append(errs, err)
			continue
		}
		now, err := sys.Read(e.Setting)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", e.Setting, err))
			continue
		}
		switch {
		case sameValue(e.Setting, now, e.Applied):
		case sameValue(e.Setting, now, string(e.Raw)):
			out = append(out, RolledBack{Entry: e, Outcome: AlreadyRestored})
			continue
		default:
			out = append(out, RolledBack{Entry: e, Outcome: ChangedSince, Now: display(now)})
			continue
		}
		if err := restore(sys, []Entry{e}); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, RolledBack{Entry: e, Outcome: Restored})
	}
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	if rb.path != "" {
		now := time.Now().UTC()
		rb.Done = &now
		b, err := json.MarshalIndent(rb, "", "  ")
		if err == nil {
			err = safefile.Write(rb.path, append(b, '\n'), 0o600)
		}
		if err != nil {
			return out, fmt.Errorf("rolled back, but marking %s used failed (remove it by hand): %w", rb.path, err)
		}
	}
	return out, nil
}

// sameValue compares a value read from the kernel with one saved or
// written: as displayed for most settings, as a number for RPS masks, which
// the kernel reprints zero-padded in 32-bit words.
func sameValue(s Setting, a, b string) bool {
	if s.Kind == diagnose.ChangeRPSCPUs {
		return normMask(a) == normMask(b)
	}
	return display(a) == display(b)
}

func normMask(m string) string {
	m = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(m), ",", ""))
	m = strings.TrimLeft(m, "0")
	if m == "" {
		return "0"
	}
	return m
}
