package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/acommgo/acomm"
	"github.com/sirupsen/logrus"
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
	log     logrus.FieldLogger
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
	return &caller{tracker: tracker, remote: remote, token: token, timeout: timeout, log: log}, nil
}

// close stops the caller's tracker.
func (c *caller) close() { c.tracker.Stop() }

// maxTokenBytes bounds a token file: a token is a line.
const maxTokenBytes = 64 << 10

// readToken reads a token file ("" gives no token).
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := readFileMax(path, maxTokenBytes)
	if err != nil {
		return "", usageErr("read token file: %w", err)
	}
	if len(b) > maxTokenBytes {
		return "", usageErr("token file %s is larger than %d bytes", path, maxTokenBytes)
	}
	return strings.TrimSpace(string(b)), nil
}

// route is the way of a request to its service: the hook its answer
// comes to, how it is sent, and how the service learns that the caller
// gave up, where the tracker does not tell it.
type route struct {
	// hook is the response hook of its requests; bind, if set, makes
	// one for the request with id (see Tracker.BindHook).
	hook *url.URL
	bind func(id string) *url.URL
	// send sends req and returns the features the receiver listed.
	send func(ctx context.Context, req *acomm.Request) ([]string, error)
	// giveUp tells the service that req is no longer awaited, where the
	// tracker does not, and reports whether the service was told.
	giveUp func(req *acomm.Request) (told bool)
	// misdirected, if set, yields an error when the request's answer is
	// posted where it cannot be taken (see hookEndpoint.misdirected).
	misdirected <-chan error
}

// call sends task with payload to dest and waits for the answer. Its
// error carries the exit status: 1 for an error the task answered with,
// 2 for a request the bridge found invalid, one too large to send or not
// valid (a task name that is not UTF-8), or an address that is not a
// socket, 3 for no answer. The response is returned with a task error
// too. A call interrupted, or past its timeout, tells the service to
// cancel the request.
func (c *caller) call(ctx context.Context, dest *url.URL, task string, payload any) (*acomm.Response, error) {
	if err := checkSocket(dest); err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var (
		r    route
		hook *hookEndpoint
	)
	if dest.Scheme == "unix" {
		r = c.unixRoute(dest)
	} else {
		var err error
		if hook, err = startHook(c.tracker, c.remote, c.log); err != nil {
			return nil, err
		}
		defer hook.close()
		r = c.bridgeRoute(dest, hook)
	}
	resp, err := c.exchange(ctx, dest, task, payload, r)
	if err == nil {
		return resp, nil
	}
	var (
		ee *exitError
		re *acomm.RemoteError
	)
	// A timeout a service answers with is a task error, unless it is the
	// call's own deadline, which the request carried to the service.
	remoteTimeout := resp != nil && errors.As(resp.Error, &re) && errors.Is(re, acomm.ErrTimeout)
	switch {
	case errors.As(err, &ee):
		return nil, err
	case remoteTimeout && dest.Scheme != "unix":
		return nil, noAnswerErr(fmt.Errorf("task %s: %w", task, re)) // the bridge's wait ended
	case resp != nil && errors.As(resp.Error, &re) && !(remoteTimeout && pastDeadline(ctx)):
		return resp, taskErr(fmt.Errorf("task %s: %w", task, re))
	case parent.Err() != nil:
		return nil, noAnswerErr(fmt.Errorf("task %s: interrupted before an answer%s", task, told(err)))
	case errors.Is(err, acomm.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("task %s: no answer within %s (--timeout)", task, c.timeout)
		if d := hook.diagnosis(); d != "" {
			msg += "; " + d
		}
		return nil, noAnswerErr(errors.New(msg + told(err)))
	case errors.Is(err, syscall.EPROTOTYPE):
		return nil, usageErr("%s is not a stream socket: an acomm service listens on a unix stream socket", dest.Path)
	case errors.Is(err, acomm.ErrFrameTooLarge), errors.Is(err, acomm.ErrInvalidArgument), errors.Is(err, acomm.ErrInvalidRequest):
		// What was given cannot be sent: too large, or not a request.
		return nil, withCode(exitUsage, fmt.Errorf("task %s: %w", task, err))
	}
	return nil, noAnswerErr(fmt.Errorf("task %s: %w", task, err))
}

// pastDeadline reports whether ctx's deadline has passed, or is so near
// that a service's copy of it (a request carries it in whole
// milliseconds, from when it was sent) may have.
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < 10*time.Millisecond
}

