// Command acomm calls acomm services, checks that they are alive and what
// they offer, reads their streams, runs an HTTP bridge in front of them,
// and demonstrates the library.
//
// Exit status: 0 on success, 1 when the task answered with an error, 2 for
// bad usage or input, 3 when no answer could be had (unreachable service,
// refused request, timeout), 130 when interrupted by SIGINT (143 by
// SIGTERM), as shells report a command that a signal ended.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/acommgo/acomm"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit statuses.
const (
	exitOK        = 0
	exitTaskError = 1
	exitUsage     = 2
	exitNoAnswer  = 3
	// exitSignal plus the signal's number is the status of a command that
	// SIGINT (130) or SIGTERM (143) interrupted before it was done, as a
	// shell reports a command that the signal killed. The commands that
	// serve until stopped (bridge, demo --serve) exit 0 on either.
	exitSignal = 128
)

// exitError carries an exit status with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr, taskErr and noAnswerErr wrap err with an exit status. An
// error that already carries one keeps it.
func usageErr(format string, a ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, a...))
}
func taskErr(err error) error     { return withCode(exitTaskError, err) }
func noAnswerErr(err error) error { return withCode(exitNoAnswer, err) }

// withCode gives err the exit status code, unless it has one.
func withCode(code int, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code, err}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the exit status.
func run(args []string) int {
	ctx, stop := notifyContext(context.Background())
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage // cobra's own errors: unknown flags, wrong arg counts
	var (
		ee  *exitError
		sig interrupted
	)
	switch {
	case errors.As(context.Cause(ctx), &sig):
		code = exitSignal + int(sig.sig)
	case errors.As(err, &ee):
		code = ee.code
	}
	if v, ok := argValue(args, "--log-format"); ok && global.logFormat != v {
		global.logFormat = v // an error that came before the flags were parsed
	}
	reportError(os.Stderr, err, code)
	return code
}

// argValue returns the value given to the flag name in args, as --name
// value or --name=value, the last one given.
func argValue(args []string, name string) (value string, ok bool) {
	for i, a := range args {
		switch {
		case a == "--":
			return value, ok
		case a == name && i+1 < len(args):
			value, ok = args[i+1], true
		case strings.HasPrefix(a, name+"="):
			value, ok = a[len(name)+1:], true
		}
	}
	return value, ok
}

// interrupted is the cause of a command's context that a signal ended.
type interrupted struct{ sig syscall.Signal }

func (e interrupted) Error() string { return e.sig.String() + " received" }

// exitNow ends the process with code: a command interrupted a second
// time, which has not wound down since the first (a write to a reader
// that stopped reading, a read of an input that never ends, or a bridge
// draining answers that the operator no longer wants).
var exitNow = func(code int) {
	reportError(os.Stderr, errors.New("interrupted again; exiting without waiting further"), code)
	os.Exit(code)
}

// notifyContext returns a context that SIGINT or SIGTERM ends, with
// interrupted as its cause; stop releases the signals. Once a signal has
// ended it, a second signal before stop ends the process (exit 128 + the
// second signal's number).
func notifyContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var sig syscall.Signal
		select {
		case s := <-ch:
			sig, _ = s.(syscall.Signal)
			cancel(interrupted{sig})
		case <-ctx.Done():
			return
		case <-quit:
			return
		}
		select {
		case s := <-ch:
			if s2, ok := s.(syscall.Signal); ok {
				sig = s2
			}
			exitNow(exitSignal + int(sig))
		case <-quit:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(quit)
		cancel(nil)
		<-done
	}
}

// innerPrefix matches the "acomm: " that the library's errors start with,
// where it follows another message.
var innerPrefix = regexp.MustCompile(`(^|: )acomm: `)

// message returns err's message without the repeated "acomm: " prefixes
// of the errors it wraps: main prints one.
func message(err error) string {
	return innerPrefix.ReplaceAllString(err.Error(), "$1")
}

// globalFlags are the flags of every command.
type globalFlags struct {
	logLevel  string
	logFormat string
	verbose   bool
}

var global globalFlags

// newRootCmd builds the command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "acomm",
		Short: "Call acomm services, read their streams, bridge them to HTTP",
		Long: `acomm talks to services that speak acomm: asynchronous request/response
over unix sockets, with an HTTP bridge for callers elsewhere.

A service address is a unix socket, as unix:///run/svc.sock or a plain
path (/run/svc.sock, ./svc.sock), or an acomm bridge's http(s) URL.

Exit status: 0 success, 1 the task answered with an error, 2 bad usage
or input, 3 no answer (unreachable, refused, timed out), 130 interrupted
by SIGINT (Ctrl-C; 143 by SIGTERM; a second one exits at once). A call
interrupted, or past its --timeout, tells the service to cancel the
request, when the service (or bridge) takes cancel notices.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			_, err := newLogger()
			return err
		},
	}
	// --version without cobra's -v, which most tools read as "verbose":
	// here too.
	root.Flags().Bool("version", false, "print acomm's version and exit (as acomm version)")
	root.SetVersionTemplate(versionLine())
	pf := root.PersistentFlags()
	pf.StringVar(&global.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	pf.StringVar(&global.logFormat, "log-format", "text", "log `FORMAT`: text or json (with json, the error a command ends with is a JSON record too)")
	pf.BoolVarP(&global.verbose, "verbose", "v", false, "log at debug level: request ids, addresses dialed, features negotiated, each step's timing (--log-level debug)")
	root.AddCommand(newCallCmd(), newInfoCmd(), newPingCmd(), newStreamCmd(), newDemoCmd(), newBridgeCmd(), newVersionCmd())
	return root
}

// envAnnotation marks a flag whose value may come from an environment
// variable (see fromEnv).
const envAnnotation = "acomm_env"

// fromEnv lets flag name of fs be set by the environment variable env,
// for secrets and paths to them that do not belong on a command line
// (where other users can read them) and that service managers pass in the
// environment.
func fromEnv(fs *pflag.FlagSet, name, env string) {
	f := fs.Lookup(name)
	f.Usage += " (env " + env + ")"
	_ = fs.SetAnnotation(name, envAnnotation, []string{env})
}

// applyEnv sets each flag marked by fromEnv and not given on the command
// line from its environment variable, when that is set.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		envs := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(envs) == 0 {
			return
		}
		if v, ok := os.LookupEnv(envs[0]); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usageErr("%s: %w", envs[0], serr)
			}
		}
	})
	return err
}

// newVersionCmd is acomm version, as grpcurl and varlinkctl have it.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print acomm's version, with the commit it was built from",
		Long: `Print acomm's version (as --version does), with the commit it was built
from when the build recorded one. A build from a clone records it unless
GOFLAGS says -buildvcs=false (or it is a git worktree): build with
go build -buildvcs=true -o acomm ./cmd/acomm to have it.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("version takes no arguments, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}

// versionLine is what acomm version and --version print.
func versionLine() string {
	return fmt.Sprintf("acomm %s (%s %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// version returns acomm's version, with the commit it was built from
// when the build recorded one.
func version() string {
	v := acomm.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev == "" || strings.Contains(v, rev[:min(12, len(rev))]) {
		return v
	}
	return fmt.Sprintf("%s (commit %s%s)", v, rev[:min(12, len(rev))], modified)
}
