package acomm_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBindHook(t *testing.T) {
	tr := newTracker(t, nil, 0)
	other := newTracker(t, nil, 0)
	hook, err := url.Parse("https://me.example/responses?x=1")
	require.NoError(t, err)
	bound := tr.BindHook(hook, "id-1")
	assert.Equal(t, "https://me.example/responses?x=1", hook.String(), "the hook given is not changed")
	assert.Equal(t, "1", bound.Query().Get("x"), "the query is kept")
	assert.True(t, tr.HookBound(bound, "id-1"))
	assert.False(t, tr.HookBound(bound, "id-2"), "bound to one request")
	assert.False(t, other.HookBound(bound, "id-1"), "each tracker has its own secret")
	assert.False(t, tr.HookBound(hook, "id-1"))
	assert.False(t, tr.HookBound(nil, "id-1"))
	assert.Nil(t, tr.BindHook(nil, "id-1"))
	assert.Equal(t, bound.String(), tr.BindHook(hook, "id-1").String(), "stable while no request with the id is tracked")

	// Tracking binds it to the one request tracked.
	req, err := acomm.NewRequest("x", bound.String(), nil, nil, nil)
	require.NoError(t, err)
	req.ID = "id-1"
	require.NoError(t, tr.TrackRequest(req, 0))
	assert.NotEqual(t, bound.String(), req.ResponseHook.String(), "bound afresh when tracked")
	assert.Equal(t, "1", req.ResponseHook.Query().Get("x"), "the query is kept")
	assert.True(t, tr.HookBound(req.ResponseHook, "id-1"))
	assert.False(t, tr.HookBound(bound, "id-1"), "not the tracked request's")
	assert.Equal(t, req.ResponseHook.String(), tr.BindHook(hook, "id-1").String(), "binding the tracked request gives its own")
	require.True(t, tr.RemoveRequest(req))
	assert.True(t, tr.HookBound(req.ResponseHook, "id-1"), "no longer tracked: its late answer is taken (and dropped)")
}

// TestForwardNoRedirect checks that a tracker forwarding a proxied
// request's answer does not follow a redirect of the hook.
func TestForwardNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(target.Close)
	posted := make(chan struct{}, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posted <- struct{}{}
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(hook.Close)
	tr := newTracker(t, nil, 0)
	req, err := acomm.NewRequest("x", hook.URL, nil, nil, nil)
	require.NoError(t, err)
	_, err = tr.ProxyUnix(req, 0)
	require.NoError(t, err)
	tr.HandleResponse(&acomm.Response{ID: req.ID})
	waitFor(t, posted, 5*time.Second, "the forwarded answer")
	assert.ErrorIs(t, acomm.Send(mustParse(t, hook.URL), req), acomm.ErrHTTPStatus, "Send sees the 3xx as a failure")
	waitFor(t, posted, 5*time.Second, "the send")
	assert.Zero(t, elsewhere.Load(), "a redirect was followed")
}

// mustParse parses u.
func mustParse(t *testing.T, u string) *url.URL {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	return p
}
