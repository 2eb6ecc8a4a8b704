package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/netdrop/netdrop/internal/buildinfo"
)

func init() { register(newGenManCmd) }

// manSection is 8, system administration commands, like ip(8), ss(8) and
// tc(8): most of what netdrop reads needs root.
const manSection = "8"

// newGenManCmd writes one man page per command from the command tree, so
// the pages say exactly what --help says. The Makefile runs it at install.
func newGenManCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "internal: write the man pages (one per command, section 8) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			in := buildinfo.Read()
			h := &doc.GenManHeader{
				Title:   "NETDROP",
				Section: manSection,
				Source:  "netdrop " + in.Version,
				Manual:  "netdrop manual",
			}
			// The page date is the commit's, so two builds of one commit
			// give the same pages; without it cobra takes
			// SOURCE_DATE_EPOCH, else today.
			if !in.Time.IsZero() {
				h.Date = &in.Time
			}
			if err := doc.GenManTree(cmd.Root(), h, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
