package main

import (
	"context"
	"encoding/json"
	"errors"
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

// remoteFlags are the flags of commands that may call through a bridge.
type remoteFlags struct {
	hookListen string
	hookURL    string
	tokenFile  string
}

// addRemoteFlags adds the flags of calls through a bridge to cmd.
func addRemoteFlags(cmd *cobra.Command, f *remoteFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.hookListen, "hook-listen", "127.0.0.1:0", "`ADDR` of the temporary HTTP endpoint receiving a bridge's answer")
	fl.StringVar(&f.hookURL, "hook-url", "", "`URL` the bridge posts the answer to, when it must differ from http://<hook-listen>/responses (NAT, another host name)")
	fl.StringVar(&f.tokenFile, "token-file", "", "read the bridge's bearer token from `FILE`")
	fromEnv(fl, "token-file", "ACOMM_TOKEN_FILE")
}

// caller sends requests and waits for their answers, over a unix socket
// or through a bridge.
type caller struct {
	tracker *acomm.Tracker
	remote  remoteFlags
	token   string
	timeout time.Duration
}

// newCaller returns a caller with a running tracker; close it.
func newCaller(remote remoteFlags, timeout time.Duration) (*caller, error) {
	if timeout <= 0 {
		return nil, usageErr("--timeout must be positive")
	}
	token, err := readToken(remote.tokenFile)
	if err != nil {
		return nil, err
	}
	log, err := newLogger()
	if err != nil {
		return nil, err
	}
	tracker, err := acomm.NewTracker("", nil, timeout)
	if err == nil {
		err = tracker.Configure(acomm.WithLogger(log))
	}
	if err == nil {
		err = tracker.Start()
	}
	if err != nil {
		return nil, noAnswerErr(err)
	}
	return &caller{tracker: tracker, remote: remote, token: token, timeout: timeout}, nil
}

// close stops the caller's tracker.
func (c *caller) close() { c.tracker.Stop() }

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

// call sends task with payload to dest and waits for the answer. Its
// error carries the exit status: 1 for an error the task answered with,
// 2 for a request the bridge found invalid, 3 for no answer. The
// response is returned with a task error too.
func (c *caller) call(ctx context.Context, dest *url.URL, task string, payload any) (*acomm.Response, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var (
		resp *acomm.Response
		err  error
	)
	if dest.Scheme == "unix" {
		resp, err = c.tracker.Call(ctx, dest, task, payload)
	} else {
		resp, err = c.callBridge(ctx, dest, task, payload)
	}
	if err == nil {
		return resp, nil
	}
	var (
		ee *exitError
		re *acomm.RemoteError
	)
	switch {
	case errors.As(err, &ee):
		return nil, err
	case resp != nil && errors.As(resp.Error, &re) && errors.Is(re, acomm.ErrTimeout):
		return nil, noAnswerErr(fmt.Errorf("task %s: %w", task, re)) // the bridge's wait ended
	case resp != nil && errors.As(resp.Error, &re):
		return resp, taskErr(fmt.Errorf("task %s: %w", task, re))
	case parent.Err() != nil:
		return nil, noAnswerErr(fmt.Errorf("task %s: interrupted before an answer", task))
	case errors.Is(err, acomm.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return nil, noAnswerErr(fmt.Errorf("task %s: no answer within %s (--timeout)", task, c.timeout))
	}
	return nil, noAnswerErr(fmt.Errorf("task %s: %w", task, err))
}

// callBridge sends a request to an acomm bridge over HTTP and waits for its
// answer on a temporary HTTP hook.
func (c *caller) callBridge(ctx context.Context, dest *url.URL, task string, payload any) (*acomm.Response, error) {
	ln, err := net.Listen("tcp", c.remote.hookListen)
	if err != nil {
		return nil, usageErr("--hook-listen %s: %w", c.remote.hookListen, err)
	}
	hook, err := hookURL(c.remote.hookURL, ln.Addr())
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	br := &bridge.Bridge{Tracker: c.tracker}
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
	// Only the bridge sent this request may answer it at our hook:
	// TrackRequest binds the hook to this request, and the request goes
	// out with that hook.
	req.ResponseHook = c.tracker.BindHook(req.ResponseHook, req.ID)
	if err := c.tracker.TrackRequest(req, time.Until(deadlineOf(ctx))); err != nil {
		return nil, err
	}
	if err := c.postRequest(ctx, dest, req); err != nil {
		if c.tracker.RemoveRequest(req) {
			return nil, err
		}
	}
	select {
	case resp := <-answers:
		return resp, resp.Error
	case <-ctx.Done():
		c.tracker.RemoveRequest(req)
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
// acknowledgement. A refusal carries the exit status its HTTP status
// means: 1 for a task the bridge has no route for (as a service answers
// an unknown task), 2 for a request it found invalid or too large, 3
// otherwise.
func (c *caller) postRequest(ctx context.Context, dest *url.URL, req *acomm.Request) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.String(), strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := httpClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("post request: %w", err)
	}
	defer hresp.Body.Close()
	ackBody, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if hresp.StatusCode/100 != 2 {
		err := fmt.Errorf("bridge answered %s: %s", hresp.Status, errorBody(ackBody))
		switch hresp.StatusCode {
		case http.StatusNotFound:
			return taskErr(err)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return withCode(exitUsage, err)
		}
		return noAnswerErr(err)
	}
	var ack acomm.Response
	if json.Unmarshal(ackBody, &ack) == nil && ack.Error != nil {
		return fmt.Errorf("bridge refused the request: %w", ack.Error)
	}
	return nil
}

// errorBody returns the message of a JSON error body ({"error":"…"}), or
// the body itself.
func errorBody(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(b))
}

// streamToken returns the token to send when reading stream, a stream
// URL from the answer of a request sent to dest: the bearer token goes
// only to the origin it was given for (the bridge that was called), never
// to a host that a response names. A unix stream named by a bridge's
// answer is refused: it would be a socket on this machine, chosen by the
// other side.
func (c *caller) streamToken(dest, stream *url.URL) (string, error) {
	if dest.Scheme == "unix" {
		return "", nil
	}
	if stream.Scheme == "unix" {
		return "", noAnswerErr(fmt.Errorf("the bridge's answer names a local unix stream %s; not read", stream))
	}
	if !sameOrigin(dest, stream) {
		return "", nil
	}
	return c.token, nil
}

// sameOrigin reports whether a and b have the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOf(a) == portOf(b)
}

// portOf returns u's port, or its scheme's default.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// httpClient bounds connection set-up and headers (bodies may be long
// streams) and follows no redirect: a bearer token goes only where it was
// meant to.
var httpClient = &http.Client{
	Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
