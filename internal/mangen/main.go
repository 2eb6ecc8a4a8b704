// Command mangen writes netdrop's man pages, one per command in section 8,
// from the command tree, so the pages say exactly what --help says. The
// Makefile runs it (`make man`, `make install`) with the same -ldflags as
// the binary, so the pages carry its version:
//
//	go run ./internal/mangen DIR
//
// It is not a netdrop subcommand: cobra's man page generator pulls in a
// Markdown parser whose package init every start of netdrop would pay.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra/doc"

	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/netdrop/netdrop/internal/cli"
)

// manSection is 8, system administration commands, like ip(8), ss(8) and
// tc(8): most of what netdrop reads needs root.
const manSection = "8"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mangen DIR")
		os.Exit(2)
	}
	if err := writePages(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "mangen: %v\n", err)
		os.Exit(1)
	}
}

// writePages writes one page per visible command into dir.
func writePages(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	in := buildinfo.Read()
	h := &doc.GenManHeader{
		Title:   "NETDROP",
		Section: manSection,
		Source:  "netdrop " + in.Version,
		Manual:  "netdrop manual",
	}
	// The page date is the commit's, so two builds of one commit give the
	// same pages; without it cobra takes SOURCE_DATE_EPOCH, else today.
	if !in.Time.IsZero() {
		h.Date = &in.Time
	}
	if err := doc.GenManTree(cli.Root(io.Discard, io.Discard), h, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
