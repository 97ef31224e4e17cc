package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// bridgeFlags are the flags of acomm bridge.
type bridgeFlags struct {
	listen    string
	routes    []string
	tokenFile string
	advertise string
	tlsCert   string
	tlsKey    string
	timeout   time.Duration
	drain     time.Duration
	expvar    bool
	allowHook []string
	metrics   string
}

func newBridgeCmd() *cobra.Command {
	var f bridgeFlags
	cmd := &cobra.Command{
		Use:   "bridge --listen ADDR --route PATTERN=unix:///path.sock [--route ...] [flags]",
		Short: "Serve an HTTP bridge in front of local unix services",
		Long: `Serve an HTTP bridge that lets callers on other machines use local acomm
services.

  POST /requests   an acomm Request whose responsehook is an http(s) URL;
                   routed by task to a unix service (--route), answered
                   later on the hook
  GET  /stream     a stream announced in a forwarded response, once
  POST /responses  an acomm Response for a request this bridge sent
  GET  /healthz    200 while serving, 503 while stopping (no token)

Routes match a task exactly or by a trailing-* prefix (disk.*). With
--token-file /requests and /stream require "Authorization: Bearer TOKEN".

Answers are never delivered to loopback, link-local, unspecified or
multicast addresses, nor to this machine's own addresses, checked on the
address actually dialed: a caller must not make the bridge reach what only
the bridge can reach. --allow-hook opens a CIDR range, an address or a
host name (repeatable): --allow-hook 127.0.0.1 for callers on this
machine, such as acomm call, whose hook listens there by default.
Deliveries never follow redirects.

SIGINT or SIGTERM stops the bridge: it stops taking requests and delivers
the answers still due within --drain, then exits, whatever the hooks do.

Under systemd, the bridge may be socket-activated: it then serves the
socket systemd passes (LISTEN_FDS) and takes no --listen; see
contrib/systemd. --metrics serves Prometheus metrics (the tracker's
counters, hook-delivery latency) on a separate address, without token.`,
		Example: `  acomm bridge --listen :8080 --route 'disk.*=unix:///run/disk.sock' --token-file /etc/acomm/token
  acomm bridge --listen 127.0.0.1:8080 --route 'disk.*=unix:///run/disk.sock' --allow-hook 127.0.0.1   # callers on this machine`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBridge(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "`ADDR` to listen on, e.g. :8080 (required unless socket-activated)")
	fl.StringArrayVar(&f.routes, "route", nil, "`PATTERN=unix:///path.sock` route for tasks; a plain socket path does too (repeatable)")
	fl.StringVar(&f.tokenFile, "token-file", "", "require the bearer token in `FILE` on /requests and /stream (and /debug/vars)")
	fl.StringVar(&f.advertise, "advertise", "", "base `URL` written into forwarded stream_urls (default derived from --listen)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `FILE`")
	fl.StringVar(&f.tlsKey, "tls-key", "", "serve HTTPS with this key `FILE`")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "how long a request waits for its answer")
	fl.DurationVar(&f.drain, "drain", 5*time.Second, "how long shutdown waits for in-flight requests and their deliveries")
	fl.StringArrayVar(&f.allowHook, "allow-hook", nil, "deliver answers to this `CIDR|address|host` too, though loopback, link-local or local (repeatable)")
	fl.BoolVar(&f.expvar, "expvar", false, "serve the tracker's stats as expvar JSON at GET /debug/vars (token required too)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9102")
	fromEnv(fl, "token-file", "ACOMM_TOKEN_FILE")
	fromEnv(fl, "tls-cert", "ACOMM_TLS_CERT")
	fromEnv(fl, "tls-key", "ACOMM_TLS_KEY")
	return cmd
}

// advertiseURL derives the bridge's public base URL.
func advertiseURL(f bridgeFlags, addr net.Addr) (*url.URL, error) {
	if f.advertise != "" {
		u, err := url.Parse(f.advertise)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageErr("invalid --advertise %q: want http(s)://host[:port]", f.advertise)
		}
		return u, nil
	}
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		} else {
			host = "localhost"
		}
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}, nil
}

