package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireService starts a Server with a task "meta" answering with its
// request's meta and a task "block" that waits for its context to end,
// reporting the start and the end.
type wireService struct {
	srv     *acomm.Server
	started chan time.Time // the handler's deadline, zero for none
	ended   chan handlerEnd
}

// handlerEnd is when and why a handler's context ended.
type handlerEnd struct {
	at  time.Time
	err error
}

func newWireService(t *testing.T) *wireService {
	t.Helper()
	s := &wireService{started: make(chan time.Time, 4), ended: make(chan handlerEnd, 4)}
	s.srv = acomm.NewServer(sockPath(t, "s.sock"), nil)
	s.srv.Handle("meta", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		return req.Meta, nil, nil
	})
	s.srv.Handle("block", func(ctx context.Context, _ *acomm.Request) (any, io.ReadCloser, error) {
		dl, _ := ctx.Deadline()
		s.started <- dl
		<-ctx.Done() // bounded: Stop cancels it at cleanup
		s.ended <- handlerEnd{at: time.Now(), err: ctx.Err()}
		return nil, nil, ctx.Err()
	})
	require.NoError(t, s.srv.Start())
	t.Cleanup(s.srv.Stop)
	return s
}

// callerThroughBridge returns a tracker whose Calls to the returned
// bridge URL reach svc, with answers coming back over HTTP.
func callerThroughBridge(t *testing.T, svc *wireService) (*acomm.Tracker, *url.URL) {
	t.Helper()
	tr, err := acomm.NewTracker(sockPath(t, "c.sock"), nil, 5*time.Second)
	require.NoError(t, err)
	hooks := httptest.NewServer((&bridge.Bridge{Tracker: tr}).ResponsesHandler())
	t.Cleanup(hooks.Close)
	require.NoError(t, tr.Configure(acomm.WithHTTPHook(mustURL(t, hooks.URL+"/responses"))))
	require.NoError(t, tr.Start())
	t.Cleanup(tr.Stop)
	env := newBridgeEnv(t, nil,
		bridge.Route{Pattern: "meta", Addr: svc.srv.URL()},
		bridge.Route{Pattern: "block", Addr: svc.srv.URL()})
	return tr, mustURL(t, env.base+"/requests")
}

func TestBridgeCarriesMeta(t *testing.T) {
	svc := newWireService(t)

	t.Run("Call through a bridge", func(t *testing.T) {
		tr, dest := callerThroughBridge(t, svc)
		meta := map[string]string{"tenant": "acme", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		resp, err := tr.Call(acomm.ContextWithMeta(context.Background(), meta), dest, "meta", nil)
		require.NoError(t, err)
		var got map[string]string
		require.NoError(t, resp.UnmarshalResult(&got))
		assert.Equal(t, meta, got)
	})

	t.Run("headers in, headers out", func(t *testing.T) {
		env := newBridgeEnv(t, nil, bridge.Route{Pattern: "meta", Addr: svc.srv.URL()})
		type post struct {
			header http.Header
			resp   acomm.Response
		}
		posts := make(chan post, 4)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var p post
			p.header = r.Header.Clone()
			if err := json.NewDecoder(r.Body).Decode(&p.resp); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			posts <- p
		}))
		t.Cleanup(hook.Close)

		body := `{"id":"m1","task":"meta","responsehook":"` + hook.URL + `/hook","args":null,"meta":{"user":"ops","tenant":"body"}}`
		req, err := http.NewRequest(http.MethodPost, env.base+"/requests", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set("tracestate", "congo=t61rcWkgMzE")
		req.Header.Set("Acomm-Meta-Tenant", "header") // a header wins over the body
		req.Header.Add("acomm-meta-region", "eu")
		req.Header.Add("acomm-meta-region", "us")
		hr, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		ack, _ := io.ReadAll(hr.Body)
		_ = hr.Body.Close()
		require.Equal(t, http.StatusOK, hr.StatusCode, "%s", ack)

		want := map[string]string{
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"tracestate":  "congo=t61rcWkgMzE",
			"tenant":      "header",
			"region":      "eu,us",
			"user":        "ops",
		}
		p := waitFor(t, posts, 5*time.Second, "the hook POST")
		var got map[string]string
		require.NoError(t, p.resp.UnmarshalResult(&got))
		assert.Equal(t, want, got, "the service saw the meta")
		assert.Equal(t, want["traceparent"], p.header.Get("traceparent"))
		assert.Equal(t, want["tracestate"], p.header.Get("tracestate"))
		assert.Equal(t, "header", p.header.Get("Acomm-Meta-Tenant"))
		assert.Equal(t, "eu,us", p.header.Get("Acomm-Meta-Region"))
		assert.Equal(t, "ops", p.header.Get("Acomm-Meta-User"))
	})

	t.Run("meta beyond the limits is refused", func(t *testing.T) {
		env := newBridgeEnv(t, nil, bridge.Route{Pattern: "meta", Addr: svc.srv.URL()})
		body := `{"id":"m2","task":"meta","responsehook":"http://127.0.0.1:9/hook","args":null}`
		req, err := http.NewRequest(http.MethodPost, env.base+"/requests", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Acomm-Meta-Big", strings.Repeat("x", acomm.MaxMetaSize))
		hr, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		msg, _ := io.ReadAll(hr.Body)
		_ = hr.Body.Close()
		assert.Equal(t, http.StatusBadRequest, hr.StatusCode)
		assert.Contains(t, string(msg), "meta")
	})
}

