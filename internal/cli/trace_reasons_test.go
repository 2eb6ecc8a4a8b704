package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/netdrop/netdrop/droptrace"
)

// TestTraceReasons lists the running kernel's reasons as text and JSON:
// every reason appears once with a stage or a class and a meaning.
func TestTraceReasons(t *testing.T) {
	rs, err := droptrace.KernelReasons("")
	if err != nil {
		t.Skipf("the kernel's drop reasons are not readable here (no BTF, tracefs not mounted or not root): %v", err)
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"trace", "--reasons", "--json"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Source  string `json:"source"`
		Reasons []struct {
			Value   uint32 `json:"value"`
			Reason  string `json:"reason"`
			Class   string `json:"class"`
			Stage   string `json:"stage"`
			Meaning string `json:"meaning"`
		} `json:"reasons"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got.Source != rs.Source || len(got.Reasons) == 0 {
		t.Fatalf("source %q with %d reasons, want %q and some", got.Source, len(got.Reasons), rs.Source)
	}
	seen := map[string]bool{}
	for _, r := range got.Reasons {
		if seen[r.Reason] {
			t.Errorf("%s listed twice", r.Reason)
		}
		seen[r.Reason] = true
		if r.Class == "" || r.Meaning == "" || (r.Class == "stage") != (r.Stage != "") {
			t.Errorf("%+v: want a class, a stage exactly when the class is stage, and a meaning", r)
		}
		if v, ok := rs.Code(r.Reason); !ok || v != r.Value {
			t.Errorf("%s: value %d, the kernel says %d (%v)", r.Reason, r.Value, v, ok)
		}
	}
	if c := got.Reasons; !seen["TC_INGRESS"] && len(c) > 100 {
		t.Errorf("TC_INGRESS missing from %d reasons", len(c))
	}

	out.Reset()
	if code := Main(context.Background(), []string{"trace", "--reasons"}, &out, &errb); code != ExitOK {
		t.Fatalf("text: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.HasPrefix(lines[0], "VALUE") || len(lines) < len(got.Reasons)+1 {
		t.Fatalf("text listing: %d lines for %d reasons:\n%s", len(lines), len(got.Reasons), out.String())
	}
	for _, l := range lines[1 : len(got.Reasons)+1] {
		if len(strings.Fields(l)) < 4 {
			t.Errorf("line without value, reason, place and meaning: %q", l)
		}
	}
}
