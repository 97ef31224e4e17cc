package acomm_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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
	handed, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath(t, "h.sock"), Net: "unix"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = handed.Close() })
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
		"WithMaxStreams":        acomm.WithMaxStreams(8),
		"WithoutIntrospection":  acomm.WithoutIntrospection(),
		"WithListener":          acomm.WithListener(handed),
		"WithCallMiddleware":    acomm.WithCallMiddleware(func(next acomm.CallFunc) acomm.CallFunc { return next }),
	}
	applies := map[string]map[string]bool{
		"Tracker": set("WithLogger", "WithMaxFrameSize", "WithIOTimeout", "WithIdleTimeout", "WithSocketMode",
			"WithStreamIdleTimeout", "WithLegacyURLs", "WithMaxConns", "WithMaxTracked", "WithHTTPHook", "WithPeerCheck",
			"WithMaxStreams", "WithListener", "WithCallMiddleware", "WithGracePeriod"),
		"Server": set("WithLogger", "WithMaxFrameSize", "WithIOTimeout", "WithIdleTimeout", "WithSocketMode",
			"WithMaxConns", "WithPeerCheck", "WithGracePeriod", "WithMaxHandlers", "WithoutIntrospection", "WithListener"),
		"UnixListener": set("WithLogger", "WithSocketMode", "WithMaxConns", "WithPeerCheck", "WithListener", "WithGracePeriod"),
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
	t.Run("every option is in this table", func(t *testing.T) {
		for _, name := range optionFuncs(t) {
			require.Contains(t, options, name, "classify %s: which components does it apply to?", name)
		}
	})
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

// optionFuncs returns the names of the package's exported functions that
// return an Option.
func optionFuncs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var names []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "Option" {
				names = append(names, fn.Name.Name)
			}
		}
	}
	require.NotEmpty(t, names)
	return names
}

// A tracker's http hook is a response hook: one with user info or an
// opaque part is refused when configured, not when a Call sends it.
func TestWithHTTPHookRefusesWhatHooksRefuse(t *testing.T) {
	for _, raw := range []string{"http://allowed@127.0.0.1:9/responses", "http://u:p@h/responses", "http:h/responses", "unix:///x.sock", "http:///p"} {
		t.Run(raw, func(t *testing.T) {
			tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 0)
			require.NoError(t, err)
			err = tr.Configure(acomm.WithHTTPHook(mustURL(t, raw)))
			require.ErrorIs(t, err, acomm.ErrInvalidURL)
			require.ErrorIs(t, err, acomm.ErrInvalidArgument)
		})
	}
}
