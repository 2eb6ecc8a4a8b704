package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/netdrop/netdrop/stage"
)

// ScenarioTimeout bounds one scenario from setup to the second snapshot;
// teardown runs after it regardless.
const ScenarioTimeout = 15 * time.Second

// lockWait is how long a run waits for another lab run to finish.
const lockWait = 30 * time.Second

// Result is the outcome of one scenario. Its JSON form is the contract of
// `netdrop lab run --json`.
type Result struct {
	Scenario string   `json:"scenario"`
	Expected stage.ID `json:"expected_stage"`
	// Found is the stage of the top finding, "" when there was none.
	Found     stage.ID `json:"found_stage"`
	Pass      bool     `json:"pass"`
	Drops     uint64   `json:"drops"`
	DurationS float64  `json:"duration_s"`
	// Error says why the scenario could not run to its diagnosis, or what
	// went wrong tearing it down.
	Error string `json:"error,omitempty"`
	// Fix is what --fix applied and measured; nil without --fix. With
	// it, Pass also requires Fix.Pass.
	Fix *FixResult `json:"fix,omitempty"`

	// Story is the scenario's one-line story, for text output.
	Story string `json:"-"`
	// Report is the diagnosis as netdrop produced it.
	Report *diagnose.Report `json:"-"`
	// Kept names the namespaces left up with Options.Keep.
	Kept []string `json:"-"`
	// Diagnosed is the namespace the diagnosis read, "" for the host.
	Diagnosed string `json:"-"`
	// Record is the recording of the diagnosis's evidence left with
	// Options.RecordDir.
	Record string `json:"record,omitempty"`
}

// Options configures Run.
type Options struct {
	// Keep leaves each scenario's namespaces up for exploration; global
	// settings are restored all the same.
	Keep bool
	// Log, if set, receives progress lines meant for people (stale
	// leftovers removed, a scenario starting).
	Log func(msg string)
	// Inspect, if set, is called after the diagnosis and before teardown,
	// with the fault still in place. Tests use it to read the kernel's own
	// counters through the reference tools.
	Inspect func(s Scenario, e *Env, r *Result)
	// Fix applies, after the diagnosis, the plan netdrop tune would apply
	// for it and the application changes it names, runs the same traffic
	// again and diagnoses again (see FixResult).
	Fix bool
	// InspectFix, if set, is called after the diagnosis that follows the
	// fix, before teardown; the fault's settings are still in place.
	InspectFix func(s Scenario, e *Env, r *Result)
	// RecordDir, if set, keeps the evidence of each scenario's diagnosis
	// as a recording, DIR/SCENARIO.ndrec, that `netdrop diagnose --from`
	// and `netdrop report` read after the namespaces are gone.
	RecordDir string
	// Build names the netdrop build in the recordings' headers.
	Build string
}

func (o Options) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}

// ErrNotRoot says the lab cannot build namespaces without privileges.
var ErrNotRoot = errors.New("netdrop lab creates network namespaces and needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")

// Run runs the scenarios one after another and calls each with every result
// as soon as it is known. It first removes whatever a killed earlier run
// left. An error means the lab itself could not run (no privilege, lock
// held, context ended); a scenario that failed is a Result with Pass false.
func Run(ctx context.Context, list []Scenario, opts Options, each func(Result)) ([]Result, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	lk, err := acquireLock(lockWait)
	if err != nil {
		return nil, err
	}
	defer lk.release()
	left, err := cleanLocked()
	if err != nil {
		return nil, fmt.Errorf("remove leftovers of an earlier lab run: %w", err)
	}
	if !left.Empty() {
		opts.log("removed leftovers of an earlier lab run: namespaces %v, links %v, sysctls restored %v",
			left.Namespaces, left.Links, left.Sysctls)
	}
	for _, k := range left.Kept {
		opts.log("kept %s", k)
	}
	var out []Result
	for _, s := range list {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		opts.log("running %s …", s.Name)
		r := runOne(ctx, s, opts)
		out = append(out, r)
		if each != nil {
			each(r)
		}
	}
	return out, ctx.Err()
}

