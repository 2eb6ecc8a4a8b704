package cli

import (
	"bytes"
	"context"
	"os"
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
