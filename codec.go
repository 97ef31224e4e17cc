package acomm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The wire messages are encoded and decoded member by member with the
// tokenizer of github.com/go-json-experiment/json (encoding/json/v2 to
// be): it checks the JSON, refusing invalid UTF-8 and duplicate names
// (which encoding/json passes on altered or ambiguous), and walking a
// known shape with it costs a fraction of reflection (see the commit).

// codec is a pooled encoder and decoder; the encoder keeps its first error.
type codec struct {
	buf bytes.Buffer
	enc *jsontext.Encoder
	dec *jsontext.Decoder
	err error
}

var codecs = sync.Pool{New: func() any {
	c := &codec{dec: jsontext.NewDecoder(bytes.NewBuffer(nil))}
	c.enc = jsontext.NewEncoder(&c.buf)
	return c
}}

// appendObject appends to b the JSON object whose members write writes.
func appendObject(b []byte, write func(c *codec)) ([]byte, error) {
	c := codecs.Get().(*codec)
	defer codecs.Put(c)
	c.buf.Reset()
	c.enc.Reset(&c.buf)
	c.err = nil
	c.tokens(jsontext.BeginObject)
	write(c)
	c.tokens(jsontext.EndObject)
	return append(b, bytes.TrimSuffix(c.buf.Bytes(), []byte("\n"))...), c.err
}

// tokens writes tokens, unless an error came first.
func (c *codec) tokens(toks ...jsontext.Token) {
	for _, t := range toks {
		if c.err == nil {
			c.err = c.enc.WriteToken(t)
		}
	}
}

// str writes a member whose value is a string.
func (c *codec) str(name, v string) { c.tokens(jsontext.String(name), jsontext.String(v)) }

// raw writes a member whose value is JSON, which is checked.
func (c *codec) raw(name string, v jsontext.Value) {
	if c.tokens(jsontext.String(name)); c.err == nil {
		c.err = c.enc.WriteValue(v)
	}
}

// decodeObject decodes body, one JSON object, calling member with each
// member's name (valid until the decoder is used again) and the decoder
// at its value, which member must consume.
func decodeObject(body []byte, member func(dec *jsontext.Decoder, name []byte) error) error {
	c := codecs.Get().(*codec)
	defer codecs.Put(c)
	dec := c.dec
	dec.Reset(bytes.NewBuffer(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return cmp.Or(err, fmt.Errorf("want an object, got %v", tok.Kind()))
	}
	for dec.PeekKind() != '}' {
		v, err := dec.ReadValue() // the name, quoted
		if err != nil {
			return err
		}
		name := v[1 : len(v)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			name, _ = jsontext.AppendUnquote(nil, v)
		}
		if err := member(dec, name); err != nil {
			return err
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
	if k := tok.Kind(); err == nil && k == '"' {
		*s = tok.String()
	} else if err == nil && k != 'n' {
		err = fmt.Errorf("want a string, got %v", k)
	}
	return err
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

// appendRequest appends the wire JSON of req to b, with URLs in the
// object form when legacy is set.
func appendRequest(b []byte, req *Request, legacy bool) ([]byte, error) {
	hook, err := urlValue(req.ResponseHook, legacy)
	if err == nil {
		b, err = appendObject(b, func(c *codec) {
			c.str("id", req.ID)
			c.str("task", req.Task)
			c.raw("responsehook", hook)
			c.raw("args", rawValue(req.Args))
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return b, nil
}

// appendResponse appends the wire JSON of resp to b, with URLs in the
// object form when legacy is set; an acknowledgement lists features.
func appendResponse(b []byte, resp *Response, legacy bool, features ...string) ([]byte, error) {
	stream, err := urlValue(resp.StreamURL, legacy)
	if err == nil {
		b, err = appendObject(b, func(c *codec) {
			c.str("id", resp.ID)
			c.raw("result", rawValue(resp.Result))
			c.raw("stream_url", stream)
			msg := ""
			if resp.Error != nil {
				msg = resp.Error.Error()
			}
			c.str("error", msg)
			if features != nil {
				c.tokens(jsontext.String("features"), jsontext.BeginArray)
				for _, f := range features {
					c.tokens(jsontext.String(f))
				}
				c.tokens(jsontext.EndArray)
			}
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	return b, nil
}

// decodeRequest decodes the wire JSON of a request into req. Errors match
// ErrInvalidRequest (and ErrInvalidURL for a bad response hook).
func decodeRequest(body []byte, req *Request) error {
	var r Request
	err := decodeObject(body, func(dec *jsontext.Decoder, name []byte) (err error) {
		switch string(name) {
		case "id":
			return readString(dec, &r.ID)
		case "task":
			return readString(dec, &r.Task)
		case "responsehook":
			r.ResponseHook, r.LegacyURLs, err = readURL(dec)
		case "args":
			r.Args, err = readRaw(dec)
		default:
			err = dec.SkipValue()
		}
		return err
	})
	if err != nil {
		return decodeError(ErrInvalidRequest, err)
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = r.ID, r.Task, r.ResponseHook, r.Args, r.LegacyURLs
	return nil
}

// decodeResponse decodes the wire JSON of a response into resp, and the
// features it lists (an acknowledgement's) when asked. Errors match
// ErrInvalidResponse (and ErrInvalidURL for a bad stream URL). With a nil
// resp, only the error and features are decoded (the rest is checked),
// and the error, a *RemoteError, is returned.
func decodeResponse(body []byte, resp *Response, wantFeatures bool) (features []string, err error) {
	var (
		r   Response
		msg string
	)
	err = decodeObject(body, func(dec *jsontext.Decoder, name []byte) (err error) {
		switch n := string(name); {
		case n == "error":
			return readString(dec, &msg)
		case n == "features" && wantFeatures:
			return jsonv2.UnmarshalDecode(dec, &features)
		case resp == nil:
			return dec.SkipValue()
		case n == "id":
			return readString(dec, &r.ID)
		case n == "result":
			r.Result, err = readRaw(dec)
		case n == "stream_url":
			r.StreamURL, r.LegacyURLs, err = readURL(dec)
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
	if resp == nil {
		return features, r.Error
	}
	*resp = r
	return features, nil
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
func readURL(dec *jsontext.Decoder) (u *url.URL, legacy bool, err error) {
	legacy = dec.PeekKind() == '{'
	v, err := dec.ReadValue()
	switch {
	case err != nil:
		return nil, false, err
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
	case v.Kind() != 'n':
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