func runBridge(ctx context.Context, f bridgeFlags) error {
	log, err := newLogger()
	if err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageErr("--tls-cert and --tls-key go together")
	}
	if len(f.routes) == 0 {
		return usageErr("at least one --route is required")
	}
	routes := make([]bridge.Route, 0, len(f.routes))
	for _, s := range f.routes {
		r, err := parseRoute(s)
		if err != nil {
			return err
		}
		routes = append(routes, r)
	}
	policy, err := hookPolicy(f.allowHook)
	if err != nil {
		return err
	}
	token, err := readToken(f.tokenFile)
	if err != nil {
		return err
	}
	if f.tokenFile != "" && token == "" {
		return usageErr("token file %s is empty", f.tokenFile)
	}
	var cert *tls.Certificate
	if f.tlsCert != "" {
		// Loaded before listening: a bad pair is bad usage, found now.
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return usageErr("--tls-cert %s, --tls-key %s: %w", f.tlsCert, f.tlsKey, err)
		}
		cert = &c
	}
	metricsLn, err := listenMetrics(f.metrics)
	if err != nil {
		return err
	}
	ln, activated, err := bridgeListener(f.listen)
	if err != nil {
		closeAll(metricsLn)
		return err
	}
	defer closeAll(metricsLn) // after the server's Shutdown
	base, err := advertiseURL(f, ln.Addr())
	if err != nil {
		_ = ln.Close()
		return err
	}
	streamURL := base.JoinPath("stream")
	tracker, err := acomm.NewTracker("", streamURL, f.timeout)
	if err != nil {
		_ = ln.Close()
		return err
	}
	if err := tracker.Configure(acomm.WithLogger(log)); err != nil {
		_ = ln.Close()
		return err
	}
	if err := tracker.Start(); err != nil {
		_ = ln.Close()
		return err
	}
	br, err := bridge.New(tracker, routes...)
	if err != nil {
		_ = ln.Close()
		tracker.Stop()
		return usageErr("%w", err)
	}
	br.Token = token
	br.Timeout = f.timeout
	br.Logger = log
	br.HookPolicy = policy
	var metrics *bridgeMetrics
	if metricsLn != nil {
		metrics = newBridgeMetrics(tracker)
		br.OnDelivery = metrics.observeDelivery
	}

	handler := br.Handler()
	if f.expvar {
		acomm.PublishExpvar("acomm", map[string]*acomm.Tracker{"bridge": tracker}, nil)
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		mux.Handle("GET /debug/vars", requireToken(token, expvar.Handler()))
		handler = mux
	}
	srv := bridge.NewHTTPServer(ln.Addr().String(), logRequests(log, handler))
	if cert != nil {
		if srv.TLSConfig == nil {
			srv.TLSConfig = &tls.Config{}
		}
		srv.TLSConfig.Certificates = []tls.Certificate{*cert}
	}
	serveErr := make(chan error, 1)
	go func() {
		if cert != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	if metrics != nil {
		msrv := serveMetrics(log, metricsLn[0], metrics)
		defer shutdownQuickly(msrv)
	}
	log.WithFields(logrus.Fields{"addr": ln.Addr().String(), "advertise": base.String(), "routes": len(routes), "auth": token != "", "socket_activated": activated}).
		Info("bridge listening")
	warnConfig(log, ln.Addr(), token, routes)
	warnLoopbackHooks(log, ln.Addr(), policy)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		tracker.Stop()
		return noAnswerErr(fmt.Errorf("serve: %w", err))
	}
	// Stop taking requests, let in-flight ones finish, then deliver the
	// answers still owed, all within the drain period; what is left then
	// is abandoned, so the bridge exits on time whatever hooks do.
	dctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.WithError(err).Warn("http shutdown incomplete")
		_ = srv.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.WithError(err).Warn("serve ended with an error")
	}
	if err := br.Shutdown(dctx); err != nil {
		log.WithError(err).Warn("abandoned answers still due")
	}
	// The bridge's requests are settled: the tracker has nothing left to
	// wait for but its own streams.
	tctx, tcancel := context.WithTimeout(context.Background(), time.Second)
	defer tcancel()
	if err := tracker.Shutdown(tctx); err != nil {
		log.WithError(err).Warn("tracker shutdown incomplete")
	}
	log.Info("bridge stopped")
	return nil
}

