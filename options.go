package acomm

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"time"

	"github.com/sirupsen/logrus"
)

// Option configures a Tracker, UnixListener or Server. Pass options to the
// component's Configure method before starting it. Each option says which
// components it applies to; Configure refuses one that does not apply to
// its component with an error matching ErrOptionNotApplicable, and applies
// none of the options it was given.
type Option func(*config) error

// target is a set of components that options configure.
type target uint8

// The components options configure.
const (
	forTracker target = 1 << iota
	forServer
	forListener
	forAll = forTracker | forServer | forListener
	// forReceivers are the components that read frames themselves.
	forReceivers = forTracker | forServer
)

// String names the component, for errors.
func (t target) String() string {
	switch t {
	case forTracker:
		return "Tracker"
	case forServer:
		return "Server"
	case forListener:
		return "UnixListener"
	}
	return "component"
}

// option returns the Option named name that applies to the components in
// applies and changes a config with set.
func option(name string, applies target, set func(*config) error) Option {
	return func(c *config) error {
		if c.target != 0 && c.target&applies == 0 {
			return fmt.Errorf("%w: %s does not apply to a %s", ErrOptionNotApplicable, name, c.target)
		}
		return set(c)
	}
}

// config holds the settings that options change.
type config struct {
	target            target // the component configured; 0 accepts every option
	logger            logrus.FieldLogger
	maxFrameSize      int
	ioTimeout         time.Duration
	idleTimeout       time.Duration
	socketMode        os.FileMode
	streamIdleTimeout time.Duration
	legacyURLs        bool
	gracePeriod       time.Duration             // Server: see WithGracePeriod
	maxHandlers       int                       // Server: see WithMaxHandlers
	peerCheck         PeerCheck                 // see WithPeerCheck
	maxConns          int                       // see WithMaxConns
	maxTracked        int                       // Tracker: see WithMaxTracked
	maxStreams        int                       // Tracker: see WithMaxStreams
	httpHook          *url.URL                  // Tracker: see WithHTTPHook
	callMiddleware    []func(CallFunc) CallFunc // Tracker: see WithCallMiddleware

	noIntrospection bool            // Server: see WithoutIntrospection (introspect.go)
	handed          *handedListener // see WithListener (handoff.go)
}

// Defaults for the settings options change.
const (
	// DefaultSocketMode is the permission of listening sockets: owner and
	// group may connect, others may not.
	DefaultSocketMode os.FileMode = 0o660
	// DefaultIdleTimeout is how long a receiver keeps an idle connection
	// open waiting for its next frame.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultStreamIdleTimeout is how long a stream made by NewStreamUnix
	// waits for its reader before it is cleaned up.
	DefaultStreamIdleTimeout = 5 * time.Minute
	// DefaultMaxStreams is how many streams made by NewStreamUnix may wait
	// for their readers at once. Each holds a socket and its source's
	// descriptors until read or cleaned up; 128 keeps a tracker well
	// within the usual limit of 1024 descriptors.
	DefaultMaxStreams = 128
)

// configFor returns the default settings of component, whose Configure
// accepts only the options that apply to it.
func configFor(component target) config {
	c := defaultConfig()
	c.target = component
	return c
}

// defaultConfig returns the settings used when no option changes them.
func defaultConfig() config {
	return config{
		logger:            discardLogger(),
		maxFrameSize:      DefaultMaxFrameSize,
		ioTimeout:         DefaultIOTimeout,
		idleTimeout:       DefaultIdleTimeout,
		socketMode:        DefaultSocketMode,
		streamIdleTimeout: DefaultStreamIdleTimeout,
		gracePeriod:       DefaultGracePeriod,
		maxHandlers:       DefaultMaxHandlers,
		maxConns:          DefaultMaxConns,
		maxStreams:        DefaultMaxStreams,
	}
}

// apply applies opts in order to c.
func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	return nil
}

// discardLogger returns a logger that writes nothing.
func discardLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.PanicLevel)
	return l
}

// WithLogger sets the logger used by background goroutines (accept loops,
// connection handlers, timeouts, streams). The default discards everything.
// Expected conditions (a response for an unknown request, a peer that hung
// up) are logged at Debug level, faults at Warn or Error.
func WithLogger(l logrus.FieldLogger) Option {
	return option("WithLogger", forAll, func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidArgument)
		}
		c.logger = l
		return nil
	})
}

