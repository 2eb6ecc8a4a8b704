package diagnose

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/netdrop/netdrop/stage"
)

// Expect declares drops a user intends: an explicit DROP rule, a port scan
// hitting closed ports. Findings it matches stay in the report, with their
// counts, but as information with the reason "expected": they no longer
// compete with real loss for attention nor set the exit code.
//
// Written STAGE[:MATCH] (netdrop diagnose --expect, netdrop exporter
// --expect). Without MATCH every finding at the stage is expected. MATCH is
// looked for, as whole words and ignoring case, in the finding's title and
// evidence: a firewall rule's handle ("handle 7"), comment or text ("udp
// dport 9999"), a port, an interface, a drop reason (NO_SOCKET), a socket.
type Expect struct {
	Stage stage.ID `json:"stage"`
	Match string   `json:"match,omitempty"`
}

// String gives the declaration back as written.
func (e Expect) String() string {
	if e.Match == "" {
		return string(e.Stage)
	}
	return string(e.Stage) + ":" + e.Match
}

// ParseExpect reads STAGE[:MATCH].
func ParseExpect(s string) (Expect, error) {
	st, match, _ := strings.Cut(s, ":")
	st = strings.TrimSpace(st)
	if !stage.Valid(stage.ID(st)) {
		var ids []string
		for _, s := range stage.All() {
			ids = append(ids, string(s.ID))
		}
		return Expect{}, fmt.Errorf("expect %q: unknown stage %q (one of %s)", s, st, strings.Join(ids, ", "))
	}
	return Expect{Stage: stage.ID(st), Match: strings.TrimSpace(match)}, nil
}

// ParseExpects reads every declaration, failing on the first bad one.
func ParseExpects(ss []string) ([]Expect, error) {
	var out []Expect
	for _, s := range ss {
		e, err := ParseExpect(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// MarkExpected applies the declarations to r's findings and ranks them
// again. A finding matched as a whole becomes information with the reason
// "expected". When only some of a finding's counters match and its drops
// are their sum (firewall rules: each rule its own counter), it is split:
// the matching rules become an expected finding and the rest keeps its
// severity, graded again on what is left.
func MarkExpected(r *Report, exps []Expect) {
	if len(exps) == 0 {
		return
	}
	var out []Finding
	for _, f := range r.Findings {
		out = append(out, expectOne(f, exps, r.IntervalS)...)
	}
	r.Findings = out
	rank(r.Findings)
}

// expectOne returns f unchanged, expected, or split in two.
func expectOne(f Finding, exps []Expect, intervalS float64) []Finding {
	for _, e := range exps {
		if e.Stage != f.Stage {
			continue
		}
		if e.Match == "" || hasWord(f.Title, e.Match) && !partial(f, e) {
			return []Finding{expected(f, e)}
		}
		var hit, rest []Evidence
		var hitDrops, counted uint64
		for _, ev := range f.Evidence {
			if ev.Source == SourceTracer {
				continue
			}
			counted += ev.Delta
			if hasWord(ev.Name(), e.Match) {
				hit = append(hit, ev)
				hitDrops += ev.Delta
			} else {
				rest = append(rest, ev)
			}
		}
		switch {
		case len(hit) == 0:
			if anyWord(f.Evidence, e.Match) { // a tracer row matched
				return []Finding{expected(f, e)}
			}
			continue
		case len(rest) == 0:
			return []Finding{expected(f, e)}
		case counted != f.Drops:
			// The counters overlap (one packet in several), so the
			// matched share of the drops is unknown: the finding stays
			// as it is, with a note.
			f.Notes = append(f.Notes, fmt.Sprintf("--expect %s matches only part of this finding's evidence; it stays unexpected", e))
			return []Finding{f}
		}
		x := f
		x.Evidence, x.Drops = hit, hitDrops
		x.Title = fmt.Sprintf("%d of the %d: %s", hitDrops, f.Drops, f.Title)
		x.Fix, x.Changes = nil, nil
		f.Evidence = append(rest, traceEvidence(f.Evidence)...)
		f.Drops -= hitDrops
		if intervalS > 0 {
			f.Rate = float64(f.Drops) / intervalS
			x.Rate = float64(x.Drops) / intervalS
		}
		f.Severity = regrade(f.Severity, f.Drops, intervalS)
		return append([]Finding{f}, expected(x, e))
	}
	return []Finding{f}
}

// partial reports whether some of the finding's counters match and some
// do not: then the evidence decides, not the title.
func partial(f Finding, e Expect) bool {
	var hits, misses int
	for _, ev := range f.Evidence {
		switch {
		case ev.Source == SourceTracer:
		case hasWord(ev.Name(), e.Match):
			hits++
		default:
			misses++
		}
	}
	return hits > 0 && misses > 0
}

// expected marks f as declared intended.
func expected(f Finding, e Expect) Finding {
	f.Severity = Info
	f.Expected = e.String()
	f.Notes = append(f.Notes, "expected: declared intended with --expect "+e.String())
	return f
}

// regrade grades what is left of a split finding as the rules would have:
// never above what it was.
func regrade(was Severity, drops uint64, intervalS float64) Severity {
	in := &input{}
	if intervalS > 0 {
		in.interval = time.Duration(intervalS * float64(time.Second))
	}
	return atMost(in.lossSeverity(drops), was)
}

func traceEvidence(evs []Evidence) []Evidence {
	var out []Evidence
	for _, ev := range evs {
		if ev.Source == SourceTracer {
			out = append(out, ev)
		}
	}
	return out
}

func anyWord(evs []Evidence, w string) bool {
	for _, ev := range evs {
		if hasWord(ev.Name(), w) {
			return true
		}
	}
	return false
}

// hasWord reports whether w occurs in s, ignoring case, not as part of a
// longer word or number: "9999" matches "udp dport 9999 drop" but not
// "dport 19999".
func hasWord(s, w string) bool {
	if w == "" {
		return false
	}
	ls, lw := strings.ToLower(s), strings.ToLower(w)
	for i := 0; ; {
		j := strings.Index(ls[i:], lw)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(lw)
		if (start == 0 || !wordRune(ls[start-1])) && (end == len(ls) || !wordRune(ls[end])) {
			return true
		}
		i = start + 1
	}
}

func wordRune(b byte) bool {
	return b == '_' || unicode.IsLetter(rune(b)) || unicode.IsDigit(rune(b))
}
