package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/netdrop/netdrop/internal/cli"
)

// TestGenMan generates the man pages: one per visible command, none for
// hidden ones, and man (or groff) renders them.
func TestGenMan(t *testing.T) {
	dir := t.TempDir()
	if err := writePages(dir); err != nil {
		t.Fatal(err)
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
	walk(cli.Root(io.Discard, io.Discard))
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
	for _, hidden := range []string{"netdrop-bench-shmring-peer.8"} {
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
