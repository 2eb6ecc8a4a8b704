package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/netdrop/netdrop/counters"
)

// encoderIndent is what writeJSON must print: json.Encoder's own indent.
func encoderIndent(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

type jsonSample struct {
	Name    string            `json:"name"`
	Empty   []int             `json:"empty"`
	Nil     []int             `json:"nil"`
	Obj     map[string]any    `json:"obj"`
	EmptyOb map[string]string `json:"empty_obj"`
	Raw     json.RawMessage   `json:"raw"`
	Ptr     *jsonSample       `json:"ptr,omitempty"`
	F       float64           `json:"f"`
	B       bool              `json:"b"`
}

func TestWriteJSONMatchesEncoder(t *testing.T) {
	tricky := `a "quoted" \ back\\slash, {brace} [bracket]: colon <html> & 'amp' é ✓ ` + "\t\n\u2028"
	tests := []struct {
		name string
		v    any
	}{
		{"null", nil},
		{"number", 42},
		{"string", tricky},
		{"empty array", []int{}},
		{"empty object", map[string]int{}},
		{"nested empties", []any{[]any{}, map[string]any{}, []any{[]any{}}}},
		{"struct", jsonSample{
			Name: tricky, Empty: []int{}, Obj: map[string]any{"k:\"{": []any{1, "x", nil, true, map[string]any{}}, tricky: tricky},
			EmptyOb: map[string]string{}, Raw: json.RawMessage(" { \"a\" : [ 1 , 2 ] , \"b\" : { } } "),
			Ptr: &jsonSample{Name: "inner", Raw: json.RawMessage(`"s"`)}, F: 1e-9, B: true,
		}},
		{"snapshot", &counters.Snapshot{Counters: []counters.Counter{{Source: counters.ProcNetSNMP, Field: "Udp:NoPorts", Value: 7}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := writeJSON(&got, tt.v); err != nil {
				t.Fatal(err)
			}
			if want := encoderIndent(t, tt.v); got.String() != want {
				t.Errorf("writeJSON =\n%s\nwant (json.Encoder)\n%s", got.String(), want)
			}
		})
	}
}

// Random nested values, against the Encoder.
func TestWriteJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune(`ab"\{}[]:,<>& é` + "\n\x01")
	str := func() string {
		var sb strings.Builder
		for range r.IntN(6) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return sb.String()
	}
	var gen func(depth int) any
	gen = func(depth int) any {
		k := r.IntN(7)
		if depth > 4 {
			k = r.IntN(4)
		}
		switch k {
		case 0:
			return nil
		case 1:
			return r.Float64() * 1e6
		case 2:
			return str()
		case 3:
			return r.IntN(2) == 0
		case 4, 5:
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = gen(depth + 1)
			}
			return a
		default:
			m := map[string]any{}
			for range r.IntN(4) {
				m[str()] = gen(depth + 1)
			}
			return m
		}
	}
	for i := range 2000 {
		v := gen(0)
		var got bytes.Buffer
		if err := writeJSON(&got, v); err != nil {
			t.Fatal(err)
		}
		if want := encoderIndent(t, v); got.String() != want {
			t.Fatalf("value %d: writeJSON =\n%q\nwant\n%q", i, got.String(), want)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("disk full")
}

// A write error reaches the caller; a value that cannot be encoded writes
// nothing.
func TestWriteJSONErrors(t *testing.T) {
	big := make([]string, 20000)
	if err := writeJSON(&failWriter{}, big); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write error: got %v", err)
	}
	fw := &failWriter{}
	if err := writeJSON(fw, map[string]any{"f": func() {}}); err == nil || fw.n != 0 {
		t.Errorf("unencodable value: err %v after %d writes, want an error and no write", err, fw.n)
	}
}
