package acomm_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Answers in acknowledgements (answer.go) against the receiver's ack queue
// (receiver.go): under load, at Stop, with a handler limit, after a
// failed write.

func TestAnswerInAckUnderLoad(t *testing.T) {
	tr := newTracker(t, nil, 20*time.Second)
	srv := srvStart(t, tr, acomm.WithMaxHandlers(1000))
	srv.Handle("echo", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		switch rand.IntN(4) {
		case 1:
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		case 2:
			time.Sleep(900 * time.Microsecond)
		}
		return *req.Args, nil, nil
	})
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				want := fmt.Sprintf("%d-%d", g, i)
				resp, err := tr.Call(context.Background(), srv.URL(), "echo", want)
				if !assert.NoError(t, err) {
					return
				}
				var got string
				require.NoError(t, resp.UnmarshalResult(&got))
				assert.Equal(t, want, got)
			}
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond) // the server counts after the caller has its answer
	ss, ts := srv.Stats(), tr.Stats()
	t.Logf("server %+v", ss)
	t.Logf("tracker %+v", ts)
	assert.Equal(t, ss.Handled, ss.Responded+ss.AnsweredInAck+ss.RespondFailed)
	assert.Zero(t, ts.DroppedUnknown)
}

// hookPeer acknowledges every frame and records the response IDs; it
// serves any number of connections.
type hookPeer struct {
	mu     sync.Mutex
	ids    map[string]int
	bodies map[string]string
	path   string
}

func (h *hookPeer) url() *url.URL { return unixURL(h.path) }

