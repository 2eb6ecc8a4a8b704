package main_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// assertStatic fails unless bin is an ELF executable with no program
// interpreter and no shared libraries: it runs on any Linux, in a scratch
// image, whatever libc the host has.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: dynamically linked", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}
}

// TestStatic checks the README's build command gives a static binary (the
// shared test binary is built by exactly that command).
func TestStatic(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), readmeBuild) {
		t.Errorf("README.md no longer gives the build command %q the tests build with", readmeBuild)
	}
	if !strings.Contains(string(readme), "CGO_ENABLED=0 go install github.com/netdrop/netdrop/cmd/netdrop@latest") {
		t.Error("README.md's install command does not build statically")
	}
	assertStatic(t, build(t))
}

// TestMakeInstall runs the Makefile as a packager does (make install with
// DESTDIR): a static binary stamped with this commit, one man page per
// command, and the three completion files, each non-empty.
func TestMakeInstall(t *testing.T) {
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr", "BINDIR="+filepath.Join(tmp, "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(dest, "usr/bin/netdrop")
	assertStatic(t, bin)
	out, stderr, code := run(t, exec.Command(bin, "version", "--json"))
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, stderr)
	}
	var v struct {
		Version  string `json:"version"`
		Revision string `json:"revision"`
		Time     string `json:"time"`
		CGO      bool   `json:"cgo"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Revision != strings.TrimSpace(string(head)) || v.Time == "" || !strings.HasPrefix(v.Version, "v") || v.CGO {
		t.Errorf("version --json = %s; want revision %s, a commit time, a v-version, no cgo", out, head)
	}

	pages, _ := filepath.Glob(filepath.Join(dest, "usr/share/man/man8/*.8"))
	var names []string
	for _, p := range pages {
		names = append(names, filepath.Base(p))
	}
	for _, want := range []string{"netdrop.8", "netdrop-diagnose.8", "netdrop-lab-run.8", "netdrop-version.8"} {
		if !slices.Contains(names, want) {
			t.Errorf("man pages %v lack %s", names, want)
		}
	}
	for _, f := range []string{
		"usr/share/bash-completion/completions/netdrop",
		"usr/share/zsh/site-functions/_netdrop",
		"usr/share/fish/vendor_completions.d/netdrop.fish",
	} {
		if st, err := os.Stat(filepath.Join(dest, f)); err != nil || st.Size() == 0 {
			t.Errorf("completion %s missing or empty: %v", f, err)
		}
	}
}

// TestImageMatchesDeploy keeps the Dockerfile, the Makefile and the
// DaemonSet naming one image, built static and run as a non-root user by
// default.
func TestImageMatchesDeploy(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join("../..", p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mk, df, ds := read("Makefile"), read("Dockerfile"), read("deploy/kubernetes/netdrop-daemonset.yaml")
	var image string
	for _, l := range strings.Split(mk, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "IMAGE" && f[1] == "?=" {
			image = f[2]
		}
	}
	if image == "" {
		t.Fatal("Makefile sets no IMAGE")
	}
	if !strings.Contains(ds, "image: "+image+":") {
		t.Errorf("the DaemonSet does not run the image the Makefile builds (%s)", image)
	}
	for _, want := range []string{"CGO_ENABLED=0", "FROM scratch", "USER 65534"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
