package acomm

import (
	"encoding/json"
	"net/url"
	"unicode/utf8"
)

// Fast paths for the two wire messages. Every frame is a Request or a
// Response, so decoding them through encoding/json's reflection (after its
// validity pre-scan, and then again inside UnmarshalJSON) was most of the
// CPU of a round trip. The decoders here read the plain form this package
// and the original acomm write in one pass, and give up (returning false,
// having changed nothing) on anything else: unknown or differently cased
// keys, keys with escapes, values of the wrong type. The caller then
// decodes with encoding/json as before, so the results, and the errors,
// are encoding/json's whenever the fast path does not apply. When it
// does apply, the text it accepted is valid JSON and the result is the one
// encoding/json would give.

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace returns the index of the first non-whitespace byte of b at or
// after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validJSON reports whether b is one valid JSON value, as json.Valid does.
func validJSON(b []byte) bool {
	end, ok := scanValue(b, skipSpace(b, 0))
	return ok && skipSpace(b, end) == len(b)
}

// scanValue checks the JSON value that starts at b[i] and returns the
// index just past it. It accepts exactly what encoding/json's scanner
// accepts, up to the same nesting depth.
func scanValue(b []byte, i int) (int, bool) {
	// The open containers: bit k of objs is set when the container at
	// depth k (< 64) is an object; deeper ones are in deep. (A small
	// frame: this runs on the stacks of callers' fresh goroutines.)
	var (
		objs  uint64
		deep  []bool
		depth int
		ok    bool
	)
	isObj := func(k int) bool {
		if k < 64 {
			return objs>>k&1 == 1
		}
		return deep[k-64]
	}
	for {
		// A value starts at i.
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth >= maxNestingDepth {
				return 0, false
			}
			i = skipSpace(b, i+1)
			if i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']') {
				i++
				break // an empty container is a whole value
			}
			switch {
			case depth >= 64:
				deep = append(deep[:depth-64], c == '{')
			case c == '{':
				objs |= 1 << depth
			default:
				objs &^= 1 << depth
			}
			depth++
			if c == '{' {
				if i, ok = scanKey(b, i); !ok {
					return 0, false
				}
			}
			continue
		case c == '"':
			if i, ok = scanString(b, i); !ok {
				return 0, false
			}
		case c == 't':
			if i, ok = scanLiteral(b, i, "true"); !ok {
				return 0, false
			}
		case c == 'f':
			if i, ok = scanLiteral(b, i, "false"); !ok {
				return 0, false
			}
		case c == 'n':
			if i, ok = scanLiteral(b, i, "null"); !ok {
				return 0, false
			}
		case c == '-' || '0' <= c && c <= '9':
			if i, ok = scanNumber(b, i); !ok {
				return 0, false
			}
		default:
			return 0, false
		}
		// A value ended at i: close containers, or go on to the next
		// element.
		for {
			if depth == 0 {
				return i, true
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, false
			}
			obj := isObj(depth - 1)
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if obj {
					if i, ok = scanKey(b, i); !ok {
						return 0, false
					}
				}
				break
			}
			if obj && b[i] == '}' || !obj && b[i] == ']' {
				i++
				depth--
				continue
			}
			return 0, false
		}
	}
}

// scanKey checks an object key and its colon at b[i] and returns the index
// of the value after them.
func scanKey(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	i, ok := scanString(b, i)
	if !ok {
		return 0, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	return skipSpace(b, i+1), true
}

// scanString checks the string that starts at b[i] (a quote) and returns
// the index past its closing quote.
func scanString(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		// Skip the plain bytes at once.
		for i < len(b) && !strSpecial[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+4 >= len(b) {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return 0, false
					}
				}
				i += 5
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		default:
			i++
		}
	}
	return 0, false
}

// strSpecial marks the bytes that end a run of plain string content: the
// quote, the backslash and the control characters.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanLiteral checks that lit is at b[i].
func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanNumber checks the number that starts at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i, true
}

// stringToken decodes the JSON string tok (quotes included), already
// checked by scanString, as encoding/json would.
func stringToken(tok []byte) (string, bool) {
	body := tok[1 : len(tok)-1]
	plain := true
	for _, c := range body {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain || !containsByte(body, '\\') && utf8.Valid(body) {
		return string(body), true
	}
	// Escapes, or bytes that are not UTF-8 (which encoding/json replaces
	// with U+FFFD).
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return "", false
	}
	return s, true
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// fastField is one member of a wire object, as the fast decoders see it.
type fastField struct {
	key []byte // without quotes; only keys without escapes are offered
	val []byte // the value's text, checked
}

// scanObject calls f for each member of the JSON object that is the whole
// of data (give or take whitespace), in order, after checking the whole
// object. It returns false, without calling f, when data is not such an
// object or a key has an escape; and false when f does.
func scanObject(data []byte, f func(fastField) bool) bool {
	var fieldsBuf [8]fastField
	fields := fieldsBuf[:0]
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i >= len(data) || data[i] != '"' {
				return false
			}
			k0 := i
			end, ok := scanString(data, i)
			if !ok {
				return false
			}
			key := data[k0+1 : end-1]
			if containsByte(key, '\\') {
				return false
			}
			i = skipSpace(data, end)
			if i >= len(data) || data[i] != ':' {
				return false
			}
			i = skipSpace(data, i+1)
			v0 := i
			if i, ok = scanValue(data, i); !ok {
				return false
			}
			fields = append(fields, fastField{key: key, val: data[v0:i]})
			i = skipSpace(data, i)
			if i < len(data) && data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if i < len(data) && data[i] == '}' {
				i++
				break
			}
			return false
		}
	}
	if skipSpace(data, i) != len(data) {
		return false
	}
	for _, fld := range fields {
		if !f(fld) {
			return false
		}
	}
	return true
}

