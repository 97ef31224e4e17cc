package acomm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// soakFor is how long TestChaosSoak runs: a few seconds by default (one
// with -short), minutes by hand: go test -run ChaosSoak -soak 5m -v
var soakFor = flag.Duration("soak", 0, "run TestChaosSoak for this long")

// soakAccount is what the soak saw, per request and in total.
type soakAccount struct {
	mu       sync.Mutex
	handled  map[string]int // handler calls per request ID
	removed  map[string]bool
	tracked  atomic.Int64
	answered atomic.Int64 // handler calls with a service's answer
	timedOut atomic.Int64
	errored  atomic.Int64 // handler calls with another error

	// Calls, some cancelled by their caller mid-flight.
	calls, callsReturned, callsCancelled atomic.Int64

	streamsRead, streamsCut atomic.Int64
	garbage, stalls, cuts   atomic.Int64
	restarts                atomic.Int64
}

func (a *soakAccount) handle(req *acomm.Request, resp *acomm.Response) {
	a.mu.Lock()
	a.handled[req.ID]++
	a.mu.Unlock()
	switch {
	case resp.Error == nil:
		a.answered.Add(1)
	case isTimeout(resp.Error):
		a.timedOut.Add(1)
	default:
		a.errored.Add(1)
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, acomm.ErrTimeout) && !errors.As(err, new(*acomm.RemoteError))
}

// soakService is a service whose Server is stopped and replaced on the
// same socket path while traffic flows.
type soakService struct {
	path    string
	streams *acomm.Tracker
	mu      sync.Mutex
	srv     *acomm.Server
	stats   []acomm.ServerStats // of the servers already stopped
}

// work is the soak's task: random latency, errors, and streamed results.
func work(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
	var mode string
	_ = req.UnmarshalArgs(&mode)
	delay := time.Duration(rand.IntN(3000)) * time.Microsecond
	if mode == "slow" {
		delay = 300 * time.Millisecond // beyond the caller's timeout
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	switch mode {
	case "fail":
		return nil, nil, fmt.Errorf("task failed on purpose")
	case "stream":
		return "stream", io.NopCloser(io.LimitReader(zeroes{}, 256<<10)), nil
	}
	return req.ID, nil, nil
}

// zeroes reads zero bytes forever.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func (s *soakService) start(t *testing.T, opts ...acomm.Option) {
	srv := acomm.NewServer(s.path, s.streams)
	require.NoError(t, srv.Configure(opts...))
	srv.Handle("work", work)
	require.NoError(t, srv.Start())
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

func (s *soakService) stop() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Stop()
	s.mu.Lock()
	s.stats = append(s.stats, srv.Stats())
	s.mu.Unlock()
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// socketFiles lists the socket files left under dir.
func socketFiles(dir string) []string {
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSocket != 0 {
			left = append(left, p)
		}
		return nil
	})
	return left
}

