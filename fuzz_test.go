package acomm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"testing"
	"testing/iotest"
	"time"
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
		body, err := readFrame(r, fuzzMaxFrame, nil)

		// The same bytes delivered one at a time give the same result.
		body1, err1 := readFrame(iotest.OneByteReader(bytes.NewReader(data)), fuzzMaxFrame, make([]byte, 0, 16)) // and into a buffer, or past it
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

// urlString returns u.String(), or "<nil>" for nil.
func urlString(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	return u.String()
}

// rawString returns the bytes of raw, or "<nil>".
func rawString(raw *json.RawMessage) string {
	if raw == nil {
		return "<nil>"
	}
	return string(*raw)
}

// legacyForm reports whether u can travel in the object form, which
// cannot carry user info, nor parts that are not UTF-8 once unescaped
// (such as the path of "%80").
func legacyForm(u *url.URL) bool {
	return u == nil || u.User == nil && utf8.ValidString(u.Opaque+u.Host+u.Path+u.RawPath+u.RawQuery+u.Fragment+u.RawFragment)
}

// fuzzFrame decodes data as the body of a frame into dest (a *Request or
// *Response), checking that json.Unmarshal agrees, and returns the
// decoding error.
func fuzzFrame(t *testing.T, data []byte, dest, viaJSON any, kind error) error {
	t.Helper()
	err := decodeFrame(bytes.NewReader(frameBytes(uint32(len(data)), data)), dest, 0)
	jerr := json.Unmarshal(data, viaJSON)
	if err != nil {
		require.ErrorIs(t, err, ErrMalformedFrame)
		require.ErrorIs(t, err, kind)
		return err
	}
	require.NoError(t, jerr, "the frame decoded, encoding/json refuses it")
	return nil
}

