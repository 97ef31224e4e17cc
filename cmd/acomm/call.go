package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
	"github.com/spf13/cobra"
)

// callFlags are the flags of acomm call.
type callFlags struct {
	timeout    time.Duration
	output     string
	hookListen string
	hookURL    string
	tokenFile  string
}

func newCallCmd() *cobra.Command {
	var f callFlags
	cmd := &cobra.Command{
		Use:   "call [flags] <service-url> <task> [json-args]",
		Short: "Send a request to a service and print the result",
		Long: `Send a request to a service and wait for its answer.

The result is printed as JSON on stdout. A task error goes to stderr with
exit status 1. With -o FILE, the response's stream is saved to FILE.

The service URL is a unix socket (unix:///run/svc.sock) or an acomm bridge
(http://host:8080/requests). For a bridge, the answer is received on a
temporary HTTP endpoint (--hook-listen) that the bridge must be able to
reach, and the bearer token in --token-file is sent.`,
		Example: `  acomm call unix:///run/disk.sock disk.usage '{"path":"/"}'
  acomm call --token-file token http://bridge:8080/requests disk.usage '{"path":"/"}'
  acomm call -o image.raw unix:///run/img.sock image.export '{"id":7}'`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCall(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f, args)
		},
	}
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "save the response's stream to `FILE`")
	cmd.Flags().StringVar(&f.hookListen, "hook-listen", "127.0.0.1:0", "`ADDR` of the temporary HTTP endpoint receiving a bridge's answer")
	cmd.Flags().StringVar(&f.hookURL, "hook-url", "", "`URL` the bridge posts the answer to, when it must differ from http://<hook-listen>/responses (NAT, another host name)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "read the bridge's bearer token from `FILE`")
	return cmd
}

// parseServiceURL checks a service or stream URL argument.
func parseServiceURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "unix" && u.Scheme != "http" && u.Scheme != "https") {
		return nil, usageErr("invalid service url %q: want unix:///path.sock or http(s)://host/path", s)
	}
	if u.Scheme == "unix" && u.Path == "" || u.Scheme != "unix" && u.Host == "" {
		return nil, usageErr("invalid service url %q", s)
	}
	return u, nil
}

// readToken reads a token file ("" gives no token).
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageErr("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func runCall(ctx context.Context, stdout, stderr io.Writer, f callFlags, args []string) error {
	dest, err := parseServiceURL(args[0])
	if err != nil {
		return err
	}
	task := args[1]
	var payload any
	if len(args) == 3 {
		if !json.Valid([]byte(args[2])) {
			return usageErr("json-args is not valid JSON: %s", args[2])
		}
		payload = json.RawMessage(args[2])
	}
	token, err := readToken(f.tokenFile)
	if err != nil {
		return err
	}
	if f.timeout <= 0 {
		return usageErr("--timeout must be positive")
	}

	tracker, err := acomm.NewTracker("", nil, f.timeout)
	if err != nil {
		return noAnswerErr(err)
	}
	if err := tracker.Start(); err != nil {
		return noAnswerErr(err)
	}
	defer tracker.Stop()

	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var resp *acomm.Response
	if dest.Scheme == "unix" {
		resp, err = tracker.Call(ctx, dest, task, payload)
	} else {
		resp, err = callBridge(ctx, tracker, dest, task, payload, f, token)
	}
	if err != nil {
		if resp != nil && resp.Error != nil {
			return taskErr(fmt.Errorf("task %s: %w", task, resp.Error))
		}
		return noAnswerErr(err)
	}

	result := []byte("null")
	if resp.Result != nil {
		result = *resp.Result
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", result); err != nil {
		return err
	}
	if f.output != "" {
		if resp.StreamURL == nil {
			return noAnswerErr(fmt.Errorf("-o %s: the response has no stream", f.output))
		}
		return saveStream(ctx, stderr, resp.StreamURL, f.output, token)
	}
	return nil
}

// callBridge sends a request to an acomm bridge over HTTP and waits for its
// answer on a temporary HTTP hook.
func callBridge(ctx context.Context, tracker *acomm.Tracker, dest *url.URL, task string, payload any, f callFlags, token string) (*acomm.Response, error) {
	ln, err := net.Listen("tcp", f.hookListen)
	if err != nil {
		return nil, usageErr("--hook-listen %s: %w", f.hookListen, err)
	}
	hook, err := hookURL(f.hookURL, ln.Addr())
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	br := &bridge.Bridge{Tracker: tracker}
	srv := bridge.NewHTTPServer(ln.Addr().String(), br.Handler())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()

	answers := make(chan *acomm.Response, 1)
	handle := func(_ *acomm.Request, resp *acomm.Response) { answers <- resp }
	req, err := acomm.NewRequest(task, hook, payload, handle, handle)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	// Only the bridge sent this request may answer it at our hook.
	req.ResponseHook = tracker.BindHook(req.ResponseHook, req.ID)
	timeout := time.Until(deadlineOf(ctx))
	if err := tracker.TrackRequest(req, timeout); err != nil {
		return nil, err
	}
	if err := postRequest(ctx, dest, req, token); err != nil {
		if tracker.RemoveRequest(req) {
			return nil, err
		}
	}
	select {
	case resp := <-answers:
		return resp, resp.Error
	case <-ctx.Done():
		tracker.RemoveRequest(req)
		return nil, ctx.Err()
	}
}

// hookURL returns the URL the bridge should post the answer to: --hook-url
// when given, else the listener's address, with this host's name in place
// of an unspecified address (0.0.0.0, ::), which a remote bridge could not
// reach.
func hookURL(flagURL string, addr net.Addr) (string, error) {
	if flagURL != "" {
		u, err := url.Parse(flagURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", usageErr("invalid --hook-url %q: want http(s)://host:port/path", flagURL)
		}
		return flagURL, nil
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		h, err := os.Hostname()
		if err != nil {
			return "", usageErr("--hook-listen %s: cannot name this host; give --hook-url", addr)
		}
		host = h
	}
	return "http://" + net.JoinHostPort(host, port) + "/responses", nil
}

// deadlineOf returns ctx's deadline, or a minute from now.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}

// postRequest POSTs req to a bridge with the bearer token and checks the
// acknowledgement.
func postRequest(ctx context.Context, dest *url.URL, req *acomm.Request, token string) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.String(), strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	hresp, err := httpClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("post request: %w", err)
	}
	defer hresp.Body.Close()
	ackBody, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if hresp.StatusCode/100 != 2 {
		return fmt.Errorf("bridge answered %s: %s", hresp.Status, strings.TrimSpace(string(ackBody)))
	}
	var ack acomm.Response
	if json.Unmarshal(ackBody, &ack) == nil && ack.Error != nil {
		return fmt.Errorf("bridge refused the request: %w", ack.Error)
	}
	return nil
}

// httpClient bounds connection set-up and headers; bodies may be long
// streams.
var httpClient = &http.Client{
	Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	},
}
