package acomm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
)

// URLs travel as plain strings ("unix:///run/x.sock"). The original acomm
// JSON-encoded *url.URL as a struct; both forms are accepted on input, and
// the struct form is written when a message's LegacyURLs field is set.

// legacyURL mirrors the fields of url.URL as the original acomm wrote them.
// Userinfo has no exported fields, so it always encoded as {} and carries
// nothing; it is accepted and ignored.
type legacyURL struct {
	Scheme      string
	Opaque      string
	User        json.RawMessage
	Host        string
	Path        string
	RawPath     string
	OmitHost    bool
	ForceQuery  bool
	RawQuery    string
	Fragment    string
	RawFragment string
}

// decodeURL decodes a URL from JSON null, a string, or the legacy object
// form. It reports whether the legacy form was used.
func decodeURL(raw json.RawMessage) (u *url.URL, legacy bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, false, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if end, ok := scanString(raw, 0); ok && end == len(raw) {
			s, ok = stringToken(raw)
			if !ok {
				return nil, false, fmt.Errorf("%w: bad string %.20s", ErrInvalidURL, raw)
			}
		} else if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		if s == "" {
			return nil, false, nil
		}
		u, err := parseURL(s)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		// u.String() is "" only if all of these are empty: check them
		// first, to build the string only then.
		if u.Scheme == "" && u.Opaque == "" && u.Host == "" && u.Path == "" && u.User == nil && u.String() == "" {
			// "#" and the like: no URL, like "" (it would be re-encoded
			// as "", which decodes to nil).
			return nil, false, nil
		}
		return u, false, nil
	case '{':
		var l legacyURL
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, true, fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		return &url.URL{
			Scheme:      l.Scheme,
			Opaque:      l.Opaque,
			Host:        l.Host,
			Path:        l.Path,
			RawPath:     l.RawPath,
			OmitHost:    l.OmitHost,
			ForceQuery:  l.ForceQuery,
			RawQuery:    l.RawQuery,
			Fragment:    l.Fragment,
			RawFragment: l.RawFragment,
		}, true, nil
	default:
		return nil, false, fmt.Errorf("%w: want a string or an object, got %.20s", ErrInvalidURL, raw)
	}
}
