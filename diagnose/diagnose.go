// Package diagnose turns evidence into findings: it reads two counter
// snapshots an interval apart, attributes every delta to a stage of the packet
// path, applies the rules that explain each stage (cause and fix, computed
// from the current settings) and ranks what it found.
//
// Run reads the kernel through the evidence packages (counters.CollectIn,
// droptrace, sockets) and Analyze is pure; diagnose parses no kernel file
// itself, and it does not print (internal/report and internal/cli do).
package diagnose

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// Severity ranks findings. Critical means packets are being lost now;
// warning means a near-drop (a table almost full, a budget exhausted) or a
// smaller loss; info means context worth knowing, such as loss beyond this
// host seen through retransmissions.
type Severity int

const (
	Info Severity = iota
	Warning
	Critical
)

func (s Severity) String() string {
	switch s {
	case Critical:
		return "critical"
	case Warning:
		return "warning"
	default:
		return "info"
	}
}

// MarshalText makes severities appear as words in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the words back.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "critical":
		*s = Critical
	case "warning":
		*s = Warning
	case "info":
		*s = Info
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// Evidence is one value behind a finding, named as `netdrop counters --json`
// names a counter: where it was read, of what, and which value.
type Evidence struct {
	// Source is a counters source, SourceTracer or SourceSockDiag.
	Source counters.SourceID `json:"source"`
	// Object is the interface, CPU, qdisc, rule, socket or destination
	// the value is about; for the tracer, the kernel function that
	// dropped (with namespace, interface and protocol).
	Object string `json:"object,omitempty"`
	// Field is the counter's kernel name, the tracer's drop reason, or
	// what sock_diag shows of the object.
	Field string `json:"field"`
	Delta uint64 `json:"delta"`
	// Value is the counter's current level for gauges (table use, queue
	// length); zero otherwise.
	Value uint64 `json:"value,omitempty"`
}

// The evidence sources that are not counters.
const (
	// SourceTracer is drops counted by the skb:kfree_skb tracepoint.
	SourceTracer counters.SourceID = "skb:kfree_skb"
	// SourceSockDiag is sockets as sock_diag (inet_diag) shows them.
	SourceSockDiag counters.SourceID = "sock_diag"
)

// Name is the evidence as one line of text shows it: "eth0 rx_dropped",
// "NO_SOCKET at __udp4_lib_rcv (veth0, ipv4/udp)".
func (e Evidence) Name() string {
	switch {
	case e.Source == SourceTracer:
		return e.Field + " at " + e.Object
	case e.Object == "":
		return e.Field
	case e.Field == "":
		return e.Object
	}
	return e.Object + " " + e.Field
}

// counterEvidence is a counter's delta as evidence.
func counterEvidence(c counters.Counter) Evidence {
	return Evidence{Source: c.Source, Object: c.Object, Field: c.Field, Delta: c.Value}
}

// Finding is one diagnosed problem at one stage.
type Finding struct {
	Stage    stage.ID   `json:"stage"`
	Severity Severity   `json:"severity"`
	Title    string     `json:"title"`
	Drops    uint64     `json:"drops"`
	Rate     float64    `json:"rate_per_s"`
	Evidence []Evidence `json:"evidence"`
	Cause    string     `json:"cause"`
	// Fix lists what to do, as data (see Fix): settings tune applies,
	// application changes, commands for a person, advice. Values are
	// computed from the current settings.
	Fix []Fix `json:"fix"`
	// Advice is the architectural answer where tuning is not: who should
	// close connections, a reader that is too slow.
	Advice string `json:"advice,omitempty"`
	// NotAutomatic says why netdrop cannot remove this loss by itself when
	// the finding has no setting or application fix: a firewall rule that
	// may be policy, a service that is down, a neighbour that does not
	// answer, a physical fault.
	NotAutomatic string `json:"not_automatic,omitempty"`
	// Changes are the kernel settings of Fix (its FixSetting changes),
	// kept as their own list for netdrop tune and JSON readers of old.
	Changes []Change `json:"changes,omitempty"`
	// HostWide marks findings drawn from host-wide sources while a
	// namespace is being diagnosed.
	HostWide bool `json:"host_wide,omitempty"`
	// Notes qualify the count: where it came from when the tracer's exact
	// count replaced a counter of events, or that the counters and the
	// tracer disagree.
	Notes []string `json:"notes,omitempty"`
	// Expected is the --expect declaration (STAGE[:MATCH]) that marked
	// these drops intended; such a finding is information.
	Expected string `json:"expected,omitempty"`
	// Owner is the pod, containers and processes of the namespace the
	// finding is in, when a caller mapped it (diagnose --all-netns,
	// --pod, --container).
	Owner *Owner `json:"owner,omitempty"`
}

