package diagnose

import (
	"regexp"
	"strings"
)

// Change is one setting a fix proposes, in a form netdrop tune can apply
// and roll back. Changes are derived from the fix commands, which stay the
// single source of truth: a fix a person reads and the change tune makes
// cannot disagree.
type Change struct {
	// Kind is "sysctl", "ring" (ethtool -G), "channels" (ethtool -L),
	// "txqueuelen" or "rps_cpus".
	Kind string `json:"kind"`
	// Target is the sysctl name, or the interface ("eth0", "eth0 rx-0" for
	// a queue's RPS mask).
	Target string `json:"target"`
	// Param is the ring or channel parameter ("rx", "tx", "combined").
	Param    string `json:"param,omitempty"`
	Current  string `json:"current,omitempty"`
	Proposed string `json:"proposed"`
}

var changePatterns = []struct {
	re    *regexp.Regexp
	build func(m []string) Change
}{
	{regexp.MustCompile(`^sysctl -w ([a-z0-9_.\-]+)=("[^"]*"|\S+)(?: \(now ("[^"]*"|[^),]*))?`), func(m []string) Change {
		return Change{Kind: "sysctl", Target: m[1], Proposed: strings.Trim(m[2], `"`), Current: strings.Trim(m[3], `"`)}
	}},
	{regexp.MustCompile(`^ethtool -G (\S+) (rx|tx) (\d+) \(now (\d+)\)`), func(m []string) Change {
		return Change{Kind: "ring", Target: m[1], Param: m[2], Proposed: m[3], Current: m[4]}
	}},
	{regexp.MustCompile(`^ethtool -L (\S+) (combined|rx|tx) (\d+) \(now (\d+)\)`), func(m []string) Change {
		return Change{Kind: "channels", Target: m[1], Param: m[2], Proposed: m[3], Current: m[4]}
	}},
	{regexp.MustCompile(`^ip link set dev (\S+) txqueuelen (\d+)(?: \(now (\d+)\))?`), func(m []string) Change {
		return Change{Kind: "txqueuelen", Target: m[1], Proposed: m[2], Current: m[3]}
	}},
	{regexp.MustCompile(`^echo ([0-9a-f,]+) > /sys/class/net/(\S+)/queues/(rx-\d+)/rps_cpus \(now ([0-9a-f,]+)\)`), func(m []string) Change {
		return Change{Kind: "rps_cpus", Target: m[2] + " " + m[3], Proposed: m[1], Current: m[4]}
	}},
}

// changesOf derives the structured changes from a finding's fix commands.
// Fixes that are advice or inspection commands yield nothing.
func changesOf(fixes []string) []Change {
	var out []Change
	for _, f := range fixes {
		for _, p := range changePatterns {
			if m := p.re.FindStringSubmatch(f); m != nil {
				out = append(out, p.build(m))
				break
			}
		}
	}
	return out
}
