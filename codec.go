package acomm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Wire messages are decoded by github.com/go-json-experiment/json, which
// refuses invalid UTF-8 and duplicate names (encoding/json passes them on)
// and costs a third as much as encoding/json (figures: in the commit).
// Member names are matched as encoding/json matches them (see wireFields).

// nullValue is JSON's null, read only.
var nullValue = jsontext.Value("null")

// Encoding fills a template per message with values the library quoted or
// checked (its Encoder would check raw values again, deep in the stack).

// appendRequest appends the wire JSON of req to b (URLs as objects if legacy).
func appendRequest(b []byte, req *Request, legacy bool) ([]byte, error) {
	b, err1 := appendString(append(b, `{"id":`...), req.ID)
	b, err2 := appendString(append(b, `,"task":`...), req.Task)
	b, err := appendURL(append(b, `,"responsehook":`...), req.ResponseHook, req.hookText, legacy)
	b, err3 := appendRaw(append(b, `,"args":`...), req.Args, req.argsChecked)
	if !req.deadline.IsZero() {
		b = appendTimeout(append(b, `,"timeout_ms":`...), req.deadline)
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
// legacy); an acknowledgement lists features (nil: none).
func appendResponse(b []byte, resp *Response, legacy bool, features ackFeatures) ([]byte, error) {
	b, err1 := appendString(append(b, `{"id":`...), resp.ID)
	b, err2 := appendRaw(append(b, `,"result":`...), resp.Result, resp.resultChecked)
	b, err := appendURL(append(b, `,"stream_url":`...), resp.StreamURL, "", legacy)
	msg := ""
	if resp.Error != nil {
		msg = resp.Error.Error()
	}
	b, err3 := appendString(append(b, `,"error":`...), msg)
	b = append(b, features...)
	if err = cmp.Or(err, err1, err2, err3); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string: as it is, quoted, when it
// holds nothing to escape, as ids, tasks, URLs and the empty error of most
// messages do (see plainID); else as jsontext quotes it, which checks
// every byte for UTF-8 and escapes one by one: a 36-character id took 683
// instructions an op of BenchmarkAppendString that way, 522 the plain way
// (callgrind), six times in a cycle of BenchmarkEcho/acomm-seed-oneshot
// (113.2k -> 112.3k instructions) and in one of acomm-call (68.7k ->
// 67.8k).
func appendString(b []byte, s string) ([]byte, error) {
	if plainID(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"'), nil
	}
	return jsontext.AppendQuote(b, s)
}

// plainID says if id is written in JSON as it is, and as nothing else: it
// is printable ASCII but for the quote and the backslash.
func plainID(id string) bool {
	for i := 0; i < len(id); i++ {
		if !plainByte[id[i]] {
			return false
		}
	}
	return true
}

// plainByte says which bytes plainID lets through: a table, one load a
// byte where four comparisons were (appendString and ackShape.matches
// check 7 strings, about 250 bytes, a cycle of
// BenchmarkEcho/acomm-seed-oneshot: 3.1k -> 2.4k instructions, callgrind).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendRaw appends raw JSON, null for none, refusing what is not JSON
// unless checked says raw was found valid and is unchanged since (its
// check done once, not twice). None, as in every acknowledgement, is not
// checked at all: IsValid of "null", for the two acknowledgements of a
// cycle of BenchmarkEcho/acomm-seed-oneshot, was 1.7k of its 141.5k
// instructions (callgrind).
func appendRaw(b []byte, raw *json.RawMessage, checked checkedRaw) ([]byte, error) {
	if raw == nil || len(*raw) == 0 {
		return append(b, nullValue...), nil
	}
	v := jsontext.Value(*raw)
	if !checked.holds(raw) && !v.IsValid(jsontext.AllowDuplicateNames(true)) {
		return b, fmt.Errorf("%w: not valid JSON", ErrInvalidArgument)
	}
	return append(b, v...), nil
}

// ackFeatures is the "features" member of a receiver's acknowledgements,
// with its leading comma, encoded once rather than in every one (quoting
// the four features of a Server's was 1% of the CPU of
// BenchmarkEcho/acomm-call/par64).
type ackFeatures []byte

// newAckFeatures encodes the member listing features (ours: plain ASCII).
func newAckFeatures(features ...string) ackFeatures {
	b := []byte(`,"features":[`)
	for i, f := range features {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = jsontext.AppendQuote(b, f)
	}
	return append(b, ']')
}

// Decoding walks the message's members with the library's tokenizer
// (jsontext.Decoder): no reflection, and values are read in place, so only
// what is kept (strings, args, result) is copied out of the frame body.
// It checks what json.Unmarshal would: valid JSON and UTF-8, no duplicate
// names, and the type of each member it knows; it skips the others.
//
// One frame, one meaning: member names are matched as encoding/json (the
// original acomm's decoder, and most Go peers') matches them to a struct's
// fields, regardless of case, so that {"ID":"a"} is the id a to both; and
// a name given twice in any mix of case ({"id":"a","ID":"b"}: a to a
// decoder that keeps the first, b to encoding/json, which keeps the last)
// is refused, as jsontext refuses exact duplicates. Acknowledgements, which
// are let through with duplicates (see decodeAck), keep the last, as
// encoding/json does, null included (it leaves a string as it was).

// wireFields are the member names of one kind of wire object, as written
// and under foldName.
type wireFields struct {
	names, folded []string
	// exact returns the index of the field written name, or noField; a
	// switch on constant names, which the compiler makes a few loads and
	// compares (a loop over names calls memequal for each: 6% of a
	// decode). nil: the loop.
	exact func(name []byte) int
}

// newWireFields returns the fields of an object with members names (at
// most 64), which exact, if not nil, says as written.
func newWireFields(exact func([]byte) int, names ...string) *wireFields {
	f := &wireFields{names: names, exact: exact}
	for i, n := range names {
		f.folded = append(f.folded, string(foldName(nil, []byte(n))))
		if exact != nil && exact([]byte(n)) != i {
			panic("acomm: wire field " + n + " out of place")
		}
	}
	return f
}

// The members of each kind of wire object, and their indexes there (a
// member is told to its reader by index: a switch on its name, after the
// match, would cost as much again).
var (
	requestFields = newWireFields(requestField, "id", "task", "responsehook", "args", "timeout_ms", "meta", "answer_in_ack")
	// responseFields are the first of ackFields.
	responseFields = newWireFields(responseField, "id", "result", "stream_url", "error", "features")
	ackFields      = newWireFields(ackField, "id", "result", "stream_url", "error", "features", "answer")
	// urlFields are those of a url.URL as encoding/json writes it: strings,
	// then booleans, then User.
	urlFields = newWireFields(nil, "Scheme", "Opaque", "Host", "Path", "RawPath", "RawQuery", "Fragment",
		"RawFragment", "ForceQuery", "OmitHost", "User")
)

const (
	noField = -1 // a member of no field

	reqID, reqTask, reqHook, reqArgs, reqTimeout, reqMeta, reqAnswerInAck = 0, 1, 2, 3, 4, 5, 6
	respID, respResult, respStream, respError, respFeatures, ackAnswer    = 0, 1, 2, 3, 4, 5
	urlStrings, urlBools, urlUser                                         = 8, 10, 10 // ends; User
)

// requestField is the exact of requestFields.
func requestField(name []byte) int {
	switch string(name) {
	case "id":
		return reqID
	case "task":
		return reqTask
	case "responsehook":
		return reqHook
	case "args":
		return reqArgs
	case "timeout_ms":
		return reqTimeout
	case "meta":
		return reqMeta
	case "answer_in_ack":
		return reqAnswerInAck
	}
	return noField
}

// responseField is the exact of responseFields.
func responseField(name []byte) int {
	switch string(name) {
	case "id":
		return respID
	case "result":
		return respResult
	case "stream_url":
		return respStream
	case "error":
		return respError
	case "features":
		return respFeatures
	}
	return noField
}

// ackField is the exact of ackFields.
func ackField(name []byte) int {
	if string(name) == "answer" {
		return ackAnswer
	}
	return responseField(name)
}

// errDuplicateName refuses an object whose member names match twice.
var errDuplicateName = errors.New("member given twice (names match regardless of case)")

// foldName appends name to b under the case fold encoding/json matches
// names with (its fold.go, Go 1.26): ASCII letters to upper case, any
// other rune to the smallest rune of its unicode.SimpleFold orbit, so
// the Kelvin sign K folds with k and the long s ſ with s, but the dotted
// İ with nothing else.
func foldName(b, name []byte) []byte {
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		b = utf8.AppendRune(b, foldRune(r))
		i += n
	}
	return b
}

// foldRune returns the smallest rune of r's unicode.SimpleFold orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// objectNames matches the member names of one object to its fields.
type objectNames struct {
	fields *wireFields
	dups   bool                // names given twice are let through
	seen   uint64              // the fields met (their bits)
	others map[string]struct{} // the other names met, folded (made on the first)
}

// match returns the index of the field name designates (noField for
// none), as encoding/json matches it: exactly, or else under foldName; and
// errDuplicateName when name matches a name met before (unless duplicates
// are let through).
func (o *objectNames) match(name []byte) (int, error) {
	if o.fields.exact != nil {
		if i := o.fields.exact(name); i != noField {
			return o.field(i)
		}
	} else {
		for i, n := range o.fields.names {
			if string(name) == n {
				return o.field(i)
			}
		}
	}
	return o.matchFolded(name)
}

// field returns field i, met; errDuplicateName if it was met before
// (unless duplicates are let through).
func (o *objectNames) field(i int) (int, error) {
	if !o.dups {
		if o.seen&(1<<i) != 0 {
			return noField, errDuplicateName
		}
		o.seen |= 1 << i
	}
	return i, nil
}

// matchFolded is match for a name that is none of the fields' as written.
func (o *objectNames) matchFolded(name []byte) (int, error) {
	var buf [64]byte
	key := foldName(buf[:0], name)
	for i, n := range o.fields.folded {
		if string(key) == n {
			return o.field(i)
		}
	}
	if o.dups {
		return noField, nil
	}
	if _, ok := o.others[string(key)]; ok {
		return noField, errDuplicateName
	}
	if o.others == nil {
		o.others = make(map[string]struct{})
	}
	o.others[string(key)] = struct{}{}
	return noField, nil
}

// wireDecoder is a pooled decoder, reading from buf without copying it.
type wireDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var wireDecoders = sync.Pool{New: func() any { return new(wireDecoder) }}

// decodeObject reads body, a JSON object (or null) with members fields,
// calling member for each of its members with the index of the field it
// matches (noField for none); member reads (or skips) its value. A name given twice, in any
// mix of case, is refused unless dups. A body that is not one JSON value
// gives a *jsontext.SyntacticError.
func decodeObject(body []byte, fields *wireFields, dups bool, member func(d *jsontext.Decoder, field int) error) error {
	w := wireDecoders.Get().(*wireDecoder)
	w.buf = *bytes.NewBuffer(body)
	if dups {
		w.dec.Reset(&w.buf, jsontext.AllowDuplicateNames(true))
	} else {
		w.dec.Reset(&w.buf)
	}
	err := readObject(&w.dec, fields, dups, member)
	if err == io.EOF { // (an empty body: no clean end)
		err = &jsontext.SyntacticError{ByteOffset: w.dec.InputOffset(), Err: io.ErrUnexpectedEOF}
	}
	if err == nil {
		if _, err = w.dec.ReadToken(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = &jsontext.SyntacticError{ByteOffset: w.dec.InputOffset(), Err: errors.New("data after the top-level value")}
		}
	}
	w.buf = bytes.Buffer{}
	w.dec.Reset(&w.buf) // drop body
	wireDecoders.Put(w)
	return err
}

// readObject reads a JSON object (or null) from d; see decodeObject.
func readObject(d *jsontext.Decoder, fields *wireFields, dups bool, member func(d *jsontext.Decoder, field int) error) error {
	tok, err := d.ReadToken()
	switch {
	case err != nil:
		return err
	case tok.Kind() == 'n':
		return nil
	case tok.Kind() != '{':
		return fmt.Errorf("want an object, got %v", tok.Kind())
	}
	names := objectNames{fields: fields, dups: dups}
	for d.PeekKind() != '}' {
		v, err := d.ReadValue() // the name, quoted
		if err != nil {
			return err
		}
		name := v[1 : len(v)-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			name, _ = jsontext.AppendUnquote(nil, v) // valid: read as a name
		}
		field, err := names.match(name)
		if err == nil {
			err = member(d, field)
		}
		if err != nil {
			if len(name) > 64 { // (a peer's text, in the refusal it is sent)
				name = append(name[:61:61], "..."...)
			}
			return fmt.Errorf("%q: %w", name, err)
		}
	}
	_, err = d.ReadToken()
	return err
}

// readString reads a string into s; null leaves s as it is (as
// encoding/json does).
func readString(d *jsontext.Decoder, s *string) error {
	tok, err := d.ReadToken()
	switch {
	case err != nil:
		return err
	case tok.Kind() == '"':
		*s = tok.String()
		return nil
	case tok.Kind() == 'n':
		return nil
	}
	return fmt.Errorf("want a string, got %v", tok.Kind())
}

// readRaw reads any value, null as none, into memory of its own, which
// *mem then holds if mem is not nil: a hidden field of the message it is
// for, saving an allocation of the slice header on the paths inside the
// package. (The decoders behind UnmarshalJSON pass nil, so that a message
// decoded there is deeply equal to one made with NewRequest.)
func readRaw(d *jsontext.Decoder, mem *json.RawMessage) (*json.RawMessage, error) {
	v, err := d.ReadValue()
	if err != nil || v.Kind() == 'n' {
		return nil, err
	}
	if mem == nil {
		mem = new(json.RawMessage)
	}
	*mem = json.RawMessage(bytes.Clone(v))
	return mem, nil
}

// textIn returns v, a value that a decoder of body just read, ending at
// its input offset end, as body's own bytes (v itself is only valid until
// the decoder reads on), or else a copy. A URL's object form is decoded by
// a decoder of its own: once its member's object is read, not from within
// the reading, since nesting the two doubled the stack that decoding takes,
// which a goroutine of the caller's, fresh for each connection as in a
// service written for the original, grows by copying (runtime.newstack was
// 45% of decodeRequest's CPU there: 9.3 us a request with a URL object,
// against 3.3 us on a goroutine whose stack has grown).
func textIn(body []byte, v jsontext.Value, end int64) jsontext.Value {
	if start := end - int64(len(v)); start >= 0 && end <= int64(len(body)) && bytes.Equal(body[start:end], v) {
		return body[start:end:end]
	}
	return bytes.Clone(v)
}

// decodeRequest decodes the wire JSON of a request into req, as
// UnmarshalJSON and UnmarshalConnData give it to their callers: its args
// checked, as NewRequest leaves them, so that a request decoded there is
// deeply equal to the one sent, made with NewRequest. Errors match
// ErrInvalidRequest (and ErrInvalidURL).
func decodeRequest(body []byte, req *Request) error {
	var clock frameClock
	err := decodeRequestMem(body, req, nil, nil, &clock)
	if err == nil {
		req.argsChecked = checkedCopy(req.Args)
	}
	return err
}

// decodeResponseChecked is decodeResponse as UnmarshalJSON and
// UnmarshalConnData give it to their callers: its result checked, as
// NewResponse leaves it (see decodeRequest).
func decodeResponseChecked(body []byte, resp *Response) error {
	_, err := decodeResponse(body, resp)
	if err == nil {
		resp.resultChecked = checkedCopy(resp.Result)
	}
	return err
}

// decodeRequestMem is decodeRequest, keeping the args in *argsMem when it
// is not nil (see readRaw), and reading the hook and the task through rep
// when it is not nil (see repeats); its deadline counts from clock's time.
func decodeRequestMem(body []byte, req *Request, argsMem *json.RawMessage, rep *repeats, clock *frameClock) error {
	var (
		w      Request
		hasMS  bool
		ms     int64
		urlErr error
		hook   jsontext.Value // read once the object is: see textIn
	)
	err := decodeObject(body, requestFields, false, func(d *jsontext.Decoder, field int) error {
		var err error
		switch field {
		case reqID:
			err = readString(d, &w.ID)
		case reqTask:
			err = rep.readTask(d, &w.Task)
		case reqHook:
			var v jsontext.Value
			if v, err = d.ReadValue(); err == nil {
				hook = textIn(body, v, d.InputOffset())
			}
		case reqArgs:
			w.Args, err = readRaw(d, argsMem)
		case reqTimeout:
			var v jsontext.Value
			if v, err = d.ReadValue(); err == nil {
				ms, hasMS, err = readTimeoutMS(v)
			}
		case reqMeta:
			var meta map[string]string // (its own: it escapes)
			err = jsonv2.UnmarshalDecode(d, &meta)
			w.Meta = meta
		case reqAnswerInAck:
			var tok jsontext.Token
			if tok, err = d.ReadToken(); err == nil && tok.Kind() != 'n' {
				if tok.Kind() != 't' && tok.Kind() != 'f' {
					return fmt.Errorf("want a boolean, got %v", tok.Kind())
				}
				w.answerInAck = tok.Bool()
			}
		default:
			err = d.SkipValue()
		}
		return err
	})
	if err != nil {
		return decodeError(ErrInvalidRequest, err)
	}
	if hook != nil {
		w.ResponseHook, w.LegacyURLs, urlErr = rep.readHook(hook)
		if urlErr == nil {
			urlErr = checkHookUser(w.ResponseHook)
		}
	}
	if urlErr != nil {
		return decodeError(ErrInvalidRequest, fmt.Errorf("responsehook: %w", urlErr))
	}
	req.ID, req.Task, req.ResponseHook, req.Args, req.LegacyURLs = w.ID, w.Task, w.ResponseHook, w.Args, w.LegacyURLs
	req.Meta, req.deadline, req.callerDeadline, req.answerInAck = w.Meta, time.Time{}, hasMS, w.answerInAck
	if hasMS {
		req.deadline = deadlineFromMS(ms, clock.now())
	}
	return nil
}

// decodeResponse decodes the wire JSON of a response into resp, and the
// features it lists. Errors match ErrInvalidResponse (and ErrInvalidURL).
func decodeResponse(body []byte, resp *Response) ([]string, error) {
	var features []string
	var urlErr error
	var r Response
	err := decodeObject(body, responseFields, false, func(d *jsontext.Decoder, field int) error {
		if field == respFeatures {
			var list []string // (its own: it escapes)
			err := jsonv2.UnmarshalDecode(d, &list)
			features = list
			return err
		}
		return readResponseMember(d, field, &r, nil, &urlErr)
	})
	switch {
	case err != nil:
		err = decodeError(ErrInvalidResponse, err)
	case urlErr != nil:
		err = decodeError(ErrInvalidResponse, fmt.Errorf("stream_url: %w", urlErr))
	}
	if err != nil {
		return nil, err
	}
	*resp = r
	return features, nil
}

// readResponseMember reads the member of a response matching field into
// resp (null leaves id and error as they are, as encoding/json does),
// the result into *resultMem if not nil (see readRaw); an invalid stream
// URL goes to urlErr.
func readResponseMember(d *jsontext.Decoder, field int, resp *Response, resultMem *json.RawMessage, urlErr *error) error {
	var err error
	switch field {
	case respID:
		err = readString(d, &resp.ID)
	case respResult:
		resp.Result, err = readRaw(d, resultMem)
	case respStream:
		var v jsontext.Value
		if v, err = d.ReadValue(); err == nil {
			resp.StreamURL, resp.LegacyURLs, *urlErr = readURL(v)
		}
	case respError:
		msg := ""
		if resp.Error != nil { // (null leaves it)
			msg = resp.Error.Error()
		}
		if err = readString(d, &msg); err == nil {
			resp.Error = nil
			if msg != "" {
				resp.Error = &RemoteError{Message: msg}
			}
		}
	default:
		err = d.SkipValue()
	}
	return err
}

// decodeAck decodes an acknowledgement: the features it lists (if wanted),
// the answer it carries (see answer.go; decoded if wanted, else skipped),
// and nil, a refusal (ErrRefused and the reason's sentinel) or an
// ErrMalformedFrame error (and ErrInvalidResponse for the answer's).
// Duplicate names, in any mix of case, are let through, the last
// standing, as the original's decoder (encoding/json) does: an
// acknowledgement is what a peer says of itself. (So are those of the
// answer, which a second "answer" adds to, as encoding/json would.)
func decodeAck(body []byte, wantFeatures, wantAnswer bool) ([]string, *Response, error) {
	return decodeAckOf(body, wantFeatures, wantAnswer, nil)
}

// ackIDCheck is what decodeAckOf checks of an acknowledgement's id, and
// what it saw of the acknowledgement's members, for newAckShape.
type ackIDCheck struct {
	want  string // the id of the frame acknowledged ("": no check)
	other string // set to the id given, if it is neither want nor ""

	ids, answers, featureLists int  // how many "id", "answer" and "features" members it gave
	idAt, idEnd                int  // where the last id's text is in the body, unquoted, if it has no escapes
	listed                     bool // its features were decoded
}

// decodeAckOf is decodeAck, also checking the id the acknowledgement gives
// (the acknowledged frame's, or "") against id.want, if id is not nil.
func decodeAckOf(body []byte, wantFeatures, wantAnswer bool, id *ackIDCheck) ([]string, *Response, error) {
	var (
		features []string
		answer   *Response
		msg      string
		urlErr   error
	)
	err := decodeObject(body, ackFields, true, func(d *jsontext.Decoder, field int) error {
		if id != nil { // (what newAckShape needs to know)
			switch field {
			case respFeatures:
				id.featureLists++
				id.listed = wantFeatures
			case ackAnswer:
				id.answers++
			}
		}
		var err error
		switch {
		case field == respError:
			err = readString(d, &msg)
		case field == respID && id != nil:
			err = id.read(d)
		case field == respFeatures && wantFeatures:
			var list []string // (its own: it escapes)
			err = jsonv2.UnmarshalDecode(d, &list)
			features = list
		case field == ackAnswer && wantAnswer && d.PeekKind() == 'n':
			answer = nil
			err = d.SkipValue()
		case field == ackAnswer && wantAnswer:
			if answer == nil {
				answer = &Response{}
			}
			err = readObject(d, responseFields, true, func(d *jsontext.Decoder, field int) error {
				return readResponseMember(d, field, answer, &answer.resultMem, &urlErr)
			})
			if err != nil {
				err = fmt.Errorf("%w: %w", ErrInvalidResponse, err)
			}
		default:
			err = d.SkipValue()
		}
		return err
	})
	if err == nil && urlErr != nil {
		err = fmt.Errorf("answer: %w: stream_url: %w", ErrInvalidResponse, urlErr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: acknowledgement: %w", ErrMalformedFrame, err)
	}
	if msg != "" {
		return features, nil, fmt.Errorf("%w: %w", ErrRefused, &RemoteError{Message: msg})
	}
	return features, answer, nil
}

// read reads an acknowledgement's id and checks it, allocating nothing
// when it is the id wanted (or "", or null) and has no escapes.
func (c *ackIDCheck) read(d *jsontext.Decoder) error {
	c.ids++
	c.idAt, c.idEnd = 0, 0
	v, err := d.ReadValue()
	if err != nil || v.Kind() != '"' {
		if err == nil && v.Kind() != 'n' && c.want != "" { // (unchecked: any value goes)
			err = fmt.Errorf("want a string, got %v", v.Kind())
		}
		return err
	}
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		if raw, err = jsontext.AppendUnquote(nil, v); err != nil {
			return err
		}
	} else {
		c.idEnd = int(d.InputOffset()) - 1 // (the decoder reads the body itself, from its start)
		c.idAt = c.idEnd - len(raw)
	}
	if c.want == "" {
		return nil
	}
	if len(raw) > 0 && string(raw) != c.want {
		c.other = string(raw)
	}
	return nil
}

// decodeError wraps a decoding error in kind, and one of a body that is
// not JSON at all, or gives a name twice, in ErrMalformedFrame first.
func decodeError(kind, err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) || errors.Is(err, errDuplicateName) {
		return fmt.Errorf("%w: %w: %w", ErrMalformedFrame, kind, err)
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// URLs travel as strings ("unix:///run/x.sock") or in the object form the
// original's encoding/json gave a *url.URL, which it still reads and writes.

// urlValue returns the wire JSON of u in the form chosen; null for nil.
func urlValue(u *url.URL, legacy bool) (jsontext.Value, error) {
	return appendURL(nil, u, "", legacy)
}

// appendURL appends u's wire value to b, as urlValue gives it; text, if
// not "", is u.String(), known already.
func appendURL(b []byte, u *url.URL, text string, legacy bool) ([]byte, error) {
	switch {
	case u == nil:
		return append(b, nullValue...), nil
	case legacy:
		return appendURLObject(b, u)
	case text == "":
		text = u.String()
	}
	return appendString(b, text)
}

// readURL reads a URL in either form and says if it was an object. The URL
// is what its text says, which is what gets dialed, so a check of its parts
// checks the destination: an object whose parts say otherwise (Opaque or
// RawPath beside Host and Path), whose text reads back as another (a
// scheme in upper case, which an encoding/json peer keeps as it is) or that
// lost its user info ({}) is refused, as is an opaque http(s) URL. null, ""
// and "#" give nil.
func readURL(v jsontext.Value) (u *url.URL, legacy bool, err error) {
	if v.Kind() == '{' {
		if u, ok := readURLObjectMemo(v); ok {
			return u, true, nil
		}
		defer func() {
			if err == nil && u != nil {
				rememberURLObject(v, u)
			}
		}()
	}
	switch legacy = v.Kind() == '{'; {
	case legacy:
		var o url.URL
		if o, err = readURLObject(v); err == nil {
			u, err = url.Parse(o.String())
		}
		if err == nil && (u.String() != o.String() || u.Host != o.Host || u.Opaque != o.Opaque || u.Path != o.Path) {
			err = fmt.Errorf("%q is not what its parts say", o.String())
		}
	case v.Kind() == '"':
		s := v[1 : len(v)-1]
		if bytes.IndexByte(s, '\\') >= 0 {
			s, err = jsontext.AppendUnquote(nil, v)
		}
		if err == nil {
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

// readURLObject reads the object form of a URL as encoding/json fills a
// url.URL (names matched as wireFields says, others skipped, null leaves
// a member as it is), except that user info is refused: json gives it as
// {}, which has lost it; and so is a name given twice, in any case.
func readURLObject(v jsontext.Value) (url.URL, error) {
	var o url.URL
	// (in the order of urlFields)
	strs := [urlStrings]*string{&o.Scheme, &o.Opaque, &o.Host, &o.Path, &o.RawPath, &o.RawQuery, &o.Fragment, &o.RawFragment}
	bools := [urlBools - urlStrings]*bool{&o.ForceQuery, &o.OmitHost}
	err := decodeObject(v, urlFields, false, func(d *jsontext.Decoder, field int) error {
		var s *string
		var b *bool
		switch {
		case field == urlUser && d.PeekKind() != 'n':
			return errors.New("user info in a url object")
		case field >= 0 && field < urlStrings:
			s = strs[field]
		case field >= urlStrings && field < urlBools:
			b = bools[field-urlStrings]
		default:
			return d.SkipValue()
		}
		tok, err := d.ReadToken()
		switch k := tok.Kind(); {
		case err != nil || k == 'n':
		case s != nil && k == '"':
			*s = tok.String()
		case b != nil && (k == 't' || k == 'f'):
			*b = tok.Bool()
		default:
			err = fmt.Errorf("unexpected %v", k)
		}
		return err
	})
	return o, err
}

// opaqueHTTP refuses an opaque http(s) URL ("http:h/p"): no host is seen.
func opaqueHTTP(u *url.URL) error {
	if u.Opaque != "" && (u.Scheme == "http" || u.Scheme == "https") {
		return fmt.Errorf("%w: opaque %s url", ErrInvalidURL, u.Scheme)
	}
	return nil
}
