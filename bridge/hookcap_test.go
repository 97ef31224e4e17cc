package bridge_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBridgeCapabilityOneRequest checks that a hook capability answers
// the one tracked request it was bound to: the party that answered a
// request cannot, with the same hook, answer a later request that reuses
// its id, whether that request is new, tracked again, or bound after it
// was tracked; its real answerer still can.
func TestBridgeCapabilityOneRequest(t *testing.T) {
	env := newBridgeEnv(t, nil)
	const id = "fixed-id"
	got := make(chan string, 4)
	h := func(_ *acomm.Request, resp *acomm.Response) {
		var s string
		_ = resp.UnmarshalResult(&s)
		got <- s
	}
	// newReq makes a request with id; bindFirst binds its hook before it
	// is tracked (as Call and acomm call do), otherwise after.
	newReq := func(t *testing.T, bindFirst bool) (*acomm.Request, string) {
		req, err := acomm.NewRequest("x", env.base+"/responses", nil, h, h)
		require.NoError(t, err)
		req.ID = id
		if bindFirst {
			req.ResponseHook = env.tr.BindHook(req.ResponseHook, id)
			require.NoError(t, env.tr.TrackRequest(req, 10*time.Second))
			return req, req.ResponseHook.String() // what its answerer is sent
		}
		require.NoError(t, env.tr.TrackRequest(req, 10*time.Second))
		return req, env.tr.BindHook(req.ResponseHook, id).String()
	}
	answer := func(hook, result string) bridgeReply {
		return bridgePost(t, hook, "", `{"id":"`+id+`","result":"`+result+`"}`)
	}

	first, firstHook := newReq(t, true)
	requireBridgeAck(t, answer(firstHook, "first"), id)
	require.Equal(t, "first", waitFor(t, got, 5*time.Second, "the first answer"))

	t.Run("a late answer to the first is acknowledged and dropped", func(t *testing.T) {
		requireBridgeAck(t, answer(firstHook, "late"), id)
	})

	for _, tc := range []struct {
		name  string
		track func(t *testing.T) (*acomm.Request, string)
	}{
		{"a new request bound before it is tracked", func(t *testing.T) (*acomm.Request, string) { return newReq(t, true) }},
		{"a new request bound after it is tracked", func(t *testing.T) (*acomm.Request, string) { return newReq(t, false) }},
		{"the first request tracked again", func(t *testing.T) (*acomm.Request, string) {
			require.NoError(t, env.tr.TrackRequest(first, 10*time.Second))
			return first, first.ResponseHook.String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, hook := tc.track(t)
			t.Cleanup(func() { env.tr.RemoveRequest(req) })
			assert.NotEqual(t, firstHook, hook, "a capability of its own")
			requireBridgeError(t, answer(firstHook, "forged"), http.StatusForbidden)
			assert.Equal(t, 1, env.tr.NumRequests(), "still waiting for its real answer")
			requireBridgeAck(t, answer(hook, "real"), id)
			assert.Equal(t, "real", waitFor(t, got, 5*time.Second, "the real answer"))
		})
	}
}
