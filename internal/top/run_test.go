package top

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// lockedBuffer collects what the program writes to the terminal.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// onTerminal runs top's model on a new pseudo-terminal until Run returns,
// and says what Run returned, what the terminal was shown, and whether
// the terminal was back in its normal (canonical, echoing) mode afterwards.
func onTerminal(t *testing.T, ctx context.Context, next func(context.Context) (*Sample, error), keys string) (out string, cooked bool, runErr error) {
	t.Helper()
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	defer pts.Close()
	if err := pty.Setsize(pts, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if before.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
		t.Fatalf("a new terminal is not canonical with echo: lflag %#x", before.Lflag)
	}
	var buf lockedBuffer
	go func() { _, _ = io.Copy(&buf, ptm) }()
	m := New(ctx, Config{Next: next, Interval: 100 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- Run(ctx, m, pts, pts, false) }()
	if keys != "" {
		// Type once the screen is up.
		waitFor(t, &buf, "netdrop top")
		if _, err := ptm.Write([]byte(keys)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case runErr = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("top did not end; the terminal shows:\n%q", buf.String())
	}
	after, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the last bytes reach the buffer
	return buf.String(), after.Lflag&(unix.ICANON|unix.ECHO) == unix.ICANON|unix.ECHO, runErr
}

func waitFor(t *testing.T, out *lockedBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q:\n%q", s, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The alternate screen's escape sequences (DEC private mode 1049).
const (
	altOn  = "\x1b[?1049h"
	altOff = "\x1b[?1049l"
)

// TestRunRestoresTerminal: every way out of top — q, ctx cancelled (what
// SIGINT and SIGTERM do through internal/cli), a panic while sampling —
// leaves the terminal as it was: canonical mode with echo, main screen.
func TestRunRestoresTerminal(t *testing.T) {
	sample := func(context.Context) (*Sample, error) { return fixtureSample(t), nil }
	panics := func(context.Context) (*Sample, error) { panic("sampler broke") }
	cases := []struct {
		name    string
		next    func(context.Context) (*Sample, error)
		keys    string
		cancel  bool
		wantErr func(error) bool
	}{
		{name: "q", next: sample, keys: "q", wantErr: func(err error) bool { return err == nil }},
		{name: "ctrl-c", next: sample, keys: "\x03", wantErr: func(err error) bool { return err == nil }},
		{name: "signal", next: sample, cancel: true, wantErr: func(err error) bool { return errors.Is(err, context.Canceled) }},
		{name: "panic", next: panics, wantErr: func(err error) bool { return errors.Is(err, tea.ErrProgramPanic) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel {
				time.AfterFunc(800*time.Millisecond, cancel)
			}
			if c.name == "panic" {
				// bubbletea reports the panic and its stack on stderr.
				devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				old := os.Stderr
				os.Stderr = devnull
				defer func() { os.Stderr = old; devnull.Close() }()
			}
			out, cooked, err := onTerminal(t, ctx, c.next, c.keys)
			if !c.wantErr(err) {
				t.Errorf("Run returned %v", err)
			}
			if !cooked {
				t.Error("the terminal was left in raw mode")
			}
			on, off := strings.Index(out, altOn), strings.LastIndex(out, altOff)
			if on < 0 || off < on {
				t.Errorf("alternate screen entered at %d, left at %d:\n%q", on, off, out)
			}
		})
	}
}
