package droptrace

import (
	"fmt"
	"sort"
	"strings"

	"github.com/netdrop/netdrop/stage"
)

// StageDrops is what the tracer saw at one stage of the packet path: the
// function-level evidence diagnose attaches to that stage's finding.
type StageDrops struct {
	// Stage is "" for drops whose reason and location name no stage; a
	// diagnosis turns those into findings of their own by reason.
	Stage stage.ID
	Drops uint64
	// Rows are the rows of this stage, most drops first.
	Rows []Row
}

// Hints is evidence from outside the tracer that decides between a row's
// Stage and AltStage.
type Hints struct {
	// ConntrackDrops is how much the conntrack drop counters (the "drop"
	// and "early_drop" columns of /proc/net/stat/nf_conntrack) moved over
	// the same interval. When they moved, NETFILTER_DROP at nf_hook_slow
	// is the conntrack table refusing packets, not a rule.
	ConntrackDrops uint64
}

// StageWith is the row's stage once h is taken into account.
func (r Row) StageWith(h Hints) stage.ID {
	if r.AltStage == stage.Conntrack && h.ConntrackDrops > 0 {
		return stage.Conntrack
	}
	return r.Stage
}

// ByStage groups the drops of s (noise excluded) by stage (Row.StageWith),
// in packet-path order, rows without a stage last; each row's Stage is set
// to the stage it was grouped under.
func ByStage(s Snapshot, h Hints) []StageDrops {
	idx := map[stage.ID]int{}
	var out []StageDrops
	for _, r := range s.Rows {
		r.Stage = r.StageWith(h)
		i, ok := idx[r.Stage]
		if !ok {
			i = len(out)
			idx[r.Stage] = i
			out = append(out, StageDrops{Stage: r.Stage})
		}
		out[i].Drops += r.Count
		out[i].Rows = append(out[i].Rows, r)
	}
	order := func(id stage.ID) int {
		if id == "" {
			return 1 << 30
		}
		return stage.Index(id)
	}
	sort.SliceStable(out, func(i, j int) bool { return order(out[i].Stage) < order(out[j].Stage) })
	for i := range out {
		sortRows(out[i].Rows)
	}
	return out
}

// Evidence describes a row in one line for a finding's evidence, e.g.
// "NETFILTER_DROP at nft_do_chain+0x3e8 (netns 4026532177, b0, ipv4/udp)".
func (r Row) Evidence() string {
	return r.ReasonName() + " at " + r.Place()
}

// ReasonName is the drop reason, or "drop" when the kernel gave none.
func (r Row) ReasonName() string {
	if r.Reason == "" {
		return "drop"
	}
	return r.Reason
}

// Place is where the row's drops happened: the kernel function, with the
// namespace, interface and protocol when known, e.g.
// "nft_do_chain+0x3e8 (netns 4026532177, b0, ipv4/udp)".
func (r Row) Place() string {
	var ctx []string
	if r.Netns != 0 {
		ctx = append(ctx, fmt.Sprintf("netns %d", r.Netns))
	}
	switch {
	case r.Ifname != "":
		ctx = append(ctx, r.Ifname)
	case r.Ifindex != 0:
		ctx = append(ctx, fmt.Sprintf("ifindex %d", r.Ifindex))
	}
	if p := strings.Trim(r.Protocol+"/"+r.L4, "/"); p != "" {
		ctx = append(ctx, p)
	}
	s := r.Location
	if len(ctx) > 0 {
		s += " (" + strings.Join(ctx, ", ") + ")"
	}
	return s
}
