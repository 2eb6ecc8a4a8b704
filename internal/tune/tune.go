// Package tune turns a diagnosis into a plan of kernel setting changes and
// applies it safely: every value it will change is read and written to a
// rollback file before the first write, a failure half-way restores what was
// already changed, and a rollback file restores every value byte for byte.
//
// The changes come from the findings' structured fixes (diagnose.Fix: the
// kernel settings as diagnose.Change, the application changes, the commands
// left to a person), the same data the report prints, so the plan and the
// printed advice never disagree. tune adds what a diagnosis cannot: the
// value re-read right now, a risk note per change, and refusals. It never proposes settings
// that are removed or harmful (tcp_tw_recycle, shrinking or disabling
// conntrack, rp_filter off), and it says when a finding's fix belongs in the
// application rather than the kernel.
//
// tune does not diagnose (diagnose does) and does not print (internal/cli
// and report/ do).
package tune

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// Errors a System returns, so callers and tests can tell them apart.
var (
	// ErrUnknown: no such setting (a sysctl name that does not exist in
	// this namespace, an interface that is not there).
	ErrUnknown = errors.New("unknown setting")
	// ErrReadOnly: the setting exists but cannot be written here (a
	// read-only sysctl, or a host-wide one seen from a child namespace).
	ErrReadOnly = errors.New("read-only setting")
	// ErrNotSupported: the driver does not implement the operation
	// (ethtool ring sizes on veth, for instance).
	ErrNotSupported = errors.New("not supported by the driver")
	// ErrRefused: tune will not make this change (harmful or removed).
	ErrRefused = errors.New("refused")
)

// Setting names one value tune can read and write.
type Setting struct {
	// Kind is the kind of setting; it reads "sysctl", "ring", … in JSON.
	Kind diagnose.ChangeKind `json:"kind"`
	// Target is the sysctl name ("net.core.somaxconn"), the interface, or
	// "IF rx-N" for a queue's RPS mask.
	Target string `json:"target"`
	// Param is the ring or channel parameter: "rx", "tx", "combined".
	Param string `json:"param,omitempty"`
}

// String renders the setting as a person names it.
func (s Setting) String() string {
	out := s.Kind.String() + " " + s.Target
	if s.Param != "" {
		out += " " + s.Param
	}
	return out
}

// Item is one change in a plan.
type Item struct {
	Setting Setting `json:"setting"`
	// Current is the value read when the plan was made, trimmed for
	// display; the exact bytes are read again when applying.
	Current  string `json:"current"`
	Proposed string `json:"proposed"`
	// Stage, Severity and Finding say which finding asks for the change.
	Stage    stage.ID          `json:"stage"`
	Severity diagnose.Severity `json:"severity"`
	Finding  string            `json:"finding"`
	// Risk is what the change costs or could break.
	Risk string `json:"risk"`
	// Skip, when set, says why the item will not be applied (already at
	// the value, refused, read-only here, a value only a person can pick).
	Skip string `json:"skip,omitempty"`
	// Note adds context that does not stop the change.
	Note string `json:"note,omitempty"`
}

// Actionable says whether Apply will change this item.
func (it Item) Actionable() bool { return it.Skip == "" }

// AppNote is a finding whose remedy lies in the application or the
// architecture, not in a kernel setting.
type AppNote struct {
	Stage   stage.ID `json:"stage"`
	Finding string   `json:"finding"`
	Advice  string   `json:"advice"`
	// Change is the structured change when the finding names one (a
	// socket option or listen backlog on one socket), nil for advice.
	Change *diagnose.AppChange `json:"change,omitempty"`
}

// ManualStep is a command that changes state and that tune leaves to a
// person, with the reason.
type ManualStep struct {
	Stage   stage.ID     `json:"stage"`
	Finding string       `json:"finding"`
	Fix     diagnose.Fix `json:"fix"`
}

// Plan is what tune would change, and why.
type Plan struct {
	Netns   string    `json:"netns"`
	Created time.Time `json:"created"`
	Items   []Item    `json:"items"`
	// Application lists what only the application (or its deployment)
	// can fix.
	Application []AppNote `json:"application"`
	// Manual lists fix steps that are not settings tune can make (a tc
	// qdisc limit, a hashsize module parameter, a firewall rule).
	Manual []ManualStep `json:"manual"`
	// NotAutomatic lists findings no setting can fix, with the reason (a
	// firewall rule that may be policy, a service that is down).
	NotAutomatic []AppNote `json:"not_automatic,omitempty"`
}

