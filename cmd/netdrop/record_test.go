package main_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/recording"
)

// readRecording reads every whole interval of a recording.
func readRecording(t *testing.T, path string) (*recording.Reader, []*recording.Interval) {
	t.Helper()
	r, err := recording.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var out []*recording.Interval
	for {
		iv, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r, out
		}
		if err != nil {
			t.Fatalf("%s after %d intervals: %v", path, len(out), err)
		}
		out = append(out, iv)
	}
}

// TestRecordSIGKILL kills a real `netdrop record` with SIGKILL, which it
// cannot catch, while it writes every 100 ms: the file reads, without an
// error, up to the last whole interval, and each interval is a full
// snapshot.
func TestRecordSIGKILL(t *testing.T) {
	bin := build(t)
	path := filepath.Join(t.TempDir(), "killed.ndrec")
	cmd := exec.Command(bin, "record", "-o", path, "-i", "100ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has written a few intervals, at no particular
	// moment of its cycle.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := os.Stat(path)
		if err == nil && st.Size() > 0 {
			if r, err := recording.Open(path); err == nil {
				n := 0
				for {
					if _, err := r.Next(); err != nil {
						break
					}
					n++
				}
				r.Close()
				if n >= 8 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("netdrop record wrote fewer than 8 intervals in 20 s")
		}
		time.Sleep(37 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("record did not die of SIGKILL: %v", err)
	}
	r, ivs := readRecording(t, path)
	if len(ivs) < 8 {
		t.Fatalf("%d intervals read after SIGKILL, want at least 8", len(ivs))
	}
	if r.Truncated() != nil {
		t.Logf("killed mid-write: %v", r.Truncated())
	}
	if r.Header.Interval != recording.Duration(100*time.Millisecond) || r.Header.Host == "" || r.Header.Kernel == "" {
		t.Errorf("header %+v", r.Header)
	}
	for i, iv := range ivs {
		if len(iv.Counters.Counters) != len(ivs[0].Counters.Counters) && len(iv.Counters.Counters) < 100 {
			t.Errorf("interval %d: %d counters, the first had %d", i, len(iv.Counters.Counters), len(ivs[0].Counters.Counters))
		}
		if i > 0 {
			gap := iv.Time.Sub(ivs[i-1].Time)
			if gap <= 0 || gap > 2*time.Second {
				t.Errorf("interval %d: %s after the one before, recorded every 100ms", i, gap)
			}
		}
	}
}

// TestRecordUsageErrors: the recording commands refuse what they cannot
// do with exit 2 and a reason, before touching any file.
func TestRecordUsageErrors(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	notRec := filepath.Join(dir, "not-a-recording")
	if err := os.WriteFile(notRec, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"record"}, "-o FILE is required"},
		{[]string{"record", "-o", filepath.Join(dir, "x"), "-i", "10ms"}, "below the minimum"},
		{[]string{"record", "-o", filepath.Join(dir, "x"), "--max-size", "1KiB"}, "--max-size"},
		{[]string{"diagnose", "--since", "+1m"}, "--since needs --from"},
		{[]string{"diagnose", "--from", notRec, "--netns", "x"}, "--netns reads the kernel"},
		{[]string{"diagnose", "--from", notRec}, "not a netdrop recording"},
		{[]string{"counters", "--from", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"report", notRec}, "-o FILE is required"},
		{[]string{"report", notRec, "-o", filepath.Join(dir, "r.html")}, "not a netdrop recording"},
	} {
		_, stderr, code := run(t, exec.Command(bin, tc.args...))
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("netdrop %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused record created its file")
	}
}

// TestRecordProgressOnlyOnTerminal: record shows where it stands on a
// terminal, and writes nothing to redirected stderr (a log of a long
// recording would collect a line a second).
func TestRecordProgressOnlyOnTerminal(t *testing.T) {
	bin := build(t)
	args := func() []string {
		return []string{"record", "-o", filepath.Join(t.TempDir(), "p.ndrec"), "-i", "100ms", "-d", "300ms"}
	}
	_, stderr, code := run(t, exec.Command(bin, args()...))
	if code != 0 || stderr != "" {
		t.Errorf("record to a pipe: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if out := onPty(t, exec.Command(bin, args()...)); !strings.Contains(out, "\r\x1b[Krecording to ") || !strings.Contains(out, "4 intervals") {
		t.Errorf("no live progress on a terminal: %q", out)
	}
}
