package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/netdrop/netdrop/internal/bench"
	"github.com/netdrop/netdrop/internal/lab"
	"github.com/netdrop/netdrop/stage"
)

// TestEnumFlagsExist fails when an entry of enums no longer names a flag of
// the command tree (a renamed flag would silently lose its check).
func TestEnumFlagsExist(t *testing.T) {
	root := newRoot(&env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	for key := range enums {
		words := strings.Fields(key)
		cmd, rest, err := root.Find(words[1 : len(words)-1])
		if err != nil || len(rest) > 0 {
			t.Errorf("%s: no command %q", key, strings.Join(words[:len(words)-1], " "))
			continue
		}
		if cmd.Flag(words[len(words)-1]) == nil {
			t.Errorf("%s: %s has no flag --%s", key, cmd.CommandPath(), words[len(words)-1])
		}
	}
}

// TestEnumValidation checks every enumerated flag refuses a value outside
// its list with a usage error that lists the valid values, and accepts each
// value of its list.
func TestEnumValidation(t *testing.T) {
	for key, e := range enums {
		words := strings.Fields(key)
		args := append(slices.Clone(words[1:len(words)-1]), "--"+words[len(words)-1]+"=bogus", "--help")
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != ExitError {
			t.Errorf("netdrop %v: exit %d, want %d", args, code, ExitError)
		}
		for _, v := range e.values() {
			if !strings.Contains(stderr.String(), v) {
				t.Errorf("netdrop %v: error does not list %q: %s", args, v, stderr.String())
			}
		}
		// Each listed value parses (--help stops before running).
		root := newRoot(&env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
		cmd, _, _ := root.Find(words[1 : len(words)-1])
		for _, v := range e.values() {
			if err := cmd.Flag(words[len(words)-1]).Value.Set(v); err != nil {
				t.Errorf("%s: listed value %q refused: %v", key, v, err)
			}
		}
	}
}

// TestCountersStageBogus is the case: an unknown stage (or the
// spelling with an underscore) was an empty table and exit 0.
func TestCountersStageBogus(t *testing.T) {
	for _, s := range []string{"bogus", "socket_rcvbuf"} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), []string{"counters", "--stage", s}, &stdout, &stderr)
		if code != ExitError || stdout.Len() != 0 {
			t.Errorf("counters --stage %s: exit %d, stdout %q; want exit 2 and nothing", s, code, stdout.String())
		}
		for _, st := range stage.All() {
			if !strings.Contains(stderr.String(), string(st.ID)) {
				t.Errorf("counters --stage %s: error lacks stage %s: %s", s, st.ID, stderr.String())
			}
		}
	}
}

// complete runs cobra's hidden __complete command as a shell does and
// returns the candidates (without descriptions) and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), append([]string{cobra.ShellCompRequestCmd}, args...), &stdout, &stderr); code != ExitOK {
		t.Fatalf("__complete %v: exit %d: %s", args, code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var out []string
	for _, l := range lines[:len(lines)-1] {
		out = append(out, strings.SplitN(l, "\t", 2)[0])
	}
	return out, lines[len(lines)-1]
}

func TestCompletion(t *testing.T) {
	var stages []string
	for _, s := range stage.All() {
		stages = append(stages, string(s.ID))
	}
	var scenarios []string
	for _, s := range lab.List() {
		scenarios = append(scenarios, s.Name)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"counters", "--stage", ""}, stages},
		{[]string{"--color", ""}, []string{"auto", "always", "never"}},
		{[]string{"diagnose", "--expect", ""}, stages},
		{[]string{"exporter", "--expect", ""}, stages},
		{[]string{"diagnose", "--color", ""}, []string{"auto", "always", "never"}},
		{[]string{"diagnose", "--trace", ""}, []string{"auto", "on", "off"}},
		{[]string{"--trace", ""}, []string{"auto", "on", "off"}}, // netdrop alone is diagnose
		{[]string{"trace", "--proto", ""}, []string{"udp", "tcp", "icmp", "icmpv6"}},
		{[]string{"probe", "client", "--proto", ""}, []string{"udp", "tcp"}},
		{[]string{"sockets", "--state", "estab,t"}, []string{"estab,time-wait"}},
		{[]string{"sockets", "--state", "li"}, []string{"listen"}},
		{[]string{"bench", "transport", "--transport", "tcp,"}, prefixed("tcp,", without(bench.Transports, "tcp"))},
		{[]string{"lab", "run", ""}, append([]string{"all"}, scenarios...)},
		{[]string{"lab", "run", scenarios[0], ""}, scenarios[1:]},
	} {
		got, directive := complete(t, tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.args, got, tc.want)
		}
		if !strings.HasPrefix(directive, ":") {
			t.Errorf("complete %q: last line %q is not a directive", tc.args, directive)
		}
	}
}

