package acomm_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawMsg returns s as a *json.RawMessage.
func rawMsg(s string) *json.RawMessage {
	r := json.RawMessage(s)
	return &r
}

// mustURL parses s or fails t.
func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestNewRequest(t *testing.T) {
	sh := func(*acomm.Request, *acomm.Response) {}
	eh := func(*acomm.Request, *acomm.Response) {}

	valid := []struct {
		name     string
		hook     string
		args     any
		wantArgs *string // nil: Args is nil
	}{
		{name: "unix", hook: "unix:///run/x.sock", args: map[string]int{"a": 1}, wantArgs: strPtr(`{"a":1}`)},
		{name: "unix without slashes", hook: "unix:/run/x.sock", args: nil},
		{name: "unix relative", hook: "unix:rel.sock", args: []int{1, 2}, wantArgs: strPtr(`[1,2]`)},
		{name: "http", hook: "http://localhost:8080/resp", args: "s", wantArgs: strPtr(`"s"`)},
		{name: "https with query", hook: "https://example.com/r?q=1", args: json.RawMessage(`{"raw":true}`), wantArgs: strPtr(`{"raw":true}`)},
		{name: "raw message pointer", hook: "unix:///x", args: rawMsg(`7`), wantArgs: strPtr(`7`)},
		{name: "empty raw message", hook: "unix:///x", args: json.RawMessage{}},
		{name: "nil raw message pointer", hook: "unix:///x", args: (*json.RawMessage)(nil)},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			req, err := acomm.NewRequest("task", tc.hook, tc.args, sh, eh)
			require.NoError(t, err)
			assert.NotEmpty(t, req.ID)
			assert.Equal(t, "task", req.Task)
			assert.Equal(t, tc.hook, req.ResponseHook.String())
			if tc.wantArgs == nil {
				assert.Nil(t, req.Args)
			} else {
				require.NotNil(t, req.Args)
				assert.JSONEq(t, *tc.wantArgs, string(*req.Args))
			}
			assert.NotNil(t, req.SuccessHandler)
			assert.NotNil(t, req.ErrorHandler)
			assert.False(t, req.LegacyURLs)
			assert.NoError(t, req.Validate())
		})
	}

	t.Run("IDs are unique", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 100; i++ {
			req, err := acomm.NewRequest("t", "unix:///x", nil, nil, nil)
			require.NoError(t, err)
			require.False(t, seen[req.ID], "duplicate id %s", req.ID)
			seen[req.ID] = true
		}
	})

	invalid := []struct {
		name  string
		task  string
		hook  string
		args  any
		wants []error
	}{
		{name: "empty hook", task: "t", hook: "", wants: []error{acomm.ErrInvalidRequest}},
		{name: "ftp scheme", task: "t", hook: "ftp://host/x", wants: []error{acomm.ErrInvalidRequest, acomm.ErrUnsupportedScheme}},
		{name: "no scheme", task: "t", hook: "/run/x.sock", wants: []error{acomm.ErrInvalidRequest, acomm.ErrUnsupportedScheme}},
		{name: "unix without path", task: "t", hook: "unix://host", wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{name: "unix with nothing", task: "t", hook: "unix:", wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{name: "http without host", task: "t", hook: "http:///path", wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{name: "https without host", task: "t", hook: "https:x", wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{name: "unparsable hook", task: "t", hook: "http://[::1", wants: []error{acomm.ErrInvalidRequest}},
		{name: "empty task", task: "", hook: "unix:///x", wants: []error{acomm.ErrInvalidRequest}},
		{name: "channel args", task: "t", hook: "unix:///x", args: make(chan int), wants: []error{acomm.ErrInvalidRequest}},
		{name: "func args", task: "t", hook: "unix:///x", args: func() {}, wants: []error{acomm.ErrInvalidRequest}},
		{name: "invalid raw args", task: "t", hook: "unix:///x", args: json.RawMessage(`{`), wants: []error{acomm.ErrInvalidRequest}},
		{name: "invalid raw args pointer", task: "t", hook: "unix:///x", args: rawMsg(`{"a":}`), wants: []error{acomm.ErrInvalidRequest}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			req, err := acomm.NewRequest(tc.task, tc.hook, tc.args, nil, nil)
			assert.Nil(t, req)
			for _, want := range tc.wants {
				assert.ErrorIs(t, err, want)
			}
		})
	}
}

// strPtr returns &s.
func strPtr(s string) *string { return &s }

func TestRequestValidate(t *testing.T) {
	good := func() *acomm.Request {
		return &acomm.Request{ID: "1", Task: "t", ResponseHook: mustURL(t, "unix:///run/x.sock")}
	}
	tests := []struct {
		name  string
		req   *acomm.Request
		wants []error // nil: valid
	}{
		{name: "valid unix", req: good()},
		{name: "valid http", req: func() *acomm.Request { r := good(); r.ResponseHook = mustURL(t, "http://h/p"); return r }()},
		{name: "nil request", req: nil, wants: []error{acomm.ErrInvalidRequest}},
		{name: "missing id", req: func() *acomm.Request { r := good(); r.ID = ""; return r }(), wants: []error{acomm.ErrInvalidRequest}},
		{name: "missing task", req: func() *acomm.Request { r := good(); r.Task = ""; return r }(), wants: []error{acomm.ErrInvalidRequest}},
		{name: "missing hook", req: func() *acomm.Request { r := good(); r.ResponseHook = nil; return r }(), wants: []error{acomm.ErrInvalidRequest}},
		{
			name:  "bad scheme",
			req:   func() *acomm.Request { r := good(); r.ResponseHook = mustURL(t, "ftp://h/x"); return r }(),
			wants: []error{acomm.ErrInvalidRequest, acomm.ErrUnsupportedScheme},
		},
		{
			name:  "unix without path",
			req:   func() *acomm.Request { r := good(); r.ResponseHook = &url.URL{Scheme: "unix"}; return r }(),
			wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL},
		},
		{
			name:  "http without host",
			req:   func() *acomm.Request { r := good(); r.ResponseHook = &url.URL{Scheme: "http", Path: "/p"}; return r }(),
			wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL},
		},
		{
			name: "hook with user info",
			req: func() *acomm.Request {
				r := good()
				r.ResponseHook = mustURL(t, "http://allowed@127.0.0.1/p")
				return r
			}(),
			wants: []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			if tc.wants == nil {
				assert.NoError(t, err)
				return
			}
			for _, want := range tc.wants {
				assert.ErrorIs(t, err, want)
			}
		})
	}
}

