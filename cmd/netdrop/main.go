// Command netdrop finds where on a Linux host packets are lost, why, and
// what to change. See README.md; `netdrop --help` lists the commands.
package main

import (
	"context"
	"os"

	"github.com/netdrop/netdrop/internal/cli"
)

func main() {
	ctx, stop := cli.NotifyContext(context.Background())
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
