package acomm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cancelBooks records, per call, when its caller gave up and when its
// handler started and saw its context end.
type cancelBooks struct {
	mu       sync.Mutex
	cancelAt map[int]time.Time
	started  map[int]time.Time
	doneAt   map[int]time.Time
	running  int
	startCh  map[int]chan struct{}
	mode     map[int]int
}

func (b *cancelBooks) startChan(n int) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch, ok := b.startCh[n]
	if !ok {
		ch = make(chan struct{})
		b.startCh[n] = ch
	}
	return ch
}

// A cancel is never lost: every handler whose caller gave up sees its
// context end within 100 ms, whatever the moment the caller gave up, on
// shared links to several servers (issue 17, item 1).
func TestCancelSoakEveryHandlerSeesItsCancel(t *testing.T) {
	for _, tc := range []struct {
		name           string
		workers, calls int
	}{
		{"24 callers, 1500 calls", 24, 1500},
		{"300 calls at once", 300, 300},
	} {
		t.Run(tc.name, func(t *testing.T) { cancelSoak(t, tc.workers, tc.calls) })
	}
}

// cancelSoak makes calls Calls from workers goroutines to three Servers,
// cancelling the even ones at random moments, and checks the books.
func cancelSoak(t *testing.T, workers, calls int) {
	const servers = 3
	books := &cancelBooks{cancelAt: map[int]time.Time{}, started: map[int]time.Time{}, doneAt: map[int]time.Time{}, startCh: map[int]chan struct{}{}, mode: map[int]int{}}
	handler := func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		var n int
		if err := req.UnmarshalArgs(&n); err != nil {
			return nil, nil, err
		}
		books.mu.Lock()
		books.started[n] = time.Now()
		books.running++
		books.mu.Unlock()
		close(books.startChan(n))
		defer func() {
			books.mu.Lock()
			books.running--
			books.mu.Unlock()
		}()
		if n%2 == 1 {
			return n, nil, nil // not to be cancelled
		}
		select {
		case <-ctx.Done():
			books.mu.Lock()
			books.doneAt[n] = time.Now()
			books.mu.Unlock()
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Second):
			return nil, nil, errors.New("never cancelled")
		}
	}
	tr := newTracker(t, nil, 30*time.Second)
	var srvs []*acomm.Server
	for i := 0; i < servers; i++ {
		srv := acomm.NewServer(sockPath(t, fmt.Sprintf("s%d.sock", i)), nil)
		require.NoError(t, srv.Start())
		t.Cleanup(srv.Stop)
		srv.Handle("work", handler)
		srvs = append(srvs, srv)
	}

	jobs := make(chan int)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var callErrs []error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				srv := srvs[n%servers]
				if n%2 == 1 {
					if _, err := tr.Call(context.Background(), srv.URL(), "work", n); err != nil {
						errMu.Lock()
						callErrs = append(callErrs, fmt.Errorf("call %d: %w", n, err))
						errMu.Unlock()
					}
					continue
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := tr.Call(ctx, srv.URL(), "work", n)
					done <- err
				}()
				mode := rand.IntN(4)
				books.mu.Lock()
				books.mode[n] = mode
				books.mu.Unlock()
				switch mode {
				case 0: // at once: before the write, or between write and ack
				case 1:
					time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				case 2:
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				case 3: // once the handler runs
					select {
					case <-books.startChan(n):
					case <-time.After(5 * time.Second):
					}
				}
				books.mu.Lock()
				books.cancelAt[n] = time.Now()
				books.mu.Unlock()
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					errMu.Lock()
					callErrs = append(callErrs, fmt.Errorf("cancelled call %d: %v", n, err))
					errMu.Unlock()
				}
			}
		}()
	}
	for n := 0; n < calls; n++ {
		jobs <- n
	}
	close(jobs)
	waitFor(t, runAsync(wg.Wait), 120*time.Second, "every call")
	require.Empty(t, callErrs)

	// None is left running: every handler whose caller gave up is told.
	deadline := time.Now().Add(3 * time.Second)
	for {
		books.mu.Lock()
		running := books.running
		books.mu.Unlock()
		if running == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	books.mu.Lock()
	defer books.mu.Unlock()
	require.Zero(t, books.running, "handlers still running after their callers gave up")
	// Each is told within 100 ms of its cancel (or of its start, when
	// it started after its caller gave up). On a loaded 2-CPU machine
	// under -race a goroutine can wait that long to be scheduled, so one
	// in ten may be later, and none later than a second.
	var lags []time.Duration
	for n, st := range books.started {
		if n%2 == 1 {
			continue
		}
		told := books.cancelAt[n]
		if st.After(told) {
			told = st
		}
		lag := books.doneAt[n].Sub(told)
		lags = append(lags, lag)
		if lag > 100*time.Millisecond {
			t.Logf("call %d (mode %d, started %v after its cancel): told %v after", n, books.mode[n], st.Sub(books.cancelAt[n]), lag)
		}
	}
	if len(lags) == 0 {
		return
	}
	slices.Sort(lags)
	t.Logf("%d cancelled calls, %d of their handlers ran; told after p50 %v, p99 %v, max %v", calls/2, len(lags),
		lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
	assert.LessOrEqual(t, lags[len(lags)*9/10], 100*time.Millisecond, "handlers told of their cancel late")
	assert.LessOrEqual(t, lags[len(lags)-1], time.Second, "a handler told of its cancel very late")
}
