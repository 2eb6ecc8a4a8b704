package tune

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/safefile"
)

// applied makes a real rollback file: Apply of two sysctl changes on an
// in-memory system.
func applied(t *testing.T) (*MemSystem, string, map[string]string) {
	t.Helper()
	orig := map[string]string{
		"sysctl net.core.somaxconn":    "4096\n",
		"sysctl net.core.rmem_max":     "212992\n",
		"sysctl net.ipv4.tcp_tw_reuse": "2\n",
	}
	sys := mem(copyMap(orig))
	path := filepath.Join(t.TempDir(), "rb.json")
	if _, err := Apply(planOf(item(sysctl("net.core.somaxconn"), "8192"), item(sysctl("net.core.rmem_max"), "4194304"), item(sysctl("net.ipv4.tcp_tw_reuse"), "1")), sys, path); err != nil {
		t.Fatal(err)
	}
	sys.Writes = nil
	return sys, path, orig
}

// TestRollbackRefusesForeignFile is attack 1: a rollback file someone else
// could have written or swapped (writable by others, owned by nobody, a
// symlink, a second hard link) is refused before anything is read from it,
// and nothing is written.
func TestRollbackRefusesForeignFile(t *testing.T) {
	spoil := map[string]func(t *testing.T, path string) string{
		"mode 0666": func(t *testing.T, path string) string {
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
			return path
		},
		"mode 0620": func(t *testing.T, path string) string {
			if err := os.Chmod(path, 0o620); err != nil {
				t.Fatal(err)
			}
			return path
		},
		"symlink": func(t *testing.T, path string) string {
			link := path + ".link"
			if err := os.Symlink(path, link); err != nil {
				t.Fatal(err)
			}
			return link
		},
		"hard link": func(t *testing.T, path string) string {
			if err := os.Link(path, path+".copy"); err != nil {
				t.Fatal(err)
			}
			return path
		},
	}
	if os.Geteuid() == 0 {
		spoil["owned by nobody"] = func(t *testing.T, path string) string {
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	for name, f := range spoil {
		t.Run(name, func(t *testing.T) {
			sys, path, _ := applied(t)
			path = f(t, path)
			_, err := ReadRollback(path)
			if err == nil || !strings.Contains(err.Error(), "rollback file refused") {
				t.Fatalf("ReadRollback = %v, want refused", err)
			}
			if len(sys.Writes) != 0 {
				t.Errorf("writes after a refused file: %v", sys.Writes)
			}
		})
	}
}

// rollbackFile writes a root-owned, private rollback file naming setting s,
// as only root could: the content is the attack.
func rollbackFile(t *testing.T, s, raw, applied string) string {
	t.Helper()
	body := fmt.Sprintf(`{"version":1,"netns":"","created":"2026-01-01T00:00:00Z","entries":[{"setting":%s,"raw":%q,"value":"x","applied":%q}]}`,
		s, base64.StdEncoding.EncodeToString([]byte(raw)), applied)
	path := filepath.Join(t.TempDir(), "rb.json")
	if err := safefile.Create(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRollbackRefusesUnplannedSettings: even a file only root could write
// may name nothing tune does not plan itself. kernel.core_pattern stands for
// every setting outside networking (a "|/path" there runs a program as root);
// the in-memory system holds it, so a write would be seen, and none happens.
func TestRollbackRefusesUnplannedSettings(t *testing.T) {
	sys := mem(map[string]string{
		"sysctl kernel.core_pattern": "core\n",
		"sysctl vm.swappiness":       "60\n",
		"txqueuelen eth0":            "1000",
		"ring eth0 rx":               "256",
		"rps_cpus eth0 rx-0":         "0\n",
	})
	tests := []struct{ name, setting, raw, applied string }{
		{"core_pattern", `{"kind":"sysctl","target":"kernel.core_pattern"}`, "|/tmp/x %p\n", "core"},
		{"vm sysctl", `{"kind":"sysctl","target":"vm.swappiness"}`, "1\n", "60"},
		{"networking but not tune's", `{"kind":"sysctl","target":"net.core.bpf_jit_enable"}`, "0\n", "1"},
		{"sysctl slash path", `{"kind":"sysctl","target":"kernel/core_pattern"}`, "x\n", "core"},
		{"sysctl with a parameter", `{"kind":"sysctl","target":"net.core.somaxconn","param":"x"}`, "1\n", "2"},
		{"text into txqueuelen", `{"kind":"txqueuelen","target":"eth0"}`, "1000; reboot", "1000"},
		{"ring parameter", `{"kind":"ring","target":"eth0","param":"rx-jumbo-x"}`, "256", "512"},
		{"interface path", `{"kind":"ring","target":"../../x","param":"rx"}`, "256", "512"},
		{"rps mask text", `{"kind":"rps_cpus","target":"eth0 rx-0"}`, "ff\n/etc", "3"},
		{"no applied value", `{"kind":"sysctl","target":"net.core.somaxconn"}`, "4096\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := rollbackFile(t, tt.setting, tt.raw, tt.applied)
			rb, err := ReadRollback(path)
			if err == nil {
				_, err = RollbackFrom(sys, rb)
				t.Errorf("ReadRollback accepted %s (rollback: %v)", tt.setting, err)
			}
			if len(sys.Writes) != 0 {
				t.Errorf("writes: %v", sys.Writes)
			}
		})
	}
	// A Rollback built in code, not read from a file, is held to the same
	// rule.
	rb := &Rollback{Version: RollbackVersion, Entries: []Entry{{Setting: sysctl("kernel.core_pattern"), Raw: []byte("|/tmp/x\n"), Applied: "core"}}}
	if _, err := RollbackFrom(sys, rb); !errors.Is(err, ErrRefused) || len(sys.Writes) != 0 {
		t.Errorf("RollbackFrom(core_pattern) = %v, writes %v", err, sys.Writes)
	}
	// And Apply makes no change its rollback could not undo.
	if _, err := Apply(planOf(item(sysctl("kernel.core_pattern"), "|/tmp/x")), sys, filepath.Join(t.TempDir(), "rb.json")); !errors.Is(err, ErrRefused) || len(sys.Writes) != 0 {
		t.Errorf("Apply(core_pattern) = %v, writes %v", err, sys.Writes)
	}
}

// TestRollbackComparesFirst: a value is restored only while it reads as
// netdrop set it. One changed by hand since stays, one already back is left,
// and the outcomes say which.
func TestRollbackComparesFirst(t *testing.T) {
	sys, path, orig := applied(t)
	sys.Values["sysctl net.core.rmem_max"] = "8388608\n" // changed by hand
	sys.Values["sysctl net.ipv4.tcp_tw_reuse"] = "2\n"   // put back by hand
	rb, err := ReadRollback(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := RollbackFrom(sys, rb)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range got {
		outcomes = append(outcomes, fmt.Sprintf("%s %s %s", r.Setting.Target, r.Outcome, r.Now))
	}
	want := []string{
		"net.ipv4.tcp_tw_reuse already-restored ",
		"net.core.rmem_max changed-since 8388608",
		"net.core.somaxconn restored ",
	}
	if diff := cmp.Diff(want, outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"sysctl net.core.somaxconn=4096\n"}, sys.Writes); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if sys.Values["sysctl net.core.rmem_max"] != "8388608\n" || sys.Values["sysctl net.core.somaxconn"] != orig["sysctl net.core.somaxconn"] {
		t.Errorf("values after rollback: %v", sys.Values)
	}
}

// TestRollbackOnce is attack 6: a used rollback file is marked done and a
// replay, after the same change was made again, writes nothing.
func TestRollbackOnce(t *testing.T) {
	sys, path, orig := applied(t)
	rb, err := ReadRollback(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RollbackFrom(sys, rb); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig, sys.Values); diff != "" {
		t.Errorf("after rollback (-want +got):\n%s", diff)
	}
	// The same change again, by hand or by a later apply.
	sys.Values["sysctl net.core.somaxconn"] = "8192\n"
	sys.Writes = nil
	if _, err := ReadRollback(path); err == nil || !strings.Contains(err.Error(), "was used on") {
		t.Fatalf("second ReadRollback = %v, want 'was used on'", err)
	}
	if len(sys.Writes) != 0 || sys.Values["sysctl net.core.somaxconn"] != "8192\n" {
		t.Errorf("a replay wrote %v", sys.Writes)
	}
	// The used file is still netdrop's own: private, one name.
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
		t.Errorf("used rollback file: %v %v", fi.Mode(), err)
	}
}

// TestRollbackRPSMask: the kernel reprints RPS masks zero-padded in 32-bit
// words, so "3" written reads "00000003": still netdrop's value.
func TestRollbackRPSMask(t *testing.T) {
	s := Setting{Kind: diagnose.ChangeRPSCPUs, Target: "eth0 rx-0"}
	sys := mem(map[string]string{s.String(): "00000000\n"})
	rb := &Rollback{Version: RollbackVersion, Entries: []Entry{{Setting: s, Raw: []byte("00000000\n"), Applied: "3"}}}
	sys.Values[s.String()] = "00000003\n"
	got, err := RollbackFrom(sys, rb)
	if err != nil || len(got) != 1 || got[0].Outcome != Restored {
		t.Fatalf("RollbackFrom = %+v, %v", got, err)
	}
	if sys.Values[s.String()] != "00000000\n" {
		t.Errorf("rps_cpus after rollback = %q", sys.Values[s.String()])
	}
}

func TestKnown(t *testing.T) {
	tests := []struct {
		s    Setting
		v    string
		want bool
	}{
		{sysctl("net.core.somaxconn"), "8192", true},
		{sysctl("net.ipv4.tcp_timestamps"), "1", true},
		{sysctl("net.ipv4.conf.eth0.rp_filter"), "2", true},
		{sysctl("net/ipv4/conf/eth0.100/rp_filter"), "2", true},
		{sysctl("net.ipv4.conf.eth0.100.rp_filter"), "2", false},
		{sysctl("net.ipv4.conf.../rp_filter"), "2", false},
		{sysctl("kernel.core_pattern"), "core", false},
		{sysctl("net.core.somaxconn"), strings.Repeat("9", 5000), false},
		{Setting{Kind: diagnose.ChangeRing, Target: "eth0", Param: "rx"}, "4096", true},
		{Setting{Kind: diagnose.ChangeRing, Target: "eth0", Param: "combined"}, "4", false},
		{Setting{Kind: diagnose.ChangeChannels, Target: "eth0", Param: "combined"}, "4", true},
		{Setting{Kind: diagnose.ChangeTxQueueLen, Target: "eth0"}, "10000", true},
		{Setting{Kind: diagnose.ChangeTxQueueLen, Target: "eth0"}, "-1", false},
		{Setting{Kind: diagnose.ChangeRPSCPUs, Target: "eth0 rx-3"}, "ffffffff,00000003\n", true},
		{Setting{Kind: diagnose.ChangeRPSCPUs, Target: "eth0"}, "3", false},
		{Setting{Target: "eth0"}, "3", false},
	}
	for _, tt := range tests {
		if err := Known(tt.s, tt.v); (err == nil) != tt.want {
			t.Errorf("Known(%s, %.20q) = %v, want ok %v", tt.s, tt.v, err, tt.want)
		}
	}
}

// TestKnownSysctlRPFilter pins which per-interface rp_filter names a
// rollback file may hold, table first, then against the regular expression
// tune used before the cuts of perIfaceRPFilter (kept here as the
// reference), over names built from awkward pieces.
func TestKnownSysctlRPFilter(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"net.ipv4.conf.eth0.rp_filter", true},
		{"net.ipv4.conf.all.rp_filter", true},
		{"net/ipv4/conf/eth0.100/rp_filter", true},
		{"net/ipv4/conf/eth0/rp_filter", true},
		{"net.ipv4.conf.eth0.100.rp_filter", false}, // dotted name in the dotted form
		{"net.ipv4.conf..rp_filter", false},
		{"net/ipv4/conf//rp_filter", false},
		{"net/ipv4/conf/../rp_filter", false},
		{"net/ipv4/conf/a/b/rp_filter", false},
		{"net.ipv4.conf.eth0.rp_filterx", false},
		{"net.ipv4.conf.eth0.accept_redirects", false},
		{"net.ipv4.conf.a b.rp_filter", false},
		{"net.ipv4.conf.abcdefghijklmnop.rp_filter", false}, // 16 bytes, over IFNAMSIZ-1
		{"net/ipv4/conf.eth0/rp_filter", false},
	}
	for _, tt := range tests {
		if got := knownSysctl(tt.name); got != tt.want {
			t.Errorf("knownSysctl(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	old := regexp.MustCompile(`^net(?:\.ipv4\.conf\.(.+)\.|/ipv4/conf/([^/]+)/)rp_filter$`)
	oldKnown := func(name string) bool {
		m := old.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		ifname := m[1] + m[2]
		return validIfaceName(ifname) && ifname != "." && ifname != ".." && (m[2] != "" || !strings.Contains(ifname, "."))
	}
	pieces := []string{"", ".", "..", "/", "eth0", "a.b", "a/b", " ", "\n", "all", "x.rp_filter", "rp_filter"}
	for _, pre := range []string{"net.ipv4.conf.", "net/ipv4/conf/"} {
		for _, a := range pieces {
			for _, b := range pieces {
				for _, suf := range []string{".rp_filter", "/rp_filter", "rp_filter"} {
					name := pre + a + b + suf
					if got, want := knownSysctl(name), oldKnown(name); got != want {
						t.Errorf("knownSysctl(%q) = %v, the former expression says %v", name, got, want)
					}
				}
			}
		}
	}
}