func TestChaosSoak(t *testing.T) {
	duration := *soakFor
	if duration == 0 {
		duration = 3 * time.Second
		if testing.Short() {
			duration = time.Second
		}
	}
	acomm.CloseIdleConnections()
	fdsBefore := countFDs(t)
	leaks := goleak.IgnoreCurrent()
	dir := shortDir(t)
	opts := []acomm.Option{acomm.WithIOTimeout(200 * time.Millisecond), acomm.WithIdleTimeout(time.Second)}

	streams, err := acomm.NewTracker(filepath.Join(dir, "streams.sock"), nil, time.Second)
	require.NoError(t, err)
	require.NoError(t, streams.Configure(append(opts, acomm.WithStreamIdleTimeout(300*time.Millisecond))...))
	require.NoError(t, streams.Start())

	trackers := make([]*acomm.Tracker, 2)
	for i := range trackers {
		tr, err := acomm.NewTracker(filepath.Join(dir, fmt.Sprintf("t%d.sock", i)), nil, time.Second)
		require.NoError(t, err)
		require.NoError(t, tr.Configure(opts...))
		require.NoError(t, tr.Start())
		trackers[i] = tr
	}
	// The callers with Call have a tracker of their own, so that its
	// books can be checked apart.
	caller, err := acomm.NewTracker(filepath.Join(dir, "c.sock"), nil, time.Second)
	require.NoError(t, err)
	require.NoError(t, caller.Configure(opts...))
	require.NoError(t, caller.Start())
	svcs := make([]*soakService, 3)
	for i := range svcs {
		svcs[i] = &soakService{path: filepath.Join(dir, fmt.Sprintf("s%d.sock", i)), streams: streams}
		svcs[i].start(t, opts...)
	}

	acct := &soakAccount{handled: map[string]int{}, removed: map[string]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// Callers: random services, modes, timeouts and removals.
	modes := []string{"ok", "ok", "ok", "ok", "fail", "stream", "slow"}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tr := trackers[rand.IntN(len(trackers))]
				svc := svcs[rand.IntN(len(svcs))]
				mode := modes[rand.IntN(len(modes))]
				h := func(req *acomm.Request, resp *acomm.Response) {
					acct.handle(req, resp)
					if resp.StreamURL != nil {
						readStream(acct, resp)
					}
				}
				req, err := acomm.NewRequest("work", tr.URL().String(), mode, h, h)
				if err != nil {
					panic(err)
				}
				timeout := time.Duration(20+rand.IntN(200)) * time.Millisecond
				if tr.TrackRequest(req, timeout) != nil {
					continue
				}
				acct.tracked.Add(1)
				if err := acomm.Send(unixURL(svc.path), req); err != nil || rand.IntN(20) == 0 {
					if tr.RemoveRequest(req) {
						acct.mu.Lock()
						acct.removed[req.ID] = true
						acct.mu.Unlock()
					}
				}
			}
		}()
	}

	// Callers with Call: random timeouts, and a quarter of the calls
	// cancelled by their caller after a moment, so that cancel notices
	// cross the wire while everything else goes on.
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				svc := svcs[rand.IntN(len(svcs))]
				mode := modes[rand.IntN(len(modes))]
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(20+rand.IntN(200))*time.Millisecond)
				if rand.IntN(4) == 0 {
					time.AfterFunc(time.Duration(rand.IntN(5000))*time.Microsecond, cancel)
				}
				acct.calls.Add(1)
				resp, err := caller.Call(ctx, unixURL(svc.path), "work", mode)
				acct.callsReturned.Add(1)
				if errors.Is(err, context.Canceled) {
					acct.callsCancelled.Add(1)
				}
				if err == nil && resp.StreamURL != nil {
					readStream(acct, resp)
				}
				cancel()
			}
		}()
	}

	// Chaos: services stopped and restarted on the same path mid-flight.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			svc := svcs[rand.IntN(len(svcs))]
			svc.stop()
			svc.start(t, opts...)
			acct.restarts.Add(1)
		}
	}()

	// Hostile clients: garbage, frames cut off mid-way, peers that stall.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var stalled []net.Conn
		defer func() {
			for _, c := range stalled {
				_ = c.Close()
			}
		}()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			paths := []string{trackers[0].Addr(), trackers[1].Addr(), svcs[rand.IntN(len(svcs))].path}
			conn, err := net.DialTimeout("unix", paths[rand.IntN(len(paths))], time.Second)
			if err != nil {
				continue // a service mid-restart
			}
			switch rand.IntN(3) {
			case 0: // a whole frame of garbage: refused, connection kept
				body := make([]byte, 1+rand.IntN(64))
				for i := range body {
					body[i] = byte(rand.IntN(256))
				}
				hdr := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
				_, _ = conn.Write(append(hdr, body...))
				acct.garbage.Add(1)
				_ = conn.SetReadDeadline(time.Now().Add(time.Second))
				_, _ = conn.Read(make([]byte, 256))
				_ = conn.Close()
			case 1: // disconnect mid-frame
				_, _ = conn.Write([]byte{0, 0, 0, 100, '{', '"'})
				acct.cuts.Add(1)
				_ = conn.Close()
			case 2: // stall mid-frame, hold the connection
				_, _ = conn.Write([]byte{0, 0})
				acct.stalls.Add(1)
				stalled = append(stalled, conn)
			}
		}
	}()

	time.Sleep(duration) // the soak's length, not a synchronisation
	close(stop)
	wg.Wait()
	for _, svc := range svcs {
		svc.stop()
	}
	for _, tr := range trackers {
		tr.Stop() // every tracked request is answered or times out first
	}
	caller.Stop()
	streams.Stop()
	acomm.CloseIdleConnections()

	// The account.
	var ts acomm.TrackerStats
	for _, tr := range trackers {
		s := tr.Stats()
		ts.Tracked += s.Tracked
		ts.Answered += s.Answered
		ts.TimedOut += s.TimedOut
		ts.Removed += s.Removed
		ts.DroppedUnknown += s.DroppedUnknown
		ts.RefusedFrames += s.RefusedFrames
	}
	cs := caller.Stats()
	var ss acomm.ServerStats
	for _, svc := range svcs {
		for _, s := range svc.stats {
			ss.Handled += s.Handled
			ss.Responded += s.Responded
			ss.RespondFailed += s.RespondFailed
			ss.Busy += s.Busy
			ss.RefusedFrames += s.RefusedFrames
			ss.Cancelled += s.Cancelled
		}
	}
	acct.mu.Lock()
	defer acct.mu.Unlock()
	lost, doubles := 0, 0
	for id, n := range acct.handled {
		if n > 1 || n == 1 && acct.removed[id] {
			doubles++
		}
	}
	lost = int(acct.tracked.Load()) - len(acct.handled) - len(acct.removed)
	for id := range acct.removed {
		if acct.handled[id] > 0 {
			lost++ // counted as handled above: not lost, but not removed either
		}
	}
	t.Logf("soak %s: %d requests tracked: %d answered, %d timed out, %d other errors, %d removed; "+
		"lost %d, doubles %d; faults: %d service restarts, %d garbage frames, %d cut frames, %d stalled peers; "+
		"streams: %d read, %d cut; tracker: %d responses dropped as unknown, %d frames refused; services: %d handled, %d responses acked, %d sends failed; "+
		"calls: %d, %d cancelled by their caller, %d cancel notices sent, %d handlers cancelled",
		duration, acct.tracked.Load(), acct.answered.Load(), acct.timedOut.Load(), acct.errored.Load(), len(acct.removed),
		lost, doubles, acct.restarts.Load(), acct.garbage.Load(), acct.cuts.Load(), acct.stalls.Load(),
		acct.streamsRead.Load(), acct.streamsCut.Load(), ts.DroppedUnknown, ts.RefusedFrames, ss.Handled, ss.Responded, ss.RespondFailed,
		acct.calls.Load(), acct.callsCancelled.Load(), cs.CancelNotices, ss.Cancelled)

	assert.Zero(t, lost, "every tracked request reached a handler or was removed")
	assert.Zero(t, doubles, "no request handled twice, or handled after removal")
	assert.EqualValues(t, acct.tracked.Load(), ts.Tracked)
	assert.EqualValues(t, len(acct.removed), ts.Removed)
	assert.EqualValues(t, acct.answered.Load()+acct.errored.Load(), ts.Answered, "handler calls with answers")
	assert.EqualValues(t, acct.timedOut.Load(), ts.TimedOut)
	assert.GreaterOrEqual(t, ts.Answered+ts.DroppedUnknown+cs.Answered+cs.DroppedUnknown, ss.Responded, "every acknowledged response was delivered")
	assert.Positive(t, acct.answered.Load())
	assert.Equal(t, acct.calls.Load(), acct.callsReturned.Load(), "every Call returned once")
	assert.Positive(t, acct.callsCancelled.Load())
	assert.Positive(t, cs.CancelNotices)
	assert.Equal(t, cs.Tracked, cs.Answered+cs.TimedOut+cs.Removed, "every call's request accounted for once: %+v", cs)
	assert.Zero(t, cs.InFlight)
	assert.Positive(t, acct.restarts.Load())
	assert.Empty(t, socketFiles(dir), "socket files left behind")
	assert.LessOrEqual(t, countFDs(t), fdsBefore, "file descriptors left behind")
	goleak.VerifyNone(t, leaks)
}

// readStream reads a response's stream whole, or cuts it off halfway.
func readStream(acct *soakAccount, resp *acomm.Response) {
	if rand.IntN(2) == 0 {
		if acomm.Stream(io.Discard, resp.StreamURL) == nil {
			acct.streamsRead.Add(1)
		}
		return
	}
	conn, err := net.DialTimeout("unix", resp.StreamURL.Path, time.Second)
	if err != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, conn, 64<<10)
	_ = conn.Close()
	acct.streamsCut.Add(1)
}
