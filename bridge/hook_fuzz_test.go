package bridge

import (
	"net/url"
	"testing"
)

// FuzzNormalizeHook checks the promise of normalizeHook for hooks in both
// wire forms (a string, and the legacy object's fields): a hook it accepts
// is an http(s) URL with a host and no opaque part or userinfo, and the
// string an HTTP client dials reads back as the very URL that was vetted.
func FuzzNormalizeHook(f *testing.F) {
	for _, seed := range []struct{ raw, scheme, host, opaque, path string }{
		{"http://h.example/x", "http", "h.example", "", "/x"},
		{"http://a@127.0.0.1/x", "http", "allowed.example", "//127.0.0.1:1/admin", "/x"},
		{"https://[::1]:8/x?y#z", "https", "[::1]:8", "", ""},
		{"HTTP://H/%2e%2e/", "http", "h", "", "/%2e"},
		{"unix:///x.sock", "unix", "", "", "/x.sock"},
		{"http:///x", "http", "", "", "@evil/x"},
	} {
		f.Add(seed.raw, seed.scheme, seed.host, seed.opaque, seed.path)
	}
	f.Fuzz(func(t *testing.T, raw, scheme, host, opaque, path string) {
		check := func(u *url.URL) {
			n, err := normalizeHook(u)
			if err != nil {
				return
			}
			if n.Scheme != "http" && n.Scheme != "https" || n.Host == "" || n.User != nil || n.Opaque != "" {
				t.Fatalf("accepted %#v as %#v", u, n)
			}
			back, err := url.Parse(n.String())
			if err != nil || back.Host != n.Host || back.Scheme != n.Scheme || back.User != nil || back.Opaque != "" {
				t.Fatalf("%q dials %#v, not the vetted %#v", n.String(), back, n)
			}
			if n.Host != u.Host || n.Scheme != u.Scheme {
				t.Fatalf("vetted %#v for the hook %#v", n, u)
			}
		}
		if u, err := url.Parse(raw); err == nil {
			check(u)
		}
		check(&url.URL{Scheme: scheme, Host: host, Opaque: opaque, Path: path})
	})
}
