package deploy

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// dockerStage is one FROM of a Dockerfile and its instructions.
type dockerStage struct {
	base, name string
	nodes      []*parser.Node
}

func parseDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var stages []dockerStage
	for _, n := range res.AST.Children {
		// Instructions are case-insensitive; the parser keeps the case.
		n.Value = strings.ToLower(n.Value)
		if n.Value == "from" {
			s := dockerStage{base: n.Next.Value}
			if n.Next.Next != nil && strings.EqualFold(n.Next.Next.Value, "as") {
				s.name = n.Next.Next.Next.Value
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("line %d: %s before FROM", n.StartLine, n.Value)
		}
		stages[len(stages)-1].nodes = append(stages[len(stages)-1].nodes, n)
	}
	return stages
}

func args(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// TestDockerfile parses the Dockerfile with BuildKit's own parser and runs
// the build stage's commands as `docker build` would (no Docker daemon
// here): the ARG defaults and build args as environment, RUN through
// /bin/sh -c from the source tree (WORKDIR /src after COPY . .), with
// /out/ redirected to a temporary directory. The binary the final stage
// copies must be static and report the version the build args stamp; the
// final stage must be empty but for it and the CA bundle, and run as a
// non-root user.
//
// Not checked here: that the base images exist and what their files are
// (golang:1.26's /etc/ssl/certs), and the image's layers themselves.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and the image", len(stages))
	}
	build, image := stages[0], stages[1]
	if build.name == "" || !strings.HasPrefix(build.base, "golang:") {
		t.Errorf("build stage FROM %s AS %q, want a named golang stage", build.base, build.name)
	}
	if image.base != "scratch" {
		t.Errorf("image FROM %s, want scratch", image.base)
	}

	out := t.TempDir()
	buildArgs := map[string]string{
		"VERSION":    "v9.8.7-dockerfile-test",
		"REVISION":   "0123456789abcdef0123456789abcdef01234567",
		"REVTIME":    "2026-01-02T03:04:05Z",
		"MODIFIED":   "false",
		"TARGETARCH": runtime.GOARCH, // BuildKit sets it from the platform
	}
	env := os.Environ()
	ran := 0
	for _, n := range build.nodes {
		switch n.Value {
		case "arg":
			for _, a := range args(n) {
				name, def, _ := strings.Cut(a, "=")
				v, ok := buildArgs[name]
				if !ok {
					v = def
				}
				env = append(env, name+"="+v)
			}
		case "run":
			if n.Attributes["json"] {
				t.Fatalf("line %d: exec-form RUN; this test runs the shell form", n.StartLine)
			}
			cmdline := strings.ReplaceAll(strings.Join(args(n), " "), "/out/", out+"/")
			cmd := exec.Command("/bin/sh", "-c", cmdline)
			cmd.Dir = ".."
			cmd.Env = env
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("line %d: RUN %s: %v\n%s", n.StartLine, cmdline, err, b)
			}
			ran++
		case "workdir", "copy":
			// WORKDIR /src, COPY go.mod go.sum, COPY . .: the source tree.
		default:
			t.Errorf("line %d: %s in the build stage; this test does not model it", n.StartLine, n.Value)
		}
	}
	if ran == 0 {
		t.Fatal("the build stage runs nothing")
	}

	var bin, entry, user string
	for _, n := range image.nodes {
		a := args(n)
		switch n.Value {
		case "copy":
			if len(n.Flags) != 1 || n.Flags[0] != "--from="+build.name || len(a) != 2 {
				t.Errorf("line %d: COPY %v %v: want one file from the build stage", n.StartLine, n.Flags, a)
				continue
			}
			switch {
			case strings.HasPrefix(a[0], "/out/"):
				bin = filepath.Join(out, strings.TrimPrefix(a[0], "/out/"))
				entry = a[1]
			case a[0] == "/etc/ssl/certs/ca-certificates.crt" && a[1] == a[0]:
			default:
				t.Errorf("line %d: the image copies %s", n.StartLine, a[0])
			}
		case "user":
			user = a[0]
		case "entrypoint":
			if !n.Attributes["json"] || len(a) != 1 || a[0] != entry {
				t.Errorf("ENTRYPOINT %v, want [%q]", a, entry)
			}
		case "expose":
			if len(a) != 1 || a[0] != "9469" {
				t.Errorf("EXPOSE %v, want the exporter's 9469", a)
			}
		default:
			t.Errorf("line %d: %s in the image stage; this test does not model it", n.StartLine, n.Value)
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root user (scratch has no /etc/passwd)", user)
	}
	if bin == "" {
		t.Fatal("the image copies no binary from the build stage")
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the image's binary has a program interpreter: not static, and scratch has no libc")
		}
	}
	v, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version  string `json:"version"`
		Revision string `json:"revision"`
		CGO      bool   `json:"cgo"`
	}
	if err := json.Unmarshal(v, &got); err != nil {
		t.Fatalf("version --json: %v\n%s", err, v)
	}
	if got.Version != buildArgs["VERSION"] || got.Revision != buildArgs["REVISION"] || got.CGO {
		t.Errorf("the image's binary says %+v, want version %s, revision %s, no cgo", got, buildArgs["VERSION"], buildArgs["REVISION"])
	}
}

// TestMakeImageArgs: every --build-arg `make image` passes is an ARG of the
// Dockerfile's build stage (a misspelt one would be ignored with a warning,
// and the image would say "(devel)").
func TestMakeImageArgs(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("needs make")
	}
	out, err := exec.Command("make", "-s", "-n", "-C", "..", "image").Output()
	if err != nil {
		t.Fatalf("make -n image: %v", err)
	}
	declared := map[string]bool{}
	for _, n := range parseDockerfile(t)[0].nodes {
		if n.Value == "arg" {
			for _, a := range args(n) {
				name, _, _ := strings.Cut(a, "=")
				declared[name] = true
			}
		}
	}
	passed := regexp.MustCompile(`--build-arg ([A-Z_]+)=`).FindAllStringSubmatch(string(out), -1)
	if len(passed) == 0 {
		t.Fatalf("make image passes no build args:\n%s", out)
	}
	for _, m := range passed {
		if !declared[m[1]] {
			t.Errorf("make image passes --build-arg %s, which the Dockerfile does not declare", m[1])
		}
	}
}
