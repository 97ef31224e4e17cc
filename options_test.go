package acomm_test

import (
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// Each component accepts the options that apply to it and refuses the
// others with ErrOptionNotApplicable (which also matches
// ErrInvalidArgument), instead of ignoring them.
func TestConfigureOptionApplicability(t *testing.T) {
	hook := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	options := map[string]acomm.Option{
		"WithLogger":            acomm.WithLogger(logrus.New()),
		"WithMaxFrameSize":      acomm.WithMaxFrameSize(1 << 16),
		"WithIOTimeout":         acomm.WithIOTimeout(time.Second),
		"WithIdleTimeout":       acomm.WithIdleTimeout(time.Second),
		"WithSocketMode":        acomm.WithSocketMode(0o600),
		"WithStreamIdleTimeout": acomm.WithStreamIdleTimeout(time.Second),
		"WithLegacyURLs":        acomm.WithLegacyURLs(),
		"WithMaxConns":          acomm.WithMaxConns(8),
		"WithMaxTracked":        acomm.WithMaxTracked(8),
		"WithHTTPHook":          acomm.WithHTTPHook(hook),
		"WithPeerCheck":         acomm.WithPeerCheck(acomm.SameUser()),
		"WithGracePeriod":       acomm.WithGracePeriod(time.Second),
		"WithMaxHandlers":       acomm.WithMaxHandlers(8),
	}
	applies := map[string]map[string]bool{
		"Tracker": set("WithLogger", "WithMaxFrameSize", "WithIOTimeout", "WithIdleTimeout", "WithSocketMode",
			"WithStreamIdleTimeout", "WithLegacyURLs", "WithMaxConns", "WithMaxTracked", "WithHTTPHook", "WithPeerCheck"),
		"Server": set("WithLogger", "WithMaxFrameSize", "WithIOTimeout", "WithIdleTimeout", "WithSocketMode",
			"WithMaxConns", "WithPeerCheck", "WithGracePeriod", "WithMaxHandlers"),
		"UnixListener": set("WithLogger", "WithSocketMode", "WithMaxConns", "WithPeerCheck"),
	}
	configure := map[string]func(t *testing.T) func(...acomm.Option) error{
		"Tracker": func(t *testing.T) func(...acomm.Option) error {
			tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
			require.NoError(t, err)
			return tr.Configure
		},
		"Server": func(t *testing.T) func(...acomm.Option) error {
			return acomm.NewServer(sockPath(t, "s.sock"), nil).Configure
		},
		"UnixListener": func(t *testing.T) func(...acomm.Option) error {
			return acomm.NewUnixListener(sockPath(t, "l.sock"), 0).Configure
		},
	}
	for component, ok := range applies {
		for name, opt := range options {
			t.Run(component+"/"+name, func(t *testing.T) {
				err := configure[component](t)(opt)
				if ok[name] {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, acomm.ErrOptionNotApplicable)
				require.ErrorIs(t, err, acomm.ErrInvalidArgument)
				require.ErrorContains(t, err, name)
			})
		}
	}
}

// A Configure that fails applies none of its options.
func TestConfigureAllOrNothing(t *testing.T) {
	path := sockPath(t, "l.sock")
	ul := acomm.NewUnixListener(path, 0)
	require.ErrorIs(t, ul.Configure(acomm.WithSocketMode(0o600), acomm.WithMaxTracked(1)), acomm.ErrOptionNotApplicable)
	require.NoError(t, ul.Start())
	t.Cleanup(func() { ul.Stop(0) })
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, acomm.DefaultSocketMode, fi.Mode().Perm())
}

// set returns a set of names.
func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