// StageDrops is the loss at one stage in the interval.
type StageDrops struct {
	Stage stage.ID `json:"stage"`
	Drops uint64   `json:"drops"`
	Rate  float64  `json:"rate_per_s"`
}

// Report is the result of one diagnosis.
type Report struct {
	// SchemaVersion, Host, Kernel and StartedAt say which shape of JSON
	// this is and where and when the diagnosis was made (see stamp).
	SchemaVersion int       `json:"schema_version"`
	Host          string    `json:"host"`
	Kernel        string    `json:"kernel"`
	StartedAt     time.Time `json:"started_at"`

	IntervalS   float64                `json:"interval_s"`
	Netns       string                 `json:"netns"`
	Once        bool                   `json:"since_boot,omitempty"`
	Findings    []Finding              `json:"findings"`
	Stages      []StageDrops           `json:"stages"`
	Unavailable []counters.Unavailable `json:"unavailable"`
	// Traced says whether the skb:kfree_skb tracer ran for the interval;
	// Unexplained lists the drops it saw that no stage explains.
	Traced      bool          `json:"traced"`
	Unexplained []Unexplained `json:"unexplained,omitempty"`
	// Owner is what runs in the namespace (see SetOwner).
	Owner *Owner `json:"owner,omitempty"`
}

// Worst returns the highest severity among the findings and whether there
// is any finding at all.
func (r *Report) Worst() (Severity, bool) {
	if len(r.Findings) == 0 {
		return Info, false
	}
	return r.Findings[0].Severity, true
}

// Options configures Run.
type Options struct {
	// Interval between the two snapshots.
	Interval time.Duration
	// Netns is the namespace to diagnose; the zero value is the caller's
	// own.
	Netns counters.Target
	// Once reports totals since boot instead of a delta.
	Once bool
	// NoSockets skips the sock_diag view (which names the sockets and
	// processes responsible) to save its cost on hosts with many sockets.
	NoSockets bool
	// Trace is "auto" (default: trace drops with eBPF when the kernel
	// and privileges allow, else say why not), "on" (fail without it) or
	// "off".
	Trace string
	// FS overrides where kernel files are read (tests).
	FS counters.FS
	// Progress, if set, is called when the first snapshot is taken, so
	// a command line can say it is waiting.
	Progress func(msg string)
	// Expect declares drops the user intends (see Expect): the findings
	// they match are information with the reason "expected".
	Expect []Expect
	// During, if set, runs between the two snapshots instead of waiting
	// for Interval: the lab makes its traffic there, so the interval holds
	// exactly the drops it caused.
	During func(ctx context.Context) error
	// Observe, if set, sees the evidence just before it is analyzed:
	// netdrop lab --keep-record writes it to a recording, from which
	// Observed.Analyze gives this diagnosis back.
	Observe func(Observed)
}

// Observed is the evidence one diagnosis reads: the two counter snapshots,
// the socket views at both ends and what the tracer counted in between.
// A recording keeps it; Analyze turns it into the same report, offline.
type Observed struct {
	Before, After *counters.Snapshot
	// SocketsBefore and SocketsAfter are the sock_diag views, nil when
	// not read.
	SocketsBefore, SocketsAfter *sockets.Summary
	// Trace is the tracer's count of the interval, nil when it did not
	// run.
	Trace *droptrace.Snapshot
}

// Analyze diagnoses the evidence as Run would have: the interval is the
// time between the snapshots, and expect marks intended drops. The report
// is stamped with the first snapshot's time; Host and Kernel are left for
// the caller, who knows where the evidence was read.
func (o Observed) Analyze(expect []Expect) *Report {
	x := Extra{Sockets: o.SocketsAfter, Trace: o.Trace}
	if x.Sockets != nil {
		x.SocketsBefore = o.SocketsBefore
	}
	r := AnalyzeWith(o.Before, o.After, o.After.Time.Sub(o.Before.Time), x)
	MarkExpected(r, expect)
	r.SchemaVersion = SchemaVersion
	r.StartedAt = o.Before.Time.UTC()
	return r
}