// fastString decodes a string member into *dst: null leaves it as it is,
// as encoding/json does.
func fastString(val []byte, dst *string) bool {
	switch val[0] {
	case '"':
		s, ok := stringToken(val)
		*dst = s
		return ok
	case 'n':
		return true
	}
	return false
}

// fastRaw decodes a *json.RawMessage member: null gives nil, anything else
// a copy.
func fastRaw(val []byte) *json.RawMessage {
	if val[0] == 'n' {
		return nil
	}
	raw := make(json.RawMessage, len(val))
	copy(raw, val)
	return &raw
}

// decodeRequestFast decodes the wire form of a request into req, or
// returns false having changed nothing.
func decodeRequestFast(data []byte, req *Request) bool {
	var (
		id, task string
		hook     []byte
		args     *json.RawMessage
	)
	ok := scanObject(data, func(f fastField) bool {
		switch string(f.key) {
		case "id":
			return fastString(f.val, &id)
		case "task":
			return fastString(f.val, &task)
		case "responsehook":
			hook = f.val
			return true
		case "args":
			args = fastRaw(f.val)
			return true
		}
		return false
	})
	if !ok {
		return false
	}
	u, legacy, err := decodeURL(hook)
	if err != nil {
		return false
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = id, task, u, args, legacy
	return true
}

// decodeResponseFast decodes the wire form of a response into resp, or
// returns false having changed nothing.
func decodeResponseFast(data []byte, resp *Response) bool {
	var (
		id, msg string
		result  *json.RawMessage
		stream  []byte
	)
	ok := scanObject(data, func(f fastField) bool {
		switch string(f.key) {
		case "id":
			return fastString(f.val, &id)
		case "result":
			result = fastRaw(f.val)
			return true
		case "stream_url":
			stream = f.val
			return true
		case "error":
			return fastString(f.val, &msg)
		}
		return false
	})
	if !ok {
		return false
	}
	u, legacy, err := decodeURL(stream)
	if err != nil {
		return false
	}
	resp.ID, resp.Result, resp.StreamURL, resp.LegacyURLs = id, result, u, legacy
	resp.Error = nil
	if msg != "" {
		resp.Error = &RemoteError{Message: msg}
	}
	return true
}

// decodeRequest unmarshals a frame body into req: the fast path, else
// json.Unmarshal.
func decodeRequest(body []byte, req *Request) error {
	if decodeRequestFast(body, req) {
		return nil
	}
	return json.Unmarshal(body, req)
}

// decodeResponse unmarshals a frame body into resp: the fast path, else
// json.Unmarshal.
func decodeResponse(body []byte, resp *Response) error {
	if decodeResponseFast(body, resp) {
		return nil
	}
	return json.Unmarshal(body, resp)
}

// unmarshalBody unmarshals a frame body into dest, taking the fast paths
// for requests and responses.
func unmarshalBody(body []byte, dest any) error {
	switch d := dest.(type) {
	case *Request:
		if d != nil {
			return decodeRequest(body, d)
		}
	case *Response:
		if d != nil {
			return decodeResponse(body, d)
		}
	}
	return json.Unmarshal(body, dest)
}

// plainUnixPath reports whether path can be written in a unix URL as it
// is, and parsed back to the same URL: an absolute path of letters,
// digits and "/._-~".
func plainUnixPath(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '/' || c == '.' || c == '_' || c == '-' || c == '~') {
			return false
		}
	}
	return true
}

// parseURL is url.Parse with a shortcut for the plain unix URLs that
// nearly every frame carries ("unix:///run/x.sock"): the same URL, made
// without the parser.
func parseURL(s string) (*url.URL, error) {
	if len(s) > len("unix://") && s[:len("unix://")] == "unix://" && plainUnixPath(s[len("unix://"):]) {
		return &url.URL{Scheme: "unix", Path: s[len("unix://"):]}, nil
	}
	return url.Parse(s)
}

// appendURLString appends u.String() to b as a JSON string, without
// building the string for a plain unix URL.
func appendURLString(b []byte, u *url.URL) []byte {
	if u.Scheme == "unix" && u.Opaque == "" && u.User == nil && u.Host == "" && u.RawPath == "" &&
		u.RawQuery == "" && u.Fragment == "" && u.RawFragment == "" && !u.ForceQuery && !u.OmitHost &&
		plainUnixPath(u.Path) {
		b = append(b, `"unix://`...)
		b = append(b, u.Path...)
		return append(b, '"')
	}
	return appendString(b, u.String())
}