func FuzzRequestJSON(f *testing.F) {
	f.Add([]byte(seedRequest))
	f.Add([]byte(seedLegacyRequest))
	f.Add([]byte(`{"id":"1","task":"t","responsehook":{"Scheme":"http","Host":"h","Path":"/p","RawQuery":"q=1"}}`))
	f.Add([]byte(`{"id":"1","task":"t","responsehook":{"Scheme":"http","Host":"h","Opaque":"//127.0.0.1:1/admin"}}`))
	f.Add([]byte(`{"id":"1","responsehook":"https://u:p@h/p?q=1#f","args":[1,"<&>"]}`))
	f.Add([]byte(`{"responsehook":7}`))
	f.Add([]byte(`{"id":"1","id":null,"args":1,"args":null}`))
	f.Add([]byte(`{"id":"a\u0000b\ud83d\ude00\ud800","task":"\"","responsehook":"unix:///x~y.z-_/A9","args":[{"a":[1.5e3,-0,true,false,null,"\/"]}]}`))
	f.Add([]byte("\x00\xff{"))
	f.Add([]byte(`{"id":"1","task":"t","responsehook":"unix:///x","args":null,"timeout_ms":1500,"meta":{"k":"v","traceparent":"00-ab-cd-01"}}`))
	f.Add([]byte(`{"id":"1","timeout_ms":-1,"meta":{}}`))
	f.Add([]byte(`{"id":"1","timeout_ms":1.5,"meta":{"k":1}}`))
	f.Add([]byte(`{"id":"1","timeout_ms":null,"meta":{"k":"a","k":"b"}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var r1, viaJSON Request
		if fuzzFrame(t, data, &r1, &viaJSON, ErrInvalidRequest) != nil {
			return
		}
		assert.Equal(t, r1.ID, viaJSON.ID)
		assert.Equal(t, urlString(r1.ResponseHook), urlString(viaJSON.ResponseHook))
		for _, legacy := range []bool{false, true} {
			if legacy && !legacyForm(r1.ResponseHook) {
				continue
			}
			frame, err := appendFrame(nil, &r1, legacy, 0, nil)
			require.NoError(t, err)
			var r2 Request
			require.NoError(t, decodeFrame(bytes.NewReader(frame), &r2, 0), "re-decoding %s", frame)
			assert.Equal(t, r1.ID, r2.ID)
			assert.Equal(t, r1.Task, r2.Task)
			assert.Equal(t, urlString(r1.ResponseHook), urlString(r2.ResponseHook))
			if r1.Args != nil {
				require.NotNil(t, r2.Args)
				assert.JSONEq(t, string(*r1.Args), string(*r2.Args))
			}
			if len(r1.Meta) > 0 || len(r2.Meta) > 0 { // empty meta is not written
				assert.Equal(t, r1.Meta, r2.Meta)
			}
			_, had := r1.Deadline()
			_, has := r2.Deadline()
			assert.Equal(t, had, has)
		}
	})
}

func FuzzResponseJSON(f *testing.F) {
	f.Add([]byte(seedResponse))
	f.Add([]byte(seedLegacyResp))
	f.Add([]byte(`{"id":"1","result":null,"stream_url":null,"error":"","features":["pipeline","string-urls"]}`))
	f.Add([]byte(`{"id":"1","stream_url":{"Scheme":"unix","Path":"/run/s.sock","User":{}}}`))
	f.Add([]byte(`{"error":5}`))
	f.Add([]byte(`{"stream_url":"%zz"}`))
	f.Add([]byte(`{"id":"1","error":"a","error":null,"result":2,"result":null}`))
	f.Add([]byte(`{"id":"1","features":7}`))
	f.Add([]byte(`{"id":"1","features":["answer-in-ack"],"answer":{"id":"1","result":[1],"stream_url":"unix:///s","error":""}}`))
	f.Add([]byte(`{"id":"1","answer":{"id":"1","id":"2"}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, ackErr := decodeAck(data, true, false)
		if _, answer, err := decodeAck(data, true, true); err != nil { // the answer too
			assert.True(t, errors.Is(err, ErrMalformedFrame) || errors.Is(err, ErrRefused), "%v", err)
		} else if answer != nil {
			assert.NoError(t, ackErr)
		}
		var r1, viaJSON Response
		if fuzzFrame(t, data, &r1, &viaJSON, ErrInvalidResponse) != nil {
			return
		}
		assert.Equal(t, errString(r1.Error), errString(viaJSON.Error))
		if r1.Error == nil {
			assert.NoError(t, ackErr)
		} else {
			assert.ErrorIs(t, ackErr, ErrRefused)
		}
		for _, legacy := range []bool{false, true} {
			if legacy && !legacyForm(r1.StreamURL) {
				continue
			}
			frame, err := appendFrame(nil, &r1, legacy, 0, nil)
			require.NoError(t, err)
			var r2 Response
			require.NoError(t, decodeFrame(bytes.NewReader(frame), &r2, 0), "re-decoding %s", frame)
			assert.Equal(t, r1.ID, r2.ID)
			assert.Equal(t, urlString(r1.StreamURL), urlString(r2.StreamURL))
			assert.Equal(t, errString(r1.Error), errString(r2.Error))
			assert.Equal(t, rawString(r1.Result) == "<nil>", rawString(r2.Result) == "<nil>")
		}
	})
}

func FuzzURLJSON(f *testing.F) {
	for _, s := range []string{
		`"unix:///run/x.sock"`, `"unix:/run/x.sock"`, `"unix:rel.sock"`, `"http://h:8/p?q=1#f"`,
		`"https://u:p@[::1]:443/a%2Fb"`, `""`, `null`, `{"Scheme":"unix","Path":"/run/x.sock"}`,
		`{"Scheme":"http","Host":"h","Opaque":"//127.0.0.1:1/admin"}`, `{"User":{}}`, `{}`, `{"Path":7}`,
		`"%zz"`, `7`, `[`, "\"\xff\"",
	} {
		f.Add([]byte(s))
	}
	// decode reads a URL as a response's stream URL.
	decode := func(data []byte) (*Response, error) {
		var r Response
		_, err := decodeResponse(append(append([]byte(`{"stream_url":`), data...), '}'), &r)
		return &r, err
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decode(data)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidResponse)
			return
		}
		u := r.StreamURL
		if u == nil {
			return
		}
		// What was decoded reads back the same, in either form.
		n, err := url.Parse(u.String())
		require.NoError(t, err)
		assert.Equal(t, u.String(), n.String())
		for _, legacy := range []bool{false, legacyForm(u)} {
			b, err := urlValue(u, legacy)
			require.NoError(t, err)
			back, err := decode(b)
			require.NoError(t, err, "re-decoding %s", b)
			assert.Equal(t, u.String(), urlString(back.StreamURL))
			assert.Equal(t, legacy, back.LegacyURLs)
		}
	})
}

