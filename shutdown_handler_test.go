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

// noReturnYet fails t if ch has a value: a Stop returned too early.
func noReturnYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s returned before what it waits for", what)
	default:
	}
}

// waitStopping waits until tr is stopping: it refuses to track a request.
func waitStopping(t *testing.T, tr *acomm.Tracker) {
	t.Helper()
	probe, err := acomm.NewRequest("probe", tr.URL().String(), nil, nil, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		if tr.TrackRequest(probe, 0) != nil {
			return true
		}
		tr.RemoveRequest(probe) // still running: the probe must not hold the stop up
		return false
	}, 5*time.Second, time.Millisecond, "the tracker to stop")
}

// Stop of tracker B from a handler of tracker A is a Stop of B like any
// other: it waits for B's tracked request to be answered and its handler
// to return.
func TestTrackerStopFromAnotherTrackersHandler(t *testing.T) {
	trA := newTracker(t, nil, 10*time.Second)
	trB := newTracker(t, nil, 10*time.Second)

	started, gate := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { closeIfOpen(gate) })
	slow := func(*acomm.Request, *acomm.Response) { close(started); <-gate }
	reqB, err := acomm.NewRequest("b", trB.URL().String(), nil, slow, slow)
	require.NoError(t, err)
	require.NoError(t, trB.TrackRequest(reqB, 0))

	returned := make(chan struct{})
	stopB := func(*acomm.Request, *acomm.Response) { trB.Stop(); close(returned) }
	reqA, err := acomm.NewRequest("a", trA.URL().String(), nil, stopB, stopB)
	require.NoError(t, err)
	require.NoError(t, trA.TrackRequest(reqA, 0))
	require.NoError(t, acomm.Send(trA.URL(), &acomm.Response{ID: reqA.ID}))

	waitStopping(t, trB)

	require.NoError(t, acomm.Send(trB.URL(), &acomm.Response{ID: reqB.ID}))
	waitFor(t, started, 5*time.Second, "B's handler to start")
	noReturnYet(t, returned, "B.Stop")
	close(gate)
	waitFor(t, returned, 5*time.Second, "B.Stop, once B's handler returned")
}

// Stop of server B from a handler of server A is a Stop of B like any
// other: it waits for B's running handler (here within B's grace period).
func TestServerStopFromAnotherServersHandler(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second)
	srvA := srvStart(t, nil)
	srvB := srvStart(t, nil, acomm.WithGracePeriod(time.Minute))
	gB := newTaskGate(t)
	srvB.Handle("block", gB.handle)
	callB := callAsync(tr, srvB, "block", nil)
	waitFor(t, gB.started, 5*time.Second, "B's handler to start")

	returned := make(chan struct{})
	srvA.Handle("stopB", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		srvB.Stop()
		close(returned)
		return nil, nil, nil
	})
	callA := callAsync(tr, srvA, "stopB", nil)

	// B is stopping once its socket is gone.
	require.Eventually(t, func() bool {
		_, err := tr.Call(context.Background(), srvB.URL(), acomm.PingTask, nil)
		return err != nil
	}, 5*time.Second, time.Millisecond)
	noReturnYet(t, returned, "B.Stop")
	gB.open()
	waitFor(t, returned, 5*time.Second, "B.Stop, once B's handler returned")
	require.NoError(t, waitFor(t, callB, 5*time.Second, "B's answer").err)
	require.NoError(t, waitFor(t, callA, 5*time.Second, "A's answer").err)
}

// An outside Stop waits for a handler that started after it was called,
// past the grace period: that handler cannot be blocked in it.
func TestTrackerStopWaitsForLaterHandler(t *testing.T) {
	const grace = 10 * time.Millisecond
	tr := newTracker(t, nil, 10*time.Second, acomm.WithGracePeriod(grace))
	started, gate := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { closeIfOpen(gate) })
	slow := func(*acomm.Request, *acomm.Response) { close(started); <-gate }
	req, err := acomm.NewRequest("t", tr.URL().String(), nil, slow, slow)
	require.NoError(t, err)
	require.NoError(t, tr.TrackRequest(req, 0))

	returned := chanOf(tr.Stop)
	waitStopping(t, tr)
	require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: req.ID}))
	waitFor(t, started, 5*time.Second, "the handler to start")
	select {
	case <-returned:
		t.Fatal("Stop returned while the handler ran")
	case <-time.After(20 * grace): // the grace period, many times over
	}
	close(gate)
	waitFor(t, returned, 5*time.Second, "Stop, once the handler returned")
	assert.Zero(t, tr.NumRequests())
}

// Stop from a response handler of its own tracker waits for the requests
// still tracked, then returns after the grace period without waiting for
// that handler.
func TestTrackerStopFromHandlerWaitsForTracked(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second, acomm.WithGracePeriod(time.Millisecond))
	other := make(chan result, 1)
	pending := newRequest(t, tr, "t", nil, other)
	require.NoError(t, tr.TrackRequest(pending, 0))

	returned := make(chan struct{})
	stop := func(*acomm.Request, *acomm.Response) { tr.Stop(); close(returned) }
	req, err := acomm.NewRequest("t", tr.URL().String(), nil, stop, stop)
	require.NoError(t, err)
	require.NoError(t, tr.TrackRequest(req, 0))
	require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: req.ID}))

	waitStopping(t, tr)
	noReturnYet(t, returned, "Stop")
	assert.Equal(t, 1, tr.NumRequests())

	require.NoError(t, acomm.Send(tr.URL(), &acomm.Response{ID: pending.ID}))
	waitFor(t, other, 5*time.Second, "the other request's handler")
	waitFor(t, returned, 5*time.Second, "Stop, once nothing is tracked")
	waitFor(t, chanOf(tr.Stop), 5*time.Second, "the stop, after the handler")
}
