package acomm_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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

func TestMultiRequestSendAll(t *testing.T) {
	const n = 200 // many more than SendAll has under way at once
	tr := newTracker(t, nil, 30*time.Second)
	svcs := []*service{newService(t, echo), newService(t, echo), newService(t, echo)}
	multi := acomm.NewMultiRequest(tr, 0)
	dests := make(map[string]*url.URL, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprint("r", i)
		req, err := acomm.NewRequest("echo", tr.URL().String(), i, nil, nil)
		require.NoError(t, err)
		require.NoError(t, multi.AddRequest(name, req))
		dests[name] = svcs[i%len(svcs)].ul.URL()
	}
	require.NoError(t, multi.SendAll(dests))

	resps := waitFor(t, chanOfValue(multi.Responses), 30*time.Second, "Responses")
	require.Len(t, resps, n)
	for i := 0; i < n; i++ {
		resp := resps[fmt.Sprint("r", i)]
		require.NotNil(t, resp, "r%d", i)
		var got int
		require.NoError(t, resp.UnmarshalResult(&got))
		require.Equal(t, i, got)
	}
	var received int64
	for _, svc := range svcs {
		received += svc.received.Load()
	}
	assert.Equal(t, int64(n), received, "every request sent exactly once")
	assert.Equal(t, 0, tr.NumRequests())

	// Already answered: not sent again.
	require.NoError(t, multi.SendAll(dests))
	received = 0
	for _, svc := range svcs {
		received += svc.received.Load()
	}
	assert.Equal(t, int64(n), received, "answered requests are not resent")
	assert.NoError(t, multi.SendAll(nil))
}

func TestMultiRequestSendAllErrors(t *testing.T) {
	tr := newTracker(t, nil, 30*time.Second)
	svc := newService(t, echo)
	multi := acomm.NewMultiRequest(tr, 0)
	add := func(name string) *acomm.Request {
		req, err := acomm.NewRequest("echo", tr.URL().String(), name, nil, nil)
		require.NoError(t, err)
		require.NoError(t, multi.AddRequest(name, req))
		return req
	}
	add("ok")
	add("unreachable")
	add("nil-url")
	multi.RemoveRequest(add("removed"))

	err := multi.SendAll(map[string]*url.URL{
		"ok":          svc.ul.URL(),
		"unreachable": unixURL(sockPath(t, "nobody.sock")),
		"nil-url":     nil,
		"removed":     svc.ul.URL(),
		"never-added": svc.ul.URL(),
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, acomm.ErrInvalidArgument)
	for _, name := range []string{`"unreachable"`, `"nil-url"`, `"removed"`, `"never-added"`} {
		assert.Contains(t, err.Error(), name)
	}
	assert.NotContains(t, err.Error(), `"ok"`)

	// The request whose send failed is removed and not waited for; the
	// one with no URL was not sent and is still pending: send it now.
	require.NoError(t, multi.SendAll(map[string]*url.URL{"nil-url": svc.ul.URL()}))
	resps := waitFor(t, chanOfValue(multi.Responses), 5*time.Second, "Responses")
	assert.Len(t, resps, 2)
	for _, name := range []string{"ok", "nil-url"} {
		require.Contains(t, resps, name)
		var got string
		require.NoError(t, resps[name].UnmarshalResult(&got))
		assert.Equal(t, name, got)
	}
	assert.Equal(t, int64(2), svc.received.Load())
	assert.Equal(t, 0, tr.NumRequests())
}

// A peer that stops reading holds up only its own send: SendAll's sends to
// a healthy Server on a link of its own are acknowledged and answered,
// never failed by the stalled write's wait. (A SendAll that wrote every
// frame from one goroutine before reading any ack failed them all with
// ErrOutcomeUnknown, although the Server had answered every one.)
func TestSendAllStalledPeerHoldsUpNoOther(t *testing.T) {
	tr := newTracker(t, nil, 30*time.Second, acomm.WithIOTimeout(300*time.Millisecond))
	srv := srvStart(t, nil)
	srv.Handle("echo", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { return "ok", nil, nil })
	var first atomic.Bool
	first.Store(true)
	stalled := newFakePeer(t, func(conn net.Conn) {
		if first.CompareAndSwap(true, false) { // acknowledges one frame, then reads nothing
			if body, err := readRawFrame(conn); err == nil {
				_ = writeAck(conn, body, pipelining...)
			}
		}
		holdUntilClosed(conn)
	})
	// Both peers are known, with links.
	_, err := tr.Call(context.Background(), srv.URL(), "echo", nil)
	require.NoError(t, err)
	require.NoError(t, tr.Send(context.Background(), stalled.url(), &acomm.Response{ID: "x"}))

	multi := acomm.NewMultiRequest(tr, 0)
	dests := map[string]*url.URL{}
	for i := range 8 {
		req, err := acomm.NewRequest("echo", tr.URL().String(), nil, nil, nil)
		require.NoError(t, err)
		name := fmt.Sprint("a", i)
		require.NoError(t, multi.AddRequest(name, req))
		dests[name] = srv.URL()
	}
	big, err := acomm.NewRequest("echo", tr.URL().String(), strings.Repeat("x", 8<<20), nil, nil)
	require.NoError(t, err)
	require.NoError(t, multi.AddRequest("b", big))
	dests["b"] = stalled.url()

	err = multi.SendAll(dests)
	require.Error(t, err, "the stalled peer's send")
	for name := range dests {
		if name != "b" {
			assert.NotContains(t, err.Error(), fmt.Sprintf("%q", name), "a healthy send failed")
		}
	}
	resps := multi.Responses()
	ok := 0
	for _, resp := range resps {
		if resp.Error == nil {
			ok++
		}
	}
	assert.Equal(t, 8, ok, "answers from the healthy Server")
}

// A request AddRequest refuses is left as it was: one tracked already,
// whose id the refusal is about, keeps its own handlers, which run.
func TestMultiRequestRefusedAddLeavesTheRequest(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, tr)
	srv.Handle("x", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { return "ok", nil, nil })
	ran := make(chan *acomm.Response, 2)
	h := func(_ *acomm.Request, r *acomm.Response) { ran <- r }
	req, err := acomm.NewRequest("x", tr.URL().String(), nil, h, h)
	require.NoError(t, err)
	require.NoError(t, tr.TrackRequest(req, 5*time.Second))
	require.ErrorIs(t, acomm.NewMultiRequest(tr, time.Second).AddRequest("n", req), acomm.ErrDuplicateID)
	require.NoError(t, tr.Send(context.Background(), srv.URL(), req))
	resp := waitFor(t, ran, 5*time.Second, "the request's own handler")
	require.NoError(t, resp.Error)
	assert.Empty(t, ran, "once")
}
