package diagnose

import (
	"fmt"
	"strings"
)

// ChangeKind is a kind of kernel setting netdrop tune can read, change and
// roll back. Each kind has a name (its JSON and rollback-file spelling), a
// shell command that makes the change by hand (Change.Command) and, in
// internal/tune, an applier. Adding a kind means a constant and a row of
// changeKinds here, and an applier there; rules then use it.
type ChangeKind uint8

const (
	// ChangeSysctl is a sysctl; Target is its dotted name.
	ChangeSysctl ChangeKind = iota + 1
	// ChangeRing is an ethtool ring size (ethtool -G); Target is the
	// interface, Param "rx" or "tx".
	ChangeRing
	// ChangeChannels is an ethtool channel count (ethtool -L); Target is
	// the interface, Param "rx", "tx", "combined" or "other".
	ChangeChannels
	// ChangeTxQueueLen is an interface's transmit queue length; Target is
	// the interface.
	ChangeTxQueueLen
	// ChangeRPSCPUs is the RPS CPU mask of one receive queue; Target is
	// "IF rx-N", the value a hexadecimal mask.
	ChangeRPSCPUs
)

// changeKinds names each kind and renders the command that makes a change
// of it. The name is a public contract (JSON, rollback files).
var changeKinds = map[ChangeKind]struct {
	name    string
	command func(c Change) string
}{
	ChangeSysctl: {"sysctl", func(c Change) string {
		return "sysctl -w " + shellQuote(c.Target) + "=" + shellQuote(c.Proposed)
	}},
	ChangeRing: {"ring", func(c Change) string {
		return shellJoin("ethtool", "-G", c.Target, c.Param, c.Proposed)
	}},
	ChangeChannels: {"channels", func(c Change) string {
		return shellJoin("ethtool", "-L", c.Target, c.Param, c.Proposed)
	}},
	ChangeTxQueueLen: {"txqueuelen", func(c Change) string {
		return shellJoin("ip", "link", "set", "dev", c.Target, "txqueuelen", c.Proposed)
	}},
	ChangeRPSCPUs: {"rps_cpus", func(c Change) string {
		ifname, queue, _ := strings.Cut(c.Target, " ")
		return "echo " + shellQuote(c.Proposed) + " > " + shellQuote("/sys/class/net/"+ifname+"/queues/"+queue+"/rps_cpus")
	}},
}

// ChangeKinds lists every kind, in the order of their constants.
func ChangeKinds() []ChangeKind {
	var out []ChangeKind
	for k := ChangeKind(1); ; k++ {
		if _, ok := changeKinds[k]; !ok {
			return out
		}
		out = append(out, k)
	}
}

// Valid says whether k is a known kind.
func (k ChangeKind) Valid() bool { _, ok := changeKinds[k]; return ok }

func (k ChangeKind) String() string {
	if d, ok := changeKinds[k]; ok {
		return d.name
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// MarshalText writes the kind's name, so JSON and rollback files read
// "sysctl", "ring", …
func (k ChangeKind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("unknown change kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a kind's name and refuses unknown ones.
func (k *ChangeKind) UnmarshalText(b []byte) error {
	for kind, d := range changeKinds {
		if d.name == string(b) {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("unknown change kind %q", b)
}

// Change is one kernel setting a fix proposes, in a form netdrop tune can
// apply and roll back. Rules build it from the values they read; the
// command a person reads is rendered from it (Command), never the other way
// round.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Target is the sysctl name, or the interface ("eth0"; "eth0 rx-0" for
	// a queue's RPS mask).
	Target string `json:"target"`
	// Param is the ring or channel parameter ("rx", "tx", "combined").
	Param string `json:"param,omitempty"`
	// Current is the value read with the snapshot ("" when unknown);
	// tune reads it again before it changes anything.
	Current  string `json:"current,omitempty"`
	Proposed string `json:"proposed"`
}

// Command is the shell command that makes the change, runnable as printed.
func (c Change) Command() string {
	if d, ok := changeKinds[c.Kind]; ok {
		return d.command(c)
	}
	return ""
}

// changesOf collects the kernel-setting changes of a finding's fixes.
func changesOf(fixes []Fix) []Change {
	var out []Change
	for _, f := range fixes {
		if f.Kind == FixSetting && f.Change != nil {
			out = append(out, *f.Change)
		}
	}
	return out
}

// withoutNoOps drops setting fixes that propose the value already set: a
// command that changes nothing is noise in a report.
func withoutNoOps(fixes []Fix) []Fix {
	out := fixes[:0]
	for _, f := range fixes {
		if f.Kind == FixSetting && f.Change != nil && f.Change.Current != "" &&
			strings.Join(strings.Fields(f.Change.Current), " ") == strings.Join(strings.Fields(f.Change.Proposed), " ") {
			continue
		}
		out = append(out, f)
	}
	return out
}
