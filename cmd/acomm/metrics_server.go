package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/acommgo/acomm/bridge"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// listenMetrics listens on the --metrics address ("" for none).
func listenMetrics(addr string) ([]net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageErr("--metrics %s: %w", addr, err)
	}
	return []net.Listener{ln}, nil
}

// serveMetrics serves m at /metrics on ln until shut down.
func serveMetrics(log logrus.FieldLogger, ln net.Listener, m *bridgeMetrics) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	srv := bridge.NewHTTPServer(ln.Addr().String(), mux)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Warn("metrics server stopped")
		}
	}()
	log.WithField("addr", "http://"+ln.Addr().String()+"/metrics").Info("serving metrics")
	return srv
}

// shutdownQuickly shuts srv down, giving its requests a moment.
func shutdownQuickly(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		_ = srv.Close()
	}
}
