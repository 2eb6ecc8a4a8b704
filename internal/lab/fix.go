package lab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/tune"
	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// --fix proves netdrop's advice: after the diagnosis, the lab applies the
// plan netdrop tune would apply for it (tune.Build and tune.Apply, with a
// rollback file), applies the application changes of that plan to its own
// application, runs the same traffic again and diagnoses again. The fix
// holds when the loss at the scenario's stage falls by at least
// FixReduction; a finding whose fix is not automatic must say why.
//
// Where the changes land:
//   - the plan of the diagnosed namespace, as `netdrop tune --netns NS
//     --apply` makes it, inside that namespace;
//   - the settings of the scenario's stage that the namespace cannot
//     change (host-wide ones, read-only there), on the host, as tune's skip
//     tells a user to do: only sysctls, only the ones the lab journal
//     covers, journalled before they change so a killed run is repaired;
//   - the application changes (SO_RCVBUF, SO_SNDBUF, the listen backlog,
//     the pacing rate) on the lab's own sockets that they name.
//
// Every setting goes back from its rollback file (tune.ReadRollback,
// tune.RollbackFrom) once the second diagnosis has read the result.

// FixReduction is the share of the loss at its stage that a fix must
// remove for the scenario to pass --fix.
const FixReduction = 0.9

// rollbackPrefix starts the names of the rollback files --fix keeps in
// StateDir while its changes are in place.
const rollbackPrefix = "rollback-"

// FixChange is one change --fix made.
type FixChange struct {
	// Kind is "setting" (a kernel setting, through tune) or
	// "application" (a socket option or listen() on the lab's socket).
	Kind diagnose.FixKind `json:"kind"`
	// Netns is the namespace changed, "" for the host.
	Netns   string        `json:"netns"`
	Setting *tune.Setting `json:"setting,omitempty"`
	// From and To are the setting's value before and after.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// App is the application change, as the finding gave it, and Sockets
	// how many of the lab's sockets it was applied to.
	App     *diagnose.AppChange `json:"app,omitempty"`
	Sockets int                 `json:"sockets,omitempty"`
}

// String reads the change as a person would say it.
func (c FixChange) String() string {
	where := "on the host"
	if c.Netns != "" {
		where = "in " + c.Netns
	}
	if c.App != nil {
		// The owner is the lab itself (a pid that changes every run).
		a := *c.App
		a.Process = ""
		unit := "socket"
		if c.Sockets != 1 {
			unit += "s"
		}
		return fmt.Sprintf("%s (%d lab %s)", a, c.Sockets, unit)
	}
	if c.Setting != nil {
		return fmt.Sprintf("%s %s → %s %s", c.Setting, c.From, c.To, where)
	}
	return ""
}

// FixSkip is a plan item --fix did not apply, and why.
type FixSkip struct {
	Setting *tune.Setting       `json:"setting,omitempty"`
	App     *diagnose.AppChange `json:"app,omitempty"`
	Netns   string              `json:"netns"`
	Reason  string              `json:"reason"`
}

// FixResult is what --fix did for one scenario and what it changed. Its
// JSON form is part of `netdrop lab run --fix --json`.
type FixResult struct {
	// DropsBefore and DropsAfter are the loss at the scenario's stage in
	// the diagnosis before the fix and in the one after it, with the same
	// traffic.
	DropsBefore uint64 `json:"drops_before"`
	DropsAfter  uint64 `json:"drops_after"`
	// Applied lists the changes made (and undone afterwards).
	Applied []FixChange `json:"fix_applied"`
	// Skipped lists the plan's settings that were not applied, with
	// tune's reason or the lab's.
	Skipped []FixSkip `json:"skipped,omitempty"`
	// NotAutomatic is the finding's reason why its loss is not netdrop's
	// to remove, when nothing was applied.
	NotAutomatic string `json:"not_automatic,omitempty"`
	// SeverityBefore and SeverityAfter are those of the finding at the
	// stage, "" when there is none: the measure for stages whose evidence
	// is not a packet count (ports in use).
	SeverityBefore string `json:"severity_before,omitempty"`
	SeverityAfter  string `json:"severity_after,omitempty"`
	// DropsElsewhereAfter is the loss the run after the fix shows at
	// other stages beyond what the run before showed there, and
	// ElsewhereStages those stages: a fix that only moves the loss to the
	// next stage has not removed it, so it counts against the fix.
	DropsElsewhereAfter uint64     `json:"drops_elsewhere_after"`
	ElsewhereStages     []stage.ID `json:"elsewhere_stages,omitempty"`
	// Pass says the fix held: the loss fell by FixReduction, or nothing
	// could be applied and the finding says why.
	Pass bool `json:"pass"`
	// Verdict says why it passed or failed, in words.
	Verdict string `json:"verdict"`
	// Error says what went wrong applying, rolling back or re-running.
	Error string `json:"error,omitempty"`

	// Report is the diagnosis after the fix.
	Report *diagnose.Report `json:"-"`
}

