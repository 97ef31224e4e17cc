package acomm_test

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestDeadlineWire(t *testing.T) {
	hook := `"responsehook":"unix:///run/x.sock","args":null`
	tests := []struct {
		name    string
		wire    string
		want    time.Duration // deadline - arrival; ignored when !has
		has     bool
		expired bool
	}{
		{name: "no field: no deadline, as from an original peer", wire: `{"id":"1","task":"t",` + hook + `}`},
		{name: "relative milliseconds", wire: `{"id":"1","task":"t",` + hook + `,"timeout_ms":2500}`, want: 2500 * time.Millisecond, has: true},
		{name: "zero: already given up", wire: `{"id":"1","task":"t",` + hook + `,"timeout_ms":0}`, has: true, expired: true},
		{name: "negative: already given up", wire: `{"id":"1","task":"t",` + hook + `,"timeout_ms":-5}`, has: true, expired: true},
		{name: "huge: clamped, no overflow", wire: `{"id":"1","task":"t",` + hook + `,"timeout_ms":9223372036854775807}`, want: 100 * 365 * 24 * time.Hour, has: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			var req acomm.Request
			require.NoError(t, json.Unmarshal([]byte(tc.wire), &req))
			after := time.Now()
			dl, ok := req.Deadline()
			require.Equal(t, tc.has, ok)
			switch {
			case !tc.has:
				assert.True(t, dl.IsZero())
			case tc.expired:
				assert.False(t, dl.After(after), "deadline %s is not past", dl)
			case tc.want > 1000*time.Hour:
				assert.True(t, dl.After(before.Add(tc.want)), "deadline %s", dl)
			default:
				assert.False(t, dl.Before(before.Add(tc.want)))
				assert.False(t, dl.After(after.Add(tc.want)))
			}
		})
	}

	for _, bad := range []string{`"soon"`, `1.5`, `1e3`, `true`, `[]`} {
		t.Run("a timeout that is not an integer is refused: "+bad, func(t *testing.T) {
			var req acomm.Request
			err := json.Unmarshal([]byte(`{"id":"1","task":"t",`+hook+`,"timeout_ms":`+bad+`}`), &req)
			assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
		})
	}
	t.Run("null: no deadline", func(t *testing.T) {
		var req acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"1","task":"t",`+hook+`,"timeout_ms":null}`), &req))
		_, ok := req.Deadline()
		assert.False(t, ok)
	})

	t.Run("re-encoded as the time left", func(t *testing.T) {
		var req acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"1","task":"t",`+hook+`,"timeout_ms":60000}`), &req))
		b, err := json.Marshal(&req)
		require.NoError(t, err)
		var out struct {
			TimeoutMS int64 `json:"timeout_ms"`
		}
		require.NoError(t, json.Unmarshal(b, &out))
		assert.InDelta(t, 60000, out.TimeoutMS, 50, "%s", b)
	})

	t.Run("a decoded request that is reused forgets its deadline", func(t *testing.T) {
		var req acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"1","task":"t",`+hook+`,"timeout_ms":60000}`), &req))
		require.NoError(t, json.Unmarshal([]byte(`{"id":"2","task":"t",`+hook+`}`), &req))
		_, ok := req.Deadline()
		assert.False(t, ok)
	})
}

// deadlineSeen is what a handler saw of its deadline.
type deadlineSeen struct {
	ctx, req time.Time
	ctxOK    bool
}

// deadlineServer returns a server whose "dl" task reports the deadlines
// its handler sees.
func deadlineServer(t *testing.T, tr *acomm.Tracker) (*acomm.Server, <-chan deadlineSeen) {
	t.Helper()
	seen := make(chan deadlineSeen, 16)
	srv := srvStart(t, tr)
	srv.Handle("dl", func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var s deadlineSeen
		s.ctx, s.ctxOK = ctx.Deadline()
		s.req, _ = req.Deadline()
		seen <- s
		return nil, nil, nil
	})
	return srv, seen
}

// withinMS reports whether got is within a millisecond of want. The gap
// is mostly the time the frame took to arrive.
func withinMS(got, want time.Time) bool {
	d := got.Sub(want)
	return d >= -time.Millisecond && d <= time.Millisecond
}

func TestHandlerSeesCallersDeadline(t *testing.T) {
	tr := newTracker(t, nil, 7*time.Second)
	srv, seen := deadlineServer(t, tr)

	// Up to three tries: the margin is the frame's transit time, which a
	// loaded machine can stretch past a millisecond once in a while.
	try := func(t *testing.T, send func() time.Time) {
		t.Helper()
		var s deadlineSeen
		var want time.Time
		for range 3 {
			want = send()
			s = waitFor(t, seen, 5*time.Second, "the handler")
			require.True(t, s.ctxOK, "handler context has a deadline")
			assert.Equal(t, s.req, s.ctx, "ctx deadline is the request's")
			if withinMS(s.ctx, want) {
				return
			}
		}
		t.Fatalf("handler deadline %s, caller's %s: off by %s", s.ctx, want, s.ctx.Sub(want))
	}

	t.Run("Call with a context deadline", func(t *testing.T) {
		try(t, func() time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			dl, _ := ctx.Deadline()
			_, err := tr.Call(ctx, srv.URL(), "dl", nil)
			require.NoError(t, err)
			return dl
		})
	})
	t.Run("Call without one: the tracker's default timeout", func(t *testing.T) {
		try(t, func() time.Time {
			start := time.Now()
			_, err := tr.Call(context.Background(), srv.URL(), "dl", nil)
			require.NoError(t, err)
			return start.Add(7 * time.Second)
		})
	})
	t.Run("a context deadline beyond the default: the default", func(t *testing.T) {
		try(t, func() time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			start := time.Now()
			_, err := tr.Call(ctx, srv.URL(), "dl", nil)
			require.NoError(t, err)
			return start.Add(7 * time.Second)
		})
	})
	t.Run("TrackRequest then Send", func(t *testing.T) {
		try(t, func() time.Time {
			got := make(chan result, 1)
			req := newRequest(t, tr, "dl", nil, got)
			require.NoError(t, tr.TrackRequest(req, 2*time.Second))
			dl, ok := req.Deadline()
			require.True(t, ok)
			require.NoError(t, acomm.Send(srv.URL(), req))
			waitFor(t, got, 5*time.Second, "the response")
			return dl
		})
	})
	t.Run("MultiRequest", func(t *testing.T) {
		try(t, func() time.Time {
			m := acomm.NewMultiRequest(tr, 4*time.Second)
			req, err := acomm.NewRequest("dl", tr.URL().String(), nil, nil, nil)
			require.NoError(t, err)
			require.NoError(t, m.AddRequest("a", req))
			dl, ok := req.Deadline()
			require.True(t, ok)
			require.NoError(t, m.SendAll(map[string]*url.URL{"a": srv.URL()}))
			resps := m.Responses()
			require.NoError(t, resps["a"].Error)
			return dl
		})
	})
}

func TestExpiredRequestNeverReachesHandler(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, tr)
	ran := make(chan string, 4)
	srv.Handle("work", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		ran <- req.ID
		return "done", nil, nil
	})

	got := make(chan result, 1)
	req := newRequest(t, tr, "work", nil, got)
	require.NoError(t, tr.TrackRequest(req, 5*time.Second))

	// The frame a caller sends once its deadline has passed.
	body := `{"id":"` + req.ID + `","task":"work","responsehook":"` + tr.URL().String() + `","args":null,"timeout_ms":0}`
	ack := frameExchanger(t, srv.Addr())(t, body)
	require.NoError(t, ack.Error, "an expired request is accepted, then answered")

	r := waitFor(t, got, 5*time.Second, "the answer")
	require.Error(t, r.resp.Error)
	assert.ErrorIs(t, r.resp.Error, acomm.ErrTimeout)
	assert.Contains(t, r.resp.Error.Error(), "deadline")

	// The handler did not run: a request after it is handled, and is the
	// first the handler sees.
	_, err := tr.Call(context.Background(), srv.URL(), "work", nil)
	require.NoError(t, err)
	assert.NotEqual(t, req.ID, waitFor(t, ran, 5*time.Second, "the next request"))
	assert.EqualValues(t, 1, srv.Stats().Expired)
}

func TestForwardedRequestKeepsCallersDeadline(t *testing.T) {
	tr := newTracker(t, nil, time.Minute)
	var in acomm.Request
	require.NoError(t, json.Unmarshal([]byte(`{"id":"f1","task":"t","responsehook":"http://127.0.0.1:9/hook","args":null,"timeout_ms":2000,"meta":{"tenant":"a"}}`), &in))
	callers, _ := in.Deadline()

	proxied, err := tr.ProxyUnix(&in, 0)
	require.NoError(t, err)
	t.Cleanup(func() { tr.RemoveRequest(&in) })
	assert.Equal(t, map[string]string{"tenant": "a"}, proxied.Meta)
	dl, ok := proxied.Deadline()
	require.True(t, ok)
	assert.False(t, dl.After(callers), "tracked no longer than the caller waits, not the tracker's minute")
	assert.WithinDuration(t, callers, dl, 5*time.Millisecond)

	t.Run("a copy tracked with TrackRequest too", func(t *testing.T) {
		var in acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"f2","task":"t","responsehook":"unix:///x","args":null,"timeout_ms":1500}`), &in))
		callers, _ := in.Deadline()
		fwd := in
		require.NoError(t, tr.TrackRequest(&fwd, 0))
		t.Cleanup(func() { tr.RemoveRequest(&fwd) })
		dl, _ := fwd.Deadline()
		assert.False(t, dl.After(callers))
	})
}

func TestCallersDeadlineTimeoutSaysSo(t *testing.T) {
	// A received request tracked to be passed on (a bridge's) times out
	// at its caller's deadline: the error says that, not "within 1ns".
	tr := newTracker(t, nil, time.Minute)
	tests := []struct{ name, ms, want string }{
		{"already past on arrival", "0", "arrived after its caller's deadline"},
		{"passed while waiting", "30", "no response by its caller's deadline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in acomm.Request
			require.NoError(t, json.Unmarshal([]byte(`{"id":"c`+tc.ms+`","task":"t","responsehook":"unix:///x","args":null,"timeout_ms":`+tc.ms+`}`), &in))
			got := make(chan *acomm.Response, 1)
			in.SuccessHandler = func(_ *acomm.Request, r *acomm.Response) { got <- r }
			in.ErrorHandler = in.SuccessHandler
			require.NoError(t, tr.TrackRequest(&in, 0))
			r := waitFor(t, got, 5*time.Second, "the timeout")
			require.ErrorIs(t, r.Error, acomm.ErrTimeout)
			assert.ErrorContains(t, r.Error, tc.want)
		})
	}
}
