package acomm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The wire messages are encoded and decoded with the tokenizer of
// github.com/go-json-experiment/json (encoding/json/v2 to be), member by
// member: it checks the JSON (refusing invalid UTF-8 and duplicate names,
// which encoding/json would pass on altered or ambiguous), and walking a
// known shape with it costs a fraction of reflection (see the commit).

// wireCodec is a pooled encoder and decoder with their buffers.
type wireCodec struct {
	buf bytes.Buffer
	enc *jsontext.Encoder
	r   bytes.Reader
	dec *jsontext.Decoder
}

var codecs = sync.Pool{New: func() any {
	c := &wireCodec{}
	c.enc, c.dec = jsontext.NewEncoder(&c.buf), jsontext.NewDecoder(&c.r)
	return c
}}

// encodeObject returns the JSON object that members writes with w.
func encodeObject(members func(w *objectWriter)) ([]byte, error) {
	c := codecs.Get().(*wireCodec)
	defer codecs.Put(c)
	c.buf.Reset()
	c.enc.Reset(&c.buf)
	w := objectWriter{enc: c.enc, err: c.enc.WriteToken(jsontext.BeginObject)}
	members(&w)
	if w.err == nil {
		w.err = c.enc.WriteToken(jsontext.EndObject)
	}
	if w.err != nil {
		return nil, w.err
	}
	return bytes.Clone(bytes.TrimSuffix(c.buf.Bytes(), []byte("\n"))), nil
}

// objectWriter writes the members of an object, keeping the first error.
type objectWriter struct {
	enc *jsontext.Encoder
	err error
}

// member writes a member whose value is a string (v a string) or JSON,
// checked (v a jsontext.Value), or an array of strings.
func (w *objectWriter) member(name string, v any) {
	if w.err == nil {
		w.err = w.enc.WriteToken(jsontext.String(name))
	}
	if w.err != nil {
		return
	}
	switch v := v.(type) {
	case string:
		w.err = w.enc.WriteToken(jsontext.String(v))
	case jsontext.Value:
		w.err = w.enc.WriteValue(v)
	case []string:
		w.err = w.enc.WriteToken(jsontext.BeginArray)
		for _, s := range v {
			if w.err == nil {
				w.err = w.enc.WriteToken(jsontext.String(s))
			}
		}
		if w.err == nil {
			w.err = w.enc.WriteToken(jsontext.EndArray)
		}
	}
}

