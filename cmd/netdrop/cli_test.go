package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestInterrupt is Ctrl-C during a diagnosis: the binary must stop at once,
// say "interrupted" in one line (not "context canceled") and exit 130, as a
// shell reports a command SIGINT ended.
func TestInterrupt(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "diagnose", "-i", "10s", "--trace", "off", "--no-sockets")
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(errPipe)
	var stderr []string
	for sc.Scan() {
		stderr = append(stderr, sc.Text())
		if strings.Contains(sc.Text(), "sampling") {
			break
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		stderr = append(stderr, sc.Text())
	}
	err = cmd.Wait()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit = %v, want 130; stderr: %q", err, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("took %s to stop after SIGINT", took)
	}
	if len(stderr) == 0 || stderr[len(stderr)-1] != "netdrop: interrupted" {
		t.Errorf("stderr = %q, want a last line \"netdrop: interrupted\"", stderr)
	}
	if strings.Contains(strings.Join(stderr, "\n"), "context canceled") {
		t.Errorf("stderr says context canceled: %q", stderr)
	}
	if stdout.Len() != 0 {
		t.Errorf("an interrupted diagnosis printed a report: %q", stdout.String())
	}
}

// TestVersion checks --version, -v and the version command print the same
// line, and that the JSON carries what the linker or the go command stamped.
func TestVersion(t *testing.T) {
	bin := build(t)
	var lines []string
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		out, stderr, code := run(t, exec.Command(bin, args...))
		if code != 0 {
			t.Fatalf("netdrop %v: exit %d: %s", args, code, stderr)
		}
		lines = append(lines, out)
	}
	if lines[0] != lines[1] || lines[1] != lines[2] || !strings.HasPrefix(lines[0], "netdrop ") {
		t.Errorf("version lines differ or are malformed: %q", lines)
	}

	// What the go command or the linker stamped is checked by the
	// buildinfo tests and TestMakeInstall; here the JSON shape.
	out, stderr, code := run(t, exec.Command(bin, "version", "--json"))
	if code != 0 {
		t.Fatalf("version --json: exit %d: %s", code, stderr)
	}
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
		Platform  string `json:"platform"`
		CGO       bool   `json:"cgo"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if v.Version == "" || !strings.HasPrefix(v.GoVersion, "go1.") || v.Platform == "" || v.CGO {
		t.Errorf("version --json = %s", out)
	}
	if !strings.HasPrefix(lines[0], "netdrop "+v.Version+" ") {
		t.Errorf("--version %q does not start with the JSON's version %q", lines[0], v.Version)
	}
}

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// onPty runs the binary with stdout and stderr on a new pseudo-terminal and
// returns what the terminal showed.
func onPty(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer f.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		// Reading ends with EIO once the process exits and closes the
		// terminal's other side.
		_, _ = io.Copy(&out, f)
		close(done)
	}()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() > 1 {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out.String())
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("terminal output did not end")
	}
	return out.String()
}

// TestColor checks colour appears on a terminal and only there: a pipe,
// NO_COLOR and --color=never give plain text, --color=always colours a pipe.
func TestColor(t *testing.T) {
	bin := build(t)
	args := []string{"diagnose", "--once", "--trace", "off", "--no-sockets"}
	env := func(extra ...string) []string {
		var out []string
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "NO_COLOR=") && !strings.HasPrefix(e, "TERM=") {
				out = append(out, e)
			}
		}
		return append(out, extra...)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		tty   bool
		color bool
	}{
		{"terminal", args, env("TERM=xterm"), true, true},
		{"terminal with NO_COLOR", args, env("TERM=xterm", "NO_COLOR=1"), true, false},
		{"terminal with --color=never", append([]string{"--color=never"}, args...), env("TERM=xterm"), true, false},
		{"dumb terminal", args, env("TERM=dumb"), true, false},
		{"pipe", args, env("TERM=xterm"), false, false},
		{"pipe with --color=always", append([]string{"--color=always"}, args...), env("TERM=xterm", "NO_COLOR=1"), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = tc.env
			var out string
			if tc.tty {
				out = onPty(t, cmd)
			} else {
				var code int
				out, _, code = run(t, cmd)
				if code > 1 {
					t.Fatalf("exit %d", code)
				}
			}
			if !strings.Contains(out, "netdrop diagnose") {
				t.Fatalf("no report in the output:\n%q", out)
			}
			if got := sgr.MatchString(out); got != tc.color {
				t.Errorf("colour = %v, want %v:\n%q", got, tc.color, out)
			}
		})
	}
}

// TestBenchProgressOnlyOnTerminal is the case: bench wrote carriage
// returns and escape codes into redirected stderr.
func TestBenchProgressOnlyOnTerminal(t *testing.T) {
	bin := build(t)
	args := []string{"bench", "transport", "--transport", "unix", "--sizes", "64", "--duration", "20ms"}
	_, stderr, code := run(t, exec.Command(bin, args...))
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Errorf("redirected stderr has progress escapes: %q", stderr)
	}
	if out := onPty(t, exec.Command(bin, args...)); !strings.Contains(out, "\r\x1b[K[1/") {
		t.Errorf("no live progress on a terminal: %q", out)
	}
}

// TestSIGTERMExporter: SIGTERM (how Kubernetes stops a pod) ends the exporter
// with 143, 128 plus the signal's number.
func TestSIGTERMExporter(t *testing.T) {
	bin := build(t)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "exporter", "--listen", "127.0.0.1:0", "--ready-file", ready, "--no-sockets")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("exit = %v, want 143; stderr: %s", err, stderr.String())
	}
}