// Run takes two snapshots opts.Interval apart (or one with opts.Once) and
// analyzes them.
func Run(ctx context.Context, opts Options) (*Report, error) {
	tr, trErr := startTrace(ctx, opts)
	if trErr != nil {
		return nil, trErr
	}
	if tr.t != nil {
		defer tr.t.Close()
	}
	a, err := counters.CollectIn(ctx, opts.Netns, counters.Options{FS: opts.FS})
	if err != nil {
		return nil, err
	}
	if opts.Once {
		zero := &counters.Snapshot{}
		r := AnalyzeWith(zero, a, 0, extra(ctx, opts, a))
		r.Once = true
		MarkExpected(r, opts.Expect)
		r.stamp(a.Time)
		return r, nil
	}
	var before *sockets.Summary
	if !opts.NoSockets {
		// Every socket, no owners: only the drop counts matter here.
		before, _ = sockets.Summarize(ctx, sockets.Options{Netns: opts.Netns, Top: -1})
	}
	if opts.During != nil {
		if err := opts.During(ctx); err != nil {
			return nil, err
		}
	} else {
		if opts.Progress != nil {
			opts.Progress(fmt.Sprintf("sampling for %s…", opts.Interval))
		}
		t := time.NewTimer(opts.Interval)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	b, err := counters.CollectIn(ctx, opts.Netns, counters.Options{FS: opts.FS})
	if err != nil {
		return nil, err
	}
	// The tracer's interval ends with the counters', before the socket
	// view takes its time.
	var trace *droptrace.Snapshot
	if tr.t != nil {
		end, err := tr.t.Snapshot()
		if err != nil {
			b.Fail(SourceTracer, err)
		} else {
			d := droptrace.Delta(tr.start, end)
			trace = &d
		}
	}
	x := extra(ctx, opts, b)
	x.Trace = trace
	if x.Sockets != nil {
		x.SocketsBefore = before
	}
	if tr.err != nil {
		b.Fail(SourceTracer, tr.err)
	}
	if opts.Observe != nil {
		opts.Observe(Observed{Before: a, After: b, SocketsBefore: x.SocketsBefore, SocketsAfter: x.Sockets, Trace: trace})
	}
	r := AnalyzeWith(a, b, b.Time.Sub(a.Time), x)
	MarkExpected(r, opts.Expect)
	r.stamp(a.Time)
	return r, nil
}

// tracing is a running tracer and its first snapshot, or why there is none.
type tracing struct {
	t     *droptrace.Tracer
	start droptrace.Snapshot
	err   error // why tracing is off in auto mode
}

// startTrace starts the drop tracer as opts.Trace asks. In auto mode a
// failure (no privilege, no BTF nor tracefs) is kept to be reported as
// unavailable; with "on" it is an error.
func startTrace(ctx context.Context, opts Options) (tracing, error) {
	switch opts.Trace {
	case "off":
		return tracing{}, nil
	case "", "auto", "on":
	default:
		return tracing{}, fmt.Errorf("diagnose: Options.Trace must be auto, on or off (got %q)", opts.Trace)
	}
	if opts.Once {
		return tracing{}, nil // nothing to trace: totals since boot
	}
	// Trace only the namespace being diagnosed: its counters are the
	// namespace's own, so the host's trace must not bring in drops of
	// every container.
	ns := opts.Netns.Path()
	if ns == "" {
		ns = "/proc/self/ns/net"
	}
	return startTraceIn(ctx, opts, ns)
}

// startTraceIn starts the tracer on the namespace at path ns, or on every
// namespace when ns is "" (RunEach).
func startTraceIn(ctx context.Context, opts Options, ns string) (tracing, error) {
	t, err := droptrace.Start(ctx, droptrace.Options{Netns: ns})
	if err != nil {
		if opts.Trace == "on" {
			return tracing{}, err
		}
		return tracing{err: fmt.Errorf("drop tracing off: %w", err)}, nil
	}
	start, err := t.Snapshot()
	if err != nil {
		t.Close()
		if opts.Trace == "on" {
			return tracing{}, err
		}
		return tracing{err: err}, nil
	}
	return tracing{t: t, start: start}, nil
}

// extra reads the evidence beyond counters that opts asks for. What cannot
// be read is recorded in the snapshot's unavailable list.
func extra(ctx context.Context, opts Options, s *counters.Snapshot) Extra {
	var x Extra
	if !opts.NoSockets {
		sum, err := sockets.Summarize(ctx, sockets.Options{Netns: opts.Netns, Owners: true, Top: -1})
		if err != nil {
			s.Fail(SourceSockDiag, err)
		} else {
			x.Sockets = sum
			for _, u := range sum.Unavailable {
				s.Unavailable = append(s.Unavailable, counters.Unavailable{Source: SourceSockDiag, Reason: u})
			}
		}
	}
	return x
}

// Extra is evidence beyond counters that sharpens the findings.
type Extra struct {
	// Sockets is the sock_diag view at the end of the interval: it names
	// the destinations, listeners and sockets responsible.
	Sockets *sockets.Summary
	// SocketsBefore is the view at the first snapshot, taken with Top -1
	// so every socket's drop count is known; it lets findings name the
	// sockets that dropped in the interval rather than ever.
	SocketsBefore *sockets.Summary
	// Trace is what the skb:kfree_skb tracer counted in the interval
	// (droptrace.Delta of two tracer snapshots).
	Trace *droptrace.Snapshot
}

// Analyze compares two snapshots taken interval apart. With a zero
// interval (since boot), rates are left at zero.
func Analyze(a, b *counters.Snapshot, interval time.Duration) *Report {
	return AnalyzeWith(a, b, interval, Extra{})
}

// AnalyzeWith is Analyze with evidence beyond counters.
func AnalyzeWith(a, b *counters.Snapshot, interval time.Duration, x Extra) *Report {
	in := newInput(a, b, interval)
	in.sockets = x.Sockets
	in.socketsBefore = x.SocketsBefore
	in.trace = x.Trace
	r := &Report{
		IntervalS:   interval.Seconds(),
		Netns:       b.Netns,
		Unavailable: b.Unavailable,
	}
	if r.Unavailable == nil {
		r.Unavailable = []counters.Unavailable{}
	}
	for _, rule := range rules {
		r.Findings = append(r.Findings, rule(in)...)
	}
	r.Findings = ruleGeneric(in, r.Findings)
	r.Findings = ruleSockets(in, r.Findings)
	r.Findings, r.Unexplained = ruleTrace(in, r.Findings)
	if counters.IsCurrentNetns(b.Netns) {
		// Diagnosing the host itself: nothing is foreign to it.
		for i := range r.Findings {
			r.Findings[i].HostWide = false
		}
	}
	for i := range r.Findings {
		r.Findings[i].Rate = in.rate(r.Findings[i].Drops)
		r.Findings[i].Fix = withoutNoOps(r.Findings[i].Fix)
		r.Findings[i].Changes = changesOf(r.Findings[i].Fix)
	}
	rank(r.Findings)
	r.Stages = stageTotals(r.Findings, in)
	r.Traced = in.trace != nil
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r
}

// rank sorts findings by severity, then the namespace's own findings before
// host-wide ones (when a namespace is diagnosed, the user asked about it;
// host-wide counters such as softnet_stat also move for every other
// namespace), then drops, then packet-path order.
func rank(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.HostWide != b.HostWide {
			return !a.HostWide
		}
		if a.Drops != b.Drops {
			return a.Drops > b.Drops
		}
		return stage.Index(a.Stage) < stage.Index(b.Stage)
	})
}

// stageTotals lists every stage with the drops attributed to it. A stage's
// drops are the largest drop count among its findings, not their sum:
// findings at one stage often describe the same packets through different
// counters (Udp RcvbufErrors and the per-socket drop count).
func stageTotals(fs []Finding, in *input) []StageDrops {
	max := map[stage.ID]uint64{}
	for _, f := range fs {
		if f.Drops > max[f.Stage] {
			max[f.Stage] = f.Drops
		}
	}
	var out []StageDrops
	for _, s := range stage.All() {
		out = append(out, StageDrops{Stage: s.ID, Drops: max[s.ID], Rate: in.rate(max[s.ID])})
	}
	return out
}
