package acomm_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ackFrame is the decoded acknowledgement of a request frame.
type ackFrame struct {
	ID       string           `json:"id"`
	Error    string           `json:"error"`
	Features []string         `json:"features"`
	Answer   *json.RawMessage `json:"answer"`
}

func TestServerAnswersInAck(t *testing.T) {
	ack := func(conn net.Conn, body []byte) error { return writeAck(conn, body, pipelining...) }
	hook, hookFrames := scriptedPeer(t, ack, ack)
	srv := srvStart(t, nil)
	srv.Handle("slow", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		time.Sleep(50 * time.Millisecond)
		return "late", nil, nil
	})
	srv.Handle("fast", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		return req.Args, nil, nil
	})
	conn, err := net.Dial("unix", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	send := func(id, task string, inAck bool) ackFrame {
		t.Helper()
		req := map[string]any{"id": id, "task": task, "responsehook": hook.url().String(), "args": 7}
		if inAck {
			req["answer_in_ack"] = true
		}
		body, _ := json.Marshal(req)
		_, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
		require.NoError(t, err)
		raw, err := readRawFrame(conn)
		require.NoError(t, err)
		var ack ackFrame
		require.NoError(t, json.Unmarshal(raw, &ack))
		require.Equal(t, id, ack.ID)
		require.Empty(t, ack.Error)
		require.Contains(t, ack.Features, "answer-in-ack")
		return ack
	}

	t.Run("fast handler: the answer is in the ack, not at the hook", func(t *testing.T) {
		// The handler returns within the server's short wait, unless the
		// machine is too busy to run it: then it answers at the hook.
		// Either way it answers once.
		for i := 0; ; i++ {
			id := fmt.Sprint("a", i)
			ack := send(id, "fast", true)
			if ack.Answer == nil {
				body := waitFor(t, hookFrames, 5*time.Second, "the answer at the hook")
				assert.Contains(t, string(body), `"`+id+`"`)
				require.Less(t, i, 100, "no answer in an ack")
				continue
			}
			var resp acomm.Response
			require.NoError(t, json.Unmarshal(*ack.Answer, &resp))
			assert.Equal(t, id, resp.ID)
			require.NotNil(t, resp.Result)
			assert.JSONEq(t, "7", string(*resp.Result))
			break
		}
	})
	t.Run("slow handler: a plain ack, then one answer at the hook", func(t *testing.T) {
		ack := send("b", "slow", true)
		assert.Nil(t, ack.Answer)
		body := waitFor(t, hookFrames, 5*time.Second, "the answer at the hook")
		var resp acomm.Response
		require.NoError(t, json.Unmarshal(body, &resp))
		assert.Equal(t, "b", resp.ID)
	})
	t.Run("not asked: the answer goes to the hook", func(t *testing.T) {
		ack := send("c", "fast", false)
		assert.Nil(t, ack.Answer)
		body := waitFor(t, hookFrames, 5*time.Second, "the answer at the hook")
		assert.Contains(t, string(body), `"c"`)
	})
	t.Run("unknown task: refused at the hook, as before", func(t *testing.T) {
		ack := send("d", "nope", true)
		assert.Nil(t, ack.Answer)
		body := waitFor(t, hookFrames, 5*time.Second, "the answer at the hook")
		assert.Contains(t, string(body), "unknown task")
	})
	t.Run("frames read together: acks in order, each answered once", func(t *testing.T) {
		var batch []byte
		tasks := []string{"fast", "slow", "nope", "fast", "fast"}
		for i, task := range tasks {
			body, _ := json.Marshal(map[string]any{"id": fmt.Sprint("e", i), "task": task,
				"responsehook": hook.url().String(), "args": i, "answer_in_ack": i != 3})
			batch = append(batch, append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)...)
		}
		_, err := conn.Write(batch)
		require.NoError(t, err)
		answered := map[string]int{}
		for i := range tasks {
			raw, err := readRawFrame(conn)
			require.NoError(t, err)
			var ack ackFrame
			require.NoError(t, json.Unmarshal(raw, &ack))
			require.Equal(t, fmt.Sprint("e", i), ack.ID, "acks in order")
			if ack.Answer != nil {
				var resp acomm.Response
				require.NoError(t, json.Unmarshal(*ack.Answer, &resp))
				require.Equal(t, ack.ID, resp.ID)
				answered[resp.ID]++
			}
		}
		for len(answered) < len(tasks) || sum(answered) < len(tasks) {
			body := waitFor(t, hookFrames, 5*time.Second, "the answers at the hook")
			var resp acomm.Response
			require.NoError(t, json.Unmarshal(body, &resp))
			answered[resp.ID]++
		}
		for id, n := range answered {
			assert.Equal(t, 1, n, id)
		}
		assert.Len(t, answered, len(tasks))
	})
	srv.Stop()
	select {
	case body := <-hookFrames:
		t.Fatalf("a second answer at the hook: %s", body)
	default:
	}
}