// errServiceTold marks a request given up whose service was told to
// cancel it.
var errServiceTold = errors.New("the service was told to cancel it")

// told returns what a message adds when err says the service was told to
// cancel the request.
func told(err error) string {
	if errors.Is(err, errServiceTold) {
		return "; " + errServiceTold.Error()
	}
	return ""
}

// unixRoute is the route to a service's unix socket: the tracker sends
// the request, and tells the service when it is given up (removed or
// timed out), if its acknowledgements listed "cancel".
func (c *caller) unixRoute(dest *url.URL) route {
	return route{
		hook: c.tracker.URL(),
		send: func(ctx context.Context, req *acomm.Request) ([]string, error) {
			err := c.tracker.Send(ctx, dest, req)
			return acomm.PeerFeatures(dest), err
		},
		giveUp: func(*acomm.Request) bool { return slices.Contains(acomm.PeerFeatures(dest), "cancel") },
	}
}

// bridgeRoute is the route through the bridge at dest: the request is
// POSTed with the bearer token, its answer comes to the command's hook,
// and when it is given up the bridge is sent a cancel notice, if it takes
// them, with the request's own hook, as a bridge requires.
func (c *caller) bridgeRoute(dest *url.URL, hook *hookEndpoint) route {
	var features []string
	return route{
		hook: hook.url,
		bind: hook.bind,
		send: func(ctx context.Context, req *acomm.Request) ([]string, error) {
			f, err := c.postRequest(ctx, dest, req)
			features = f
			return f, err
		},
		giveUp: func(req *acomm.Request) bool {
			return slices.Contains(features, "cancel") && c.cancelAtBridge(dest, req)
		},
		misdirected: hook.misdirected,
	}
}

// exchange sends a request for task with payload along r and waits for
// its answer, or the end of ctx; then it removes the request, which tells
// a unix service to cancel it, and gives it up along r. It logs each step
// at debug level.
func (c *caller) exchange(ctx context.Context, dest *url.URL, task string, payload any, r route) (*acomm.Response, error) {
	answers := make(chan *acomm.Response, 1)
	handle := func(_ *acomm.Request, resp *acomm.Response) { answers <- resp }
	req, err := acomm.NewRequest(task, r.hook.String(), payload, handle, handle)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	if r.bind != nil {
		req.ResponseHook = r.bind(req.ID)
	}
	log := c.log.WithFields(logrus.Fields{"id": req.ID, "task": task, "addr": dest.Redacted()})
	start := time.Now()
	if err := c.tracker.TrackRequest(req, time.Until(deadlineOf(ctx))); err != nil {
		return nil, err
	}
	log.WithField("hook", r.hook.Redacted()).Debug("sending request") // without the request's capability
	// A send under way when the caller gives up is not cut short: its
	// acknowledgement tells whether the receiver takes a cancel notice,
	// and the request may have reached the service by then.
	sctx, stop := graceAfter(ctx, cancelNoticeTimeout)
	features, err := r.send(sctx, req)
	stop()
	sent := time.Now()
	if err != nil {
		log.WithError(err).WithField("took", since(start)).Debug("send failed")
		if c.tracker.RemoveRequest(req) {
			return nil, err
		}
	} else {
		log.WithFields(logrus.Fields{"features": features, "took": since(start)}).Debug("request acknowledged")
	}
	// giveUp gives the request up along r, and returns err marked when
	// the service was told.
	giveUp := func(err error, reason string) error {
		told := r.giveUp(req)
		log.WithFields(logrus.Fields{"waited": since(sent), "reason": reason, "service_told": told}).Debug("request given up")
		if told {
			return fmt.Errorf("%w (%w)", err, errServiceTold)
		}
		return err
	}
	var resp *acomm.Response
	select {
	case resp = <-answers:
	case err := <-r.misdirected:
		if c.tracker.RemoveRequest(req) {
			return nil, err
		}
		resp = <-answers // answered as it was given up
	case <-ctx.Done():
		if c.tracker.RemoveRequest(req) {
			return nil, giveUp(ctx.Err(), context.Cause(ctx).Error())
		}
		resp = <-answers // answered, or timed out, as it was given up
	}
	var re *acomm.RemoteError
	if errors.Is(resp.Error, acomm.ErrTimeout) && !errors.As(resp.Error, &re) {
		// The tracker's own timeout, at ctx's deadline.
		return resp, giveUp(resp.Error, "timed out")
	}
	log.WithFields(logrus.Fields{"waited": since(sent), "total": since(start)}).Debug("answer received")
	return resp, resp.Error
}