// diagnoser runs the scenario's diagnosis around one run of its traffic,
// with the options of the first diagnosis.
type diagnoser func(ctx context.Context, traffic Traffic) (*diagnose.Report, error)

// runFix applies the plan for the diagnosis before, re-runs the traffic,
// diagnoses again and undoes every setting. ns is the namespace diagnosed
// ("" for the host).
func runFix(ctx context.Context, s Scenario, e *Env, ns string, before *diagnose.Report, traffic Traffic, diag diagnoser) (fr *FixResult) {
	fr = &FixResult{Applied: []FixChange{}}
	at, ok := stageFinding(before, s)
	fr.DropsBefore = at.Drops
	if ok {
		fr.SeverityBefore = at.Severity.String()
	}
	var undo []func() error
	defer func() {
		if fr.Verdict == "" {
			fr.Pass, fr.Verdict = fixVerdict(fr)
		}
	}()
	defer func() {
		// Undo in the reverse order of applying, whatever happened.
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				fr.Error = joinErr(fr.Error, err.Error())
				fr.Pass = false
			}
		}
	}()

	// The namespace's own plan, as netdrop tune --netns makes it. A
	// diagnosis of the host is not planned as a whole: the host runs more
	// than the lab, and its findings at other stages are not the lab's.
	var app []tune.AppNote
	if ns != "" {
		sys := tune.Kernel{Netns: nsTarget(ns)}
		plan := tune.Build(before, sys, tune.Gather(ctx, before, nsTarget(ns)))
		app = plan.Application
		u, err := fr.apply(plan, sys, e, ns)
		undo = append(undo, u...)
		if err != nil {
			fr.Error = err.Error()
			return fr
		}
	}
	// The settings of the stage that only the host can change.
	if hostRep := hostView(before, s, ns); len(hostRep.Findings) > 0 {
		sys := tune.Kernel{}
		plan := tune.Build(hostRep, sys, tune.Context{})
		if ns == "" {
			app = plan.Application
		}
		for i := range plan.Items {
			it := &plan.Items[i]
			if !it.Actionable() {
				continue
			}
			if !journalScope[it.Setting.Target] {
				it.Skip = "a host-wide setting the lab does not change on the host"
				continue
			}
			if err := e.journalGlobal(it.Setting.Target, it.Proposed); err != nil {
				it.Skip = "cannot journal it: " + err.Error()
			}
		}
		u, err := fr.apply(plan, sys, e, "")
		undo = append(undo, u...)
		if err != nil {
			fr.Error = err.Error()
			return fr
		}
	}
	// The application's changes, after the kernel's: a socket buffer is
	// capped by the limits in force when it is set.
	for _, a := range app {
		if a.Change == nil {
			continue
		}
		c := *a.Change
		n, err := e.applyApp(ns, c)
		switch {
		case err != nil && a.Stage == s.Stage:
			fr.Error = joinErr(fr.Error, err.Error())
		case err != nil:
			fr.Skipped = append(fr.Skipped, FixSkip{App: &c, Netns: ns, Reason: err.Error()})
		default:
			fr.Applied = append(fr.Applied, FixChange{Kind: diagnose.FixApp, Netns: ns, App: &c, Sockets: n})
		}
	}
	if fr.Error != "" {
		return fr
	}

	// The same traffic again, into applications that have read what the
	// first run left in their sockets, as the first run found them. A
	// fault that no longer happens is what the fix is for, not an error of
	// the traffic.
	e.drainApps()
	after, err := diag(ctx, func(ctx context.Context) error {
		if err := traffic(ctx); !errors.Is(err, errNoFault) {
			return err
		}
		return nil
	})
	if err != nil {
		fr.Error = joinErr(fr.Error, "after the fix: "+err.Error())
		return fr
	}
	fr.Report = after
	at2, ok2 := stageFinding(after, s)
	fr.DropsAfter = at2.Drops
	if ok2 {
		fr.SeverityAfter = at2.Severity.String()
	}
	fr.DropsElsewhereAfter, fr.ElsewhereStages = movedLoss(before, after, s)
	if len(fr.Applied) == 0 {
		fr.NotAutomatic = notAutomatic(at)
	}
	fr.Pass, fr.Verdict = fixVerdict(fr)
	return fr
}

