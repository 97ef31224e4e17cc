package acomm_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cancelWithin is how soon a caller's cancel must reach the handler, as
// the issue asks; withinCancelBound retries, so that a loaded machine's
// stall does not fail it, while a delay on the path still does.
const cancelWithin = 100 * time.Millisecond

// cancelAttempts is how many times withinCancelBound tries.
const cancelAttempts = 3

// withinCancelBound runs attempt, which cancels a call and returns how
// long the cancel took to reach the handler, until one attempt is within
// cancelWithin, at most cancelAttempts times, and logs each latency. A
// delay on the path itself (a notice queued behind something, a poll, an
// acknowledgement waited for) shows in every attempt and fails the test;
// a loaded machine's scheduling stall rarely hits several in a row.
// Every attempt must reach the handler well within the waits of attempt,
// so a notice that is not sent at all fails in any case.
func withinCancelBound(t *testing.T, attempt func() time.Duration) {
	t.Helper()
	var took []time.Duration
	for range cancelAttempts {
		d := attempt()
		took = append(took, d)
		if d <= cancelWithin {
			t.Logf("cancel reached the handler in %v (attempts: %v)", d, took)
			return
		}
	}
	t.Errorf("cancel reached the handler later than %v in each of %d attempts: %v", cancelWithin, cancelAttempts, took)
}

// blockedHandler is a handler that reports its start and then waits for
// its context to end, reporting when and why.
type blockedHandler struct {
	started chan string
	ended   chan blockedEnd
}

type blockedEnd struct {
	at  time.Time
	err error
}

func newBlockedHandler() *blockedHandler {
	return &blockedHandler{started: make(chan string, 16), ended: make(chan blockedEnd, 16)}
}

func (b *blockedHandler) handle(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
	b.started <- req.ID
	<-ctx.Done() // bounded: the server's Stop cancels it at cleanup
	b.ended <- blockedEnd{at: time.Now(), err: ctx.Err()}
	return nil, nil, ctx.Err()
}

func TestCallCancelReachesHandler(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second)
	srv := srvStart(t, tr)
	b := newBlockedHandler()
	srv.Handle("block", b.handle)
	// A first exchange tells the tracker what the server takes: a caller
	// that gives up before any acknowledgement from a peer cannot know
	// whether a cancel notice is safe to send it.
	_, err := tr.Call(context.Background(), srv.URL(), acomm.PingTask, nil)
	require.NoError(t, err)

	var n uint64
	withinCancelBound(t, func() time.Duration {
		n++
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := tr.Call(ctx, srv.URL(), "block", nil)
			done <- err
		}()
		waitFor(t, b.started, 5*time.Second, "the handler to start")
		cancelled := time.Now()
		cancel()
		require.ErrorIs(t, waitFor(t, done, 5*time.Second, "Call to return"), context.Canceled)

		end := waitFor(t, b.ended, 5*time.Second, "the handler's context to end")
		require.ErrorIs(t, end.err, context.Canceled)
		assert.EqualValues(t, n, tr.Stats().CancelNotices)

		// The handler's answer comes late, and is dropped quietly.
		require.Eventually(t, func() bool { return tr.Stats().DroppedUnknown == n }, 5*time.Second, time.Millisecond)
		assert.EqualValues(t, n, srv.Stats().Cancelled)
		assert.Zero(t, tr.NumRequests())
		return end.at.Sub(cancelled)
	})
}

func TestMultiRequestRemoveCancels(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second)
	srv := srvStart(t, tr)
	b := newBlockedHandler()
	srv.Handle("block", b.handle)
	srv.Handle("echo", srvEcho)

	withinCancelBound(t, func() time.Duration {
		m := acomm.NewMultiRequest(tr, 10*time.Second)
		slow, err := acomm.NewRequest("block", tr.URL().String(), nil, nil, nil)
		require.NoError(t, err)
		quick, err := acomm.NewRequest("echo", tr.URL().String(), 1, nil, nil)
		require.NoError(t, err)
		require.NoError(t, m.AddRequest("slow", slow))
		require.NoError(t, m.AddRequest("quick", quick))
		require.NoError(t, m.SendAll(map[string]*url.URL{"slow": srv.URL(), "quick": srv.URL()}))
		waitFor(t, b.started, 5*time.Second, "the slow handler")

		removed := time.Now()
		m.RemoveRequest(slow)
		end := waitFor(t, b.ended, 5*time.Second, "the slow handler's context to end")
		require.ErrorIs(t, end.err, context.Canceled)

		resps := m.Responses()
		assert.Len(t, resps, 1)
		assert.NoError(t, resps["quick"].Error)
		return end.at.Sub(removed)
	})
}