func TestRequestUnmarshalArgs(t *testing.T) {
	type args struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	tests := []struct {
		name    string
		raw     *json.RawMessage
		want    args
		wantErr bool
	}{
		{name: "nil args leave dest", raw: nil, want: args{A: 9, B: "keep"}},
		{name: "object", raw: rawMsg(`{"a":1,"b":"x"}`), want: args{A: 1, B: "x"}},
		{name: "null", raw: rawMsg(`null`), want: args{A: 9, B: "keep"}},
		{name: "bad JSON", raw: rawMsg(`{`), wantErr: true},
		{name: "wrong type", raw: rawMsg(`{"a":"one"}`), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &acomm.Request{Args: tc.raw}
			dest := args{A: 9, B: "keep"}
			err := req.UnmarshalArgs(&dest)
			if tc.wantErr {
				assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, dest)
		})
	}
}

func TestRequestHandleResponse(t *testing.T) {
	tests := []struct {
		name        string
		resp        *acomm.Response
		withHandler bool
		wantSuccess int
		wantError   int
	}{
		{name: "success", resp: &acomm.Response{ID: "1", Result: rawMsg(`1`)}, withHandler: true, wantSuccess: 1},
		{name: "success without result", resp: &acomm.Response{ID: "1"}, withHandler: true, wantSuccess: 1},
		{name: "error", resp: &acomm.Response{ID: "1", Error: &acomm.RemoteError{Message: "boom"}}, withHandler: true, wantError: 1},
		{name: "nil response", resp: nil, withHandler: true},
		{name: "success, no handlers", resp: &acomm.Response{ID: "1"}},
		{name: "error, no handlers", resp: &acomm.Response{ID: "1", Error: acomm.ErrTimeout}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &acomm.Request{ID: "1"}
			var successes, errs int
			if tc.withHandler {
				req.SuccessHandler = func(r *acomm.Request, resp *acomm.Response) {
					assert.Same(t, req, r)
					assert.Same(t, tc.resp, resp)
					successes++
				}
				req.ErrorHandler = func(r *acomm.Request, resp *acomm.Response) {
					assert.Same(t, req, r)
					assert.Same(t, tc.resp, resp)
					errs++
				}
			}
			assert.NotPanics(t, func() { req.HandleResponse(tc.resp) })
			assert.Equal(t, tc.wantSuccess, successes)
			assert.Equal(t, tc.wantError, errs)
		})
	}

	t.Run("only the error handler set, success response", func(t *testing.T) {
		called := false
		req := &acomm.Request{ErrorHandler: func(*acomm.Request, *acomm.Response) { called = true }}
		req.HandleResponse(&acomm.Response{ID: "1"})
		assert.False(t, called)
	})
}

