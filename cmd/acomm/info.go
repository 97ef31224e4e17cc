package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acommgo/acomm"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

func newInfoCmd() *cobra.Command {
	var (
		timeout time.Duration
		asJSON  bool
		remote  remoteFlags
	)
	cmd := &cobra.Command{
		Use:   "info [flags] <address>",
		Short: "Show what a service offers: its tasks and library version",
		Long: `Ask a service for its tasks, each with its description and an example
of its args, and the version of acomm it runs (the reserved task
acomm.info, which every acomm Server answers unless told not to).

Through a bridge, the bridge needs a route for acomm.info to the service.`,
		Example: `  acomm info /run/disk.sock
  acomm info --json unix:///run/disk.sock | jq '.tasks[].task'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest, err := parseAddress(args[0])
			if err != nil {
				return err
			}
			c, err := newCaller(remote, timeout)
			if err != nil {
				return err
			}
			defer c.close()
			resp, err := c.call(cmd.Context(), dest, acomm.InfoTask, nil)
			if err != nil {
				if resp != nil && errors.Is(resp.Error, acomm.ErrUnknownTask) {
					return taskErr(fmt.Errorf("%s does not answer %s: an original acomm service, or one with introspection turned off", dest.Redacted(), acomm.InfoTask))
				}
				return err
			}
			if asJSON {
				return printResponse(cmd.OutOrStdout(), resp, false)
			}
			var info acomm.ServiceInfo
			if err := resp.UnmarshalResult(&info); err != nil {
				return taskErr(fmt.Errorf("%s: %s answered something else than a service description: %w", dest.Redacted(), acomm.InfoTask, err))
			}
			return printInfo(cmd.OutOrStdout(), dest, info)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	fl.BoolVar(&asJSON, "json", false, "print the answer as JSON")
	addRemoteFlags(cmd, &remote)
	return cmd
}

// printInfo prints a service's description as a table.
func printInfo(w io.Writer, dest *url.URL, info acomm.ServiceInfo) error {
	fmt.Fprintf(w, "%s: acomm %s, %d tasks\n\n", dest.Redacted(), printable(info.Version), len(info.Tasks))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tDESCRIPTION\tEXAMPLE ARGS")
	for _, t := range info.Tasks {
		desc, example := t.Description, string(t.Example)
		if desc == "" {
			desc = "-"
		}
		if example == "" {
			example = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", cell(t.Task), cell(desc), cell(example))
	}
	return tw.Flush()
}

// cell returns s made printable for a table cell: a tab in it would start
// another column.
func cell(s string) string {
	return strings.ReplaceAll(printable(s), "\t", " ")
}

func newPingCmd() *cobra.Command {
	var (
		timeout time.Duration
		remote  remoteFlags
	)
	cmd := &cobra.Command{
		Use:   "ping [flags] <address>",
		Short: "Check that a service is alive and print the round-trip time",
		Long: `Check that a service is alive: send it the reserved task acomm.ping and
print the round-trip time. Exit status 0 when it answered (even with an
error: an original acomm service does not know acomm.ping), 3 when not.

For a bridge's http(s) URL, GET its /healthz endpoint instead (next to the
URL's last path element: http://host:8080/requests → /healthz).`,
		Example: `  acomm ping /run/disk.sock
  acomm ping --timeout 1s unix:///run/disk.sock || systemctl restart disk
  acomm ping http://bridge:8080/requests`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest, err := parseAddress(args[0])
			if err != nil {
				return err
			}
			if dest.Scheme != "unix" {
				log, err := newLogger()
				if err != nil {
					return err
				}
				return pingBridge(cmd.Context(), log, cmd.OutOrStdout(), dest, timeout)
			}
			c, err := newCaller(remote, timeout)
			if err != nil {
				return err
			}
			defer c.close()
			start := time.Now()
			resp, err := c.call(cmd.Context(), dest, acomm.PingTask, nil)
			rtt := time.Since(start)
			var ee *exitError
			switch {
			case err == nil:
				fmt.Fprintf(cmd.OutOrStdout(), "%s is alive: %s\n", dest, roundRTT(rtt))
			case resp != nil && errors.As(err, &ee) && ee.code == exitTaskError:
				fmt.Fprintf(cmd.OutOrStdout(), "%s is alive: %s (it answered: %s)\n", dest, roundRTT(rtt), printable(message(resp.Error)))
			default:
				return noAnswerErr(fmt.Errorf("%s is not alive: %w", dest, err))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	addRemoteFlags(cmd, &remote)
	return cmd
}

// roundRTT rounds a round-trip time for printing.
func roundRTT(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// pingBridge checks a bridge's /healthz endpoint.
func pingBridge(ctx context.Context, log logrus.FieldLogger, w io.Writer, dest *url.URL, timeout time.Duration) error {
	if timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	health := dest.ResolveReference(&url.URL{Path: "healthz"})
	if dest.Path == "" {
		health = dest.JoinPath("healthz")
	}
	health.RawQuery, health.Fragment = "", ""
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, health.String(), nil)
	if err != nil {
		return usageErr("%w", err)
	}
	start := time.Now()
	resp, err := httpClient.Do(req)
	log = log.WithFields(logrus.Fields{"addr": health.Redacted(), "took": since(start)})
	if err != nil {
		log.WithError(err).Debug("GET failed")
		if ctx.Err() != nil {
			return noAnswerErr(fmt.Errorf("%s is not alive: no answer within %s (--timeout)", health.Redacted(), timeout))
		}
		return noAnswerErr(fmt.Errorf("%s is not alive: %w", health.Redacted(), err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	rtt := time.Since(start)
	log.WithField("status", resp.StatusCode).Debug("GET answered")
	if resp.StatusCode != http.StatusOK {
		return noAnswerErr(fmt.Errorf("%s is not alive: %s: %s", health.Redacted(), resp.Status, errorBody(body)))
	}
	fmt.Fprintf(w, "%s is alive: %s\n", health.Redacted(), roundRTT(rtt))
	return nil
}