func TestBridgeCarriesDeadlineAndCancel(t *testing.T) {
	svc := newWireService(t)
	tr, dest := callerThroughBridge(t, svc)
	// A first exchange: the caller learns that the bridge takes cancel
	// notices, and the bridge that the service does.
	_, err := tr.Call(context.Background(), dest, "meta", nil)
	require.NoError(t, err)

	// Each attempt measures from the cancel to the handler's context
	// ending. A delay on the path (the notice waiting behind something, a
	// poll) shows in every attempt; a loaded machine's scheduling stall
	// rarely hits three in a row, so one attempt within the bound passes.
	var took []time.Duration
	for n := 1; n <= 3; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		want, _ := ctx.Deadline()
		done := make(chan error, 1)
		go func() {
			_, err := tr.Call(ctx, dest, "block", nil)
			done <- err
		}()
		dl := waitFor(t, svc.started, 5*time.Second, "the handler")
		// Each hop adds its transit time (an HTTP exchange, then a frame)
		// and rounds to the millisecond, so this is looser than over one
		// socket: it shows the caller's deadline arrived, not how
		// precisely (generous, for a loaded machine: it is 3 s away).
		assert.WithinDuration(t, want, dl, time.Second, "the handler has the caller's deadline")

		cancelled := time.Now()
		cancel()
		require.ErrorIs(t, waitFor(t, done, 5*time.Second, "Call"), context.Canceled)
		end := waitFor(t, svc.ended, 2*time.Second, "the handler's context to end")
		require.ErrorIs(t, end.err, context.Canceled)
		assert.EqualValues(t, n, tr.Stats().CancelNotices)
		if took = append(took, end.at.Sub(cancelled)); took[n-1] <= 100*time.Millisecond {
			t.Logf("cancel reached the handler in %v (attempts: %v)", took[n-1], took)
			return
		}
	}
	t.Errorf("cancel reached the handler later than 100ms in each attempt: %v", took)
}