// The differential fuzz: a frame means the same to us as to encoding/json,
// which the original acomm and most Go peers decode with, whenever both
// accept it. The plain structs below are the wire types such a peer
// declares (the original's, and our extensions as it would add them).

// plainURL is a URL as a peer decoding with encoding/json reads it: the
// object form into a url.URL, as the original acomm did, and the string
// form with url.Parse.
type plainURL struct{ u *url.URL }

// UnmarshalJSON reads either form (encoding/json calls it for neither null
// nor, so, a nil URL).
func (p *plainURL) UnmarshalJSON(b []byte) error {
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		u, err := url.Parse(s)
		p.u = u
		return err
	}
	p.u = new(url.URL)
	return json.Unmarshal(b, p.u)
}

// plainRequest is a request as encoding/json reads it.
type plainRequest struct {
	ID           string            `json:"id"`
	Task         string            `json:"task"`
	ResponseHook *plainURL         `json:"responsehook"`
	Args         *json.RawMessage  `json:"args"`
	TimeoutMS    *int64            `json:"timeout_ms"`
	Meta         map[string]string `json:"meta"`
	AnswerInAck  bool              `json:"answer_in_ack"`
}

// plainResponse is a response as encoding/json reads it.
type plainResponse struct {
	ID        string           `json:"id"`
	Result    *json.RawMessage `json:"result"`
	StreamURL *plainURL        `json:"stream_url"`
	Error     string           `json:"error"`
	Features  []string         `json:"features"`
}

// plainAck is an acknowledgement as encoding/json reads it.
type plainAck struct {
	Error    string         `json:"error"`
	Features []string       `json:"features"`
	Answer   *plainResponse `json:"answer"`
}

// plainURLString is what a plain URL says: "" for none or an empty one.
func plainURLString(p *plainURL) string {
	if p == nil || p.u == nil {
		return ""
	}
	return p.u.String()
}

// ourURLString is what our decoded URL says, as plainURLString.
func ourURLString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// assertSameResponse checks that ours says what plain does.
func assertSameResponse(t *testing.T, plain *plainResponse, ours *Response, data []byte) {
	t.Helper()
	assert.Equal(t, plain.ID, ours.ID, "id of %q", data)
	assert.Equal(t, rawString(plain.Result), rawString(ours.Result), "result of %q", data)
	assert.Equal(t, plainURLString(plain.StreamURL), ourURLString(ours.StreamURL), "stream url of %q", data)
	assert.Equal(t, plain.Error, errString(ours.Error), "error of %q", data)
}

