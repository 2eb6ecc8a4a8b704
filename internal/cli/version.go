package cli

import (
	"fmt"

	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/spf13/cobra"
)

func init() { register(newVersionCmd) }

func newVersionCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and time, and Go version netdrop was built with",
		Long: `version prints which netdrop this is, from the build information the Go
toolchain embeds: the module version (a release tag, or a pseudo-version made
from the commit), the VCS revision and its time, whether the tree had
uncommitted changes ("modified"), the Go version and the platform.
netdrop --version and -v print the same line; the exporter serves the same
data as netdrop_build_info.`,
		Example: `  netdrop version
  netdrop version --json | jq -r .revision`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			in := buildinfo.Read()
			if asJSON {
				return writeJSON(e.stdout, in)
			}
			_, err := fmt.Fprintln(e.stdout, in.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
