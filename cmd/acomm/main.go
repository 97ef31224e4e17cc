// Command acomm calls acomm services, checks that they are alive and what
// they offer, reads their streams, runs an HTTP bridge in front of them,
// and demonstrates the library.
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "acomm:", message(err))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage // cobra's own errors: unknown flags, wrong arg counts
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
or input, 3 no answer (unreachable, refused, timed out).`,
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
	root.InitDefaultVersionFlag() // now, so that the generated reference lists it
	root.SetVersionTemplate(fmt.Sprintf("acomm {{.Version}} (%s %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH))
	pf := root.PersistentFlags()
	pf.StringVar(&global.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	pf.StringVar(&global.logFormat, "log-format", "text", "log `FORMAT`: text or json")
	root.AddCommand(newCallCmd(), newInfoCmd(), newPingCmd(), newStreamCmd(), newDemoCmd(), newBridgeCmd())
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