func TestTimeoutSendsCancelNotice(t *testing.T) {
	// A peer of ours, written out by hand: it advertises "cancel" and
	// records what it reads.
	p, frames := recordingPeer(t, "pipeline", "string-urls", "cancel")
	tr := newTracker(t, nil, 50*time.Millisecond)

	_, err := tr.Call(context.Background(), p.url(), "work", nil)
	require.ErrorIs(t, err, acomm.ErrTimeout)
	var req struct {
		ID        string `json:"id"`
		TimeoutMS *int64 `json:"timeout_ms"`
	}
	require.NoError(t, json.Unmarshal(waitFor(t, frames, 5*time.Second, "the request"), &req))
	require.NotNil(t, req.TimeoutMS)
	// The time left when the frame was encoded: the 50 ms timeout less
	// however long that took, which a loaded machine stretches (the
	// receiver counts from the frame's arrival, later by as much).
	assert.Positive(t, *req.TimeoutMS)
	assert.LessOrEqual(t, *req.TimeoutMS, int64(50))

	var notice struct {
		ID           string          `json:"id"`
		Task         string          `json:"task"`
		ResponseHook string          `json:"responsehook"`
		Args         json.RawMessage `json:"args"`
	}
	body := waitFor(t, frames, 5*time.Second, "the cancel notice")
	require.NoError(t, json.Unmarshal(body, &notice), "%s", body)
	assert.Equal(t, "acomm.cancel", notice.Task)
	assert.JSONEq(t, `{"id":"`+req.ID+`"}`, string(notice.Args))
	assert.NotEqual(t, req.ID, notice.ID, "the notice has an id of its own")
	assert.Equal(t, tr.URL().String(), notice.ResponseHook)
}

func TestCancelNoticeOnlyToPeersThatAdvertiseIt(t *testing.T) {
	// An original peer: its acknowledgements list no features, and it
	// never answers. The request times out, and no notice follows it.
	p, frames := recordingPeer(t)
	tr := newTracker(t, nil, 50*time.Millisecond)
	_, err := tr.Call(context.Background(), p.url(), "work", nil)
	require.ErrorIs(t, err, acomm.ErrTimeout)
	waitFor(t, frames, 5*time.Second, "the request")
	assert.Zero(t, tr.Stats().CancelNotices, "no notice for a peer that did not ask for one")

	// Nor when the caller gives up.
	tr = newTracker(t, nil, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := tr.Call(ctx, p.url(), "work", nil)
		done <- err
	}()
	waitFor(t, frames, 5*time.Second, "the request")
	cancel()
	assert.ErrorIs(t, waitFor(t, done, 5*time.Second, "Call"), context.Canceled)
	assert.Zero(t, tr.Stats().CancelNotices)
}

func TestServerCancelNotice(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second)
	srv := srvStart(t, tr)
	ran := make(chan string, 4)
	srv.Handle("work", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		ran <- req.ID
		return nil, nil, nil
	})
	exchange := frameExchanger(t, srv.Addr())

	t.Run("a notice before its request: the request is answered, not run", func(t *testing.T) {
		got := make(chan result, 1)
		req := newRequest(t, tr, "work", nil, got)
		require.NoError(t, tr.TrackRequest(req, 10*time.Second))
		ack := exchange(t, `{"id":"n1","task":"acomm.cancel","responsehook":"`+tr.URL().String()+`","args":{"id":"`+req.ID+`"}}`)
		require.NoError(t, ack.Error)
		assert.Equal(t, "n1", ack.ID)
		require.NoError(t, acomm.Send(srv.URL(), req))
		r := waitFor(t, got, 5*time.Second, "the answer")
		assert.ErrorContains(t, r.resp.Error, "cancelled by the caller")
		select {
		case id := <-ran:
			t.Fatalf("handler ran for %s", id)
		default:
		}
	})

	t.Run("a notice needs no response hook", func(t *testing.T) {
		ack := exchange(t, `{"id":"n2","task":"acomm.cancel","args":{"id":"unknown"}}`)
		assert.NoError(t, ack.Error)
	})

	bad := []struct{ name, args string }{
		{"no args", `null`},
		{"no id", `{}`},
		{"id of the wrong type", `{"id":7}`},
	}
	for _, tc := range bad {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			ack := exchange(t, `{"id":"n3","task":"acomm.cancel","args":`+tc.args+`}`)
			assert.ErrorIs(t, ack.Error, acomm.ErrInvalidRequest)
		})
	}
}