func TestCallTakesAnswerInAck(t *testing.T) {
	tests := []struct {
		name     string
		features []string
		asked    bool
	}{
		{"a peer that answers in acks", append(pipelining[:2:2], "cancel", "answer-in-ack"), true},
		{"a peer of ours without it", pipelining, false},
		{"an original peer", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(t, nil, 5*time.Second)
			frames := make(chan []byte, 8)
			answer := func(conn net.Conn, body []byte) error {
				frames <- body
				var req struct {
					ID    string `json:"id"`
					InAck bool   `json:"answer_in_ack"`
				}
				if err := json.Unmarshal(body, &req); err != nil {
					return err
				}
				if !req.InAck {
					// Answer at the hook, as the original does.
					if err := writeAck(conn, body, tc.features...); err != nil {
						return err
					}
					return acomm.Send(tr.URL(), &acomm.Response{ID: req.ID, Result: rawJSON(`"hook"`)})
				}
				ack, _ := json.Marshal(map[string]any{"id": req.ID, "result": nil, "stream_url": nil, "error": "",
					"features": tc.features, "answer": map[string]any{"id": req.ID, "result": "ack", "stream_url": nil, "error": ""}})
				_, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(ack))), ack...))
				return err
			}
			p := newFakePeer(t, func(conn net.Conn) {
				for {
					body, err := readRawFrame(conn)
					if err != nil || answer(conn, body) != nil {
						return
					}
				}
			})
			// The first call learns the peer's features from its ack,
			// which Call need not wait for: a later call uses them.
			inAck := 0
			for i := 0; i < 3 || tc.asked && inAck == 0; i++ {
				require.Less(t, i, 100, "no request asked for its answer in the ack")
				resp, err := tr.Call(context.Background(), p.url(), "echo", nil)
				require.NoError(t, err)
				body := <-frames
				want := `"hook"`
				if strings.Contains(string(body), `"answer_in_ack":true`) {
					require.True(t, tc.asked, "asked a peer that did not list the feature")
					require.Positive(t, i, "asked before the peer's features were known")
					want = `"ack"`
					inAck++
				}
				assert.JSONEq(t, want, string(*resp.Result))
			}
			assert.Zero(t, tr.NumRequests())
		})
	}
}

// rawJSON returns s as a *json.RawMessage.
func rawJSON(s string) *json.RawMessage {
	raw := json.RawMessage(s)
	return &raw
}