// runOne builds, breaks, measures, diagnoses and tears down one scenario.
// Teardown runs on every path out, including a panic in the scenario.
func runOne(parent context.Context, s Scenario, opts Options) (res Result) {
	start := time.Now()
	res = Result{Scenario: s.Name, Expected: s.Stage, Story: s.Story}
	ctx, cancel := context.WithTimeout(parent, ScenarioTimeout)
	defer cancel()

	var env *Env
	defer func() {
		if p := recover(); p != nil {
			res.Pass = false
			res.Error = joinErr(res.Error, fmt.Sprintf("panic: %v\n%s", p, debug.Stack()))
		}
		if env != nil {
			var terr error
			if opts.Keep {
				terr = env.release()
				res.Kept = []string{env.Sender.NS, env.Receiver.NS}
			} else {
				terr = env.teardown()
			}
			if terr != nil {
				res.Pass = false
				res.Error = joinErr(res.Error, fmt.Sprintf("teardown: %v", terr))
			}
		}
		res.DurationS = time.Since(start).Seconds()
	}()
	env, err := build(s.Name)
	if err != nil {
		res.Error = fmt.Sprintf("build network: %v", err)
		return res
	}

	traffic, err := s.Inject(ctx, env)
	if err != nil {
		res.Error = fmt.Sprintf("inject fault: %v", err)
		return res
	}
	ns := env.diagnoseNS(s.DiagnoseOn)
	res.Diagnosed = ns
	// The whole diagnosis a user gets — counters, the drop tracer when the
	// kernel allows it, and the socket views that name who is responsible —
	// with the scenario's traffic as the interval. --fix runs it again,
	// with the same options, after the fix.
	target := counters.CurrentNetns()
	if ns != "" {
		target = counters.NamedNetns(ns)
	}
	expects, err := diagnose.ParseExpects(s.Expect)
	if err != nil {
		res.Error = fmt.Sprintf("scenario %s: %v", s.Name, err)
		return res
	}
	var recErr error
	var observe func(diagnose.Observed)
	if opts.RecordDir != "" {
		path := filepath.Join(opts.RecordDir, s.Name+".ndrec")
		observe = func(o diagnose.Observed) {
			h := recording.Header{Netdrop: opts.Build, Netns: ns}
			h.Host, h.Kernel = recording.HostKernel()
			if recErr = recording.WriteObserved(path, h, o); recErr == nil {
				res.Record = path
			}
		}
	}
	diag := func(ctx context.Context, traffic Traffic) (*diagnose.Report, error) {
		var trafficErr error
		rep, err := diagnose.Run(ctx, diagnose.Options{Netns: target, Trace: "auto", Expect: expects, Observe: observe, During: func(ctx context.Context) error {
			trafficErr = traffic(ctx)
			return trafficErr
		}})
		switch {
		case trafficErr != nil:
			return nil, fmt.Errorf("traffic: %v", trafficErr)
		case err != nil:
			return nil, fmt.Errorf("diagnose: %v", err)
		}
		return rep, nil
	}
	rep, err := diag(ctx, traffic)
	observe = nil // the fault's diagnosis is the one kept, not --fix's second
	// Host-wide settings go back the moment the diagnosis has read them
	// (it computes its fixes from the faulty values), not at teardown:
	// other work on the host shares them. --fix keeps the fault in place
	// until the traffic has run again with the fix.
	if !opts.Fix || err != nil {
		if rerr := env.RestoreGlobals(); rerr != nil {
			res.Error = fmt.Sprintf("restore host-wide settings: %v", rerr)
			return res
		}
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Report = rep
	if recErr != nil {
		res.Error = fmt.Sprintf("keep the recording: %v", recErr)
		return res
	}
	if len(expects) > 0 {
		res.Found, res.Drops, res.Pass = expectedVerdict(rep, s)
	} else {
		if top, ok := topFinding(rep, s.HostWide); ok {
			res.Found = top.Stage
			res.Drops = top.Drops
		}
		res.Pass = res.Found == s.Stage
	}
	if opts.Inspect != nil {
		opts.Inspect(s, env, &res)
	}
	if !opts.Fix {
		return res
	}
	res.Fix = runFix(ctx, s, env, ns, rep, traffic, diag)
	res.Pass = res.Pass && res.Fix.Pass
	if opts.InspectFix != nil {
		opts.InspectFix(s, env, &res)
	}
	if rerr := env.RestoreGlobals(); rerr != nil {
		res.Pass = false
		res.Error = joinErr(res.Error, fmt.Sprintf("restore host-wide settings: %v", rerr))
	}
	return res
}

// topFinding is the finding the verdict is about: the first of the ranked
// findings, skipping host-wide ones unless the scenario's stage is itself
// host-wide.
func topFinding(r *diagnose.Report, hostWide bool) (diagnose.Finding, bool) {
	for _, f := range r.Findings {
		if f.HostWide && !hostWide {
			continue
		}
		return f, true
	}
	return diagnose.Finding{}, false
}

// expectedVerdict judges a scenario whose drops are declared intended: the
// finding at its stage is there, marked expected, as information, and no
// finding of the scenario's own (not host-wide) is at warning or above.
func expectedVerdict(r *diagnose.Report, s Scenario) (stage.ID, uint64, bool) {
	var found stage.ID
	var drops uint64
	ok := false
	for _, f := range r.Findings {
		if f.Stage == s.Stage && f.Expected != "" && f.Severity == diagnose.Info {
			found, drops, ok = f.Stage, f.Drops, true
		}
		if f.Severity >= diagnose.Warning && (!f.HostWide || s.HostWide) {
			return f.Stage, f.Drops, false
		}
	}
	return found, drops, ok
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
