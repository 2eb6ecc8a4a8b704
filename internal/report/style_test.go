package report

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestDiagnosisColor checks that colour only adds SGR sequences (the text
// without them is the plain report, byte for byte) and that they mark the
// severity, the stage that dropped and the title.
func TestDiagnosisColor(t *testing.T) {
	r := &diagnose.Report{IntervalS: 1, Findings: []diagnose.Finding{
		{Stage: stage.Qdisc, Severity: diagnose.Critical, Title: "qdisc drops", Drops: 10, Rate: 10},
		{Stage: stage.Softirq, Severity: diagnose.Warning, Title: "time squeeze"},
		{Stage: stage.TCP, Severity: diagnose.Info, Title: "retransmissions"},
	}}
	for _, s := range stage.All() {
		d := diagnose.StageDrops{Stage: s.ID}
		if s.ID == stage.Qdisc {
			d.Drops, d.Rate = 10, 10
		}
		r.Stages = append(r.Stages, d)
	}
	var plain, color strings.Builder
	if err := Diagnosis(&plain, r); err != nil {
		t.Fatal(err)
	}
	if err := DiagnosisStyled(&color, r, Style{Color: true}); err != nil {
		t.Fatal(err)
	}
	if sgr.MatchString(plain.String()) {
		t.Errorf("plain report has escape sequences:\n%q", plain.String())
	}
	if diff := cmp.Diff(plain.String(), sgr.ReplaceAllString(color.String(), "")); diff != "" {
		t.Errorf("coloured report is not the plain one plus SGR (-plain +stripped):\n%s", diff)
	}
	for _, want := range []string{
		sgrBold + "netdrop diagnose — this host, 1.0s interval" + sgrReset,
		sgrRed + "qdisc [10/s]" + sgrReset,
		sgrRed + "[CRITICAL]" + sgrReset,
		sgrYellow + "[WARNING]" + sgrReset,
		sgrCyan + "[INFO]" + sgrReset,
		"socket-rcvbuf ·", // a stage without drops stays plain
	} {
		if !strings.Contains(color.String(), want) {
			t.Errorf("coloured report lacks %q:\n%q", want, color.String())
		}
	}
}

func TestVerdict(t *testing.T) {
	on, off := Style{Color: true}, Style{}
	for _, tc := range []struct{ got, want string }{
		{on.Verdict(true, "PASS"), sgrGreen + "PASS" + sgrReset},
		{on.Verdict(false, "FAIL"), sgrRed + "FAIL" + sgrReset},
		{off.Verdict(false, "FAIL"), "FAIL"},
		{on.Title(""), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
