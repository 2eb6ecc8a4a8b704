package counters

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseUintFile: the readers of one-number files (nf_conntrack_count,
// nf_conntrack_max and the like) accept exactly a decimal uint64 with space
// around it in the first 64 bytes, give back its value, and fail with
// ErrFileParse on anything else.
func FuzzParseUintFile(f *testing.F) {
	f.Add("262144\n")
	f.Add("0\n")
	f.Add("18446744073709551615\n")
	f.Add("18446744073709551616\n")
	f.Add("-1\n")
	f.Add("  7 \t\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseUintFile(strings.NewReader(s))
		head := s[:min(len(s), 64)]
		want, werr := strconv.ParseUint(strings.TrimSpace(head), 10, 64)
		switch {
		case werr != nil && err == nil:
			t.Fatalf("%q read as %d", s, v)
		case werr != nil && !errors.Is(err, ErrFileParse):
			t.Fatalf("%q: %v, want a parse error", s, err)
		case werr == nil && (err != nil || v != want):
			t.Fatalf("%q read as %d, %v; want %d", s, v, err, want)
		}
		if err != nil {
			return
		}
		// What the kernel would print for that value reads back the same.
		if back, err := parseUintFile(strings.NewReader(strconv.FormatUint(v, 10) + "\n")); err != nil || back != v {
			t.Fatalf("%d printed and read back: %d, %v", v, back, err)
		}
	})
}

// FuzzReadTableNames: the x_tables *_tables_names files list one table name
// a line. Whatever the file holds, the names read are its lines, trimmed,
// blank ones left out, none holding a line break, and legacyXtables names
// every one of them.
func FuzzReadTableNames(f *testing.F) {
	f.Add("filter\nnat\nmangle\nraw\nsecurity\n")
	f.Add("")
	f.Add("\n\n filter \r\n")
	f.Add("nat")
	root := f.TempDir()
	fsys := NewFS(root)
	if err := os.MkdirAll(fsys.NetPath(), 0o755); err != nil {
		f.Fatal(err)
	}
	path := fsys.NetPath("ip_tables_names")
	f.Fuzz(func(t *testing.T, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		names, err := readTableNames(fsys, path)
		if err != nil {
			if len(content) <= maxLine {
				t.Fatalf("%q: %v", content, err)
			}
			return
		}
		var want []string
		for _, line := range strings.Split(content, "\n") {
			if n := strings.TrimSpace(line); n != "" {
				want = append(want, n)
			}
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Fatalf("names of %q (-want +got):\n%s", content, diff)
		}
		u := legacyXtables(fsys)
		if len(names) == 0 {
			if len(u) != 0 {
				t.Fatalf("no tables, but %+v", u)
			}
			return
		}
		if len(u) != 1 || u[0].Source != IptablesLegacy {
			t.Fatalf("tables %q: %+v, want one iptables-legacy entry", names, u)
		}
		for _, n := range names {
			if !strings.Contains(u[0].Reason, n) {
				t.Fatalf("reason %q does not name table %q", u[0].Reason, n)
			}
		}
	})
}