// graceAfter returns a context that ends grace after ctx does, or when
// stop is called.
func graceAfter(ctx context.Context, grace time.Duration) (_ context.Context, stop context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-gctx.Done():
			}
		case <-gctx.Done():
		}
	}()
	return gctx, cancel
}

// since returns the time since t, rounded for a log.
func since(t time.Time) string { return time.Since(t).Round(time.Microsecond).String() }

// deadlineOf returns ctx's deadline, or a minute from now.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}

// postRequest POSTs req to a bridge with the bearer token, checks the
// acknowledgement and returns the features it lists. A refusal carries
// the exit status its HTTP status means: 1 for a task the bridge has no
// route for (as a service answers an unknown task), 2 for a request it
// found invalid or too large, or whose hook it refuses (see hookRefusal),
// 3 otherwise.
func (c *caller) postRequest(ctx context.Context, dest *url.URL, req *acomm.Request) ([]string, error) {
	status, ackBody, err := c.post(ctx, dest, req)
	if err != nil {
		return nil, fmt.Errorf("post request: %w", err)
	}
	if status/100 != 2 {
		err := fmt.Errorf("bridge answered %d %s: %s", status, http.StatusText(status), errorBody(ackBody))
		switch {
		case status == http.StatusNotFound:
			return nil, taskErr(err)
		case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge:
			return nil, withCode(exitUsage, err)
		case status == http.StatusForbidden && isHookRefusal(errorBody(ackBody)):
			return nil, hookRefusal(err, req.ResponseHook)
		}
		return nil, noAnswerErr(err)
	}
	var ack acomm.Response
	if json.Unmarshal(ackBody, &ack) == nil && ack.Error != nil {
		return nil, fmt.Errorf("bridge refused the request: %w", ack.Error)
	}
	var listed struct {
		Features []string `json:"features"`
	}
	_ = json.Unmarshal(ackBody, &listed)
	return listed.Features, nil
}

// post POSTs req to a bridge with the bearer token and returns the status
// and body of its answer.
func (c *caller) post(ctx context.Context, dest *url.URL, req *acomm.Request) (int, []byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := httpClient.Do(hreq)
	if err != nil {
		return 0, nil, err
	}
	defer hresp.Body.Close()
	ackBody, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	return hresp.StatusCode, ackBody, nil
}

// cancelNoticeTimeout bounds the sending of a cancel notice: it only saves
// the service work, and the command is exiting.
const cancelNoticeTimeout = 2 * time.Second

// cancelAtBridge sends the bridge at dest the cancel notice of req, with
// req's own hook (the only one the bridge takes a notice with), so that
// the bridge removes it and tells its service to cancel it; it reports
// whether the bridge took the notice.
func (c *caller) cancelAtBridge(dest *url.URL, req *acomm.Request) bool {
	notice, err := acomm.NewRequest(acomm.CancelTask, req.ResponseHook.String(), map[string]string{"id": req.ID}, nil, nil)
	if err != nil {
		c.log.WithError(err).Debug("cannot build the cancel notice")
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelNoticeTimeout)
	defer cancel()
	start := time.Now()
	status, body, err := c.post(ctx, dest, notice)
	log := c.log.WithFields(logrus.Fields{"id": req.ID, "notice": notice.ID, "addr": dest.Redacted(), "took": since(start)})
	switch {
	case err != nil:
		log.WithError(err).Warn("cancel notice not sent; the service may run the request to its end")
	case status/100 != 2:
		log.WithField("status", status).WithField("answer", errorBody(body)).Warn("cancel notice refused; the service may run the request to its end")
	default:
		log.Debug("cancel notice sent")
		return true
	}
	return false
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
