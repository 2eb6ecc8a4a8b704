package droptrace

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKallsyms(t *testing.T) {
	f, err := os.Open("testdata/kallsyms/linux-6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseKallsyms(f)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr uint64
		want Sym
		ok   bool
	}{
		{0xffffffff81f62a50 + 0x4a3, Sym{Name: "nft_do_chain", Offset: 0x4a3}, true},
		{0xffffffff82046290, Sym{Name: "__udp4_lib_rcv"}, true},
		{0xffffffff81e62cf0 + 0xd01, Sym{Name: "__dev_queue_xmit", Offset: 0xd01}, true},
		{0xffffffffc0203000 + 8, Sym{Name: "ftrace_trampoline", Offset: 8, Module: "__builtin__ftrace"}, true},
		// Data symbols are skipped: an address past __udp4_lib_rcv in
		// rodata resolves to the last text symbol before it.
		{0xffffffff82400010, Sym{Name: "__udp4_lib_rcv", Offset: 0xffffffff82400010 - 0xffffffff82046290}, true},
		{0x1000, Sym{}, false},
	}
	for _, tt := range tests {
		got, ok := s.Resolve(tt.addr)
		if ok != tt.ok {
			t.Errorf("Resolve(%#x) ok = %v", tt.addr, ok)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Resolve(%#x) (-want +got):\n%s", tt.addr, diff)
		}
	}
	if got := (Sym{Name: "nft_do_chain", Offset: 0x4a3}).String(); got != "nft_do_chain+0x4a3" {
		t.Errorf("String = %q", got)
	}
	if got := (Sym{Name: "veth_xmit", Offset: 0x10, Module: "veth"}).String(); got != "veth_xmit+0x10 [veth]" {
		t.Errorf("String = %q", got)
	}
}

func TestKallsymsHidden(t *testing.T) {
	f, err := os.Open("testdata/kallsyms/kptr-restricted.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := ParseKallsyms(f); !errors.Is(err, ErrKallsymsHidden) {
		t.Fatalf("err = %v, want ErrKallsymsHidden", err)
	}
	for _, bad := range []string{"zzzz T foo\n", "ffff T\n", ""} {
		if _, err := ParseKallsyms(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseKallsyms(%q): no error", bad)
		}
	}
}

// TestHiddenWhy checks the advice names the setting that hides the
// addresses in each configuration kallsyms_show_value distinguishes.
func TestHiddenWhy(t *testing.T) {
	for _, tc := range []struct {
		kptr, paranoid int
		want           []string
		not            string
	}{
		{0, 2, []string{"CAP_SYSLOG", "perf_event_paranoid <= 1", "it is 2"}, "kptr_restrict=1"},
		{0, 3, []string{"CAP_SYSLOG", "it is 3"}, ""},
		{1, -1, []string{"kptr_restrict=1", "CAP_SYSLOG"}, "perf_event_paranoid"},
		{2, 1, []string{"kptr_restrict=2", "root included", "sysctl -w kernel.kptr_restrict=1"}, ""},
		{-1, -1, []string{"CAP_SYSLOG", "kptr_restrict", "perf_event_paranoid"}, ""},
	} {
		got := hiddenWhy(tc.kptr, tc.paranoid)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("hiddenWhy(%d, %d) = %q, want it to contain %q", tc.kptr, tc.paranoid, got, w)
			}
		}
		if tc.not != "" && strings.Contains(got, tc.not) {
			t.Errorf("hiddenWhy(%d, %d) = %q, must not contain %q", tc.kptr, tc.paranoid, got, tc.not)
		}
	}
}

func FuzzParseKallsyms(f *testing.F) {
	b, err := os.ReadFile("testdata/kallsyms/linux-6.18.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint64(0xffffffff81f62a60))
	f.Add([]byte("0 T a\n"), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, addr uint64) {
		s, err := ParseKallsyms(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if sym, ok := s.Resolve(addr); ok && sym.Offset > addr {
			t.Fatalf("offset %d beyond address %d", sym.Offset, addr)
		}
	})
}

func FuzzPrintSymbolic(f *testing.F) {
	f.Add(`"x", __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 0x3, "NO_SOCKET" })`)
	f.Add(`__print_symbolic(REC->reason, {`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = PrintSymbolic(s, "reason")
	})
}