// decodeObject decodes body, which must be one JSON object, calling member
// for each of its members with the decoder positioned at the value, which
// member must consume.
func decodeObject(body []byte, member func(dec *jsontext.Decoder, name string) error) error {
	c := codecs.Get().(*wireCodec)
	defer codecs.Put(c)
	c.r.Reset(body)
	c.dec.Reset(&c.r)
	dec := c.dec
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '{' {
		return fmt.Errorf("want an object, got %v", tok.Kind())
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		name := tok.String()
		if err := member(dec, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return fmt.Errorf("%w: data after the object", ErrMalformedFrame)
	}
	return nil
}

// readString reads a string value into *s; null leaves it as it is.
func readString(dec *jsontext.Decoder, s *string) error {
	tok, err := dec.ReadToken()
	switch {
	case err != nil:
		return err
	case tok.Kind() == '"':
		*s = tok.String()
	case tok.Kind() != 'n':
		return fmt.Errorf("want a string, got %v", tok.Kind())
	}
	return nil
}

// readRaw reads a value as raw JSON: nil for null.
func readRaw(dec *jsontext.Decoder) (*json.RawMessage, error) {
	v, err := dec.ReadValue()
	if err != nil || v.Kind() == 'n' {
		return nil, err
	}
	raw := json.RawMessage(bytes.Clone(v))
	return &raw, nil
}

// rawValue returns raw as a wire value: null for none.
func rawValue(raw *json.RawMessage) jsontext.Value {
	if raw == nil || len(*raw) == 0 {
		return jsontext.Value("null")
	}
	return jsontext.Value(*raw)
}

// marshalRequest returns the wire JSON of req, with URLs in the object
// form when legacy is set.
func marshalRequest(req *Request, legacy bool) ([]byte, error) {
	hook, err := urlValue(req.ResponseHook, legacy)
	if err != nil {
		return nil, err
	}
	meta, err := metaValue(req.Meta)
	if err != nil {
		return nil, err
	}
	b, err := encodeObject(func(w *objectWriter) {
		w.member("id", req.ID)
		w.member("task", req.Task)
		w.member("responsehook", hook)
		w.member("args", rawValue(req.Args))
		if !req.deadline.IsZero() {
			w.member("timeout_ms", timeoutValue(req.deadline))
		}
		if meta != nil {
			w.member("meta", meta)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return b, nil
}

// marshalResponse returns the wire JSON of resp, with URLs in the object
// form when legacy is set; an acknowledgement also lists the receiver's
// features.
func marshalResponse(resp *Response, legacy bool, features ...string) ([]byte, error) {
	stream, err := urlValue(resp.StreamURL, legacy)
	if err != nil {
		return nil, err
	}
	msg := ""
	if resp.Error != nil {
		msg = resp.Error.Error()
	}
	b, err := encodeObject(func(w *objectWriter) {
		w.member("id", resp.ID)
		w.member("result", rawValue(resp.Result))
		w.member("stream_url", stream)
		w.member("error", msg)
		if features != nil {
			w.member("features", features)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	return b, nil
}

// decodeRequest decodes the wire JSON of a request into req. Errors match
// ErrInvalidRequest (and ErrInvalidURL for a bad response hook).
func decodeRequest(body []byte, req *Request) error {
	var (
		r         Request
		timeoutMS int64
		hasTMS    bool
	)
	err := decodeObject(body, func(dec *jsontext.Decoder, name string) (err error) {
		switch name {
		case "id":
			return readString(dec, &r.ID)
		case "task":
			return readString(dec, &r.Task)
		case "responsehook":
			r.ResponseHook, r.LegacyURLs, err = readURL(dec)
			if err == nil {
				err = checkHookUser(r.ResponseHook)
			}
		case "args":
			r.Args, err = readRaw(dec)
		case "timeout_ms":
			timeoutMS, hasTMS, err = readTimeoutMS(dec)
		case "meta":
			err = jsonv2.UnmarshalDecode(dec, &r.Meta)
		default:
			err = dec.SkipValue()
		}
		return err
	})
	if err != nil {
		return decodeError(ErrInvalidRequest, err)
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = r.ID, r.Task, r.ResponseHook, r.Args, r.LegacyURLs
	req.Meta, req.deadline, req.callerDeadline = r.Meta, time.Time{}, hasTMS
	if hasTMS {
		req.deadline = deadlineFromMS(timeoutMS, time.Now())
	}
	return nil
}

// decodeResponse decodes the wire JSON of a response into resp and returns
// the features it lists (those of an acknowledgement). Errors match
// ErrInvalidResponse (and ErrInvalidURL for a bad stream URL).
func decodeResponse(body []byte, resp *Response) ([]string, error) {
	var (
		r        Response
		msg      string
		features []string
	)
	err := decodeObject(body, func(dec *jsontext.Decoder, name string) (err error) {
		switch name {
		case "id":
			return readString(dec, &r.ID)
		case "result":
			r.Result, err = readRaw(dec)
		case "stream_url":
			r.StreamURL, r.LegacyURLs, err = readURL(dec)
		case "error":
			return readString(dec, &msg)
		case "features":
			err = jsonv2.UnmarshalDecode(dec, &features)
		default:
			err = dec.SkipValue()
		}
		return err
	})
	if err != nil {
		return nil, decodeError(ErrInvalidResponse, err)
	}
	if msg != "" {
		r.Error = &RemoteError{Message: msg}
	}
	*resp = r
	return features, nil
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

// URLs travel as strings ("unix:///run/x.sock"), or in the object form in
// which the original acomm JSON-encoded *url.URL. Both are read; the
// object form is written when legacy is set.

// legacyURL mirrors the fields of url.URL as the original acomm wrote them.
// Userinfo has no exported fields: it encoded as {} when present, and such
// an object is refused (its credentials are lost, its meaning unclear).
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

// urlValue returns the wire JSON of u in the form chosen; null for nil.
func urlValue(u *url.URL, legacy bool) (jsontext.Value, error) {
	switch {
	case u == nil:
		return jsontext.Value("null"), nil
	case !legacy:
		return jsontext.AppendQuote(nil, u.String())
	}
	var user *struct{}
	if u.User != nil {
		user = &struct{}{} // as the original wrote it: its content is lost
	}
	return jsonv2.Marshal(&legacyURL{Scheme: u.Scheme, Opaque: u.Opaque, User: user, Host: u.Host, Path: u.Path,
		RawPath: u.RawPath, OmitHost: u.OmitHost, ForceQuery: u.ForceQuery, RawQuery: u.RawQuery,
		Fragment: u.Fragment, RawFragment: u.RawFragment})
}

// readURL reads a URL in either form, reporting whether it was the object
// form, and normalises it (see normalizeURL).
func readURL(dec *jsontext.Decoder) (*url.URL, bool, error) {
	switch dec.PeekKind() {
	case '"':
		tok, err := dec.ReadToken()
		if err != nil || tok.String() == "" {
			return nil, false, err
		}
		u, err := url.Parse(tok.String())
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		u, err = normalizeURL(u)
		return u, false, err
	case '{':
		var l legacyURL
		if err := jsonv2.UnmarshalDecode(dec, &l); err != nil {
			return nil, true, fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		if l.User != nil {
			// The object form cannot carry it: url.Userinfo has no
			// exported fields. (The string form may: bridge tokens.)
			return nil, true, fmt.Errorf("%w: user info in a url object", ErrInvalidURL)
		}
		u, err := normalizeURL(&url.URL{Scheme: l.Scheme, Opaque: l.Opaque, Host: l.Host, Path: l.Path, RawPath: l.RawPath,
			OmitHost: l.OmitHost, ForceQuery: l.ForceQuery, RawQuery: l.RawQuery, Fragment: l.Fragment, RawFragment: l.RawFragment})
		return u, u != nil, err
	case 'n':
		_, err := dec.ReadToken()
		return nil, false, err
	}
	if err := dec.SkipValue(); err != nil {
		return nil, false, err
	}
	return nil, false, fmt.Errorf("%w: want a string or an object", ErrInvalidURL)
}

// normalizeURL returns the URL that u's text denotes, which is what gets
// dialed, so that a check of its parts is a check of the destination. It
// refuses an opaque http(s) URL and parts that do not survive
// being written and read back (an object whose Opaque or RawPath says
// something else than its Host and Path). A URL with no parts is nil.
// User info in the string form is kept (a stream URL may carry a
// bridge's token); a response hook refuses it (see checkHookUser).
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
