package acomm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewResponse(t *testing.T) {
	req := &acomm.Request{ID: "req-1", Task: "t", ResponseHook: mustURL(t, "unix:///x")}
	stream := mustURL(t, "unix:///run/s.sock")
	boom := errors.New("boom")

	t.Run("result", func(t *testing.T) {
		resp, err := acomm.NewResponse(req, map[string]int{"a": 1}, stream, nil)
		require.NoError(t, err)
		assert.Equal(t, "req-1", resp.ID)
		require.NotNil(t, resp.Result)
		assert.JSONEq(t, `{"a":1}`, string(*resp.Result))
		assert.Same(t, stream, resp.StreamURL)
		assert.NoError(t, resp.Error)
		assert.False(t, resp.LegacyURLs)
	})

	t.Run("error", func(t *testing.T) {
		resp, err := acomm.NewResponse(req, nil, nil, boom)
		require.NoError(t, err)
		assert.Nil(t, resp.Result)
		assert.Same(t, boom, resp.Error)
	})

	t.Run("neither", func(t *testing.T) {
		resp, err := acomm.NewResponse(req, nil, nil, nil)
		require.NoError(t, err)
		assert.Nil(t, resp.Result)
		assert.NoError(t, resp.Error)
	})

	t.Run("raw result kept", func(t *testing.T) {
		resp, err := acomm.NewResponse(req, json.RawMessage(`[1, 2]`), nil, nil)
		require.NoError(t, err)
		assert.JSONEq(t, `[1,2]`, string(*resp.Result))
	})

	t.Run("copies LegacyURLs", func(t *testing.T) {
		lr := *req
		lr.LegacyURLs = true
		resp, err := acomm.NewResponse(&lr, nil, stream, nil)
		require.NoError(t, err)
		assert.True(t, resp.LegacyURLs)
	})

	bad := []struct {
		name   string
		req    *acomm.Request
		result any
		err    error
		want   error
	}{
		{name: "nil request", req: nil, want: acomm.ErrInvalidArgument},
		{name: "both result and error", req: req, result: 1, err: boom, want: acomm.ErrInvalidResponse},
		{name: "unmarshalable result", req: req, result: make(chan int), want: acomm.ErrInvalidResponse},
		{name: "invalid raw result", req: req, result: json.RawMessage(`nope`), want: acomm.ErrInvalidResponse},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := acomm.NewResponse(tc.req, tc.result, nil, tc.err)
			assert.Nil(t, resp)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

func TestResponseUnmarshalResult(t *testing.T) {
	type result struct {
		N int `json:"n"`
	}
	tests := []struct {
		name    string
		raw     *json.RawMessage
		want    result
		wantErr bool
	}{
		{name: "nil result leaves dest", raw: nil, want: result{N: 9}},
		{name: "object", raw: rawMsg(`{"n":3}`), want: result{N: 3}},
		{name: "bad JSON", raw: rawMsg(`{"n":`), wantErr: true},
		{name: "wrong type", raw: rawMsg(`"three"`), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &acomm.Response{Result: tc.raw}
			dest := result{N: 9}
			err := resp.UnmarshalResult(&dest)
			if tc.wantErr {
				assert.ErrorIs(t, err, acomm.ErrInvalidResponse)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, dest)
		})
	}
}

// oldResponse is the shape of the original acomm's Response on the wire, as
// an original peer's json.Unmarshal sees it (its UnmarshalJSON decoded the
// stream URL into a *url.URL and the error as a string).
type oldResponse struct {
	ID        string           `json:"id"`
	Result    *json.RawMessage `json:"result"`
	StreamURL *url.URL         `json:"stream_url"`
	Error     string           `json:"error"`
}

func TestResponseWireEncode(t *testing.T) {
	tests := []struct {
		name string
		resp *acomm.Response
		want string
	}{
		{
			name: "result and stream url",
			resp: &acomm.Response{ID: "1", Result: rawMsg(`{"a":1}`), StreamURL: mustURL(t, "unix:///run/s.sock")},
			want: `{"id":"1","result":{"a":1},"stream_url":"unix:///run/s.sock","error":""}`,
		},
		{
			name: "error",
			resp: &acomm.Response{ID: "1", Error: fmt.Errorf("%w: 8 handlers running", acomm.ErrBusy)},
			want: `{"id":"1","result":null,"stream_url":null,"error":"acomm: server busy: 8 handlers running"}`,
		},
		{
			name: "empty",
			resp: &acomm.Response{},
			want: `{"id":"","result":null,"stream_url":null,"error":""}`,
		},
		{
			name: "http stream url",
			resp: &acomm.Response{ID: "1", StreamURL: mustURL(t, "http://h:8/s?q=1")},
			want: `{"id":"1","result":null,"stream_url":"http://h:8/s?q=1","error":""}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.resp)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(b))
		})
	}

	for _, stream := range []string{"unix:///run/s.sock", "http://h:8/s?q=1"} {
		t.Run("legacy form readable by the original: "+stream, func(t *testing.T) {
			resp := &acomm.Response{ID: "1", Result: rawMsg(`2`), StreamURL: mustURL(t, stream), LegacyURLs: true}
			b, err := json.Marshal(resp)
			require.NoError(t, err)

			var old oldResponse
			require.NoError(t, json.Unmarshal(b, &old), "%s", b)
			assert.Equal(t, "1", old.ID)
			assert.Equal(t, "2", string(*old.Result))
			require.NotNil(t, old.StreamURL)
			assert.Equal(t, stream, old.StreamURL.String())
			assert.Equal(t, "", old.Error)

			var back acomm.Response
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, stream, back.StreamURL.String())
			assert.True(t, back.LegacyURLs)
		})
	}

	t.Run("legacy with no stream url", func(t *testing.T) {
		b, err := json.Marshal(&acomm.Response{ID: "1", LegacyURLs: true, Error: errors.New("x")})
		require.NoError(t, err)
		var old oldResponse
		require.NoError(t, json.Unmarshal(b, &old))
		assert.Nil(t, old.StreamURL)
		assert.Equal(t, "x", old.Error)
	})
}

func TestResponseWireDecode(t *testing.T) {
	tests := []struct {
		name       string
		wire       string
		wantResult *string
		wantStream string // "" means nil
		wantErr    string // "" means nil
		wantLegacy bool
	}{
		{
			name:       "string stream url",
			wire:       `{"id":"1","result":{"a":1},"stream_url":"unix:///run/s.sock","error":""}`,
			wantResult: strPtr(`{"a":1}`), wantStream: "unix:///run/s.sock",
		},
		{
			name:       "legacy stream url, as the original acomm wrote it",
			wire:       `{"id":"1","result":null,"stream_url":{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"/run/s.sock","RawPath":"","RawQuery":"","Fragment":""},"error":""}`,
			wantStream: "unix:///run/s.sock", wantLegacy: true,
		},
		{
			name:       "legacy http stream url with a query, subset of keys",
			wire:       `{"id":"1","stream_url":{"Scheme":"http","Host":"h","Path":"/s","RawQuery":"q=1"}}`,
			wantStream: "http://h/s?q=1", wantLegacy: true,
		},
		{name: "error message", wire: `{"id":"1","result":null,"stream_url":null,"error":"boom"}`, wantErr: "boom"},
		{name: "empty error", wire: `{"id":"1","error":""}`},
		{name: "null error", wire: `{"id":"1","error":null}`},
		{name: "no fields but id", wire: `{"id":"1"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp acomm.Response
			require.NoError(t, json.Unmarshal([]byte(tc.wire), &resp))
			assert.Equal(t, "1", resp.ID)
			if tc.wantResult == nil {
				assert.Nil(t, resp.Result)
			} else {
				require.NotNil(t, resp.Result)
				assert.JSONEq(t, *tc.wantResult, string(*resp.Result))
			}
			if tc.wantStream == "" {
				assert.Nil(t, resp.StreamURL)
			} else {
				require.NotNil(t, resp.StreamURL)
				assert.Equal(t, tc.wantStream, resp.StreamURL.String())
			}
			if tc.wantErr == "" {
				assert.NoError(t, resp.Error)
			} else {
				var re *acomm.RemoteError
				require.ErrorAs(t, resp.Error, &re)
				assert.Equal(t, tc.wantErr, re.Message)
				assert.EqualError(t, resp.Error, tc.wantErr)
			}
			assert.Equal(t, tc.wantLegacy, resp.LegacyURLs)
		})
	}

	t.Run("decoding resets a reused response", func(t *testing.T) {
		resp := acomm.Response{Error: errors.New("old"), StreamURL: mustURL(t, "unix:///old"), LegacyURLs: true}
		require.NoError(t, json.Unmarshal([]byte(`{"id":"2"}`), &resp))
		assert.NoError(t, resp.Error)
		assert.Nil(t, resp.StreamURL)
		assert.False(t, resp.LegacyURLs)
	})

	bad := []struct {
		name  string
		wire  string
		wants []error
	}{
		{"error of wrong type", `{"id":"1","error":5}`, []error{acomm.ErrInvalidResponse}},
		{"error as object", `{"id":"1","error":{"Message":"x"}}`, []error{acomm.ErrInvalidResponse}},
		{"stream url of wrong type", `{"id":"1","stream_url":true}`, []error{acomm.ErrInvalidResponse, acomm.ErrInvalidURL}},
		{"unparsable stream url", `{"id":"1","stream_url":"%zz"}`, []error{acomm.ErrInvalidResponse, acomm.ErrInvalidURL}},
		{"not an object", `"x"`, []error{acomm.ErrInvalidResponse}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var resp acomm.Response
			err := json.Unmarshal([]byte(tc.wire), &resp)
			for _, want := range tc.wants {
				assert.ErrorIs(t, err, want)
			}
		})
	}
}