// apply makes the plan's actionable changes with tune.Apply and returns
// the function that rolls them back from the rollback file.
func (fr *FixResult) apply(plan *tune.Plan, sys tune.Kernel, e *Env, ns string) ([]func() error, error) {
	for _, it := range plan.Items {
		if !it.Actionable() {
			set := it.Setting
			fr.Skipped = append(fr.Skipped, FixSkip{Setting: &set, Netns: ns, Reason: it.Skip})
		}
	}
	if len(plan.Actionable()) == 0 {
		return nil, nil
	}
	side := "host"
	if ns != "" {
		side = "netns"
	}
	path := filepath.Join(StateDir, rollbackPrefix+e.Scenario+"-"+side+".json")
	res, err := tune.Apply(plan, sys, path)
	var undo []func() error
	if res != nil && res.RollbackFile != "" {
		undo = append(undo, func() error { return rollBack(sys, res.RollbackFile) })
	}
	if res != nil {
		for _, en := range res.Applied {
			set := en.Setting
			fr.Applied = append(fr.Applied, FixChange{Kind: diagnose.FixSetting, Netns: ns, Setting: &set, From: en.Value, To: en.Applied})
		}
	}
	if err != nil {
		return undo, fmt.Errorf("apply the plan (%s): %w", side, err)
	}
	return undo, nil
}

// rollBack restores the values saved in a rollback file, as netdrop tune
// --rollback does, and removes the file. Nothing but the lab changes a
// lab namespace, and the host-wide values are the lab's under its lock, so
// a value changed since the fix is an error here, not a choice to respect.
func rollBack(sys tune.Kernel, path string) error {
	rb, err := tune.ReadRollback(path)
	if err != nil {
		return err
	}
	out, err := tune.RollbackFrom(sys, rb)
	if err != nil {
		return fmt.Errorf("rollback from %s: %w", path, err)
	}
	var errs []error
	for _, o := range out {
		if o.Outcome == tune.ChangedSince {
			errs = append(errs, fmt.Errorf("rollback from %s: %s changed since the fix (now %s), left as it is", path, o.Setting, o.Now))
		}
	}
	return errors.Join(append(errs, os.Remove(path))...)
}