// WithMaxFrameSize sets the largest frame body accepted or sent
// (default DefaultMaxFrameSize).
func WithMaxFrameSize(n int) Option {
	return option("WithMaxFrameSize", forReceivers, func(c *config) error {
		if n <= 0 || uint64(n) > math.MaxUint32 {
			return fmt.Errorf("%w: max frame size %d (want 1 to %d)", ErrInvalidArgument, n, uint64(math.MaxUint32))
		}
		c.maxFrameSize = n
		return nil
	})
}

// WithIOTimeout bounds each frame read and write once it has started
// (default DefaultIOTimeout), so a peer that stalls mid-frame is cut off.
func WithIOTimeout(d time.Duration) Option {
	return option("WithIOTimeout", forReceivers, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: io timeout %s", ErrInvalidArgument, d)
		}
		c.ioTimeout = d
		return nil
	})
}

// WithIdleTimeout sets how long a receiver waits for the next frame on an
// open connection before closing it (default DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) Option {
	return option("WithIdleTimeout", forReceivers, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: idle timeout %s", ErrInvalidArgument, d)
		}
		c.idleTimeout = d
		return nil
	})
}

// WithSocketMode sets the file mode of listening sockets (default
// DefaultSocketMode). Use 0o666 to let every local user connect.
func WithSocketMode(m os.FileMode) Option {
	return option("WithSocketMode", forAll, func(c *config) error {
		if m&^os.ModePerm != 0 {
			return fmt.Errorf("%w: socket mode %v", ErrInvalidArgument, m)
		}
		c.socketMode = m
		return nil
	})
}

// WithStreamIdleTimeout sets how long a stream made by NewStreamUnix waits
// for its reader before the source is closed and the socket removed
// (default DefaultStreamIdleTimeout).
func WithStreamIdleTimeout(d time.Duration) Option {
	return option("WithStreamIdleTimeout", forTracker, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: stream idle timeout %s", ErrInvalidArgument, d)
		}
		c.streamIdleTimeout = d
		return nil
	})
}

// WithLegacyURLs makes a tracker write URLs in frames it originates
// (proxied requests, forwarded responses) in the object form of the
// original acomm, for peers that still run it.
func WithLegacyURLs() Option {
	return option("WithLegacyURLs", forTracker, func(c *config) error {
		c.legacyURLs = true
		return nil
	})
}

// WithMaxConns bounds the connections a listener keeps open at once
// (default DefaultMaxConns; 0 means no bound). A connection above the
// bound is refused as soon as it is accepted, logged and counted (Refused,
// and RefusedConns in the stats): a Server or Tracker acknowledges its
// first frame with an error matching ErrTooManyConns, so that the
// sender's Send fails with it; a UnixListener closes it unread.
func WithMaxConns(n int) Option {
	return option("WithMaxConns", forAll, func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: max conns %d", ErrInvalidArgument, n)
		}
		c.maxConns = n
		return nil
	})
}

// WithMaxTracked bounds the requests a tracker tracks at once (0, the
// default, means no bound). TrackRequest and ProxyUnix fail with an error
// matching ErrTooManyRequests above it.
func WithMaxTracked(n int) Option {
	return option("WithMaxTracked", forTracker, func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: max tracked %d", ErrInvalidArgument, n)
		}
		c.maxTracked = n
		return nil
	})
}

// WithHTTPHook gives a tracker an http(s) URL at which it receives
// responses (a Bridge's ResponsesHandler serving this tracker). Call uses
// it as the response hook when calling an http(s) destination, such as
// another machine's bridge, which refuses unix hooks. Like every response
// hook, it may have no user info and no opaque part; errors match both
// ErrInvalidArgument and ErrInvalidURL.
func WithHTTPHook(u *url.URL) Option {
	return option("WithHTTPHook", forTracker, func(c *config) error {
		if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
			return fmt.Errorf("%w: %w: http hook must be an absolute http(s) url", ErrInvalidArgument, ErrInvalidURL)
		}
		if err := checkHookUser(u); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		c.httpHook = u
		return nil
	})
}

// WithMaxStreams bounds the streams a tracker's NewStreamUnix keeps
// waiting for their readers at once (default DefaultMaxStreams; 0 means
// no bound). NewStreamUnix fails with an error matching ErrTooManyStreams
// above it; a stream being read no longer counts.
func WithMaxStreams(n int) Option {
	return option("WithMaxStreams", forTracker, func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: max streams %d", ErrInvalidArgument, n)
		}
		c.maxStreams = n
		return nil
	})
}
