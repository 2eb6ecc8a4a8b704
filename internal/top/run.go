package top

import (
	"context"
	"errors"
	"io"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
)

// Run shows m on the terminal out, reading keys from in (nil: stdin), until the user
// quits or ctx ends. bubbletea owns the terminal: it enters raw mode and
// the alternate screen, follows resizes (SIGWINCH), and restores the
// terminal on every way out — a quit, ctx cancelled by SIGINT or SIGTERM
// (internal/cli's NotifyContext; bubbletea's own signal handler is off so
// that one place decides the exit code), or a panic in the model or a
// sampling goroutine, which it reports on stderr after restoring. No mouse:
// every action is a key, so top works the same over SSH.
//
// A nil error means the user quit; ctx's cancellation is returned as
// ctx.Err().
func Run(ctx context.Context, m *Model, in io.Reader, out io.Writer, color bool) error {
	opts := []tea.ProgramOption{
		tea.WithContext(ctx), tea.WithOutput(out), tea.WithoutSignalHandler(),
	}
	if in != nil {
		// Otherwise stdin, or the controlling terminal when stdin is not one.
		opts = append(opts, tea.WithInput(in))
	}
	if !color {
		opts = append(opts, tea.WithColorProfile(colorprofile.Ascii))
	}
	m.ctx = ctx
	_, err := tea.NewProgram(m, opts...).Run()
	if err != nil && ctx.Err() != nil && errors.Is(err, tea.ErrProgramKilled) {
		return ctx.Err()
	}
	return err
}