// Actionable returns the items Apply will change.
func (p *Plan) Actionable() []Item {
	var out []Item
	for _, it := range p.Items {
		if it.Actionable() {
			out = append(out, it)
		}
	}
	return out
}

// Listener is what Build needs to know about a TCP listener to decide
// whether somaxconn or the application's backlog caps its accept queue.
type Listener struct {
	Local   string
	Backlog uint32
	Drops   uint32
}

// Context is extra evidence for Build; every field is optional.
type Context struct {
	// Listeners in the diagnosed namespace (from sockets.Summarize).
	Listeners []Listener
}

// Gather reads the evidence Build needs beyond the diagnosis, in the
// namespace the diagnosis read (ns): the
// listeners, when a listen-queue finding needs them to tell an application
// backlog from the somaxconn cap. netdrop tune and the lab's --fix share it,
// so both build the same plan. Failing to read them only loses that
// distinction.
func Gather(ctx context.Context, r *diagnose.Report, ns netns.Target) Context {
	var tc Context
	need := false
	for _, f := range r.Findings {
		if f.Stage == stage.TCPListen {
			need = true
		}
	}
	if !need {
		return tc
	}
	sum, err := sockets.Summarize(ctx, sockets.Options{Netns: ns, States: sockets.StateSet(1 << sockets.Listen), Top: -1})
	if err != nil {
		return tc
	}
	for _, l := range sum.Listeners {
		tc.Listeners = append(tc.Listeners, Listener{Local: l.Local.String(), Backlog: l.Backlog, Drops: l.Drops})
	}
	return tc
}

// Build turns the findings of r into a plan. Current values are read
// through sys now, not taken from the diagnosis, because the fix text may
// be seconds old or may not know the value at all.
func Build(r *diagnose.Report, sys System, ctx Context) *Plan {
	ns := r.Netns
	if counters.IsCurrentNetns(ns) {
		// A plan and its rollback file name the namespace as
		// internal/netns parses it: "" for the current one.
		ns = ""
	}
	p := &Plan{Netns: ns, Created: time.Now(), Items: []Item{}, Application: []AppNote{}, Manual: []ManualStep{}}
	seen := map[Setting]int{}
	// Settings skipped because the application caps them go last among
	// the application notes.
	var inApp []AppNote
	for _, f := range r.Findings {
		var changes []diagnose.Change
		for _, fix := range f.Fix {
			switch {
			case fix.Kind == diagnose.FixSetting && fix.Change != nil:
				changes = append(changes, *fix.Change)
			case f.Severity < diagnose.Warning:
				// Info findings are context: only their settings are
				// listed (and skipped, below).
			case fix.Kind == diagnose.FixManual:
				p.Manual = append(p.Manual, ManualStep{Stage: f.Stage, Finding: f.Title, Fix: fix})
			case fix.Kind == diagnose.FixApp && fix.App != nil:
				a := *fix.App
				p.Application = append(p.Application, AppNote{Stage: f.Stage, Finding: f.Title, Advice: fix.Text, Change: &a})
			}
		}
		if f.NotAutomatic != "" && f.Severity >= diagnose.Warning {
			p.NotAutomatic = append(p.NotAutomatic, AppNote{Stage: f.Stage, Finding: f.Title, Advice: f.NotAutomatic})
		}
		for _, c := range changes {
			set := Setting{Kind: c.Kind, Target: c.Target, Param: c.Param}
			it := Item{
				Setting:  set,
				Proposed: c.Proposed,
				Stage:    f.Stage,
				Severity: f.Severity,
				Finding:  f.Title,
				Risk:     riskOf(set, c.Proposed),
			}
			if i, dup := seen[set]; dup {
				// Two findings ask for the same setting: keep the larger
				// proposal, and name both findings.
				prev := &p.Items[i]
				if larger(c.Proposed, prev.Proposed) {
					prev.Proposed = c.Proposed
				}
				prev.Finding += "; " + f.Title
				continue
			}
			cur, err := sys.Read(set)
			switch {
			case f.HostWide && ns != "":
				// The evidence is host-wide (softnet, NICs): the setting
				// that answers it belongs to the host, not to this
				// namespace, even where the namespace has a copy.
				it.Current = display(cur)
				it.Skip = "host-wide finding: tune it on the host (netdrop tune without --netns)"
			case err != nil:
				it.Current = "?"
				it.Skip = err.Error()
			default:
				it.Current = display(cur)
				if err := sys.Check(set); err != nil {
					it.Skip = err.Error()
				}
			}
			if it.Skip == "" {
				it.Skip = vet(set, it.Current, c.Proposed, f)
			}
			if it.Skip == "" {
				if err := Known(set, c.Proposed); err != nil {
					it.Skip = err.Error() + ""
				}
			}
			if it.Skip == "" && f.Severity < diagnose.Warning {
				// Info findings are context (totals since boot, loss
				// beyond this host): tune changes settings for loss
				// happening here and now.
				it.Skip = "informational finding: no loss on this host in the interval; change it by hand if you mean to"
			}
			if it.Skip == "" && set.Kind == diagnose.ChangeSysctl && set.Target == "net.core.somaxconn" {
				var app bool
				it.Skip, it.Note, app = somaxconnCheck(it.Current, ctx.Listeners)
				if app {
					inApp = append(inApp, AppNote{Stage: it.Stage, Finding: it.Finding, Advice: it.Skip})
				}
			}
			seen[set] = len(p.Items)
			p.Items = append(p.Items, it)
		}
		if f.Advice != "" && f.Severity >= diagnose.Warning {
			p.Application = append(p.Application, AppNote{Stage: f.Stage, Finding: f.Title, Advice: f.Advice})
		}
	}
	p.Application = append(p.Application, inApp...)
	return p
}

