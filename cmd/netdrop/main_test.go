package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/stage"
)

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

// TestMain removes the binary the tests shared.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// readmeBuild is the build command README.md gives; TestStatic checks the
// README still says it.
const readmeBuild = "CGO_ENABLED=0 go build -o netdrop ./cmd/netdrop"

// build compiles netdrop once for all the tests, as the README's build
// command does, into a directory every user can read, so the unprivileged
// test can run it too.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "netdrop-e2e-"); buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "netdrop")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// run executes the binary and returns stdout, stderr and the exit code.
func run(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
		return "", "", -1
	}
}

type jsonReport struct {
	Traced    bool    `json:"traced"`
	IntervalS float64 `json:"interval_s"`
	Netns     string  `json:"netns"`
	Findings  []struct {
		Stage    string `json:"stage"`
		Severity string `json:"severity"`
		Drops    uint64 `json:"drops"`
		Evidence []struct {
			Source string `json:"source"`
			Object string `json:"object"`
			Field  string `json:"field"`
			Delta  uint64 `json:"delta"`
		} `json:"evidence"`
	} `json:"findings"`
	Stages []struct {
		Stage string `json:"stage"`
		Drops uint64 `json:"drops"`
	} `json:"stages"`
	Unavailable []struct {
		Source string `json:"source"`
		Reason string `json:"reason"`
	} `json:"unavailable"`
}

func decode(t *testing.T, out string) jsonReport {
	t.Helper()
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	if len(r.Stages) != len(stage.All()) {
		t.Errorf("%d stages in JSON, want all %d", len(r.Stages), len(stage.All()))
	}
	validateDiagnosis(t, out)
	return r
}

func TestUsageErrorsExitTwo(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{
		{"diagnose", "--no-such-flag"},
		{"diagnose", "--interval", "0s"},
		{"no-such-command"},
		{"diagnose", "--netns", "ndt-does-not-exist", "--once"},
	} {
		_, stderr, code := run(t, exec.Command(bin, args...))
		if code != 2 {
			t.Errorf("netdrop %v: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr, "netdrop:") && !strings.Contains(stderr, "Error") {
			t.Errorf("netdrop %v: no error message on stderr: %q", args, stderr)
		}
	}
}

func TestOnceJSON(t *testing.T) {
	bin := build(t)
	out, stderr, code := run(t, exec.Command(bin, "--once", "--json"))
	if code == 2 {
		t.Fatalf("exit 2: %s", stderr)
	}
	decode(t, out)
}

// TestUnprivileged runs netdrop as nobody: it must still give the counters
// it can read, say what it could not read and why, and not fail.
func TestUnprivileged(t *testing.T) {
	testnet.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to drop privileges")
	}
	bin := build(t)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "diagnose", "--interval", "200ms", "--json")
	out, stderr, code := run(t, cmd)
	if code == 2 {
		t.Fatalf("unprivileged run failed with exit 2: %s", stderr)
	}
	r := decode(t, out)
	if len(r.Unavailable) == 0 {
		t.Errorf("an unprivileged run read everything? unavailable is empty")
	}
	for _, u := range r.Unavailable {
		if u.Reason == "" {
			t.Errorf("unavailable %q without a reason", u.Source)
		}
	}
	t.Logf("unprivileged: exit %d, %d unavailable: %+v", code, len(r.Unavailable), r.Unavailable)
}

// TestNetnsEndToEnd sends datagrams to a closed port inside a namespace and
// checks the built binary names no-socket first with the exit code for a
// finding.
func TestNetnsEndToEnd(t *testing.T) {
	p := testnet.NewPair(t, "main")
	bin := build(t)
	cmd := exec.Command(bin, "diagnose", "--netns", p.B, "--interval", "1500ms", "--json")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The progress line on stderr says the first snapshot is taken: only
	// then make the drops, so they fall inside the interval.
	sc := bufio.NewScanner(errPipe)
	var stderr strings.Builder
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "sampling") {
			break
		}
	}
	testnet.SendUDP(t, p.A, p.AddrB.String()+":9300", 2000, 64)
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want 1 (a finding); stderr: %s", err, stderr.String())
	}
	r := decode(t, stdout.String())
	if len(r.Findings) == 0 || r.Findings[0].Stage != string(stage.NoSocket) {
		t.Fatalf("findings = %+v, want no-socket first", r.Findings)
	}
	if r.Netns != p.B {
		t.Errorf("netns = %q, want %q", r.Netns, p.B)
	}
	// As root on a kernel with BTF, the tracer runs and adds the drop
	// reason to the finding.
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil && os.Geteuid() == 0 {
		if !r.Traced {
			t.Fatalf("trace did not run (unavailable: %+v)", r.Unavailable)
		}
		found := false
		for _, e := range r.Findings[0].Evidence {
			if e.Source == string(diagnose.SourceTracer) && e.Field == "NO_SOCKET" {
				found = true
			}
		}
		if !found {
			t.Errorf("no NO_SOCKET evidence from the tracer: %+v", r.Findings[0].Evidence)
		}
	}
}
