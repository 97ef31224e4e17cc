package acomm

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The wire messages are decoded by github.com/go-json-experiment/json
// (encoding/json/v2 to be), which refuses invalid UTF-8 and duplicate
// names (that encoding/json passes on, altered or ambiguous) and costs
// about a third as much (see the commit), through the structs below.

// requestWire is the wire form of a Request.
type requestWire struct {
	ID   string         `json:"id"`
	Task string         `json:"task"`
	Hook jsontext.Value `json:"responsehook"`
	Args jsontext.Value `json:"args"`
}

// responseWire is the wire form of a Response, or of an acknowledgement.
type responseWire struct {
	ID       string         `json:"id"`
	Result   jsontext.Value `json:"result"`
	Stream   jsontext.Value `json:"stream_url"`
	Error    string         `json:"error"`
	Features []string       `json:"features"`
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

// Encoding is a template per message whose values the library writes:
// strings quoted by jsontext.AppendQuote, raw values checked with
// jsontext's validator. (Its Encoder would check each raw value again,
// name by name, deep in the stack of the goroutine that answers.)

// appendRequest appends the wire JSON of req to b, with URLs in the
// object form when legacy is set.
func appendRequest(b []byte, req *Request, legacy bool) ([]byte, error) {
	hook, err := urlValue(req.ResponseHook, legacy)
	b, err1 := jsontext.AppendQuote(append(b, `{"id":`...), req.ID)
	b, err2 := jsontext.AppendQuote(append(b, `,"task":`...), req.Task)
	b = append(append(b, `,"responsehook":`...), hook...)
	b, err3 := appendRaw(append(b, `,"args":`...), req.Args)
	if err = cmp.Or(err, err1, err2, err3); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return append(b, '}'), nil
}

// appendResponse appends the wire JSON of resp to b, with URLs in the
// object form when legacy is set; an acknowledgement lists features.
func appendResponse(b []byte, resp *Response, legacy bool, features ...string) ([]byte, error) {
	stream, err := urlValue(resp.StreamURL, legacy)
	b, err1 := jsontext.AppendQuote(append(b, `{"id":`...), resp.ID)
	b, err2 := appendRaw(append(b, `,"result":`...), resp.Result)
	b = append(append(b, `,"stream_url":`...), stream...)
	msg := ""
	if resp.Error != nil {
		msg = resp.Error.Error()
	}
	b, err3 := jsontext.AppendQuote(append(b, `,"error":`...), msg)
	if features != nil {
		b = append(b, `,"features":[`...)
		for i, f := range features {
			if i > 0 {
				b = append(b, ',')
			}
			b, _ = jsontext.AppendQuote(b, f) // ours: valid UTF-8
		}
		b = append(b, ']')
	}
	if err = cmp.Or(err, err1, err2, err3); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	return append(b, '}'), nil
}

// appendRaw appends raw JSON, null for none, refusing what is not JSON.
func appendRaw(b []byte, raw *json.RawMessage) ([]byte, error) {
	v := rawValue(raw)
	if !v.IsValid(jsontext.AllowDuplicateNames(true)) {
		return b, fmt.Errorf("%w: not valid JSON", ErrInvalidArgument)
	}
	return append(b, v...), nil
}

// decodeRequest decodes the wire JSON of a request into req. Errors match
// ErrInvalidRequest (and ErrInvalidURL for a bad response hook).
func decodeRequest(body []byte, req *Request) error {
	var w requestWire
	if err := jsonv2.Unmarshal(body, &w); err != nil {
		return decodeError(ErrInvalidRequest, err)
	}
	hook, legacy, err := readURL(w.Hook)
	if err != nil {
		return fmt.Errorf("%w: responsehook: %w", ErrInvalidRequest, err)
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = w.ID, w.Task, hook, rawMessage(w.Args), legacy
	return nil
}

// decodeResponse decodes the wire JSON of a response into resp and
// returns the features it lists (an acknowledgement's). Errors match
// ErrInvalidResponse (and ErrInvalidURL for a bad stream URL).
func decodeResponse(body []byte, resp *Response) ([]string, error) {
	var w responseWire
	if err := jsonv2.Unmarshal(body, &w); err != nil {
		return nil, decodeError(ErrInvalidResponse, err)
	}
	stream, legacy, err := readURL(w.Stream)
	if err != nil {
		return nil, fmt.Errorf("%w: stream_url: %w", ErrInvalidResponse, err)
	}
	*resp = Response{ID: w.ID, Result: rawMessage(w.Result), StreamURL: stream, LegacyURLs: legacy}
	if w.Error != "" {
		resp.Error = &RemoteError{Message: w.Error}
	}
	return w.Features, nil
}

// decodeError wraps a decoding error in kind, and one of a body that is
// not JSON at all in ErrMalformedFrame first.
func decodeError(kind, err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %w: %w", ErrMalformedFrame, kind, err)
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// URLs travel as strings ("unix:///run/x.sock"), or as the object that
// the original acomm's encoding/json made of a *url.URL, which encoding/json
// still reads and writes. Both are read; the object form is written when
// legacy is set.

// urlValue returns the wire JSON of u in the form chosen; null for nil.
func urlValue(u *url.URL, legacy bool) (jsontext.Value, error) {
	switch {
	case u == nil:
		return jsontext.Value("null"), nil
	case legacy:
		return json.Marshal(u)
	}
	return jsontext.AppendQuote(nil, u.String())
}

// readURL reads a URL in either form, reporting whether it was the object
// form. The URL returned is what its text says, which is what gets
// dialed, so that a check of its parts is a check of the destination: an
// object whose parts say something else (an Opaque or RawPath beside a
// Host and Path), or whose user info was lost ({}), is refused, and so is
// an opaque http(s) URL. null, "" and "#" give nil.
func readURL(v jsontext.Value) (u *url.URL, legacy bool, err error) {
	switch legacy = v.Kind() == '{'; {
	case legacy:
		var o url.URL
		if err = json.Unmarshal(v, &o); err == nil && o.User != nil {
			err = errors.New("user info in a url object")
		}
		if err == nil {
			u, err = url.Parse(o.String())
		}
		if err == nil && (!strings.EqualFold(u.Scheme, o.Scheme) || u.Host != o.Host || u.Opaque != o.Opaque || u.Path != o.Path) {
			err = fmt.Errorf("%q is not what its parts say", o.String())
		}
	case v.Kind() == '"':
		var s []byte
		if s, err = jsontext.AppendUnquote(nil, v); err == nil {
			u, err = url.Parse(string(s))
		}
	case len(v) > 0 && v.Kind() != 'n':
		err = errors.New("want a string or an object")
	}
	if err != nil {
		return nil, legacy, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if u == nil || *u == (url.URL{}) {
		return nil, false, nil
	}
	return u, legacy, opaqueHTTP(u)
}

// opaqueHTTP refuses an opaque http(s) URL ("http:h/p"), whose host is not
// what it seems.
func opaqueHTTP(u *url.URL) error {
	if u.Opaque != "" && (u.Scheme == "http" || u.Scheme == "https") {
		return fmt.Errorf("%w: opaque %s url", ErrInvalidURL, u.Scheme)
	}
	return nil
}