// frameExchanger connects to the socket at path, closed at cleanup, and
// returns a func that writes a frame with body on the connection and
// returns its acknowledgement.
func frameExchanger(t *testing.T, path string) func(t *testing.T, body string) *acomm.Response {
	t.Helper()
	conn, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return func(t *testing.T, body string) *acomm.Response {
		t.Helper()
		_, err := conn.Write(srvFrame(body))
		require.NoError(t, err)
		var ack acomm.Response
		require.NoError(t, acomm.UnmarshalConnData(conn, &ack))
		return &ack
	}
}

// recordingPeer is a receiver that reads frame after frame, acknowledges
// each listing features (none: as the original acomm), and sends each
// body to the returned channel.
func recordingPeer(t *testing.T, features ...string) (*fakePeer, <-chan []byte) {
	t.Helper()
	frames := make(chan []byte, 64)
	peer := newFakePeer(t, func(conn net.Conn) {
		for {
			body, err := readRawFrame(conn)
			if err != nil || writeAck(conn, body, features...) != nil {
				return
			}
			frames <- body
		}
	})
	return peer, frames
}

func TestCallCancelledBeforeFirstAck(t *testing.T) {
	// A Call that ends unanswered on its first call to a peer (its caller
	// gave up, or it timed out) before the peer's acknowledgement is read
	// does not know yet whether the peer takes cancel notices: the
	// acknowledgement, read after all, decides.
	peers := []struct {
		name     string
		features []string
		notice   bool
	}{
		{"a peer of ours", []string{"pipeline", "string-urls", "cancel"}, true},
		{"an original peer", nil, false},
	}
	ends := []struct {
		name    string
		timeout time.Duration // the tracker's
		cancel  bool
		want    error
	}{
		{"the caller gives up", 10 * time.Second, true, context.Canceled},
		{"the request times out", 50 * time.Millisecond, false, acomm.ErrTimeout},
	}
	for _, pc := range peers {
		for _, ec := range ends {
			t.Run(pc.name+", "+ec.name, func(t *testing.T) {
				h := startHeldCall(t, pc.features, ec.timeout)
				tr, frames := h.tr, h.frames
				if ec.cancel {
					h.cancel()
				}
				require.ErrorIs(t, waitFor(t, h.done, 5*time.Second, "Call to return, the acknowledgement unread"), ec.want)
				h.release()

				if !pc.notice {
					tr.Stop() // waits for the send it left behind
					assert.Zero(t, tr.Stats().CancelNotices)
					select {
					case body := <-frames:
						t.Fatalf("a frame after the request: %s", body)
					default:
					}
					return
				}
				var notice struct {
					Task string          `json:"task"`
					Args json.RawMessage `json:"args"`
				}
				body := waitFor(t, frames, 5*time.Second, "the cancel notice")
				require.NoError(t, json.Unmarshal(body, &notice), "%s", body)
				assert.Equal(t, acomm.CancelTask, notice.Task)
				assert.JSONEq(t, `{"id":"`+h.id+`"}`, string(notice.Args))
				tr.Stop()
				assert.EqualValues(t, 1, tr.Stats().CancelNotices)
			})
		}
	}
}

