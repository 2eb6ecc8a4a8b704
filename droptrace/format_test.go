package droptrace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readFormatFixture(t *testing.T, name string) Format {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata/format", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseFormat(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return got
}

// TestKfreeSkbLayout checks the record offsets on the layouts the
// tracepoint had: protocol first (old kernels), no reason (before 5.17),
// reason at 28 (5.17), rx_sk inserted and reason at 36 (6.11+, here 6.18).
func TestKfreeSkbLayout(t *testing.T) {
	tests := []struct {
		file string
		want Layout
	}{
		{"linux-3.x-protocol-first.format", Layout{Skbaddr: 8, Protocol: 16, Location: 24, Reason: -1, RxSk: -1}},
		{"linux-5.15.format", Layout{Skbaddr: 8, Location: 16, Protocol: 24, Reason: -1, RxSk: -1}},
		{"linux-5.17.format", Layout{Skbaddr: 8, Location: 16, Protocol: 24, Reason: 28, RxSk: -1}},
		{"linux-6.18.format", Layout{Skbaddr: 8, Location: 16, Protocol: 32, Reason: 36, RxSk: 24}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := readFormatFixture(t, tt.file)
			if f.Name != "kfree_skb" {
				t.Errorf("name %q, want kfree_skb", f.Name)
			}
			got, err := KfreeSkbLayout(f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("layout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFormatFields(t *testing.T) {
	f := readFormatFixture(t, "linux-6.18.format")
	want := []FormatField{
		{Type: "unsigned short", Name: "common_type", Offset: 0, Size: 2},
		{Type: "unsigned char", Name: "common_flags", Offset: 2, Size: 1},
		{Type: "unsigned char", Name: "common_preempt_count", Offset: 3, Size: 1},
		{Type: "int", Name: "common_pid", Offset: 4, Size: 4, Signed: true},
		{Type: "void *", Name: "skbaddr", Offset: 8, Size: 8},
		{Type: "void *", Name: "location", Offset: 16, Size: 8},
		{Type: "void *", Name: "rx_sk", Offset: 24, Size: 8},
		{Type: "unsigned short", Name: "protocol", Offset: 32, Size: 2},
		{Type: "enum skb_drop_reason", Name: "reason", Offset: 36, Size: 4},
	}
	if diff := cmp.Diff(want, f.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if f.ID != 2310 {
		t.Errorf("ID %d, want 2310", f.ID)
	}
}

func TestParseFormatBroken(t *testing.T) {
	f, err := os.Open("testdata/format/broken-no-location.format")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = ParseFormat(f)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("err = %v, want ErrFormat naming the protocol field", err)
	}
	// A well-formed file without location is refused by the layout.
	ff, err := ParseFormat(strings.NewReader("name: kfree_skb\nformat:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KfreeSkbLayout(ff); !errors.Is(err, ErrFormat) {
		t.Fatalf("layout without location: err = %v, want ErrFormat", err)
	}
	// A field of the wrong size is refused rather than read wrongly.
	ff, _ = ParseFormat(strings.NewReader("format:\n\tfield:void * skbaddr;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;\n"))
	if _, err := KfreeSkbLayout(ff); !errors.Is(err, ErrFormat) {
		t.Fatalf("4-byte skbaddr: err = %v, want ErrFormat", err)
	}
	if _, err := ParseFormat(strings.NewReader("")); !errors.Is(err, ErrFormat) {
		t.Fatalf("empty file: err = %v, want ErrFormat", err)
	}
}

func TestPrintSymbolic(t *testing.T) {
	tests := []struct {
		file  string
		n     int
		check map[uint64]string
	}{
		{"linux-5.17.format", 13, map[uint64]string{0: "NOT_SPECIFIED", 1: "NO_SOCKET", 6: "NETFILTER_DROP", 12: "MAX"}},
		{"linux-6.18.format", 127, map[uint64]string{2: "NOT_SPECIFIED", 3: "NO_SOCKET", 12: "NETFILTER_DROP", 64: "QDISC_DROP", 71: "CPU_BACKLOG", 128: "MAX"}},
		{"linux-5.15.format", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := readFormatFixture(t, tt.file)
			got, err := PrintSymbolic(f.PrintFmt, "reason")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.n {
				t.Errorf("%d entries, want %d", len(got), tt.n)
			}
			for v, name := range tt.check {
				if got[v] != name {
					t.Errorf("value %d = %q, want %q", v, got[v], name)
				}
			}
		})
	}
	bad := []string{
		`__print_symbolic(REC->reason, { 2, "A" }`,
		`__print_symbolic(REC->reason, { x, "A" })`,
		`__print_symbolic(REC->reason, { 2, A })`,
		`__print_symbolic(REC->reason, { 2 "A" })`,
		`__print_symbolic(REC->reason, ( 2, "A" ))`,
	}
	for _, s := range bad {
		if _, err := PrintSymbolic(s, "reason"); !errors.Is(err, ErrFormat) {
			t.Errorf("PrintSymbolic(%q): err = %v, want ErrFormat", s, err)
		}
	}
}

func TestReasonsFromFormat(t *testing.T) {
	r, err := ReasonsFromFormat(readFormatFixture(t, "linux-5.17.format"))
	if err != nil {
		t.Fatal(err)
	}
	// 5.17 numbered NETFILTER_DROP 6; 6.18 numbers it 12.
	if got := r.Name(6); got != "NETFILTER_DROP" {
		t.Errorf("5.17 reason 6 = %q", got)
	}
	r18, err := ReasonsFromFormat(readFormatFixture(t, "linux-6.18.format"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r18.Name(12); got != "NETFILTER_DROP" {
		t.Errorf("6.18 reason 12 = %q", got)
	}
	if c, ok := r18.Code("skb_drop_reason_no_socket"); !ok || c != 3 {
		t.Errorf("Code(skb_drop_reason_no_socket) = %d, %v; want 3", c, ok)
	}
	if r18.Source != "tracefs" {
		t.Errorf("source %q", r18.Source)
	}
	if _, err := ReasonsFromFormat(readFormatFixture(t, "linux-5.15.format")); !errors.Is(err, ErrNoReasons) {
		t.Errorf("5.15: err = %v, want ErrNoReasons", err)
	}
}

func FuzzParseFormat(f *testing.F) {
	for _, name := range []string{"linux-3.x-protocol-first.format", "linux-5.15.format", "linux-5.17.format", "linux-6.18.format", "broken-no-location.format"} {
		b, err := os.ReadFile(filepath.Join("testdata/format", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ff, err := ParseFormat(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if l, err := KfreeSkbLayout(ff); err == nil && (l.Skbaddr < 0 || l.Location < 0 || l.Skbaddr+8 > maxRecord) {
			t.Fatalf("layout %+v out of range", l)
		}
		_, _ = PrintSymbolic(ff.PrintFmt, "reason")
		_, _ = ReasonsFromFormat(ff)
	})
}