func prefixed(p string, vs []string) []string {
	var out []string
	for _, v := range vs {
		out = append(out, p+v)
	}
	return out
}

func without(vs []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == drop })
}

// TestCompleteNetnsAndInterfaces checks the two completions read from the
// system: the names under /run/netns and this namespace's interfaces.
func TestCompleteNetnsAndInterfaces(t *testing.T) {
	want, _ := os.ReadDir(netnsDir)
	got, _ := complete(t, "diagnose", "--netns", "")
	if len(got) != len(want) {
		t.Errorf("--netns completes %q, /run/netns has %d entries", got, len(want))
	}
	for _, e := range want {
		if !slices.Contains(got, e.Name()) {
			t.Errorf("--netns completion lacks %q", e.Name())
		}
	}
	ifs, _ := completeInterfaces(nil, nil, "")
	if !slices.Contains(ifs, "lo") {
		t.Errorf("interfaces completion %q lacks lo", ifs)
	}
}

// TestCompleteReasons checks --reason completes the running kernel's drop
// reasons when it has BTF.
func TestCompleteReasons(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("needs kernel BTF (/sys/kernel/btf/vmlinux)")
	}
	got, _ := complete(t, "trace", "--reason", "")
	for _, want := range []string{"NO_SOCKET", "NETFILTER_DROP", "SOCKET_RCVBUFF"} {
		if !slices.Contains(got, want) {
			t.Errorf("--reason completion lacks %s (%d names)", want, len(got))
		}
	}
}

// TestGenMan generates the man pages: one per visible command, none for
// hidden ones, and man (or groff) renders them.
func TestGenMan(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"gen-man", dir}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("gen-man: exit %d: %s", code, stderr.String())
	}
	var want []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+"."+manSection)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	root := newRoot(&env{stdout: &stdout, stderr: &stderr})
	root.InitDefaultCompletionCmd() // cobra adds it when it executes
	walk(root)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("pages %q, want one per command %q", got, want)
	}
	for _, hidden := range []string{"netdrop-gen-man.8", "netdrop-bench-shmring-peer.8"} {
		if slices.Contains(got, hidden) {
			t.Errorf("page for hidden command %s", hidden)
		}
	}
	page := filepath.Join(dir, "netdrop-counters.8")
	var render *exec.Cmd
	if p, err := exec.LookPath("groff"); err == nil {
		render = exec.Command(p, "-man", "-Tutf8", page)
	} else if p, err := exec.LookPath("man"); err == nil {
		render = exec.Command(p, "-l", page)
	} else {
		t.Skip("pages written; needs groff or man to render one")
	}
	render.Env = append(os.Environ(), "MANWIDTH=100", "MAN_KEEP_FORMATTING=0")
	out, err := render.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", render.Args, err, out)
	}
	text := stripOverstrike(string(out))
	for _, want := range []string{"NETDROP(8)", "netdrop-counters", "--stage", "socket-rcvbuf"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, text)
		}
	}
}

// stripOverstrike removes the backspace overstrike groff uses for bold and
// underline on a terminal, and SGR sequences.
func stripOverstrike(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		if i+1 < len(rs) && rs[i+1] == '\b' {
			i++
			continue
		}
		b.WriteRune(rs[i])
	}
	return strings.NewReplacer("\x1b[1m", "", "\x1b[0m", "", "\x1b[4m", "", "\x1b[22m", "", "\x1b[24m", "").Replace(b.String())
}
