package bridge

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/acommgo/acomm"
)

// Route sends the requests for some tasks to a local service.
type Route struct {
	// Pattern is a task name, matched exactly, or a prefix followed by
	// "*" ("disk.*"), matched by every task that begins with the prefix.
	// "*" alone matches every task.
	Pattern string
	// Addr is the unix URL of the service's socket.
	Addr *url.URL
}

// ParseRoute parses a route written PATTERN=UNIX_URL, such as
// "disk.*=unix:///run/disk.sock". Errors match acomm.ErrInvalidArgument.
func ParseRoute(s string) (Route, error) {
	pattern, addr, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("%w: route %q: want PATTERN=unix:///path", acomm.ErrInvalidArgument, s)
	}
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil {
		return Route{}, fmt.Errorf("%w: route %q: %w: %w", acomm.ErrInvalidArgument, s, acomm.ErrInvalidURL, err)
	}
	r := Route{Pattern: strings.TrimSpace(pattern), Addr: u}
	if err := r.validate(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// String returns the route in the form ParseRoute reads.
func (r Route) String() string {
	addr := ""
	if r.Addr != nil {
		addr = r.Addr.String()
	}
	return r.Pattern + "=" + addr
}

// validate checks the pattern and that the address is a unix socket URL.
func (r Route) validate() error {
	switch i := strings.IndexByte(r.Pattern, '*'); {
	case r.Pattern == "":
		return fmt.Errorf("%w: route %q: empty pattern", acomm.ErrInvalidArgument, r.String())
	case i >= 0 && i != len(r.Pattern)-1:
		return fmt.Errorf("%w: route %q: '*' may only end a pattern", acomm.ErrInvalidArgument, r.String())
	}
	switch {
	case r.Addr == nil:
		return fmt.Errorf("%w: route %q: %w: missing address", acomm.ErrInvalidArgument, r.String(), acomm.ErrInvalidURL)
	case r.Addr.Scheme != "unix":
		return fmt.Errorf("%w: route %q: %w: %q: routes lead to unix sockets", acomm.ErrInvalidArgument, r.String(), acomm.ErrUnsupportedScheme, r.Addr.Scheme)
	case r.Addr.Path == "" && r.Addr.Opaque == "":
		return fmt.Errorf("%w: route %q: %w: no socket path", acomm.ErrInvalidArgument, r.String(), acomm.ErrInvalidURL)
	}
	return nil
}

// match returns the route for task among routes: the route whose pattern
// is task, or else the prefix pattern with the longest prefix of task.
func match(routes []Route, task string) (Route, bool) {
	best, bestLen := -1, -1
	for i, r := range routes {
		if r.Addr == nil {
			continue
		}
		prefix, isPrefix := strings.CutSuffix(r.Pattern, "*")
		switch {
		case !isPrefix:
			if r.Pattern == task {
				return r, true
			}
		case len(prefix) > bestLen && strings.HasPrefix(task, prefix):
			best, bestLen = i, len(prefix)
		}
	}
	if best < 0 {
		return Route{}, false
	}
	return routes[best], true
}
