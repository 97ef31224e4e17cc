package acomm_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTrackerStats(t *testing.T) {
	tr := newTracker(t, nil, time.Minute)
	mk := func() *acomm.Request {
		req, err := acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
		require.NoError(t, err)
		return req
	}
	answered, timedOut, removed := mk(), mk(), mk()
	require.NoError(t, tr.TrackRequest(answered, 0))
	require.NoError(t, tr.TrackRequest(timedOut, time.Millisecond))
	require.NoError(t, tr.TrackRequest(removed, 0))
	require.Error(t, tr.TrackRequest(answered, 0), "duplicate")
	assert.Equal(t, 3, tr.Stats().InFlight)

	require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: answered.ID}))
	require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: "unknown"}))
	require.True(t, tr.RemoveRequest(removed))
	require.Eventually(t, func() bool { return tr.Stats().InFlight == 0 }, 5*time.Second, time.Millisecond)
	require.Error(t, acomm.Send(tr.URL(), []byte(`"garbage"`)), "refused frame")

	s := tr.Stats()
	assert.EqualValues(t, 3, s.Tracked)
	assert.EqualValues(t, 1, s.Answered)
	assert.EqualValues(t, 1, s.TimedOut)
	assert.EqualValues(t, 1, s.Removed)
	assert.EqualValues(t, 1, s.Refused)
	assert.EqualValues(t, 1, s.DroppedUnknown)
	assert.EqualValues(t, 1, s.RefusedFrames)
}

func TestMaxTracked(t *testing.T) {
	tr := newTracker(t, nil, time.Minute, acomm.WithMaxTracked(2))
	reqs := make([]*acomm.Request, 3)
	for i := range reqs {
		var err error
		reqs[i], err = acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
		require.NoError(t, err)
	}
	require.NoError(t, tr.TrackRequest(reqs[0], 0))
	require.NoError(t, tr.TrackRequest(reqs[1], 0), "at the bound")
	assert.ErrorIs(t, tr.TrackRequest(reqs[2], 0), acomm.ErrTooManyRequests, "above the bound")
	require.True(t, tr.RemoveRequest(reqs[0]))
	assert.NoError(t, tr.TrackRequest(reqs[2], 0), "room again")
	tr.RemoveRequest(reqs[1])
	tr.RemoveRequest(reqs[2])

	bad, err := acomm.NewTracker(sockPath(t, "b.sock"), nil, 0)
	require.NoError(t, err)
	assert.ErrorIs(t, bad.Configure(acomm.WithMaxTracked(-1)), acomm.ErrInvalidArgument)
}

func TestServerStats(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
	require.NoError(t, srv.Configure(acomm.WithMaxHandlers(1)))
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv.Handle("ok", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { return "ok", nil, nil })
	srv.Handle("block", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		started <- struct{}{}
		<-release
		return nil, nil, nil
	})
	srv.Handle("panic", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { panic("boom") })
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	// A handler's slot is freed just after its response is sent, so the
	// next call may find it still taken: wait until it is free.
	idle := func() {
		require.Eventually(t, func() bool { return srv.Stats().InFlight == 0 }, 5*time.Second, time.Millisecond)
	}

	_, err := tr.Call(ctx, srv.URL(), "ok", nil)
	require.NoError(t, err)
	_, err = tr.Call(ctx, srv.URL(), "nope", nil)
	require.ErrorIs(t, err, acomm.ErrUnknownTask)
	idle()
	_, err = tr.Call(ctx, srv.URL(), "panic", nil)
	require.ErrorIs(t, err, acomm.ErrHandlerPanic)
	idle()

	blocked := make(chan error, 1)
	go func() { _, err := tr.Call(ctx, srv.URL(), "block", nil); blocked <- err }()
	waitFor(t, started, 5*time.Second, "blocking handler")
	_, err = tr.Call(ctx, srv.URL(), "ok", nil)
	require.ErrorIs(t, err, acomm.ErrBusy)
	assert.Equal(t, 1, srv.Stats().InFlight)
	close(release)
	require.NoError(t, waitFor(t, blocked, 5*time.Second, "blocked call"))
	require.Error(t, acomm.Send(srv.URL(), []byte(`"garbage"`)))

	require.Eventually(t, func() bool { s := srv.Stats(); return s.Responded+s.AnsweredInAck == 5 }, 5*time.Second, time.Millisecond)
	s := srv.Stats()
	assert.EqualValues(t, 5, s.Received)
	assert.EqualValues(t, 3, s.Handled)
	assert.EqualValues(t, 1, s.Busy)
	assert.EqualValues(t, 1, s.UnknownTask)
	assert.EqualValues(t, 1, s.Panics)
	assert.EqualValues(t, 1, s.RefusedFrames)
	assert.Zero(t, s.RespondFailed)
}
