package counters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSysctlSource(t *testing.T) {
	s, err := collectOne(t, "linux-6.18", SysctlSource{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"net.core.rmem_max":                 "4194304",
		"net.ipv4.tcp_rmem":                 "4096\t131072\t33554432",
		"net.ipv4.ip_local_port_range":      "32768\t60999",
		"net.netfilter.nf_conntrack_max":    "262144",
		"net.ipv4.neigh.default.gc_thresh3": "1024",
		"net.core.somaxconn":                "4096",
	}
	got := map[string]string{}
	for k := range want {
		got[k] = s.Sysctls[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sysctls (-want +got):\n%s", diff)
	}
	if len(s.Sysctls) != len(SysctlNames) {
		t.Errorf("%d sysctls read, the fixture has all %d", len(s.Sysctls), len(SysctlNames))
	}
	if len(s.Unavailable) != 0 {
		t.Errorf("unavailable = %v", s.Unavailable)
	}
}

func TestSysctlBroken(t *testing.T) {
	s, err := collectOne(t, "broken", SysctlSource{})
	if err != nil {
		t.Fatal(err)
	}
	// Missing ones are simply absent; the two-line file and the directory
	// are reported; the good one is kept.
	want := map[string]string{"net.ipv4.tcp_syncookies": "1", "net.netfilter.nf_conntrack_max": "65536"}
	if diff := cmp.Diff(want, s.Sysctls); diff != "" {
		t.Errorf("sysctls (-want +got):\n%s", diff)
	}
	rs := unavailable(s, ProcSys)
	if len(rs) != 2 {
		t.Fatalf("unavailable = %q, want 2", rs)
	}
	if !strings.Contains(strings.Join(rs, "\n"), "net.ipv4.tcp_rmem: "+ErrFileParse.Error()) {
		t.Errorf("reasons %q do not name net.ipv4.tcp_rmem as malformed", rs)
	}
}

func TestSysctlNoneThere(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc", "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{}
	if err := (SysctlSource{}).Collect(t.Context(), NewReading(NewFS(root)), s); err != nil || len(s.Sysctls) != 0 || len(s.Unavailable) != 0 {
		t.Errorf("err %v sysctls %v unavailable %v: missing sysctls are simply absent", err, s.Sysctls, s.Unavailable)
	}
}

func FuzzParseSysctl(f *testing.F) {
	f.Add("212992\n")
	f.Add("4096\t131072\t33554432\n")
	f.Add("a\nb\n")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := parseSysctl(strings.NewReader(in))
		if err == nil && strings.Contains(v, "\n") {
			t.Fatalf("value %q holds a newline", v)
		}
	})
}
