package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
	"github.com/sirupsen/logrus"
)

// hookPath is the path at which the command's hook takes answers.
const hookPath = "/responses"

// hookEndpoint is the temporary HTTP endpoint at which a call through a
// bridge receives its answer. It remembers what reached it, so that a
// call without an answer can tell why: nothing came (the bridge could not
// reach the hook, or would not), or something came on a path it does not
// serve (a wrong --hook-url).
type hookEndpoint struct {
	url    *url.URL // what the bridge is told to post to (--hook-url)
	tr     *acomm.Tracker
	srv    *http.Server
	served chan struct{}
	log    logrus.FieldLogger
	// misdirected gets an error when the awaited answer is posted on a
	// path the hook does not serve.
	misdirected chan error

	mu       sync.Mutex // protects the fields below
	id       string     // the request whose answer is awaited
	received int        // requests that reached the hook, on any path
	stray    string     // the first request on another path, "POST /x"
}

// startHook listens on --hook-listen and serves tr's answers there until
// close.
func startHook(tr *acomm.Tracker, remote remoteFlags, log logrus.FieldLogger) (*hookEndpoint, error) {
	ln, err := net.Listen("tcp", remote.hookListen)
	if err != nil {
		return nil, usageErr("--hook-listen %s: %w", remote.hookListen, err)
	}
	hook, err := hookURL(remote.hookURL, ln.Addr())
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	h := &hookEndpoint{tr: tr, served: make(chan struct{}), log: log, misdirected: make(chan error, 1)}
	h.url, _ = url.Parse(hook) // checked by hookURL
	br := &bridge.Bridge{Tracker: tr}
	mux := http.NewServeMux()
	mux.Handle("POST "+hookPath, br.Handler())
	mux.HandleFunc("/", h.serveStray)
	h.srv = bridge.NewHTTPServer(ln.Addr().String(), h.count(mux))
	go func() {
		defer close(h.served)
		_ = h.srv.Serve(ln)
	}()
	log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "hook": hook}).Debug("hook listening")
	return h, nil
}

// close stops the hook's server.
func (h *hookEndpoint) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	<-h.served
}

// bind returns the hook of a request: the hook URL with the request's
// capability, which the hook then expects.
func (h *hookEndpoint) bind(id string) *url.URL {
	h.mu.Lock()
	h.id = id
	h.mu.Unlock()
	return h.tr.BindHook(h.url, id)
}

// count counts the requests that reach next.
func (h *hookEndpoint) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.received++
		h.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// serveStray answers a request on a path the hook does not serve with 404,
// logs it, and remembers it. One that carries the capability of the
// request's hook is its answer, posted where --hook-url led the bridge:
// misdirected then says so, so that the call need not wait for its
// timeout.
func (h *hookEndpoint) serveStray(w http.ResponseWriter, r *http.Request) {
	what := r.Method + " " + r.URL.Path
	h.mu.Lock()
	if h.stray == "" {
		h.stray = what
	}
	id := h.id
	h.mu.Unlock()
	own := id != "" && r.Method == http.MethodPost && h.tr.HookBound(r.URL, id)
	h.log.WithFields(logrus.Fields{"request": what, "remote": r.RemoteAddr, "served": "POST " + hookPath}).
		Warn("hook received a request on a path it does not serve: is --hook-url right?")
	if own {
		select {
		case h.misdirected <- h.errMisdirected(what):
		default:
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = fmt.Fprintf(w, `{"error":"not found: this hook takes answers at POST %s"}`+"\n", hookPath)
}

// errMisdirected is the request's answer posted on a path the hook does
// not serve.
func (h *hookEndpoint) errMisdirected(what string) error {
	return usageErr("the bridge posted the answer as %s, but this command's hook takes answers at POST %s: --hook-url %s must lead to http://<--hook-listen>%s",
		what, hookPath, h.url.Redacted(), hookPath)
}

// diagnosis says what reached the hook, for a call that got no answer.
func (h *hookEndpoint) diagnosis() string {
	if h == nil { // a call over a unix socket
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.stray != "":
		return fmt.Sprintf("the hook received %s, but takes answers at POST %s: is --hook-url %s right?", h.stray, hookPath, h.url.Redacted())
	case h.received == 0:
		return fmt.Sprintf("nothing reached the hook %s: the bridge could not reach it, or may not (see --hook-listen, --hook-url, and the bridge's --allow-hook)", h.url.Redacted())
	}
	return ""
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
	return "http://" + net.JoinHostPort(host, port) + hookPath, nil
}

// hookRefusal turns err, a bridge's refusal of the request's hook (403,
// response hook forbidden), into what to do about it, with exit status 2:
// a configuration to change, not a bridge that did not answer. A bridge
// refuses loopback and its own machine's addresses unless told otherwise,
// and the hook listens on 127.0.0.1 by default.
func hookRefusal(err error, hook *url.URL) error {
	return usageErr("%w; this command's hook, at %s, is where the bridge posts the answer: "+
		"start the bridge with --allow-hook %s (for a bridge on this machine), "+
		"or give --hook-listen (and --hook-url) an address the bridge may reach",
		err, hook.Host, hook.Hostname())
}

// isHookRefusal reports whether a bridge's 403 body refuses the hook.
func isHookRefusal(body string) bool {
	return strings.Contains(body, bridge.ErrHookForbidden.Error())
}