// hookPolicy returns the daemon's hook policy: the defaults of
// bridge.HookPolicy, this machine's own addresses denied too, and what
// --allow-hook opens.
func hookPolicy(allow []string) (*bridge.HookPolicy, error) {
	p := &bridge.HookPolicy{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					ip = ip.Unmap()
					p.Deny = append(p.Deny, netip.PrefixFrom(ip, ip.BitLen()))
				}
			}
		}
	}
	for _, s := range allow {
		if err := p.AllowHook(s); err != nil {
			return nil, usageErr("--allow-hook %q: %w", s, err)
		}
	}
	return p, nil
}

// requireToken guards h with the bearer token, when there is one.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"missing or wrong bearer token"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs each HTTP request with logrus fields.
func logRequests(log logrus.FieldLogger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			log.WithFields(logrus.Fields{
				"method":   r.Method,
				"path":     r.URL.Path,
				"status":   sw.status,
				"remote":   r.RemoteAddr,
				"duration": time.Since(start).Round(time.Microsecond).String(),
			}).Info("request")
		}()
		h.ServeHTTP(sw, r)
	})
}

// warnConfig warns about a configuration that serves, but probably not as
// meant: no token, or routes to sockets that are not there (yet).
func warnConfig(log logrus.FieldLogger, addr net.Addr, token string, routes []bridge.Route) {
	if token == "" {
		log.WithField("addr", addr.String()).
			Warn("no --token-file: anyone who can reach this address may call the routed services and read their streams")
	}
	for _, r := range routes {
		path := r.Addr.Path
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			log.WithFields(logrus.Fields{"route": r.Pattern, "socket": path}).WithError(err).
				Warn("route's socket is not there (yet): its requests fail until its service listens")
		case fi.Mode()&os.ModeSocket == 0:
			log.WithFields(logrus.Fields{"route": r.Pattern, "socket": path}).
				Warn("route's socket path is not a socket: its requests will fail")
		}
	}
}

// warnLoopbackHooks warns when the bridge listens on loopback only, so
// that its callers are on this machine, and yet may not post their
// answers to a hook on loopback, where acomm call listens by default.
func warnLoopbackHooks(log logrus.FieldLogger, addr net.Addr, policy *bridge.HookPolicy) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return
	}
	loopback, _ := netip.AddrFromSlice(tcp.IP)
	if policy.CheckAddr(loopback.Unmap()) == nil {
		return
	}
	log.WithField("addr", addr.String()).
		Warnf("listening on loopback only, for callers on this machine, whose hooks it may not post answers to: give --allow-hook %s", loopback.Unmap())
}

// parseRoute reads a --route: PATTERN=ADDRESS, the address written as
// every command takes one (unix:///path.sock, /path.sock, ./path.sock;
// unix://run/x.sock, which would lead to /x.sock, is refused with a hint).
func parseRoute(s string) (bridge.Route, error) {
	pattern, addr, ok := strings.Cut(s, "=")
	if ok && (isPath(addr) || strings.HasPrefix(addr, "unix:")) {
		u, err := parseAddress(addr)
		if err != nil {
			return bridge.Route{}, usageErr("--route %q: %w", s, err)
		}
		s = pattern + "=" + u.String()
	}
	if strings.IndexFunc(pattern, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return bridge.Route{}, usageErr("--route %q: the pattern has a space or a control character: no task matches it", s)
	}
	r, err := bridge.ParseRoute(s)
	if err != nil {
		return bridge.Route{}, usageErr("--route %q: %w", s, err)
	}
	if r.Addr != nil && r.Addr.Scheme == "unix" && len(r.Addr.Path) > maxSocketPath {
		return bridge.Route{}, usageErr("--route %q: socket path longer than %d bytes, the most a unix socket address holds", s, maxSocketPath)
	}
	return r, nil
}

// maxSocketPath is the longest path a unix socket address holds (Linux's
// sun_path, less its terminating NUL).
const maxSocketPath = 107
