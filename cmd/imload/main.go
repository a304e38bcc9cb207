// Command imload is a multiplexing chat server (imload serve), a load
// generator that simulates thousands of chatting browsers (imload run) and
// the report renderer for its results (imload report).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "imload:", err)
		stop()
		os.Exit(exitCode(err))
	}
}
