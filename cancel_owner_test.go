package acomm_test

import (
	"context"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ownedHandler is a task handler that reports its start and its end, both
// by the request's response hook (its owner), and returns "done" when
// released or ctx.Err() when its context ends first.
type ownedHandler struct {
	started chan string
	ended   chan string // hook, then " " and the error, if any
	release chan struct{}
}

func newOwnedHandler(t *testing.T) *ownedHandler {
	h := &ownedHandler{started: make(chan string, 8), ended: make(chan string, 8), release: make(chan struct{})}
	t.Cleanup(func() { closeIfOpen(h.release) })
	return h
}

func (h *ownedHandler) handle(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
	hook := req.ResponseHook.String()
	h.started <- hook
	select {
	case <-ctx.Done():
		h.ended <- hook + " " + ctx.Err().Error()
		return nil, nil, ctx.Err()
	case <-h.release:
		h.ended <- hook
		return "done", nil, nil
	}
}

// noticeFrame is a cancel notice for the request id with response hook
// hook.
func noticeFrame(id, hook string) string {
	return `{"id":"notice-` + id + `","task":"acomm.cancel","responsehook":"` + hook + `","args":{"id":"` + id + `"}}`
}

// startOwned starts a tracker and a server whose task "work" runs an
// ownedHandler, and a request of the tracker's running there: it returns
// them, an exchanger of frames with the server, and the channel of the
// request's answer.
func startOwned(t *testing.T) (*acomm.Tracker, *acomm.Server, *ownedHandler, func(*testing.T, string) *acomm.Response, *acomm.Request, <-chan result) {
	t.Helper()
	tr := newTracker(t, nil, 10*time.Second)
	srv := srvStart(t, tr)
	h := newOwnedHandler(t)
	srv.Handle("work", h.handle)
	exchange := frameExchanger(t, srv.Addr())
	got := make(chan result, 1)
	req := newRequest(t, tr, "work", nil, got)
	require.NoError(t, tr.TrackRequest(req, 10*time.Second))
	require.NoError(t, acomm.Send(srv.URL(), req))
	waitFor(t, h.started, 5*time.Second, "the handler to start")
	return tr, srv, h, exchange, req, got
}

// A Server takes a cancel notice only from the request's owner: a notice
// must name the request's id and carry its response hook, whether it
// comes while the request runs or before it arrives, and it cancels only
// the request of that owner when two owners use the same id.
func TestServerCancelOnlyByOwner(t *testing.T) {
	const stranger = "unix:///elsewhere/stranger.sock"

	t.Run("a stranger's notice does not cancel a running request", func(t *testing.T) {
		tr, srv, h, exchange, req, got := startOwned(t)
		require.NoError(t, exchange(t, noticeFrame(req.ID, stranger)).Error, "acknowledged all the same")
		require.NoError(t, exchange(t, `{"id":"n-nohook","task":"acomm.cancel","args":{"id":"`+req.ID+`"}}`).Error)
		close(h.release)
		assert.Equal(t, tr.URL().String(), waitFor(t, h.ended, 5*time.Second, "the handler to end"), "ran to its end")
		r := waitFor(t, got, 5*time.Second, "the answer")
		require.NoError(t, r.resp.Error)
		assert.Zero(t, srv.Stats().Cancelled)
	})

	t.Run("the owner's notice cancels it", func(t *testing.T) {
		tr, _, h, exchange, req, got := startOwned(t)
		require.NoError(t, exchange(t, noticeFrame(req.ID, tr.URL().String())).Error)
		assert.Equal(t, tr.URL().String()+" "+context.Canceled.Error(), waitFor(t, h.ended, 5*time.Second, "the handler to end"))
		r := waitFor(t, got, 5*time.Second, "the answer")
		assert.ErrorContains(t, r.resp.Error, "cancelled by the caller")
	})

	t.Run("a stranger's early notice does not refuse the request", func(t *testing.T) {
		tr := newTracker(t, nil, 10*time.Second)
		srv := srvStart(t, tr)
		h := newOwnedHandler(t)
		close(h.release)
		srv.Handle("work", h.handle)
		exchange := frameExchanger(t, srv.Addr())

		got := make(chan result, 1)
		req := newRequest(t, tr, "work", nil, got)
		require.NoError(t, tr.TrackRequest(req, 10*time.Second))
		require.NoError(t, exchange(t, noticeFrame(req.ID, stranger)).Error)
		require.NoError(t, acomm.Send(srv.URL(), req))
		r := waitFor(t, got, 5*time.Second, "the answer")
		require.NoError(t, r.resp.Error, "run, not refused")
		var s string
		require.NoError(t, r.resp.UnmarshalResult(&s))
		assert.Equal(t, "done", s)
	})

	t.Run("two owners of one id: removing one cancels only that one", func(t *testing.T) {
		tr1 := newTracker(t, nil, 10*time.Second)
		tr2 := newTracker(t, nil, 10*time.Second)
		srv := srvStart(t, nil)
		h := newOwnedHandler(t)
		srv.Handle("work", h.handle)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var reqs []*acomm.Request
		answers := make(chan result, 2)
		for _, tr := range []*acomm.Tracker{tr1, tr2} {
			req := newRequest(t, tr, "work", nil, answers)
			req.ID = "same-id"
			require.NoError(t, tr.TrackRequest(req, 10*time.Second))
			require.NoError(t, tr.Send(ctx, srv.URL(), req))
			waitFor(t, h.started, 5*time.Second, "the handler to start")
			reqs = append(reqs, req)
		}

		require.True(t, tr1.RemoveRequest(reqs[0]))
		assert.Equal(t, tr1.URL().String()+" "+context.Canceled.Error(), waitFor(t, h.ended, 5*time.Second, "tr1's handler to end"))
		close(h.release)
		assert.Equal(t, tr2.URL().String(), waitFor(t, h.ended, 5*time.Second, "tr2's handler to end"), "tr2's request ran to its end")
		r := waitFor(t, answers, 5*time.Second, "tr2's answer")
		require.NoError(t, r.resp.Error)
	})
}

// A request proxied through a tracker (ProxyUnix) reaches its service with
// the tracker's socket as its hook: the tracker's notice carries that hook,
// so removing the request cancels it there.
func TestProxiedRequestCancelledByItsTracker(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second)
	srv := srvStart(t, nil)
	h := newOwnedHandler(t)
	srv.Handle("work", h.handle)

	req, err := acomm.NewRequest("work", "http://caller.example/hook", nil, nil, nil)
	require.NoError(t, err)
	proxied, err := tr.ProxyUnix(req, 10*time.Second)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, tr.Send(ctx, srv.URL(), proxied))
	assert.Equal(t, tr.URL().String(), waitFor(t, h.started, 5*time.Second, "the handler to start"))

	require.True(t, tr.RemoveRequest(req))
	assert.Equal(t, tr.URL().String()+" "+context.Canceled.Error(), waitFor(t, h.ended, 5*time.Second, "the handler to be cancelled"))
}

// A Server remembers cancel notices that come before their request, but
// not their text: a hostile peer's notices of any size (up to a frame's)
// leave nothing behind once acknowledged.
func TestEarlyNoticesKeepNoText(t *testing.T) {
	srv := srvStart(t, nil)
	exchange := frameExchanger(t, srv.Addr())
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	big := strings.Repeat("a", 512<<10)
	const notices = 16 // 16 MiB of ids and hooks
	for i := range notices {
		n := strconv.Itoa(i)
		ack := exchange(t, noticeFrame(big+n, "unix:///"+big+n))
		require.Empty(t, ack.Error, "notice %d", i)
	}
	grown := int64(heap()) - int64(before)
	assert.Less(t, grown, int64(8<<20), "heap grown by the notices' text (%d MiB)", grown>>20)
}
