package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// exitError carries a process exit code through cobra's error path, for
// verdicts such as "the run lost messages" (exit 1) that are not usage errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "imload",
		Short: "Chat server that shares one WebSocket per browser, and a load generator that proves it",
		Long: `imload is three tools in one binary, and a helper:

  imload serve    a chat server (rooms, names, private messages, history,
                  presence) whose protocol carries every tab of a browser over
                  ONE WebSocket, plus the demo page and SharedWorker script.
  imload run      a load generator that simulates thousands of chatting
                  browsers with several tabs each, checks that every message
                  arrives exactly once and in order, and measures latency.
  imload report   renders, compares and merges the results of runs.
  imload token    prints a JSON Web Token for a server with --auth jwt
                  (local testing).

Every flag can also be set from the environment: --max-conns-per-user is
IMLOAD_MAX_CONNS_PER_USER, and so on. A flag given on the command line wins.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.AddCommand(newVersionCmd())
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by the init functions of the files that define the
// other subcommands (serve.go, run.go, report.go), so that each subcommand
// lives in its own file.
var subcommands []func() *cobra.Command

// applyEnv sets every flag that was not given on the command line from the
// environment variable IMLOAD_<FLAG_NAME> (dashes become underscores), if set.
func applyEnv(fs *pflag.FlagSet) error {
	var firstErr error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		name := "IMLOAD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			firstErr = fmt.Errorf("environment variable %s=%q: %w", name, v, err)
		}
	})
	return firstErr
}
