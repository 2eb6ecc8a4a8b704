package cli

import (
	"io"

	"github.com/spf13/cobra"
)

// Root returns the command tree netdrop runs, completion command included,
// for the tools that document it: internal/mangen writes the man pages from
// it. The generator lives apart so that its Markdown and roff libraries
// (and their package inits) stay out of the netdrop binary.
func Root(stdout, stderr io.Writer) *cobra.Command {
	root := newRoot(&env{stdout: stdout, stderr: stderr})
	root.InitDefaultCompletionCmd() // cobra adds it when it executes
	return root
}