func newHookPeer(t *testing.T) *hookPeer {
	h := &hookPeer{ids: map[string]int{}, bodies: map[string]string{}, path: sockPath(t, "h.sock")}
	l, err := net.Listen("unix", h.path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var cmu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns = append(conns, conn)
			cmu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					body, err := readRawFrame(conn)
					if err != nil {
						return
					}
					var r struct{ ID string }
					_ = json.Unmarshal(body, &r)
					h.mu.Lock()
					h.ids[r.ID]++
					h.bodies[r.ID] = string(body)
					h.mu.Unlock()
					if writeAck(conn, body, pipelining...) != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		acomm.CloseIdleConnections()
		_ = l.Close()
		cmu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	return h
}

func TestPipelinedAcksInOrderExactlyOnce(t *testing.T) {
	hook := newHookPeer(t)
	srv := srvStart(t, nil, acomm.WithMaxHandlers(32), acomm.WithMaxFrameSize(4<<10))
	srv.Handle("t", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var us int
		_ = req.UnmarshalArgs(&us)
		time.Sleep(time.Duration(us) * time.Microsecond)
		return us, nil, nil
	})
	conn, err := net.Dial("unix", srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	const n = 3000
	var want []string // ack ids in order ("" for refusals without id)
	answerable := map[string]bool{}
	var batch []byte
	flush := func() {
		_, err := conn.Write(batch)
		require.NoError(t, err)
		batch = batch[:0]
	}

	acks := make(chan []byte, n)
	go func() {
		for {
			raw, err := readRawFrame(conn)
			if err != nil {
				close(acks)
				return
			}
			acks <- raw
		}
	}()
	for i := range n {
		id := fmt.Sprint("r", i)
		var body []byte
		switch k := rand.IntN(10); {
		case k < 6:
			body, _ = json.Marshal(map[string]any{"id": id, "task": "t", "responsehook": hook.url().String(), "args": rand.IntN(2500), "answer_in_ack": true})
			answerable[id] = true
		case k < 8:
			body, _ = json.Marshal(map[string]any{"id": id, "task": "t", "responsehook": hook.url().String(), "args": rand.IntN(300)})
			answerable[id] = true
		case k < 9:
			body = []byte(`{"id":"` + id + `","task":"t"}`) // no hook: refused
		default:
			body = make([]byte, 5<<10) // oversized: refused without id
			id = ""
		}
		want = append(want, id)
		batch = append(batch, binary.BigEndian.AppendUint32(nil, uint32(len(body)))...)
		batch = append(batch, body...)
		if rand.IntN(8) == 0 {
			flush()
		}
	}
	flush()
	inAck := map[string]int{}
	for i := range n {
		raw, ok := <-acks
		require.True(t, ok, "ack %d", i)
		var ack ackFrame
		require.NoError(t, json.Unmarshal(raw, &ack))
		require.Equal(t, want[i], ack.ID, "ack %d in order", i)
		if ack.Answer != nil {
			inAck[ack.ID]++
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hook.mu.Lock()
		got := len(hook.ids)
		hook.mu.Unlock()
		if got+len(inAck) >= len(answerable) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for id := range answerable {
		assert.Equal(t, 1, hook.ids[id]+inAck[id], "%s answered once", id)
	}
	t.Logf("in ack %d, at hook %d, stats %+v", len(inAck), len(hook.ids), srv.Stats())
}

func TestStopWhileAnsweringInAck(t *testing.T) {
	for round := range 8 {
		hook := newHookPeer(t)
		srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
		require.NoError(t, srv.Configure(acomm.WithMaxHandlers(16), acomm.WithGracePeriod(0)))
		require.NoError(t, srv.Start())
		srv.Handle("t", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			var us int
			_ = req.UnmarshalArgs(&us)
			time.Sleep(time.Duration(us) * time.Microsecond) // ignores ctx
			return us, nil, nil
		})
		conn, err := net.Dial("unix", srv.Addr())
		require.NoError(t, err)
		acks := readAcks(conn, 1000)
		var batch []byte
		for i := range 200 {
			body, _ := json.Marshal(map[string]any{"id": fmt.Sprint("r", i), "task": "t", "responsehook": hook.url().String(),
				"args": rand.IntN(3000), "answer_in_ack": i%3 != 0})
			batch = append(batch, binary.BigEndian.AppendUint32(nil, uint32(len(body)))...)
			batch = append(batch, body...)
		}
		_, _ = conn.Write(batch)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		ctx, cancel := context.WithCancel(context.Background())
		if round%2 == 0 {
			cancel() // hurry: abandon at once
		}
		_ = srv.Shutdown(ctx)
		cancel()
		inAck := map[string]int{}
		acked := map[string]bool{}
		for ack := range acks {
			if ack.Error == "" {
				acked[ack.ID] = true
			}
			if ack.Answer != nil {
				inAck[ack.ID]++
			}
		}
		_ = conn.Close()
		time.Sleep(200 * time.Millisecond) // answers at the hook from abandoned handlers' callers, late respond goroutines
		srv.Stop()
		hook.mu.Lock()
		for id := range acked {
			if n := hook.ids[id] + inAck[id]; n != 1 {
				t.Errorf("round %d: %s acknowledged and answered %d times (hook %d, ack %d)", round, id, n, hook.ids[id], inAck[id])
			}
		}
		for id, n := range hook.ids {
			if n+inAck[id] > 1 {
				t.Errorf("round %d: %s answered %d times", round, id, n+inAck[id])
			}
		}
		hook.mu.Unlock()
		t.Logf("round %d: acked %d, in ack %d, at hook %d", round, len(acked), len(inAck), len(hook.ids))
	}
}

// With one handler allowed, a request pipelined behind one that is answered
// in its acknowledgement is dispatched once that handler has returned: it
// must not be refused as busy. (A round whose answer missed the budget, as
// on a loaded machine, went plain: the frame behind was then dispatched
// while that handler still ran, and busy was right; such rounds are not
// counted.)
func TestFrameBehindAnswerInAckNotBusy(t *testing.T) {
	hook := newHookPeer(t)
	srv := srvStart(t, nil, acomm.WithMaxHandlers(1))
	srv.Handle("a", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		// returns at once
		return "a", nil, nil
	})
	srv.Handle("b", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { return "b", nil, nil })
	conn, err := net.Dial("unix", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	acks := readAcks(conn, 64)
	frame := func(m map[string]any) []byte {
		body, _ := json.Marshal(m)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	busy, inAck := 0, 0
	const rounds, tries = 20, 200
	for i := 0; inAck < rounds && i < tries; i++ {
		a, b := fmt.Sprint("a", i), fmt.Sprint("b", i)
		_, err := conn.Write(append(frame(map[string]any{"id": a, "task": "a", "responsehook": hook.url().String(), "answer_in_ack": true}),
			frame(map[string]any{"id": b, "task": "b", "responsehook": hook.url().String()})...))
		require.NoError(t, err)
		answered := false
		for range 2 {
			ack := waitFor(t, acks, 5*time.Second, "an acknowledgement")
			if ack.ID == a && ack.Answer != nil {
				answered = true
			}
		}
		require.Eventually(t, func() bool { hook.mu.Lock(); defer hook.mu.Unlock(); return hook.bodies[b] != "" }, 5*time.Second, time.Millisecond)
		if !answered {
			continue
		}
		inAck++
		hook.mu.Lock()
		if strings.Contains(hook.bodies[b], "busy") {
			busy++
		}
		hook.mu.Unlock()
	}
	require.NotZero(t, inAck, "no answer came in its acknowledgement in %d tries", tries)
	require.Zero(t, busy, "of %d requests dispatched after the only running handler returned, %d were refused as busy", inAck, busy)
}

// Once an acknowledgement cannot be written on a connection, a request read
// from it afterwards is not acknowledged, so it must not be handled either:
// its sender is told nothing was delivered, and may send it again.
func TestNoHandlingAfterFailedAckWrite(t *testing.T) {
	hook := newHookPeer(t)
	srv := srvStart(t, nil)
	srv.Handle("fast", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		time.Sleep(300 * time.Microsecond) // within the answer budget
		return "a", nil, nil
	})
	ran := make(chan string, 4)
	srv.Handle("rec", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		ran <- req.ID
		return "b", nil, nil
	})
	conn, err := net.Dial("unix", srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	frame := func(m map[string]any) []byte {
		body, _ := json.Marshal(m)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	_, err = conn.Write(frame(map[string]any{"id": "A", "task": "fast", "responsehook": hook.url().String(), "answer_in_ack": true}))
	require.NoError(t, err)
	// The client stops reading: the acknowledgement of A, written by A's
	// handler (or its budget timer), fails with EPIPE.
	require.NoError(t, conn.(*net.UnixConn).CloseRead())
	time.Sleep(50 * time.Millisecond)

	// B, and C which asks for its answer in the acknowledgement.
	if _, err = conn.Write(append(frame(map[string]any{"id": "B", "task": "rec", "responsehook": hook.url().String()}),
		frame(map[string]any{"id": "C", "task": "rec", "responsehook": hook.url().String(), "answer_in_ack": true})...)); err != nil {
		return // the server closed the connection: B and C were not read
	}
	select {
	case id := <-ran:
		t.Fatalf("request %s was handled, though its acknowledgement was never written", id)
	case <-time.After(300 * time.Millisecond):
	}
}

// Requests that ask for their answer in the acknowledgement, pipelined on
// one connection behind one another, run on the reader while their
// handlers keep within the budget; a slow one moves the reading on, and
// the frames behind it are still read, acknowledged in order and answered
// exactly once, in their acknowledgement or at the hook, batch after batch.
func TestPipelinedAnswersBehindASlowHandler(t *testing.T) {
	hook := newHookPeer(t)
	srv := srvStart(t, nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.Handle("slow", func(ctx context.Context, _ *acomm.Request) (any, io.ReadCloser, error) {
		select {
		case <-release:
		case <-time.After(20 * time.Millisecond):
		}
		return "slow", nil, nil
	})
	srv.Handle("fast", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) { return "fast", nil, nil })
	conn, err := net.Dial("unix", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	acks := readAcks(conn, 256)
	var sent []string
	for batch := range 3 {
		var frames []byte
		for i := range 21 {
			task, id := "fast", fmt.Sprintf("f%d-%d", batch, i)
			if i == 0 || i == 10 {
				task, id = "slow", fmt.Sprintf("s%d-%d", batch, i)
			}
			body, _ := json.Marshal(map[string]any{"id": id, "task": task, "responsehook": hook.url().String(), "answer_in_ack": true})
			frames = append(frames, binary.BigEndian.AppendUint32(nil, uint32(len(body)))...)
			frames = append(frames, body...)
			sent = append(sent, id)
		}
		_, err := conn.Write(frames)
		require.NoError(t, err)
	}
	inAck := map[string]int{}
	for i, id := range sent {
		ack := waitFor(t, acks, 5*time.Second, "acknowledgement "+id)
		require.Equal(t, id, ack.ID, "acknowledgement %d out of order", i)
		require.Empty(t, ack.Error)
		if ack.Answer != nil {
			inAck[id]++
		}
	}
	require.Eventually(t, func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, id := range sent {
			if hook.ids[id]+inAck[id] != 1 {
				return false
			}
		}
		return true
	}, 5*time.Second, time.Millisecond, "every request answered once")
	time.Sleep(50 * time.Millisecond) // a second answer would come by now
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for _, id := range sent {
		assert.Equal(t, 1, hook.ids[id]+inAck[id], "%s answered once", id)
	}
}

// readAcks decodes the acknowledgements read from conn, as they come, onto
// the returned channel (buffered for n), closed once conn ends.
func readAcks(conn net.Conn, n int) <-chan ackFrame {
	acks := make(chan ackFrame, n)
	go func() {
		defer close(acks)
		for {
			raw, err := readRawFrame(conn)
			if err != nil {
				return
			}
			var ack ackFrame
			_ = json.Unmarshal(raw, &ack)
			acks <- ack
		}
	}()
	return acks
}
