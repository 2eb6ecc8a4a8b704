// Package cli holds netdrop's commands: one file per command, each turning
// flags into options, calling the package that does the work, and rendering
// the result as text or JSON. Exit codes are decided here and only here.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0 // healthy, or the command did what was asked
	ExitFindings = 1 // a finding at warning or above; a lab scenario failed
	ExitError    = 2 // usage or runtime error
	// ExitSignal plus the signal number is the code after SIGINT (130) or
	// SIGTERM (143), as a shell reports a process the signal killed, so a
	// script can tell "stopped" from "failed".
	ExitSignal = 128
)

// exitError carries an exit code out of a command without printing an
// error (the command has already said what it found).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// commands registers each command's constructor; files add theirs in init
// so adding a command does not touch this file.
var commands []func(*env) *cobra.Command

func register(f func(*env) *cobra.Command) { commands = append(commands, f) }

// env is what every command gets: where to write, and how.
type env struct {
	stdout, stderr io.Writer
	// color is the --color flag: auto, always or never (see color.go).
	color string
}

// Main runs netdrop with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var ee exitError
	if sig, ok := interruptedBy(ctx); ok {
		// The command has printed what it had; if it failed on the way
		// out, say why it stopped rather than "context canceled".
		if err != nil && !errors.As(err, &ee) {
			fmt.Fprintln(stderr, "netdrop: interrupted")
		}
		return ExitSignal + int(sig)
	}
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "netdrop: %v\n", err)
		return ExitError
	}
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "netdrop",
		Short: "Find where on this Linux host packets are lost, why, and what to change",
		Long: `netdrop reads every drop counter on the packet path of this host (NIC, ring,
softirq backlog, IP, netfilter, conntrack, sockets, TCP listen queues, qdisc,
neighbour table), attributes what moved to a stage, and says what to change.

Run without a command it diagnoses this host over 5 seconds (netdrop diagnose).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// `netdrop --version` and -v print the same line as `netdrop version`.
		Version: buildinfo.Read().String(),
		// Man pages and release archives are reproducible: no build date.
		DisableAutoGenTag: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "print the version, commit and Go version (as netdrop version) and exit")
	root.PersistentFlags().StringVar(&e.color, "color", "auto", "colour the output: auto (on a terminal, unless NO_COLOR is set), always or never")
	for _, f := range commands {
		root.AddCommand(f(e))
	}
	// netdrop alone runs diagnose with its defaults.
	if d, _, err := root.Find([]string{"diagnose"}); err == nil && d != root {
		root.Flags().AddFlagSet(d.Flags())
		root.RunE = d.RunE
	}
	decorateFlags(root)
	return root
}
