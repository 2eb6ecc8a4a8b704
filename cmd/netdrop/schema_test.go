package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

const schemaFile = "../../docs/diagnose.schema.json"

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// diagnoseSchema compiles docs/diagnose.schema.json once, with formats
// (date-time) asserted.
func diagnoseSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		f, err := os.Open(schemaFile)
		if err != nil {
			schemaErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if schemaErr = c.AddResource("diagnose.schema.json", doc); schemaErr != nil {
			return
		}
		schema, schemaErr = c.Compile("diagnose.schema.json")
	})
	if schemaErr != nil {
		t.Fatalf("%s: %v", schemaFile, schemaErr)
	}
	return schema
}

// validateDiagnosis checks one diagnose --json output against the schema,
// and what a schema cannot say: the stages are this build's, in path order;
// the host, kernel and start time are this machine's and now.
func validateDiagnosis(t *testing.T, out string) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if err := diagnoseSchema(t).Validate(inst); err != nil {
		t.Fatalf("diagnose --json does not match %s:\n%v\n%s", schemaFile, err, out)
	}
	var r struct {
		Host      string    `json:"host"`
		Kernel    string    `json:"kernel"`
		StartedAt time.Time `json:"started_at"`
		Stages    []struct {
			Stage stage.ID `json:"stage"`
		} `json:"stages"`
		Findings []struct {
			Stage stage.ID `json:"stage"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for i, s := range stage.All() {
		if i >= len(r.Stages) || r.Stages[i].Stage != s.ID {
			t.Errorf("stages are not stage.All() in order: %+v", r.Stages)
			break
		}
	}
	for _, f := range r.Findings {
		if !stage.Valid(f.Stage) {
			t.Errorf("finding at unknown stage %q", f.Stage)
		}
	}
	host, _ := os.Hostname()
	var u unix.Utsname
	_ = unix.Uname(&u)
	if r.Host != host || r.Kernel != unix.ByteSliceToString(u.Release[:]) || r.Kernel == "" {
		t.Errorf("host %q kernel %q, want %q and %q", r.Host, r.Kernel, host, unix.ByteSliceToString(u.Release[:]))
	}
	if age := time.Since(r.StartedAt); age < 0 || age > 10*time.Minute || r.StartedAt.Location() != time.UTC {
		t.Errorf("started_at %s is not a UTC time of this run", r.StartedAt)
	}
}

// TestDiagnoseSchema validates real output of both modes, totals since boot
// and an interval, against the checked-in schema; as root with BTF the
// interval also carries the tracer's evidence, and TestNetnsEndToEnd
// validates a report with findings from real drops.
func TestDiagnoseSchema(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{
		{"diagnose", "--once", "--json"},
		{"diagnose", "--interval", "300ms", "--json"},
	} {
		out, stderr, code := run(t, exec.Command(bin, args...))
		if code == 2 {
			t.Fatalf("netdrop %v: exit 2: %s", args, stderr)
		}
		validateDiagnosis(t, out)
	}
}

// TestSchemaRejects makes sure the schema is not vacuous: a report without
// the fields a reader relies on, or with a field it does not document, is
// refused.
func TestSchemaRejects(t *testing.T) {
	sch := diagnoseSchema(t)
	good := `{"schema_version":1,"host":"h","kernel":"6.18.0","started_at":"2026-12-05T10:00:00Z","interval_s":5,"netns":"current",
		"findings":[{"stage":"qdisc","severity":"critical","title":"t","drops":1,"rate_per_s":0.2,"evidence":[{"source":` + strconv.Quote(string(counters.NetlinkQdisc)) + `,"object":"eth0 root","field":"drops","delta":1}],"cause":"c","fix":[]}],
		"stages":[{"stage":"qdisc","drops":1,"rate_per_s":0.2}],"unavailable":[],"traced":false}`
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"good", good, true},
		{"no schema_version", strings.Replace(good, `"schema_version":1,`, "", 1), false},
		{"started_at not a time", strings.Replace(good, `"2026-12-05T10:00:00Z"`, `"yesterday"`, 1), false},
		{"old evidence shape", strings.Replace(good, `"field":"drops"`, `"counter":"eth0 root drops"`, 1), false},
		{"unknown severity", strings.Replace(good, `"critical"`, `"bad"`, 1), false},
		{"undocumented field", strings.Replace(good, `"traced":false`, `"traced":false,"extra":1`, 1), false},
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := sch.Validate(inst); (err == nil) != tc.ok {
			t.Errorf("%s: valid = %v, want %v (%v)", tc.name, err == nil, tc.ok, err)
		}
	}
}
