package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lakesession/lakesession/cmd/lakesession/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{})
	stop()
	os.Exit(code)
}