// oldRequest is the original acomm's Request as its json.Unmarshal saw it:
// the response hook is a *url.URL decoded field by field.
type oldRequest struct {
	ID           string           `json:"id"`
	Task         string           `json:"task"`
	ResponseHook *url.URL         `json:"responsehook"`
	Args         *json.RawMessage `json:"args"`
}

func TestRequestWireDecode(t *testing.T) {
	tests := []struct {
		name       string
		wire       string
		wantHook   string // "" means nil
		wantArgs   *string
		wantLegacy bool
	}{
		{
			name:     "string hook",
			wire:     `{"id":"1","task":"t","responsehook":"unix:///run/x.sock","args":{"a":1}}`,
			wantHook: "unix:///run/x.sock", wantArgs: strPtr(`{"a":1}`),
		},
		{
			name:     "legacy object hook, as the original acomm wrote it",
			wire:     `{"id":"1","task":"t","responsehook":{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"/run/x.sock","RawPath":"","RawQuery":"","Fragment":""},"args":null}`,
			wantHook: "unix:///run/x.sock", wantLegacy: true,
		},
		{
			name:     "legacy object hook, subset of keys",
			wire:     `{"id":"1","task":"t","responsehook":{"Scheme":"unix","Path":"/run/x.sock"}}`,
			wantHook: "unix:///run/x.sock", wantLegacy: true,
		},
		{
			name:     "legacy http hook with a query",
			wire:     `{"id":"1","task":"t","responsehook":{"Scheme":"http","Opaque":"","User":null,"Host":"h:8080","Path":"/p","RawPath":"","RawQuery":"q=1","Fragment":""},"args":[1]}`,
			wantHook: "http://h:8080/p?q=1", wantArgs: strPtr(`[1]`), wantLegacy: true,
		},
		{
			name:     "legacy hook as a modern Go writes url.URL",
			wire:     `{"id":"1","task":"t","responsehook":{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"/run/x.sock","RawPath":"","OmitHost":false,"ForceQuery":false,"RawQuery":"","Fragment":"","RawFragment":""}}`,
			wantHook: "unix:///run/x.sock", wantLegacy: true,
		},
		{name: "null hook", wire: `{"id":"1","task":"t","responsehook":null}`},
		{name: "empty string hook", wire: `{"id":"1","task":"t","responsehook":""}`},
		{name: "no hook", wire: `{"id":"1","task":"t"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req acomm.Request
			require.NoError(t, json.Unmarshal([]byte(tc.wire), &req))
			assert.Equal(t, "1", req.ID)
			assert.Equal(t, "t", req.Task)
			if tc.wantHook == "" {
				assert.Nil(t, req.ResponseHook)
			} else {
				require.NotNil(t, req.ResponseHook)
				assert.Equal(t, tc.wantHook, req.ResponseHook.String())
			}
			if tc.wantArgs == nil {
				assert.Nil(t, req.Args)
			} else {
				require.NotNil(t, req.Args)
				assert.JSONEq(t, *tc.wantArgs, string(*req.Args))
			}
			assert.Equal(t, tc.wantLegacy, req.LegacyURLs)
		})
	}

	bad := []struct {
		name  string
		wire  string
		wants []error
	}{
		{"number hook", `{"id":"1","responsehook":7}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"array hook", `{"id":"1","responsehook":[]}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"unparsable string hook", `{"id":"1","responsehook":"http://[::1"}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"legacy hook field of wrong type", `{"id":"1","responsehook":{"Path":7}}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"id of wrong type", `{"id":1}`, []error{acomm.ErrInvalidRequest}},
		// Issue 10 item 1: the URL checked is the URL dialed, so parts
		// that say something else than the text are refused.
		{"legacy hook with user info object", `{"id":"1","task":"t","responsehook":{"Scheme":"http","User":{},"Host":"h","Path":"/p"}}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"legacy hook with an opaque destination", `{"id":"1","task":"t","responsehook":{"Scheme":"http","Host":"allowed.example","Opaque":"//127.0.0.1:9/admin"}}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"legacy unix hook with both path and opaque", `{"id":"1","task":"t","responsehook":{"Scheme":"unix","Path":"/run/a.sock","Opaque":"b.sock"}}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		// Issue 17 item 2: an encoding/json peer keeps the scheme as it is
		// ("UNIX", no unix hook to it); its text reads back as another URL.
		{"legacy hook with an upper-case scheme", `{"id":"1","task":"t","responsehook":{"Scheme":"UNIX","Path":"/run/a.sock"}}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"opaque http hook", `{"id":"1","task":"t","responsehook":"http:h/p"}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"string hook with user info", `{"id":"1","task":"t","responsehook":"http://allowed.example@127.0.0.1:9/admin"}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"string hook with a password", `{"id":"1","task":"t","responsehook":"https://u:p@h/p"}`, []error{acomm.ErrInvalidRequest, acomm.ErrInvalidURL}},
		{"id not valid UTF-8", "{\"id\":\"\xff\",\"task\":\"t\"}", []error{acomm.ErrInvalidRequest}},
		{"not an object", `[]`, []error{acomm.ErrInvalidRequest}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var req acomm.Request
			err := json.Unmarshal([]byte(tc.wire), &req)
			for _, want := range tc.wants {
				assert.ErrorIs(t, err, want)
			}
		})
	}
}

func TestRequestWireEncode(t *testing.T) {
	req := &acomm.Request{
		ID: "1", Task: "t",
		ResponseHook: mustURL(t, "unix:///run/x.sock"),
		Args:         rawMsg(`{"a":1}`),
		// Handlers never travel.
		SuccessHandler: func(*acomm.Request, *acomm.Response) {},
	}

	t.Run("string form by default", func(t *testing.T) {
		b, err := json.Marshal(req)
		require.NoError(t, err)
		assert.Equal(t, `{"id":"1","task":"t","responsehook":"unix:///run/x.sock","args":{"a":1}}`, string(b))
	})

	t.Run("nil hook and args", func(t *testing.T) {
		b, err := json.Marshal(&acomm.Request{ID: "2", Task: "t"})
		require.NoError(t, err)
		assert.Equal(t, `{"id":"2","task":"t","responsehook":null,"args":null}`, string(b))
	})

	t.Run("escaping", func(t *testing.T) {
		b, err := json.Marshal(&acomm.Request{ID: "<\"é\">", Task: "a\nb", ResponseHook: mustURL(t, "http://h/p?a=1&b=2")})
		require.NoError(t, err)
		var back acomm.Request
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, "<\"é\">", back.ID)
		assert.Equal(t, "a\nb", back.Task)
		assert.Equal(t, "http://h/p?a=1&b=2", back.ResponseHook.String())
	})

	legacyHooks := []string{"unix:///run/x.sock", "http://h:8080/p?q=1", "https://h/a%2Fb#frag"}
	for _, hook := range legacyHooks {
		t.Run("legacy form readable by the original: "+hook, func(t *testing.T) {
			lr := *req
			lr.ResponseHook = mustURL(t, hook)
			lr.LegacyURLs = true
			b, err := json.Marshal(&lr)
			require.NoError(t, err)

			// What the original acomm did with a frame body.
			var old oldRequest
			require.NoError(t, json.Unmarshal(b, &old), "%s", b)
			assert.Equal(t, "1", old.ID)
			assert.Equal(t, "t", old.Task)
			require.NotNil(t, old.ResponseHook)
			assert.Equal(t, hook, old.ResponseHook.String())
			assert.Equal(t, *lr.ResponseHook, *old.ResponseHook)
			assert.JSONEq(t, `{"a":1}`, string(*old.Args))

			var raw map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(b, &raw))
			assert.Equal(t, byte('{'), raw["responsehook"][0], "object form")

			// And we read our own legacy form back, legacy flag included.
			var back acomm.Request
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, hook, back.ResponseHook.String())
			assert.True(t, back.LegacyURLs)
		})
	}

	t.Run("a legacy request is answered in the legacy form", func(t *testing.T) {
		var in acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"1","task":"t","responsehook":{"Scheme":"unix","Path":"/run/x.sock"}}`), &in))
		b, err := json.Marshal(&in)
		require.NoError(t, err)
		var old oldRequest
		require.NoError(t, json.Unmarshal(b, &old))
		assert.Equal(t, "unix:///run/x.sock", old.ResponseHook.String())
	})

	t.Run("original reads the string form as an error", func(t *testing.T) {
		// Documents why LegacyURLs exists: an original peer cannot read
		// the default form.
		b, err := json.Marshal(req)
		require.NoError(t, err)
		var old oldRequest
		assert.Error(t, json.Unmarshal(b, &old))
	})
}

// TestRequestIDMustBeUTF8 checks that an id that would travel altered
// (as U+FFFD) is refused where a request enters: its answer would never
// match.
func TestRequestIDMustBeUTF8(t *testing.T) {
	tr := newTracker(t, nil, time.Second)
	req := &acomm.Request{ID: "a\xffb", Task: "t", ResponseHook: tr.URL()}
	assert.ErrorIs(t, tr.TrackRequest(req, 0), acomm.ErrInvalidArgument)
	assert.ErrorIs(t, req.Validate(), acomm.ErrInvalidArgument)
	assert.ErrorIs(t, acomm.NewMultiRequest(tr, 0).AddRequest("x", req), acomm.ErrInvalidArgument)
	assert.Zero(t, tr.NumRequests())
}
