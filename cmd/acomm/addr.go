package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// parseAddress reads a service or stream address as varlinkctl does: a
// unix URL with an absolute path (unix:///run/svc.sock), a plain absolute
// or ./relative socket path, or an http(s) URL of an acomm bridge. A unix
// URL with a host part (unix://run/svc.sock, which would name
// /svc.sock) is refused with the spelling that was probably meant.
func parseAddress(s string) (*url.URL, error) {
	if isPath(s) {
		abs, err := filepath.Abs(s)
		if err != nil {
			return nil, usageErr("address %q: %w", s, err)
		}
		return &url.URL{Scheme: "unix", Path: abs}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, usageErr("invalid address %q: want unix:///path.sock, /path.sock, ./path.sock or http(s)://host/path", s)
	}
	switch u.Scheme {
	case "unix":
		switch {
		case u.Host == "localhost":
			return nil, usageErr("unix address %q has a host part %q: a unix URL takes none, as in unix://%s (or the plain path)", s, u.Host, u.Path)
		case u.Host != "":
			return nil, usageErr("unix address %q has a host part %q: a unix URL takes three slashes, as in unix:///%s%s", s, u.Host, u.Host, u.Path)
		case u.Opaque != "":
			return nil, usageErr("unix address %q: want an absolute path, as in unix:///path.sock, or a plain ./relative path", s)
		case u.Path == "" || !strings.HasPrefix(u.Path, "/"):
			return nil, usageErr("unix address %q has no socket path", s)
		}
		return &url.URL{Scheme: "unix", Path: filepath.Clean(u.Path)}, nil
	case "http", "https":
		if u.Host == "" {
			return nil, usageErr("address %q has no host", s)
		}
		return u, nil
	}
	return nil, usageErr("invalid address %q: want unix:///path.sock, /path.sock, ./path.sock or http(s)://host/path", s)
}

// isPath reports whether s is a plain socket path: absolute, or relative
// starting with ./ or ../ (a bare name would be ambiguous with a URL).
func isPath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
}

// checkSocket fails with exit status 2 when the unix address u names
// something that is there but is not a socket, such as a regular file or
// a directory: dialing it would fail with "connection refused", which
// points the wrong way. A path that is not there is left to the dial,
// which says so.
func checkSocket(u *url.URL) error {
	if u.Scheme != "unix" {
		return nil
	}
	fi, err := os.Stat(u.Path)
	if err != nil || fi.Mode()&os.ModeSocket != 0 {
		return nil
	}
	kind := "a regular file"
	switch t := fi.Mode().Type(); {
	case fi.IsDir():
		kind = "a directory"
	case t&os.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case t&os.ModeDevice != 0:
		kind = "a device"
	case !fi.Mode().IsRegular():
		kind = "a special file"
	}
	return usageErr("%s is not a unix socket: it is %s", u.Path, kind)
}