func FuzzWireMeaning(f *testing.F) {
	for _, s := range []string{
		seedRequest, seedLegacyRequest, seedResponse, seedLegacyResp,
		// issue 17 item 2: names in another case, given twice in any case
		`{"id":"a","ID":"b"}`,
		`{"id":"x7","result":8,"RESULT":9}`,
		`{"id":"x9","error":"","ERROR":"boom"}`,
		`{"Id":"x4","result":1}`,
		`{"ID":"a","Task":"t","ResponseHook":{"scheme":"unix","path":"/x.sock"}}`,
		`{"id":"1","task":"t","responsehook":{"Scheme":"unix","Path":"/a.sock","PATH":"/b.sock"}}`,
		// encoding/json's fold: the Kelvin sign K is k, the long s ſ is s;
		// the dotted İ and the dotless ı are neither i nor I
		`{"id":"1","taſk":"t","Stream_URL":"unix:///s","error":"e"}`,
		`{"id":"1","tas\u212a":"t","ta\u017fk":"u"}`,
		`{"İd":"1","ıd":"2","id":"3"}`,
		`{"\u0049D":"1","answer_in_ack":true,"Timeout_MS":5,"META":{"k":"v","K":"w"}}`,
		// acknowledgements: the last stands, null leaves a string as it was
		`{"error":"","ERROR":"boom"}`,
		`{"error":"boom","Error":null}`,
		`{"Error":"","Features":["pipeline","answer-in-ack"],"ANSWER":{"ID":"1","Result":[1],"result":null}}`,
		`{"answer":{"id":"1","result":2},"Answer":{"error":"e"}}`,
		`{"answer":{"id":"1"},"answer":null,"features":["a"],"FEATURES":null}`,
		`{"x":1,"X":2}`, `null`, `[]`, `{"id":null,"task":7}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var plainReq plainRequest
		var req Request
		before := time.Now()
		reqErr := decodeRequest(data, &req)
		// A connection's repeats (a Server's decoding) read the frame the
		// same, the first time and repeated.
		rep := new(repeats)
		for range 2 {
			var again Request
			err := decodeRequestMem(data, &again, &again.argsMem, rep, &frameClock{})
			if assert.Equal(t, reqErr == nil, err == nil, "decoding %q with repeats: %v", data, err) && err == nil {
				assert.Equal(t, req.Task, again.Task, "task of %q with repeats", data)
				assert.Equal(t, ourURLString(req.ResponseHook), ourURLString(again.ResponseHook), "hook of %q with repeats", data)
				assert.Equal(t, req.LegacyURLs, again.LegacyURLs, "legacy of %q with repeats", data)
				assert.Equal(t, rawString(req.Args), rawString(again.Args), "args of %q with repeats", data)
			}
		}
		if reqErr == nil && json.Unmarshal(data, &plainReq) == nil {
			assert.Equal(t, plainReq.ID, req.ID, "id of %q", data)
			assert.Equal(t, plainReq.Task, req.Task, "task of %q", data)
			assert.Equal(t, plainURLString(plainReq.ResponseHook), ourURLString(req.ResponseHook), "hook of %q", data)
			assert.Equal(t, rawString(plainReq.Args), rawString(req.Args), "args of %q", data)
			assert.Equal(t, len(plainReq.Meta), len(req.Meta), "meta of %q", data)
			for k, v := range plainReq.Meta {
				assert.Equal(t, v, req.Meta[k], "meta %q of %q", k, data)
			}
			assert.Equal(t, plainReq.AnswerInAck, req.answerInAck, "answer_in_ack of %q", data)
			deadline, has := req.Deadline()
			if assert.Equal(t, plainReq.TimeoutMS != nil, has, "timeout_ms of %q", data) && has {
				ms := min(max(*plainReq.TimeoutMS, 0), maxTimeoutMS)
				want := before.Add(time.Duration(ms) * time.Millisecond)
				assert.WithinDuration(t, want, deadline, time.Second, "timeout_ms of %q", data)
			}
		}

		var plainResp plainResponse
		var resp Response
		features, err := decodeResponse(data, &resp)
		if err == nil && json.Unmarshal(data, &plainResp) == nil {
			assertSameResponse(t, &plainResp, &resp, data)
			assert.Equal(t, len(plainResp.Features), len(features), "features of %q", data)
			for i := range min(len(features), len(plainResp.Features)) {
				assert.Equal(t, plainResp.Features[i], features[i], "features of %q", data)
			}
		}

		var ack plainAck
		features, answer, err := decodeAck(data, true, true)
		if !errors.Is(err, ErrMalformedFrame) && json.Unmarshal(data, &ack) == nil {
			var re *RemoteError
			if errors.As(err, &re) {
				assert.Equal(t, ack.Error, re.Message, "refusal of %q", data)
			} else {
				assert.Empty(t, ack.Error, "refusal of %q", data)
				if assert.Equal(t, ack.Answer != nil, answer != nil, "answer of %q", data) && answer != nil {
					assertSameResponse(t, ack.Answer, answer, data)
				}
			}
			assert.Equal(t, len(ack.Features), len(features), "features of %q", data)
			for i := range min(len(features), len(ack.Features)) {
				assert.Equal(t, ack.Features[i], features[i], "features of %q", data)
			}
		}
	})
}
