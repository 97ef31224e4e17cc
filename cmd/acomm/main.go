// Command acomm calls acomm services, reads their streams, runs an HTTP
// bridge in front of them, and demonstrates the library.
//
// Exit status: 0 on success, 1 when the task answered with an error, 2 for
// bad usage or input, 3 when no answer could be had (unreachable service,
// refused request, timeout).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	exitOK        = 0
	exitTaskError = 1
	exitUsage     = 2
	exitNoAnswer  = 3
)

// exitError carries an exit status with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr, taskErr and noAnswerErr wrap err with an exit status.
func usageErr(format string, a ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, a...)}
}
func taskErr(err error) error     { return &exitError{exitTaskError, err} }
func noAnswerErr(err error) error { return &exitError{exitNoAnswer, err} }

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the exit status.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "acomm:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage // cobra's own errors: unknown flags, wrong arg counts
}

// newRootCmd builds the command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "acomm",
		Short:         "Call acomm services, read their streams, bridge them to HTTP",
		Long:          "acomm talks to services that speak acomm: asynchronous request/response over unix sockets, with an HTTP bridge for callers elsewhere.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newCallCmd(), newStreamCmd(), newDemoCmd(), newBridgeCmd())
	return root
}
