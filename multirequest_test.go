package acomm_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMultiRequestThousands(t *testing.T) {
	const n = 3000 // far above the original's 100-slot channel
	tr := newTracker(t, nil, 30*time.Second)
	svc := newService(t, echo)
	multi := acomm.NewMultiRequest(tr, 0)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) { // AddRequest from many goroutines
			defer wg.Done()
			req, err := acomm.NewRequest("echo", tr.URL().String(), i, nil, nil)
			if err != nil {
				errs <- err
				return
			}
			if err := multi.AddRequest(fmt.Sprint("r", i), req); err != nil {
				errs <- err
				return
			}
			if err := acomm.Send(svc.ul.URL(), req); err != nil {
				multi.RemoveRequest(req)
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	resps := waitFor(t, chanOfValue(multi.Responses), 30*time.Second, "Responses")
	require.Len(t, resps, n)
	for i := 0; i < n; i++ {
		resp := resps[fmt.Sprint("r", i)]
		require.NotNil(t, resp, "r%d", i)
		var got int
		require.NoError(t, resp.UnmarshalResult(&got))
		require.Equal(t, i, got)
	}
	assert.Equal(t, 0, tr.NumRequests())
}

// chanOfValue runs f in a goroutine and delivers its result.
func chanOfValue[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

func TestMultiRequestTimeoutsAndRemoval(t *testing.T) {
	tr := newTracker(t, nil, time.Minute)
	svc := newService(t, func(req *acomm.Request) *acomm.Response {
		if req.Task == "silent" {
			return nil
		}
		return echo(req)
	})
	multi := acomm.NewMultiRequest(tr, 500*time.Millisecond) // room for "answered" under -race load

	add := func(name, task string) *acomm.Request {
		req, err := acomm.NewRequest(task, tr.URL().String(), name, nil, nil)
		require.NoError(t, err)
		require.NoError(t, multi.AddRequest(name, req))
		return req
	}
	require.NoError(t, acomm.Send(svc.ul.URL(), add("answered", "echo")))
	require.NoError(t, acomm.Send(svc.ul.URL(), add("timed-out", "silent")))
	multi.RemoveRequest(add("removed", "echo")) // as after a failed send

	resps := waitFor(t, chanOfValue(multi.Responses), 5*time.Second, "Responses")
	require.Len(t, resps, 2)
	assert.NoError(t, resps["answered"].Error)
	assert.ErrorIs(t, resps["timed-out"].Error, acomm.ErrTimeout)
	assert.NotContains(t, resps, "removed")
}

func TestMultiRequestErrors(t *testing.T) {
	tr := newTracker(t, nil, time.Second)
	multi := acomm.NewMultiRequest(tr, 0)
	req, err := acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
	require.NoError(t, err)
	require.NoError(t, multi.AddRequest("a", req))

	req2, err := acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
	require.NoError(t, err)
	assert.ErrorIs(t, multi.AddRequest("a", req2), acomm.ErrDuplicateName)
	assert.ErrorIs(t, multi.AddRequest("b", req), acomm.ErrDuplicateID)
	assert.ErrorIs(t, multi.AddRequest("c", nil), acomm.ErrInvalidArgument)
	multi.RemoveRequest(req)
	multi.RemoveRequest(req) // harmless
	multi.RemoveRequest(nil)
	assert.Empty(t, waitFor(t, chanOfValue(multi.Responses), time.Second, "Responses with nothing pending"))

	stopped, err := acomm.NewTracker(sockPath(t, "s.sock"), nil, 0)
	require.NoError(t, err)
	m2 := acomm.NewMultiRequest(stopped, 0)
	assert.ErrorIs(t, m2.AddRequest("a", req2), acomm.ErrNotStarted)
	assert.Empty(t, m2.Responses(), "a failed add is not waited for")
}

func TestMultiRequestStopDoesNotDeadlock(t *testing.T) {
	tr, err := acomm.NewTracker(sockPath(t, "t.sock"), nil, 20*time.Millisecond)
	require.NoError(t, err)
	require.NoError(t, tr.Start())
	multi := acomm.NewMultiRequest(tr, 0)
	for i := 0; i < 500; i++ {
		req, err := acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
		require.NoError(t, err)
		require.NoError(t, multi.AddRequest(fmt.Sprint(i), req))
	}
	waitFor(t, chanOf(tr.Stop), 5*time.Second, "Stop")
	resps := waitFor(t, chanOfValue(multi.Responses), 5*time.Second, "Responses")
	assert.Len(t, resps, 500)
}