func TestBridgeCancelNotice(t *testing.T) {
	env := newBridgeEnv(t, nil, bridge.Route{Pattern: "x", Addr: mustURL(t, "unix:///nonexistent.sock")})
	tests := []struct {
		name string
		body string
		code int
	}{
		{"unknown request: acknowledged", `{"id":"n1","task":"acomm.cancel","args":{"id":"nope"}}`, http.StatusOK},
		{"no id", `{"id":"n2","task":"acomm.cancel","args":{}}`, http.StatusBadRequest},
		{"no args", `{"id":"n3","task":"acomm.cancel"}`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bridgePost(t, env.base+"/requests", "", tc.body)
			require.Equal(t, tc.code, r.status, "%s", r.body)
			if tc.code == http.StatusOK {
				assert.JSONEq(t, `{"id":"n1","result":null,"stream_url":null,"error":"","features":["cancel"]}`, string(r.body))
			}
		})
	}
}

// newLoggedBridgeEnv is a bridge serving routes whose log, from the debug
// level up, logs holds, and the error of each of whose deliveries to a
// hook comes on delivered.
func newLoggedBridgeEnv(t *testing.T, routes ...bridge.Route) (env *bridgeEnv, logs *logtest.Hook, delivered <-chan error) {
	t.Helper()
	logger, logs := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	errs := make(chan error, 4)
	env = newBridgeEnv(t, func(b *bridge.Bridge) {
		b.Logger = logger
		b.OnDelivery = func(_ time.Duration, err error) { errs <- err }
	}, routes...)
	return env, logs, errs
}

func TestBridgeQuietWhenCallerStoppedWaiting(t *testing.T) {
	// A caller that sent its deadline (timeout_ms) stops waiting at it:
	// the bridge's timeout answer then usually finds its hook gone. That
	// is no fault to warn an operator about; a hook that fails while its
	// caller waits still is.
	svc := newWireService(t)
	env, logs, delivered := newLoggedBridgeEnv(t, bridge.Route{Pattern: "block", Addr: svc.srv.URL()}, bridge.Route{Pattern: "meta", Addr: svc.srv.URL()})
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // the caller's hook, closed when it gave up

	tests := []struct {
		name, body string
		level      logrus.Level
	}{
		{"timed out at the caller's deadline", `{"id":"q1","task":"block","responsehook":"` + gone.URL + `/hook","args":null,"timeout_ms":50}`, logrus.DebugLevel},
		{"answered while the caller waits", `{"id":"q2","task":"meta","responsehook":"` + gone.URL + `/hook","args":null}`, logrus.WarnLevel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			r := bridgePost(t, env.base+"/requests", "", tc.body)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			require.Error(t, waitFor(t, delivered, 5*time.Second, "the delivery"))
			var found bool
			for _, e := range logs.AllEntries() {
				if e.Message == "delivering response to hook failed" {
					found = true
					assert.Equal(t, tc.level, e.Level)
					msg := fmt.Sprint(e.Data[logrus.ErrorKey])
					assert.Equal(t, 1, strings.Count(msg, "peer unreachable"), msg)
					assert.Equal(t, 1, strings.Count(msg, "/hook"), "the hook's URL, once: %s", msg)
				}
			}
			assert.True(t, found, "the failed delivery is logged")
		})
	}
}

// A caller's hook may carry a secret in its query (the capability
// acomm.Tracker.BindHook puts there): a failed delivery's log and error
// show the hook without it.
func TestBridgeLogsHideHookSecrets(t *testing.T) {
	svc := newWireService(t)
	env, logs, delivered := newLoggedBridgeEnv(t, bridge.Route{Pattern: "meta", Addr: svc.srv.URL()})
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(refusing.Close)
	body := `{"id":"s1","task":"meta","responsehook":"` + refusing.URL + `/hook?acomm-cap=1.s3cretcap","args":null}`
	r := bridgePost(t, env.base+"/requests", "", body)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	err := waitFor(t, delivered, 5*time.Second, "the delivery")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cretcap")
	for _, e := range logs.AllEntries() {
		line, _ := e.String()
		assert.NotContains(t, line, "s3cretcap", "log: %s", e.Message)
	}
}
