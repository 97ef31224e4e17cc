package acomm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"regexp"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzMaxFrame is the frame limit used by FuzzReadFrame: small, so that
// the fuzzer reaches it.
const fuzzMaxFrame = 1 << 10

// Wire texts used to seed the fuzzers.
const (
	seedRequest       = `{"id":"1","task":"t","responsehook":"unix:///run/x.sock","args":{"a":1}}`
	seedLegacyRequest = `{"id":"1","task":"t","responsehook":{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"/run/x.sock","RawPath":"","RawQuery":"","Fragment":""},"args":null}`
	seedResponse      = `{"id":"1","result":{"a":[1,2]},"stream_url":"http://h:8/s?q=1","error":""}`
	seedLegacyResp    = `{"id":"1","result":null,"stream_url":{"Scheme":"http","Host":"h","Path":"/p","RawQuery":"q=1"},"error":"acomm: server busy: 8 handlers running"}`
)

func FuzzReadFrame(f *testing.F) {
	for _, g := range goldenFrames {
		f.Add([]byte(g.wire))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add(frameBytes(fuzzMaxFrame, make([]byte, fuzzMaxFrame)))
	f.Add(frameBytes(fuzzMaxFrame+1, make([]byte, fuzzMaxFrame+1)))
	f.Add(frameBytes(5, []byte("ab")))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := &countingReader{r: bytes.NewReader(data)}
		body, err := readFrame(r, fuzzMaxFrame)

		// The same bytes delivered one at a time give the same result.
		body1, err1 := readFrame(iotest.OneByteReader(bytes.NewReader(data)), fuzzMaxFrame)
		assert.Equal(t, body, body1)
		assert.Equal(t, errString(err), errString(err1))

		if err != nil {
			var fse *FrameSizeError
			switch {
			case err == io.EOF:
				require.Empty(t, data)
			case errors.Is(err, ErrTruncatedFrame):
				require.True(t, errors.Is(err, io.ErrUnexpectedEOF))
			case errors.As(err, &fse):
				require.Greater(t, fse.Size, uint64(fuzzMaxFrame))
				require.Equal(t, frameHeaderSize, r.n, "an oversized frame's body is not read")
			default:
				t.Fatalf("unexpected error %v", err)
			}
			require.Nil(t, body)
			return
		}

		require.LessOrEqual(t, cap(body), fuzzMaxFrame, "allocated more than max")
		require.Equal(t, frameHeaderSize+len(body), r.n, "read past the frame")
		var buf bytes.Buffer
		require.NoError(t, writeFrame(&buf, body, fuzzMaxFrame))
		require.Equal(t, data[:frameHeaderSize+len(body)], buf.Bytes(), "re-encoding differs")
	})
}

// errString returns err's text, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// canonicalJSON is what json.Marshal makes of a raw JSON value: compacted,
// with HTML characters escaped. nil stays nil.
func canonicalJSON(t *testing.T, raw *json.RawMessage) *string {
	t.Helper()
	if raw == nil {
		return nil
	}
	b, err := json.Marshal(*raw)
	require.NoError(t, err)
	s := string(b)
	return &s
}

// urlString returns u.String(), or "<nil>" for nil.
func urlString(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	return u.String()
}

// refDecodeURL is the reference decoding of a URL member, with nothing but
// encoding/json and url.Parse: null, "" or a URL whose text is empty give
// nil; a string is parsed; an object is the legacy form.
func refDecodeURL(raw json.RawMessage) (*url.URL, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, err
		}
		if s == "" {
			return nil, false, nil
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, false, err
		}
		if u.String() == "" {
			return nil, false, nil
		}
		return u, false, nil
	case '{':
		var l struct {
			Scheme, Opaque                  string
			User                            json.RawMessage
			Host, Path, RawPath             string
			OmitHost, ForceQuery            bool
			RawQuery, Fragment, RawFragment string
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, true, err
		}
		return &url.URL{
			Scheme: l.Scheme, Opaque: l.Opaque, Host: l.Host, Path: l.Path, RawPath: l.RawPath,
			OmitHost: l.OmitHost, ForceQuery: l.ForceQuery, RawQuery: l.RawQuery,
			Fragment: l.Fragment, RawFragment: l.RawFragment,
		}, true, nil
	}
	return nil, false, errors.New("not a string or an object")
}