// removeStaleRollbacks removes rollback files a killed --fix run left. The
// host-wide values they hold are in the journal, which restores them; the
// namespaces their other values belonged to are gone.
func removeStaleRollbacks() error {
	stale, err := filepath.Glob(filepath.Join(StateDir, rollbackPrefix+"*.json"))
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostView is the part of the diagnosis netdrop tune on the host would act
// on for this scenario: the findings at the scenario's stage, with only the
// sysctls the diagnosed namespace cannot change itself (a host-wide
// finding's, or a setting read-only or absent there). For a diagnosis of
// the host it is the stage's findings with their sysctls and application
// changes.
func hostView(r *diagnose.Report, s Scenario, ns string) *diagnose.Report {
	out := &diagnose.Report{Netns: "", IntervalS: r.IntervalS}
	nsSys := tune.Kernel{Netns: nsTarget(ns)}
	for _, f := range r.Findings {
		if f.Stage != s.Stage || f.HostWide && !s.HostWide {
			continue
		}
		var fixes []diagnose.Fix
		for _, fx := range f.Fix {
			if ns == "" && fx.Kind == diagnose.FixApp {
				fixes = append(fixes, fx)
				continue
			}
			if fx.Kind != diagnose.FixSetting || fx.Change == nil || fx.Change.Kind != diagnose.ChangeSysctl {
				continue
			}
			if ns != "" && !f.HostWide {
				err := nsSys.Check(tune.Setting{Kind: fx.Change.Kind, Target: fx.Change.Target})
				if !errors.Is(err, tune.ErrReadOnly) && !errors.Is(err, tune.ErrUnknown) {
					continue
				}
			}
			fixes = append(fixes, fx)
		}
		if len(fixes) == 0 {
			continue
		}
		f.Fix, f.HostWide, f.Advice, f.NotAutomatic = fixes, false, "", ""
		out.Findings = append(out.Findings, f)
	}
	return out
}

// stageFinding is the finding the --fix verdict measures: the one at the
// scenario's stage with the most drops, skipping host-wide ones unless the
// stage is host-wide (as the verdict of the diagnosis does).
func stageFinding(r *diagnose.Report, s Scenario) (diagnose.Finding, bool) {
	var best diagnose.Finding
	found := false
	for _, f := range r.Findings {
		if f.Stage != s.Stage || f.HostWide && !s.HostWide {
			continue
		}
		if !found || f.Drops > best.Drops || f.Drops == best.Drops && f.Severity > best.Severity {
			best, found = f, true
		}
	}
	return best, found
}

// movedLoss is the loss at stages other than the scenario's that the
// diagnosis after the fix shows beyond the one before, in findings of the
// scenario's own (host-wide ones only for a host-wide stage) of warning
// or above.
func movedLoss(before, after *diagnose.Report, s Scenario) (uint64, []stage.ID) {
	other := func(r *diagnose.Report) map[stage.ID]uint64 {
		m := map[stage.ID]uint64{}
		for _, f := range r.Findings {
			if f.Stage == s.Stage || f.HostWide && !s.HostWide || f.Severity < diagnose.Warning {
				continue
			}
			m[f.Stage] += f.Drops
		}
		return m
	}
	was := other(before)
	var total uint64
	var at []stage.ID
	for st, n := range other(after) {
		if n > was[st] {
			total += n - was[st]
			at = append(at, st)
		}
	}
	slices.Sort(at)
	return total, at
}

// notAutomatic is the finding's own reason why netdrop does not remove its
// loss: the declaration that made it expected (nothing to fix), else the
// finding's own reason, else those of its manual fixes.
func notAutomatic(f diagnose.Finding) string {
	if f.Expected != "" {
		return "the drops are declared intended (--expect " + f.Expected + "): there is nothing to fix"
	}
	if f.NotAutomatic != "" {
		return f.NotAutomatic
	}
	var why []string
	for _, fx := range f.Fix {
		if fx.Kind == diagnose.FixManual && fx.NotAutomatic != "" {
			why = append(why, fx.NotAutomatic)
		}
	}
	return strings.Join(why, "; ")
}

// fixVerdict applies the pass rule of --fix.
func fixVerdict(fr *FixResult) (bool, string) {
	switch {
	case fr.Error != "":
		return false, "the fix could not be tried: " + fr.Error
	case len(fr.Applied) == 0 && fr.NotAutomatic != "":
		return true, "not automatic: " + fr.NotAutomatic
	case len(fr.Applied) == 0:
		return false, "nothing was applied and the finding does not say why its fix is not automatic"
	case fr.DropsBefore == 0:
		// A stage without a packet count (ports in use): the finding
		// itself must be gone, or no longer a warning, and no loss
		// appear elsewhere instead.
		if fr.DropsElsewhereAfter > 0 {
			return false, fmt.Sprintf("%d drops at %s after the fix", fr.DropsElsewhereAfter, joinStages(fr.ElsewhereStages))
		}
		if fr.SeverityAfter == "" || fr.SeverityAfter == diagnose.Info.String() {
			return true, fmt.Sprintf("the %s finding is gone after the fix", orNone(fr.SeverityBefore))
		}
		return false, fmt.Sprintf("the finding is still %s after the fix", fr.SeverityAfter)
	}
	// Loss the fix moved to another stage is loss all the same.
	left := fr.DropsAfter + fr.DropsElsewhereAfter
	fell := 1 - float64(left)/float64(fr.DropsBefore)
	if left > fr.DropsBefore {
		fell = -float64(left-fr.DropsBefore) / float64(fr.DropsBefore)
	}
	msg := fmt.Sprintf("%d → %d drops (%s)", fr.DropsBefore, left, percent(fell))
	if fr.DropsElsewhereAfter > 0 {
		msg = fmt.Sprintf("%d → %d drops (%s; %d of them moved to %s)", fr.DropsBefore, left, percent(fell), fr.DropsElsewhereAfter, joinStages(fr.ElsewhereStages))
	}
	if fell >= FixReduction {
		return true, msg
	}
	return false, msg + fmt.Sprintf(", less than the %.0f%% a fix must remove", FixReduction*100)
}

func joinStages(ids []stage.ID) string {
	var out []string
	for _, id := range ids {
		out = append(out, string(id))
	}
	return strings.Join(out, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(no)"
	}
	return s
}

// percent prints a change of the loss: "-100%", "-93.5%", "+4%".
func percent(fell float64) string {
	p := -fell * 100
	switch {
	case p == math.Trunc(p):
		return fmt.Sprintf("%+.0f%%", p)
	}
	return fmt.Sprintf("%+.1f%%", p)
}

// appSocket is a socket of the lab's own applications.
type appSocket struct {
	node *Node
	fd   int
	typ  int // SOCK_DGRAM or SOCK_STREAM
}

// applyApp makes an application change on the lab's sockets it names: in
// the diagnosed namespace (any lab namespace for a diagnosis of the host),
// of the change's protocol, at its local address when it names one. It
// returns how many sockets it changed; none is an error, since the advice
// then names no socket the lab owns.
func (e *Env) applyApp(ns string, a diagnose.AppChange) (int, error) {
	e.mu.Lock()
	socks := append([]appSocket(nil), e.apps...)
	e.mu.Unlock()
	want := map[string]int{"udp": unix.SOCK_DGRAM, "tcp": unix.SOCK_STREAM}
	v := int(min(a.Value, math.MaxInt32))
	n := 0
	for _, s := range socks {
		if ns != "" && s.node.NS != ns {
			continue
		}
		if t, ok := want[a.Proto]; ok && s.typ != t {
			continue
		}
		if a.Socket != "" && localAddr(s.fd) != a.Socket {
			continue
		}
		var err error
		switch a.Param {
		case diagnose.AppRcvbuf:
			err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, v)
		case diagnose.AppSndbuf:
			err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, v)
		case diagnose.AppPacingRate:
			err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, v)
		case diagnose.AppListenBacklog:
			if on, _ := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); on != 1 {
				continue
			}
			// listen() on a listening socket sets its backlog anew.
			err = unix.Listen(s.fd, v)
		default:
			return n, fmt.Errorf("application change %s: the lab has no knob for it", a)
		}
		if err != nil {
			return n, fmt.Errorf("application change %s: %w", a, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("application change %s: no socket of the lab's applications matches it", a)
	}
	return n, nil
}

// drainApps reads, without waiting, whatever the lab's UDP sockets hold:
// the applications have read what the first run of the traffic left, so
// the run after a fix starts from sockets as empty as the first run found
// them (a full buffer left over is not a loss of the second run).
func (e *Env) drainApps() {
	e.mu.Lock()
	socks := append([]appSocket(nil), e.apps...)
	e.mu.Unlock()
	buf := make([]byte, 65536)
	for _, s := range socks {
		if s.typ != unix.SOCK_DGRAM {
			continue
		}
		for {
			if _, _, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT); err != nil && !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
}

// localAddr is a socket's local address as sock_diag prints it
// ("10.231.0.2:5002"), "" when it has none.
func localAddr(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return ""
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	}
	return ""
}
