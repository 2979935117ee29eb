// Command visionserve is the inference server and its tools. See
// `visionserve help` and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/visionserve/visionserve/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	// SIGINT and SIGTERM cancel the context: the server drains and exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