// display trims the trailing newline the kernel prints and folds the tabs
// of multi-value sysctls, for showing and comparing.
func display(raw string) string { return strings.Join(strings.Fields(raw), " ") }

// larger compares two proposals numerically where both are numbers, and
// keeps the first otherwise.
func larger(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

// capacity lists settings that are limits: raising them costs memory, and
// tune never lowers one, since a lower limit drops more.
var capacity = map[string]bool{
	"net.core.somaxconn":                 true,
	"net.core.netdev_max_backlog":        true,
	"net.core.netdev_budget":             true,
	"net.core.rmem_max":                  true,
	"net.core.wmem_max":                  true,
	"net.core.rmem_default":              true,
	"net.core.wmem_default":              true,
	"net.ipv4.tcp_max_syn_backlog":       true,
	"net.ipv4.tcp_max_tw_buckets":        true,
	"net.netfilter.nf_conntrack_max":     true,
	"net.netfilter.nf_conntrack_buckets": true,
	"net.ipv4.neigh.default.gc_thresh3":  true,
	"net.ipv6.neigh.default.gc_thresh3":  true,
}

// vet returns why a change must not be made, or "".
func vet(s Setting, current, proposed string, f diagnose.Finding) string {
	if strings.ContainsAny(proposed, "<>") {
		return "the value is yours to choose (" + proposed + "): set it by hand"
	}
	if display(proposed) == current {
		return "already set"
	}
	if k, ok := kinds[s.Kind]; ok && k.vet != nil {
		return k.vet(s, current, proposed, f)
	}
	return ""
}

// refuseLower refuses a change that lowers a size: a smaller ring, fewer
// queues or a shorter transmit queue drops more.
func refuseLower(s Setting, current, proposed string, _ diagnose.Finding) string {
	if lower(current, proposed) {
		return fmt.Sprintf("refused: would lower %s from %s to %s", s, current, proposed)
	}
	return ""
}

func vetSysctl(s Setting, current, proposed string, f diagnose.Finding) string {
	name := s.Target
	last := name[strings.LastIndex(name, ".")+1:]
	switch {
	case last == "tcp_tw_recycle":
		return "refused: tcp_tw_recycle was removed in Linux 4.12; it broke clients behind NAT (use tcp_tw_reuse, or let the client close first)"
	case strings.HasPrefix(name, "net.netfilter.nf_conntrack") && (proposed == "0" || lower(current, proposed)):
		return "refused: shrinking or disabling conntrack drops tracked flows and breaks NAT and stateful rules; exempt traffic with a NOTRACK rule instead"
	case last == "rp_filter":
		if proposed == "0" {
			return "refused: rp_filter=0 turns source validation off; loose mode (2) allows asymmetric routing and keeps spoofing protection"
		}
		if !hasEvidence(f, "TcpExt:IPReversePathFilter") {
			return "refused: rp_filter is changed only when the reverse-path filter was seen dropping (TcpExt:IPReversePathFilter)"
		}
	case name == "net.ipv4.ip_forward" || strings.HasSuffix(name, ".forwarding"):
		return "refused: forwarding changes what this host is (a router), not how it drops; decide it by hand"
	case capacity[name] && lower(current, proposed):
		return fmt.Sprintf("refused: would lower the limit %s from %s to %s", name, current, proposed)
	}
	return ""
}

func hasEvidence(f diagnose.Finding, counter string) bool {
	for _, e := range f.Evidence {
		if e.Field == counter && e.Delta > 0 {
			return true
		}
	}
	return false
}

// lower says whether proposed is numerically below current, comparing the
// largest field of multi-value settings.
func lower(current, proposed string) bool {
	c, ok1 := maxField(current)
	p, ok2 := maxField(proposed)
	return ok1 && ok2 && p < c
}

func maxField(s string) (int64, bool) {
	var max int64
	fs := strings.Fields(s)
	if len(fs) == 0 {
		return 0, false
	}
	for _, f := range fs {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, false
		}
		if n > max {
			max = n
		}
	}
	return max, true
}

