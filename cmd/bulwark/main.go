// Command bulwark is the single binary of the Bulwark container security
// platform: scanner CLI, vulnerability database tools, and (later) central,
// admission webhook, node sensor and posture checks, one subcommand per role.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-security/bulwark/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{
		Version: version,
		Args:    os.Args[1:],
		Stdin:   os.Stdin,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Getenv:  os.Getenv,
	})
	stop()
	os.Exit(code)
}
