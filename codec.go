package acomm

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Wire messages are decoded by github.com/go-json-experiment/json, which
// refuses invalid UTF-8 and duplicate names (encoding/json passes them on)
// and costs a third as much as encoding/json (figures: in the commit).

// requestWire and responseWire (also an acknowledgement's) are the forms
// on the wire.
type requestWire struct {
	ID        string            `json:"id"`
	Task      string            `json:"task"`
	Hook      jsontext.Value    `json:"responsehook"`
	Args      jsontext.Value    `json:"args"`
	TimeoutMS jsontext.Value    `json:"timeout_ms"`
	Meta      map[string]string `json:"meta"`
	InAck     bool              `json:"answer_in_ack"`
}

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

// Encoding fills a template per message with values the library quoted or
// checked (its Encoder would check raw values again, deep in the stack).

// appendRequest appends the wire JSON of req to b (URLs as objects if legacy).
func appendRequest(b []byte, req *Request, legacy bool) ([]byte, error) {
	hook, err := urlValue(req.ResponseHook, legacy)
	b, err1 := jsontext.AppendQuote(append(b, `{"id":`...), req.ID)
	b, err2 := jsontext.AppendQuote(append(b, `,"task":`...), req.Task)
	b = append(append(b, `,"responsehook":`...), hook...)
	b, err3 := appendRaw(append(b, `,"args":`...), req.Args, req.argsChecked)
	if !req.deadline.IsZero() {
		b = append(append(b, `,"timeout_ms":`...), timeoutValue(req.deadline)...)
	}
	meta, err4 := metaValue(req.Meta)
	if meta != nil {
		b = append(append(b, `,"meta":`...), meta...)
	}
	if err = cmp.Or(err, err1, err2, err3, err4); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return append(b, '}'), nil
}

// appendResponse appends the wire JSON of resp to b (URLs as objects if
// legacy); an acknowledgement lists features.
func appendResponse(b []byte, resp *Response, legacy bool, features ...string) ([]byte, error) {
	stream, err := urlValue(resp.StreamURL, legacy)
	b, err1 := jsontext.AppendQuote(append(b, `{"id":`...), resp.ID)
	b, err2 := appendRaw(append(b, `,"result":`...), resp.Result, resp.resultChecked)
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

// appendRaw appends raw JSON, null for none, refusing what is not JSON
// unless raw is checked, the value marshalRaw just returned (its check
// done once, not twice).
func appendRaw(b []byte, raw, checked *json.RawMessage) ([]byte, error) {
	v := rawValue(raw)
	if (raw == nil || raw != checked) && !v.IsValid(jsontext.AllowDuplicateNames(true)) {
		return b, fmt.Errorf("%w: not valid JSON", ErrInvalidArgument)
	}
	return append(b, v...), nil
}

// decodeRequest decodes the wire JSON of a request into req. Errors match
// ErrInvalidRequest (and ErrInvalidURL).
func decodeRequest(body []byte, req *Request) error {
	var w requestWire
	if err := jsonv2.Unmarshal(body, &w); err != nil {
		return decodeError(ErrInvalidRequest, err)
	}
	hook, legacy, err := readURL(w.Hook)
	if err == nil {
		err = checkHookUser(hook)
	}
	if err != nil {
		return fmt.Errorf("%w: responsehook: %w", ErrInvalidRequest, err)
	}
	ms, hasMS, err := readTimeoutMS(w.TimeoutMS)
	if err != nil {
		return fmt.Errorf("%w: timeout_ms: %w", ErrInvalidRequest, err)
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = w.ID, w.Task, hook, rawMessage(w.Args), legacy
	req.Meta, req.deadline, req.callerDeadline, req.answerInAck = w.Meta, time.Time{}, hasMS, w.InAck
	if hasMS {
		req.deadline = deadlineFromMS(ms, time.Now())
	}
	return nil
}

// decodeResponse decodes the wire JSON of a response into resp, and the
// features it lists. Errors match ErrInvalidResponse (and ErrInvalidURL).
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

// URLs travel as strings ("unix:///run/x.sock") or in the object form the
// original's encoding/json gave a *url.URL, which it still reads and writes.

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

// readURL reads a URL in either form and says if it was an object. The URL
// is what its text says, which is what gets dialed, so a check of its parts
// checks the destination: an object whose parts say otherwise (Opaque or
// RawPath beside Host and Path) or lost its user info ({}) is refused, as
// is an opaque http(s) URL. null, "" and "#" give nil.
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

// opaqueHTTP refuses an opaque http(s) URL ("http:h/p"): no host is seen.
func opaqueHTTP(u *url.URL) error {
	if u.Opaque != "" && (u.Scheme == "http" || u.Scheme == "https") {
		return fmt.Errorf("%w: opaque %s url", ErrInvalidURL, u.Scheme)
	}
	return nil
}