// somaxconnCheck decides whether raising somaxconn can help the listeners
// that dropped: the accept queue limit is min(backlog passed to listen(),
// somaxconn), so a listener whose own backlog is below somaxconn is capped by
// the application (inet_listen in net/ipv4/af_inet.c). inApp says the skip is
// because the fix belongs in the application.
func somaxconnCheck(current string, ls []Listener) (skip, note string, inApp bool) {
	cur, err := strconv.ParseUint(current, 10, 32)
	if err != nil {
		return "", "", false
	}
	var capped, app []string
	for _, l := range ls {
		if l.Drops == 0 {
			continue
		}
		if uint64(l.Backlog) >= cur {
			capped = append(capped, l.Local)
		} else {
			app = append(app, fmt.Sprintf("%s (backlog %d)", l.Local, l.Backlog))
		}
	}
	sort.Strings(app)
	switch {
	case len(app) > 0 && len(capped) == 0:
		return fmt.Sprintf("the fix belongs in the application: the listeners that dropped pass a listen() backlog below somaxconn (%d): %s", cur, strings.Join(app, ", ")), "", true
	case len(app) > 0:
		return "", fmt.Sprintf("helps %s; %s need a larger listen() backlog in the application", strings.Join(capped, ", "), strings.Join(app, ", ")), false
	case len(capped) > 0:
		return "", fmt.Sprintf("somaxconn caps the backlog of %s", strings.Join(capped, ", ")), false
	}
	return "", "", false
}

// riskOf says what a change costs. The notes are short and specific: what
// memory it commits, what traffic it affects, whether it interrupts links.
func riskOf(s Setting, proposed string) string {
	if k, ok := kinds[s.Kind]; ok {
		return k.risk(s)
	}
	return "changes a kernel setting"
}

// sysctlRisk says what changing one sysctl costs, by its name.
func sysctlRisk(s Setting) string {
	name := s.Target
	switch {
	case strings.HasSuffix(name, "rmem_max"), strings.HasSuffix(name, "wmem_max"):
		return "a ceiling only: applications that ask for large buffers may now pin that much memory per socket"
	case strings.HasSuffix(name, "rmem_default"), strings.HasSuffix(name, "wmem_default"):
		return "every new socket of this namespace gets the larger buffer: memory grows with the socket count"
	case strings.HasSuffix(name, "tcp_rmem"), strings.HasSuffix(name, "tcp_wmem"):
		return "TCP autotuning may grow each connection's buffer up to the max: memory per connection under load"
	case strings.HasSuffix(name, "netdev_max_backlog"):
		return "per-CPU input queue memory; longer queues add latency under a flood"
	case strings.HasSuffix(name, "somaxconn"), strings.HasSuffix(name, "tcp_max_syn_backlog"):
		return "more pending connections held in memory; a listener that never catches up only waits longer"
	case strings.HasSuffix(name, "nf_conntrack_max"):
		return "about 300 bytes of kernel memory per tracked connection at the new maximum; keep hashsize near max/4"
	case strings.HasSuffix(name, "ip_local_port_range"):
		return "ports below 32768 may collide with services that listen on them; reserve those with ip_local_reserved_ports"
	case strings.HasSuffix(name, "tcp_tw_reuse"):
		return "outgoing connections reuse TIME_WAIT ports (with timestamps, per RFC 7323): safe for clients; needs tcp_timestamps=1"
	case strings.HasSuffix(name, "tcp_syncookies"):
		return "under a SYN flood, cookies replace the SYN queue; connections then lose TCP options such as window scaling unless timestamps carry them"
	case strings.HasSuffix(name, "rp_filter"):
		return "loose mode accepts packets whose source is reachable through any interface: less protection against spoofing on multi-homed hosts"
	case strings.HasSuffix(name, "udp_mem"), strings.HasSuffix(name, "tcp_mem"):
		return "pages all sockets of the protocol may use together: too high risks memory pressure for the whole host"
	case strings.Contains(name, "gc_thresh"):
		return "a larger neighbour table: memory and slower garbage collection on very large L2 segments"
	}
	return "changes a kernel setting for the whole namespace"
}
