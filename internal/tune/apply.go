package tune

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/safefile"
)

// Entry is one value to restore.
type Entry struct {
	Setting Setting `json:"setting"`
	// Raw holds the exact bytes read before the change (base64 in JSON,
	// so a tab or a trailing newline survives any editor); Value is the
	// same for people to read.
	Raw   []byte `json:"raw"`
	Value string `json:"value"`
	// Applied is the value Apply wrote.
	Applied string `json:"applied"`
}

// Result says what Apply did.
type Result struct {
	Applied []Entry `json:"applied"`
	// RollbackFile is where the previous values were saved.
	RollbackFile string `json:"rollback_file"`
}

// Apply makes the actionable changes of p through sys. Before the first
// write it reads every value again and saves them to rollbackPath, which
// must not exist yet (an old rollback file holds older originals and must not
// be overwritten). If a change fails, the changes already made are undone
// in reverse order and the error says what happened to each.
func Apply(p *Plan, sys System, rollbackPath string) (*Result, error) {
	items := p.Actionable()
	if len(items) == 0 {
		return &Result{}, nil
	}
	if rollbackPath == "" {
		return nil, errors.New("apply needs a rollback file path")
	}
	rb := Rollback{Version: RollbackVersion, Netns: p.Netns, Created: time.Now().UTC()}
	for _, it := range items {
		// A change a rollback file could not carry back is not made.
		if err := Known(it.Setting, it.Proposed); err != nil {
			return nil, fmt.Errorf("nothing changed: %w", err)
		}
		if err := sys.Check(it.Setting); err != nil {
			return nil, fmt.Errorf("nothing changed: %w", err)
		}
		raw, err := sys.Read(it.Setting)
		if err != nil {
			return nil, fmt.Errorf("nothing changed: %w", err)
		}
		rb.Entries = append(rb.Entries, Entry{Setting: it.Setting, Raw: []byte(raw), Value: display(raw), Applied: it.Proposed})
	}
	if err := writeRollback(rollbackPath, &rb); err != nil {
		return nil, fmt.Errorf("nothing changed: %w", err)
	}
	res := &Result{RollbackFile: rollbackPath}
	for i, e := range rb.Entries {
		if written, err := writeChecked(sys, e.Setting, e.Applied); err != nil {
			if written {
				// The kernel took a different value: undo it too.
				res.Applied = append(res.Applied, e)
			}
			undo := restore(sys, res.Applied)
			msg := fmt.Sprintf("change %d of %d failed: %v", i+1, len(rb.Entries), err)
			if undo != nil {
				return res, fmt.Errorf("%s; rolling back the %d changes made before it failed too, restore by hand from %s: %w", msg, len(res.Applied), rollbackPath, undo)
			}
			// Everything is as it was: the rollback file is stale, and
			// keeping it would block the next apply with the same name.
			rmErr := os.Remove(rollbackPath)
			undone := len(res.Applied)
			res.Applied = nil
			res.RollbackFile = ""
			if rmErr != nil {
				return res, fmt.Errorf("%s; the %d changes made were rolled back (remove the stale %s): %w", msg, undone, rollbackPath, err)
			}
			return res, fmt.Errorf("%s; the %d changes made were rolled back: %w", msg, undone, err)
		}
		res.Applied = append(res.Applied, e)
	}
	return res, nil
}

// writeChecked writes v and reads it back: a kernel that silently clamps or
// ignores a value must not look like a success. RPS masks are exempt from
// the comparison because the kernel reprints them zero-padded in words.
func writeChecked(sys System, s Setting, v string) (written bool, err error) {
	if err := sys.Write(s, v); err != nil {
		return false, err
	}
	if kinds[s.Kind].reprints {
		return true, nil
	}
	got, err := sys.Read(s)
	if err != nil {
		return true, fmt.Errorf("re-read %s: %w", s, err)
	}
	if display(got) != display(v) {
		return true, fmt.Errorf("%s: wrote %q, the kernel keeps %q", s, v, display(got))
	}
	return true, nil
}

// restore writes back entries in reverse order and checks each value reads
// back byte for byte. It goes on after a failure so that as much as possible
// is restored, and reports every failure.
func restore(sys System, entries []Entry) error {
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if err := sys.Write(e.Setting, string(e.Raw)); err != nil {
			errs = append(errs, fmt.Errorf("restore %s to %q: %w", e.Setting, e.Value, err))
			continue
		}
		got, err := sys.Read(e.Setting)
		if err != nil {
			errs = append(errs, fmt.Errorf("re-read %s: %w", e.Setting, err))
			continue
		}
		if !bytes.Equal([]byte(got), e.Raw) {
			errs = append(errs, fmt.Errorf("restore %s: reads %q, want %q", e.Setting, got, e.Raw))
		}
	}
	return errors.Join(errs...)
}

// WritePersist writes the plan's actionable sysctls in sysctl.d format to w,
// for /etc/sysctl.d/NN-netdrop.conf. Other kinds have no sysctl.d form and
// are listed as comments with where they belong.
func WritePersist(w io.Writer, p *Plan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by netdrop tune on %s.\n", p.Created.UTC().Format(time.RFC3339))
	if p.Netns != "" {
		fmt.Fprintf(&b, "# Diagnosed in network namespace %s: systemd-sysctl applies this file to the\n# host namespace only; apply it in the namespace at its creation instead.\n", p.Netns)
	}
	var other []Item
	n := 0
	for _, it := range p.Actionable() {
		if it.Setting.Kind != diagnose.ChangeSysctl {
			other = append(other, it)
			continue
		}
		if err := Known(it.Setting, it.Proposed); err != nil {
			// Plans come from Build, which skips such items; a plan
			// built otherwise still writes nothing tune would not.
			return err
		}
		fmt.Fprintf(&b, "\n# %s: %s (was %s)\n# risk: %s\n%s = %s\n", it.Stage, it.Finding, it.Current, it.Risk, it.Setting.Target, it.Proposed)
		n++
	}
	if n == 0 {
		b.WriteString("\n# No sysctl to change.\n")
	}
	for _, it := range other {
		fmt.Fprintf(&b, "\n# Not a sysctl, make it persistent elsewhere (udev rule, systemd-networkd .link, NetworkManager):\n#   %s = %s (was %s)\n", it.Setting, it.Proposed, it.Current)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Persist writes the sysctl.d file at path atomically (a temporary file
// renamed over it, never written through a symlink), so a reader never sees
// half a file.
func Persist(path string, p *Plan) error {
	var buf bytes.Buffer
	if err := WritePersist(&buf, p); err != nil {
		return err
	}
	if err := safefile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	return nil
}
