package acomm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The wire messages are encoded and decoded by github.com/go-json-experiment/json
// (encoding/json/v2 to be), through the structs below. Against encoding/json it
// decodes a request in about a third of the time and encodes one in about
// 60%, and it refuses invalid UTF-8 and duplicate keys, which encoding/json
// would pass on altered or ambiguous.

// requestWire is the wire form of a Request.
type requestWire struct {
	ID           string         `json:"id"`
	Task         string         `json:"task"`
	ResponseHook wireURL        `json:"responsehook"`
	Args         jsontext.Value `json:"args"`
}

// responseWire is the wire form of a Response, and of an acknowledgement,
// which also lists the receiver's features (see the features constants).
type responseWire struct {
	ID        string         `json:"id"`
	Result    jsontext.Value `json:"result"`
	StreamURL wireURL        `json:"stream_url"`
	Error     string         `json:"error"`
	Features  []string       `json:"features,omitempty"`
}

// rawValue returns raw as a wire value: null for none.
func rawValue(raw *json.RawMessage) jsontext.Value {
	if raw == nil || len(*raw) == 0 {
		return jsontext.Value("null")
	}
	return jsontext.Value(*raw)
}

// rawMessage returns a wire value as a *json.RawMessage: nil for null.
func rawMessage(v jsontext.Value) *json.RawMessage {
	if len(v) == 0 || v.Kind() == 'n' {
		return nil
	}
	raw := json.RawMessage(v)
	return &raw
}

// marshalRequest returns the wire JSON of req, with URLs in the object
// form when legacy is set.
func marshalRequest(req *Request, legacy bool) ([]byte, error) {
	b, err := jsonv2.Marshal(&requestWire{ID: req.ID, Task: req.Task,
		ResponseHook: wireURL{req.ResponseHook, legacy}, Args: rawValue(req.Args)})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return b, nil
}

// marshalResponse returns the wire JSON of resp, with URLs in the object
// form when legacy is set.
func marshalResponse(resp *Response, legacy bool) ([]byte, error) {
	w := responseWire{ID: resp.ID, Result: rawValue(resp.Result), StreamURL: wireURL{resp.StreamURL, legacy}}
	if resp.Error != nil {
		w.Error = resp.Error.Error()
	}
	b, err := jsonv2.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	return b, nil
}

// decodeRequest decodes the wire JSON of a request into req. Errors match
// ErrInvalidRequest (and ErrInvalidURL for a bad response hook).
func decodeRequest(body []byte, req *Request) error {
	var w requestWire
	if err := jsonv2.Unmarshal(body, &w); err != nil {
		return decodeError(ErrInvalidRequest, err)
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = w.ID, w.Task, w.ResponseHook.u, rawMessage(w.Args), w.ResponseHook.legacy
	return nil
}

// decodeResponse decodes the wire JSON of a response into resp and returns
// the features it lists (those of an acknowledgement). Errors match
// ErrInvalidResponse (and ErrInvalidURL for a bad stream URL).
func decodeResponse(body []byte, resp *Response) ([]string, error) {
	var w responseWire
	if err := jsonv2.Unmarshal(body, &w); err != nil {
		return nil, decodeError(ErrInvalidResponse, err)
	}
	resp.ID, resp.Result, resp.StreamURL, resp.LegacyURLs = w.ID, rawMessage(w.Result), w.StreamURL.u, w.StreamURL.legacy
	resp.Error = nil
	if w.Error != "" {
		resp.Error = &RemoteError{Message: w.Error}
	}
	return w.Features, nil
}

// decodeError wraps a decoding error in kind, and a body that is not JSON
// at all in ErrMalformedFrame first.
func decodeError(kind, err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %w: %w", ErrMalformedFrame, kind, err)
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// wireURL is a URL on the wire: a string ("unix:///run/x.sock"), or the
// object form in which the original acomm JSON-encoded *url.URL. Both are
// read; the object form is written when legacy is set.
type wireURL struct {
	u      *url.URL
	legacy bool
}

// legacyURL mirrors the fields of url.URL as the original acomm wrote them.
// Userinfo has no exported fields: it encoded as {} when present, and such
// a URL is refused (its credentials are lost, its meaning unclear).
type legacyURL struct {
	Scheme      string
	Opaque      string
	User        *struct{}
	Host        string
	Path        string
	RawPath     string
	OmitHost    bool
	ForceQuery  bool
	RawQuery    string
	Fragment    string
	RawFragment string
}

// MarshalJSONTo writes the URL in the form chosen.
func (w *wireURL) MarshalJSONTo(enc *jsontext.Encoder) error {
	switch u := w.u; {
	case u == nil:
		return enc.WriteToken(jsontext.Null)
	case w.legacy:
		var user *struct{}
		if u.User != nil {
			user = &struct{}{} // as the original wrote it: its content is lost
		}
		return jsonv2.MarshalEncode(enc, &legacyURL{Scheme: u.Scheme, User: user, Opaque: u.Opaque, Host: u.Host, Path: u.Path,
			RawPath: u.RawPath, OmitHost: u.OmitHost, ForceQuery: u.ForceQuery, RawQuery: u.RawQuery,
			Fragment: u.Fragment, RawFragment: u.RawFragment})
	default:
		return enc.WriteToken(jsontext.String(u.String()))
	}
}

// UnmarshalJSONFrom reads a URL in either form, and normalises it (see
// normalizeURL).
func (w *wireURL) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	w.u, w.legacy = nil, false
	switch dec.PeekKind() {
	case '"':
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if tok.String() == "" {
			return nil
		}
		u, err := url.Parse(tok.String())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		w.u, err = normalizeURL(u)
		return err
	case '{':
		var l legacyURL
		if err := jsonv2.UnmarshalDecode(dec, &l); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		if l.User != nil {
			// The object form cannot carry it: url.Userinfo has no
			// exported fields. (The string form may: bridge tokens.)
			return fmt.Errorf("%w: user info in a url object", ErrInvalidURL)
		}
		u, err := normalizeURL(&url.URL{Scheme: l.Scheme, Opaque: l.Opaque, Host: l.Host, Path: l.Path, RawPath: l.RawPath,
			OmitHost: l.OmitHost, ForceQuery: l.ForceQuery, RawQuery: l.RawQuery, Fragment: l.Fragment, RawFragment: l.RawFragment})
		w.u, w.legacy = u, true
		return err
	case 'n':
		_, err := dec.ReadToken()
		return err
	}
	return fmt.Errorf("%w: want a string or an object", ErrInvalidURL)
}

// normalizeURL returns the URL that u's text denotes, which is what gets
// dialed, so that a check of its parts is a check of the destination. It
// refuses an opaque http(s) URL and parts that do not survive
// being written and read back (an object whose Opaque or RawPath says
// something else than its Host and Path). A URL with no parts is nil.
// User info in the string form is kept: it is how a bridge's token rides
// in a hook, and it changes no destination.
func normalizeURL(u *url.URL) (*url.URL, error) {
	s := u.String()
	if s == "" {
		return nil, nil
	}
	n, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	case n.Opaque != "" && (n.Scheme == "http" || n.Scheme == "https"):
		return nil, fmt.Errorf("%w: opaque %s url", ErrInvalidURL, n.Scheme)
	case !strings.EqualFold(n.Scheme, u.Scheme) || n.Host != u.Host || n.Opaque != u.Opaque || n.Path != u.Path:
		return nil, fmt.Errorf("%w: %q is not what its parts say", ErrInvalidURL, s)
	}
	return n, nil
}