func TestRemoteErrorIs(t *testing.T) {
	// Every sentinel RemoteError may be asked about, wire or not.
	all := []error{
		acomm.ErrTimeout, acomm.ErrRefused, acomm.ErrInvalidRequest, acomm.ErrInvalidResponse,
		acomm.ErrFrameTooLarge, acomm.ErrMalformedFrame, acomm.ErrTruncatedFrame,
		acomm.ErrBusy, acomm.ErrUnknownTask, acomm.ErrServerStopped, acomm.ErrHandlerPanic,
		acomm.ErrInvalidURL, acomm.ErrNotStarted, acomm.ErrDuplicateID, acomm.ErrHTTPStatus,
	}
	tests := []struct {
		msg  string
		want []error // the sentinels it matches; all others must not match
	}{
		{"acomm: server busy: 8 handlers running", []error{acomm.ErrBusy}},
		{"acomm: server busy", []error{acomm.ErrBusy}},
		{"acomm: response timeout: request 1 (task \"t\") got no response within 1s", []error{acomm.ErrTimeout}},
		{"acomm: invalid request: missing task", []error{acomm.ErrInvalidRequest}},
		{"acomm: invalid response: missing id", []error{acomm.ErrInvalidResponse}},
		{"acomm: frame too large: 70000000 bytes exceeds the maximum of 67108864", []error{acomm.ErrFrameTooLarge}},
		{"acomm: malformed frame: invalid character", []error{acomm.ErrMalformedFrame}},
		{"acomm: truncated frame: unexpected EOF: in header", []error{acomm.ErrTruncatedFrame}},
		{"acomm: refused by receiver: acomm: server busy", []error{acomm.ErrRefused}},
		{"acomm: unknown task: \"x\"", []error{acomm.ErrUnknownTask}},
		{"acomm: server stopped", []error{acomm.ErrServerStopped}},
		{"acomm: task handler panicked: oops", []error{acomm.ErrHandlerPanic}},
		// Only wire sentinels are recognised.
		{"acomm: not started", nil},
		{"acomm: invalid url: x", nil},
		// Unrelated text, and sentinel text not at the start.
		{"boom", nil},
		{"", nil},
		{"error: acomm: server busy", nil},
		{"ACOMM: SERVER BUSY", nil},
		// A sentinel's text that runs on into another word.
		{"acomm: server busyness", nil},
		{"acomm: invalid requests", nil},
	}
	for _, tc := range tests {
		t.Run(tc.msg, func(t *testing.T) {
			err := error(&acomm.RemoteError{Message: tc.msg})
			assert.EqualError(t, err, tc.msg)
			for _, target := range all {
				want := false
				for _, w := range tc.want {
					want = want || w == target
				}
				assert.Equal(t, want, errors.Is(err, target), "errors.Is(%q, %v)", tc.msg, target)
			}
			// A look-alike is not the sentinel.
			assert.False(t, errors.Is(err, errors.New(tc.msg)))
		})
	}

	t.Run("through the wire", func(t *testing.T) {
		sent := &acomm.Response{ID: "1", Error: fmt.Errorf("%w: 8 handlers running", acomm.ErrBusy)}
		b, err := json.Marshal(sent)
		require.NoError(t, err)
		var got acomm.Response
		require.NoError(t, json.Unmarshal(b, &got))
		assert.ErrorIs(t, got.Error, acomm.ErrBusy)
		assert.NotErrorIs(t, got.Error, acomm.ErrTimeout)

		wrapped := fmt.Errorf("calling: %w", got.Error)
		assert.ErrorIs(t, wrapped, acomm.ErrBusy)
	})

	t.Run("timeout through the wire", func(t *testing.T) {
		sent := &acomm.Response{ID: "1", Error: fmt.Errorf("%w: request 1 got no response within 1s", acomm.ErrTimeout)}
		b, err := json.Marshal(sent)
		require.NoError(t, err)
		var got acomm.Response
		require.NoError(t, json.Unmarshal(b, &got))
		assert.ErrorIs(t, got.Error, acomm.ErrTimeout)
	})
}