// sum adds up the counts.
func sum(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// A lone request runs on the connection's reader; one that outlasts the
// answer budget moves the reading on, so that the calls behind it on the
// same link are read, run and answered meanwhile (issue 16).
func TestHeldHandlerMovesReadingOn(t *testing.T) {
	tr := newTracker(t, nil, 30*time.Second)
	srv := srvStart(t, nil)
	g := newTaskGate(t)
	srv.Handle("block", g.handle)
	srv.Handle("double", srvDouble)

	// The link exists, and the server is known to answer in its acks.
	_, err := tr.Call(context.Background(), srv.URL(), "double", 1)
	require.NoError(t, err)

	for round := 0; round < 3; round++ {
		blocked := callAsync(tr, srv, "block", nil)
		waitFor(t, g.started, 5*time.Second, "the blocking handler")
		for i := 0; i < 20; i++ {
			resp, err := tr.Call(context.Background(), srv.URL(), "double", i)
			require.NoError(t, err, "call %d behind a blocked handler", i)
			var got int
			require.NoError(t, resp.UnmarshalResult(&got))
			require.Equal(t, 2*i, got)
		}
		g.release <- struct{}{}
		res := waitFor(t, blocked, 5*time.Second, "the blocked call")
		require.NoError(t, res.err)
	}
}

// A request tracked with TrackRequest, whose hook is the tracker's own, is
// answered in the acknowledgement of Send by a Server that can: one
// exchange, the handler run once. A slow handler's acknowledgement goes
// plain within the answer budget, so Send still returns at once, and its
// response comes to the hook.
func TestTrackRequestSendAnsweredInAck(t *testing.T) {
	tr := newTracker(t, nil, 10*time.Second)
	srv := srvStart(t, nil)
	srv.Handle("echo", srvEcho)
	release := make(chan struct{})
	srv.Handle("slow", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		<-release
		return "late", nil, nil
	})
	t.Cleanup(func() { close(release) })

	send := func(task string, args any) (chan *acomm.Response, time.Duration) {
		got := make(chan *acomm.Response, 2)
		h := func(_ *acomm.Request, resp *acomm.Response) { got <- resp }
		req, err := acomm.NewRequest(task, tr.URL().String(), args, h, h)
		require.NoError(t, err)
		require.NoError(t, tr.TrackRequest(req, 0))
		start := time.Now()
		require.NoError(t, acomm.Send(srv.URL(), req))
		return got, time.Since(start)
	}

	for i := range 3 { // the first makes the link; then answers come in acks
		got, _ := send("echo", i)
		resp := waitFor(t, got, 5*time.Second, "the echo")
		var n int
		require.NoError(t, resp.UnmarshalResult(&n))
		require.Equal(t, i, n)
	}
	require.NotZero(t, srv.Stats().AnsweredInAck, "no answer came in an acknowledgement")

	got, took := send("slow", nil)
	assert.Less(t, took, time.Second, "Send waited for a slow handler")
	select {
	case resp := <-got:
		t.Fatalf("answered before the handler returned: %+v", resp)
	case <-time.After(20 * time.Millisecond):
	}
	release <- struct{}{}
	resp := waitFor(t, got, 5*time.Second, "the slow answer")
	var s string
	require.NoError(t, resp.UnmarshalResult(&s))
	require.Equal(t, "late", s)
	select {
	case resp := <-got:
		t.Fatalf("answered twice: %+v", resp)
	case <-time.After(50 * time.Millisecond):
	}
}

// A request tracked by one tracker, removed, then given another tracker's
// hook and tracked there, is answered at that hook: the first tracker's
// taking of answers in acknowledgements does not stay with it. Nor does it
// when the hook is changed to one no tracker took.
func TestRetrackedRequestAnsweredAtItsNewHook(t *testing.T) {
	t1 := newTracker(t, nil, 5*time.Second)
	t2 := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, nil)
	srv.Handle("echo", srvEcho)
	_, err := t1.Call(context.Background(), srv.URL(), "echo", nil) // a link that answers in acks
	require.NoError(t, err)

	ch := make(chan result, 1)
	req := newRequest(t, t1, "echo", 1, ch)
	require.NoError(t, t1.TrackRequest(req, 0))
	require.True(t, t1.RemoveRequest(req))
	req.ResponseHook, err = url.Parse(t2.URL().String())
	require.NoError(t, err)
	require.NoError(t, t2.TrackRequest(req, 0))
	require.NoError(t, acomm.Send(srv.URL(), req))
	require.NoError(t, waitFor(t, ch, 5*time.Second, "the response at t2").resp.Error)

	// A hook of the user's own, not tracked: the response goes there.
	hook := newHookPeer(t)
	req2 := newRequest(t, t1, "echo", 2, nil)
	require.NoError(t, t1.TrackRequest(req2, 0))
	require.True(t, t1.RemoveRequest(req2))
	req2.ResponseHook = hook.url()
	require.NoError(t, acomm.Send(srv.URL(), req2))
	require.Eventually(t, func() bool { hook.mu.Lock(); defer hook.mu.Unlock(); return hook.ids[req2.ID] == 1 }, 5*time.Second, time.Millisecond)
}