// refDecodeRequest is the reference decoding of a request: encoding/json
// into the wire struct, and refDecodeURL.
func refDecodeRequest(data []byte) (*Request, error) {
	var w struct {
		ID           string            `json:"id"`
		Task         string            `json:"task"`
		ResponseHook json.RawMessage   `json:"responsehook"`
		Args         *json.RawMessage  `json:"args"`
		TimeoutMS    *int64            `json:"timeout_ms"`
		Meta         map[string]string `json:"meta"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	u, legacy, err := refDecodeURL(w.ResponseHook)
	if err != nil {
		return nil, err
	}
	return &Request{ID: w.ID, Task: w.Task, ResponseHook: u, Args: w.Args, LegacyURLs: legacy, Meta: w.Meta, callerDeadline: w.TimeoutMS != nil}, nil
}

// refDecodeResponse is the reference decoding of a response.
func refDecodeResponse(data []byte) (*Response, error) {
	var w struct {
		ID        string           `json:"id"`
		Result    *json.RawMessage `json:"result"`
		StreamURL json.RawMessage  `json:"stream_url"`
		Error     string           `json:"error"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	u, legacy, err := refDecodeURL(w.StreamURL)
	if err != nil {
		return nil, err
	}
	r := &Response{ID: w.ID, Result: w.Result, StreamURL: u, LegacyURLs: legacy}
	if w.Error != "" {
		r.Error = &RemoteError{Message: w.Error}
	}
	return r, nil
}

// rawString returns the bytes of raw, or "<nil>".
func rawString(raw *json.RawMessage) string {
	if raw == nil {
		return "<nil>"
	}
	return string(*raw)
}

func FuzzRequestJSON(f *testing.F) {
	f.Add([]byte(seedRequest))
	f.Add([]byte(seedLegacyRequest))
	f.Add([]byte(`{"id":"1","task":"t","responsehook":{"Scheme":"unix","Path":"/run/x.sock"}}`))
	f.Add([]byte(`{"id":"1","task":"t","responsehook":{"Scheme":"http","Host":"h","Path":"/p","RawQuery":"q=1"}}`))
	f.Add([]byte(`{"id":"1","responsehook":"https://u:p@h/p?q=1#f","args":[1,"<&>"]}`))
	f.Add([]byte(`{"responsehook":null,"args":null}`))
	f.Add([]byte(`{"responsehook":""}`))
	f.Add([]byte(`{"responsehook":7}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte("\x00\xff{"))
	// Shapes that a hand-written decoder could get wrong.
	f.Add([]byte(`{"id":"1","id":null,"args":1,"args":null}`))
	f.Add([]byte(`{"ID":"1","Task":"t","ResponseHook":"unix:///x"}`))
	f.Add([]byte(`{"i\u0064":"1"}`))
	f.Add([]byte(" {\"id\" : \"1\" ,\t\"responsehook\" : \"unix:////x\" }\n"))
	f.Add([]byte(`{"id":"a\u0000b\ud83d\ude00\ud800","task":"\"","responsehook":"unix:///x~y.z-_/A9","args":[{"a":[1.5e3,-0,true,false,null,"\/"]}]}`))
	f.Add([]byte(`{"id":"1","responsehook":"unix:///x%20y"}`))
	f.Add([]byte(`{"id":"1","args":[[[[[[[[[[]]]]]]]]]]}`))
	f.Add([]byte(`{"id":"1","args":01}`))
	f.Add([]byte(`{"id":"1","args":{"a":1,}}`))
	f.Add([]byte(`{"id":"1"} x`))
	f.Add([]byte(`{"id":"1","task":"t","responsehook":"unix:///x","args":null,"timeout_ms":1500,"meta":{"k":"v","traceparent":"00-ab-cd-01"}}`))
	f.Add([]byte(`{"id":"1","timeout_ms":-1,"meta":{}}`))
	f.Add([]byte(`{"id":"1","timeout_ms":1.5,"meta":{"k":1}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		assert.Equal(t, json.Valid(data), validJSON(data), "validJSON differs from json.Valid")

		// Decoding agrees with the reference, however it is done.
		ref, refErr := refDecodeRequest(data)
		var r1 Request
		err := r1.UnmarshalJSON(data)
		var viaFrame Request
		frameErr := decodeFrame(bytes.NewReader(frameBytes(uint32(len(data)), data)), &viaFrame, 0)
		if refErr != nil {
			require.Error(t, err, "the reference refuses %q: %v", data, refErr)
			require.ErrorIs(t, err, ErrInvalidRequest)
			require.ErrorIs(t, frameErr, ErrMalformedFrame)
			return
		}
		require.NoError(t, err)
		require.NoError(t, frameErr)
		for _, got := range []*Request{&r1, &viaFrame} {
			assert.Equal(t, ref.ID, got.ID)
			assert.Equal(t, ref.Task, got.Task)
			assert.Equal(t, ref.ResponseHook, got.ResponseHook)
			assert.Equal(t, rawString(ref.Args), rawString(got.Args))
			assert.Equal(t, ref.LegacyURLs, got.LegacyURLs)
			assert.Equal(t, ref.Meta, got.Meta)
			_, hasDeadline := got.Deadline()
			assert.Equal(t, ref.callerDeadline, hasDeadline)
		}

		b, err := json.Marshal(&r1)
		require.NoError(t, err)
		var r2 Request
		require.NoError(t, json.Unmarshal(b, &r2), "re-decoding %s", b)

		assert.Equal(t, r1.ID, r2.ID)
		assert.Equal(t, r1.Task, r2.Task)
		assert.Equal(t, urlString(r1.ResponseHook), urlString(r2.ResponseHook))
		assert.Equal(t, canonicalJSON(t, r1.Args), canonicalJSON(t, r2.Args))
		if r1.ResponseHook != nil {
			assert.Equal(t, r1.LegacyURLs, r2.LegacyURLs)
		}

		if len(r1.Meta) > 0 || len(r2.Meta) > 0 { // empty meta is not written
			assert.Equal(t, r1.Meta, r2.Meta)
		}

		// Encoding again is stable, but for the time left, which the
		// moments between the encodings can round differently.
		b2, err := json.Marshal(&r2)
		require.NoError(t, err)
		timeLeft := regexp.MustCompile(`"timeout_ms":\d+`)
		assert.Equal(t, timeLeft.ReplaceAllString(string(b), "T"), timeLeft.ReplaceAllString(string(b2), "T"))

		checkFrameMatchesMarshal(t, &r1, b)
	})
}

// checkFrameMatchesMarshal checks that the body encodeFrame writes for
// payload is, once compacted and HTML-escaped as encoding/json does to a
// MarshalJSON result, the JSON marshalled.
func checkFrameMatchesMarshal(t *testing.T, payload any, marshalled []byte) {
	t.Helper()
	var frame bytes.Buffer
	require.NoError(t, encodeFrame(&frame, payload, 0))
	body, err := readFrame(&frame, 0)
	require.NoError(t, err)
	require.True(t, json.Valid(body), "frame body is not JSON: %s", body)
	var compact, canon bytes.Buffer
	require.NoError(t, json.Compact(&compact, body))
	json.HTMLEscape(&canon, compact.Bytes())
	assert.Equal(t, string(marshalled), canon.String())
}

func FuzzResponseJSON(f *testing.F) {
	f.Add([]byte(seedResponse))
	f.Add([]byte(seedLegacyResp))
	f.Add([]byte(`{"id":"1","result":null,"stream_url":null,"error":""}`))
	f.Add([]byte(`{"id":"","error":"acomm: invalid request: missing task"}`))
	f.Add([]byte(`{"id":"1","stream_url":{"Scheme":"unix","Path":"/run/s.sock","User":{}}}`))
	f.Add([]byte(`{"error":5}`))
	f.Add([]byte(`{"error":"\ud800"}`))
	f.Add([]byte(`{"stream_url":"%zz"}`))
	f.Add([]byte(`"x"`))
	f.Add([]byte("\xff"))
	f.Add([]byte(`{"id":"1","error":"a","error":null,"result":2,"result":null}`))
	f.Add([]byte(`{"Id":"1","Error":"x","Stream_URL":"unix:///s"}`))
	f.Add([]byte(`{"id":"1","stream_url":"unix:///s.sock","error":"\u00e9\n"}`))
	f.Add([]byte(`{"id":"1","result":"\u002","error":""}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		ref, refErr := refDecodeResponse(data)
		var r1 Response
		err := r1.UnmarshalJSON(data)
		var viaFrame Response
		frameErr := decodeFrame(bytes.NewReader(frameBytes(uint32(len(data)), data)), &viaFrame, 0)
		if refErr != nil {
			require.Error(t, err, "the reference refuses %q: %v", data, refErr)
			require.ErrorIs(t, err, ErrInvalidResponse)
			require.ErrorIs(t, frameErr, ErrMalformedFrame)
			return
		}
		require.NoError(t, err)
		require.NoError(t, frameErr)
		for _, got := range []*Response{&r1, &viaFrame} {
			assert.Equal(t, ref.ID, got.ID)
			assert.Equal(t, rawString(ref.Result), rawString(got.Result))
			assert.Equal(t, ref.StreamURL, got.StreamURL)
			assert.Equal(t, ref.LegacyURLs, got.LegacyURLs)
			assert.Equal(t, errString(ref.Error), errString(got.Error))
		}

		b, err := json.Marshal(&r1)
		require.NoError(t, err)
		var r2 Response
		require.NoError(t, json.Unmarshal(b, &r2), "re-decoding %s", b)

		assert.Equal(t, r1.ID, r2.ID)
		assert.Equal(t, canonicalJSON(t, r1.Result), canonicalJSON(t, r2.Result))
		assert.Equal(t, urlString(r1.StreamURL), urlString(r2.StreamURL))
		if r1.StreamURL != nil {
			assert.Equal(t, r1.LegacyURLs, r2.LegacyURLs)
		}
		if r1.Error == nil {
			assert.NoError(t, r2.Error)
		} else {
			var re *RemoteError
			require.ErrorAs(t, r2.Error, &re)
			assert.Equal(t, r1.Error.Error(), re.Message)
			assert.NotEmpty(t, re.Message)
		}

		b2, err := json.Marshal(&r2)
		require.NoError(t, err)
		assert.Equal(t, string(b), string(b2))

		checkFrameMatchesMarshal(t, &r1, b)
	})
}

// utf8URL reports whether every string field of u is valid UTF-8.
func utf8URL(u *url.URL) bool {
	for _, s := range []string{u.Scheme, u.Opaque, u.Host, u.Path, u.RawPath, u.RawQuery, u.Fragment, u.RawFragment} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// wireURL returns the JSON that a Response carries for u as its stream URL,
// in the legacy object form or as a string.
func wireURL(t *testing.T, u *url.URL, legacy bool) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(&Response{StreamURL: u, LegacyURLs: legacy})
	require.NoError(t, err)
	var wire struct {
		StreamURL json.RawMessage `json:"stream_url"`
	}
	require.NoError(t, json.Unmarshal(b, &wire))
	return wire.StreamURL
}

func FuzzURLJSON(f *testing.F) {
	for _, s := range []string{
		`"unix:///run/x.sock"`,
		`"unix:/run/x.sock"`,
		`"unix:rel.sock"`,
		`"http://h:8/p?q=1#f"`,
		`"https://u:p@[::1]:443/a%2Fb"`,
		`""`,
		`null`,
		` "unix:///x" `,
		`{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"/run/x.sock","RawPath":"","RawQuery":"","Fragment":""}`,
		`{"Scheme":"http","Host":"h","Path":"/p","RawQuery":"q=1"}`,
		`{"User":{}}`,
		`{}`,
		`{"Path":7}`,
		`"%zz"`,
		`7`,
		`[`,
		"\"\xff\"",
	} {
		f.Add([]byte(s))
	}

	// check decodes raw; when that works, both encodings of the result
	// decode to the same URL.
	check := func(t *testing.T, raw []byte) {
		u, legacy, err := decodeURL(raw)
		refU, refLegacy, refErr := refDecodeURL(raw)
		if refErr != nil {
			require.Error(t, err, "the reference refuses %q: %v", raw, refErr)
		} else {
			require.NoError(t, err)
			assert.Equal(t, refU, u)
			assert.Equal(t, refLegacy, legacy)
		}
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidURL)
			require.Nil(t, u)
			return
		}
		if u == nil {
			require.False(t, legacy)
			return
		}
		enc := wireURL(t, u, legacy)
		u2, legacy2, err := decodeURL(enc)
		require.NoError(t, err, "re-decoding %s", enc)
		require.NotNil(t, u2, "re-decoding %s", enc)
		assert.Equal(t, legacy, legacy2)
		assert.Equal(t, u.String(), u2.String())

		// A URL that makes sense on the wire survives a change of form.
		// (Not one with bytes that are not UTF-8 in a field, such as
		// "http://0%80": JSON strings, and so the legacy form, replace
		// them with U+FFFD, as the original acomm's did.)
		if checkURL(u) == nil && utf8URL(u) {
			if _, perr := url.Parse(u.String()); perr == nil {
				enc := wireURL(t, u, !legacy)
				u3, _, err := decodeURL(enc)
				require.NoError(t, err, "re-decoding %s", enc)
				want := *u
				if !legacy {
					// The legacy form cannot carry user info: url.Userinfo
					// has no exported fields.
					want.User = nil
				}
				assert.Equal(t, want.String(), urlString(u3))
			}
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		// The same bytes as the content of a JSON string.
		s, err := json.Marshal(string(data))
		require.NoError(t, err)
		check(t, s)
	})
}
