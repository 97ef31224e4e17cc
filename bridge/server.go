package bridge

import (
	"net/http"
	"time"
)

// Timeouts of the server made by NewHTTPServer.
const (
	serverReadHeaderTimeout = 10 * time.Second
	serverReadTimeout       = time.Minute
	serverWriteTimeout      = time.Minute
	serverIdleTimeout       = 2 * time.Minute
	serverMaxHeaderBytes    = 64 << 10
)

// NewHTTPServer returns an http.Server for h (a Bridge's Handler, say)
// with every timeout set, so a slow or idle client cannot hold it:
// ReadHeaderTimeout 10s, ReadTimeout 1m, WriteTimeout 1m, IdleTimeout 2m,
// and headers limited to 64 KiB. A stream answer lifts the write timeout
// for itself, since a stream may take longer, and bounds each write
// instead (see acomm.ProxyStreamHandler). Start the server with
// ListenAndServe, or Serve on a listener; stop it with Shutdown.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes,
	}
}