func TestNoCancelNoticeAfterRefusal(t *testing.T) {
	// A peer that takes notices accepts the first frame and refuses the
	// rest in its acknowledgements. A request it refused never ran: a
	// notice for it would only make the peer refuse the same request
	// when it is sent again (a retry after ErrBusy, say).
	features := []string{"pipeline", "string-urls", "cancel"}
	p, frames := scriptedPeer(t, func(conn net.Conn, body []byte) error {
		return writeAck(conn, body, features...)
	}, func(conn net.Conn, _ []byte) error {
		ack, _ := json.Marshal(map[string]any{"id": "", "result": nil, "stream_url": nil, "error": "acomm: service busy", "features": features})
		_, err := conn.Write(srvFrame(string(ack)))
		return err
	})
	tr := newTracker(t, nil, 10*time.Second)
	ctx := context.Background()

	ok := newRequest(t, tr, "work", nil, make(chan result, 1))
	require.NoError(t, tr.Send(ctx, p.url(), ok)) // the peer is known to take notices now
	refused := newRequest(t, tr, "work", nil, make(chan result, 1))
	require.NoError(t, tr.TrackRequest(refused, 10*time.Second))
	require.ErrorIs(t, tr.Send(ctx, p.url(), refused), acomm.ErrRefused)
	require.True(t, tr.RemoveRequest(refused)) // as RemoveRequest's doc says to, after a failed send

	tr.Stop() // waits for the notices under way
	assert.Zero(t, tr.Stats().CancelNotices)
	for range 2 {
		waitFor(t, frames, time.Second, "the requests")
	}
	select {
	case body := <-frames:
		t.Fatalf("a frame after the requests: %s", body)
	default:
	}
}

// scriptedPeer is a receiver that reads frame after frame, sends each body
// to the returned channel, and acknowledges the first frame it reads with
// first and the others with rest.
func scriptedPeer(t *testing.T, first, rest func(conn net.Conn, body []byte) error) (*fakePeer, <-chan []byte) {
	t.Helper()
	frames := make(chan []byte, 16)
	var once atomic.Bool
	peer := newFakePeer(t, func(conn net.Conn) {
		for {
			body, err := readRawFrame(conn)
			if err != nil {
				return
			}
			ack := rest
			if once.CompareAndSwap(false, true) { // before frames tells of it
				ack = first
			}
			frames <- body
			if ack(conn, body) != nil {
				return
			}
		}
	})
	return peer, frames
}

func TestCallNoticeOnceWhenPeerBecomesKnown(t *testing.T) {
	// A Call sent while the peer was not known yet is cancelled after
	// another exchange has made the peer known, but before its own
	// acknowledgement is read: exactly one notice follows it.
	h := startHeldCall(t, []string{"pipeline", "string-urls", "cancel"}, 10*time.Second)
	p, frames := h.peer, h.frames

	// Another frame, on a connection of its own, is acknowledged at once:
	// the peer is known to take notices from then on.
	require.NoError(t, acomm.Send(p.url(), newRequest(t, h.tr, "second", nil, nil)))
	waitFor(t, frames, 5*time.Second, "the second request")

	h.cancel()
	require.ErrorIs(t, waitFor(t, h.done, 5*time.Second, "the first Call"), context.Canceled)
	h.release()

	notices := 0
	for deadline := time.After(time.Second); ; {
		select {
		case body := <-frames:
			var n struct {
				Task string `json:"task"`
				Args struct {
					ID string `json:"id"`
				} `json:"args"`
			}
			require.NoError(t, json.Unmarshal(body, &n))
			if n.Task == acomm.CancelTask && n.Args.ID == h.id {
				notices++
			}
			continue
		case <-deadline:
		}
		break
	}
	assert.Equal(t, 1, notices, "notices for the first request")
}

// heldCall is a Call, on a tracker of its own, to a peer that holds the
// acknowledgement of the first frame it reads until released.
type heldCall struct {
	tr      *acomm.Tracker
	peer    *fakePeer
	frames  <-chan []byte // what the peer reads, after the request
	id      string        // the request's
	cancel  context.CancelFunc
	done    chan error // Call's error
	release func()     // sends the held acknowledgement
}

// startHeldCall starts the Call, with the tracker's default timeout, and
// returns once the peer has read its request. The acknowledgements list
// features.
func startHeldCall(t *testing.T, features []string, timeout time.Duration) *heldCall {
	t.Helper()
	held := make(chan struct{})
	h := &heldCall{done: make(chan error, 1), release: sync.OnceFunc(func() { close(held) })}
	ack := func(conn net.Conn, body []byte) error { return writeAck(conn, body, features...) }
	h.peer, h.frames = scriptedPeer(t, func(conn net.Conn, body []byte) error {
		<-held
		return ack(conn, body)
	}, ack)
	t.Cleanup(h.release) // before the peer's cleanup
	h.tr = newTracker(t, nil, timeout)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.cancel = cancel
	go func() {
		_, err := h.tr.Call(ctx, h.peer.url(), "work", nil)
		h.done <- err
	}()
	var req struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(waitFor(t, h.frames, 5*time.Second, "the request"), &req))
	h.id = req.ID
	return h
}
