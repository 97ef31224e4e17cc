package acomm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A caller that gives up on a shared link stops waiting; it never breaks
// the link for the other callers on it (issue 17, item 0).
func TestSharedLinkCallerGivingUpBreaksNothing(t *testing.T) {
	tr := newTracker(t, nil, 30*time.Second)
	srv := srvStart(t, nil)
	var handled atomic.Int64
	srv.Handle("small", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		handled.Add(1)
		return srvDouble(ctx, req)
	})
	var bigHandled, bigCalls atomic.Int64
	srv.Handle("big", func(context.Context, *acomm.Request) (interface{}, io.ReadCloser, error) {
		bigHandled.Add(1)
		return 1, nil, nil
	})
	// Raw JSON, so that the cost of a big call is its frame, not
	// marshalling 1 MiB (which takes ~80 ms under -race).
	big := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)

	// Each worker makes at least perWorker small calls, and goes on until
	// the big callers have made minBig calls between them, most given up
	// (or 20 s have passed): on a fast host the small calls alone would
	// be over before the big ones had started.
	const workers, perWorker, minBig = 6, 80, 40
	var failed, ownDeadline, succeeded, smallCalls atomic.Int64
	until := time.Now().Add(20 * time.Second)
	var latMu sync.Mutex
	var lats []time.Duration
	var errMu sync.Mutex
	var errs []error
	stop := make(chan struct{})
	var wg, bigWG sync.WaitGroup
	for g := 0; g < 2; g++ {
		bigWG.Add(1)
		go func() {
			defer bigWG.Done()
			// Paced by its own cost: after each call it rests twice as
			// long as the call took, so the two of them use at most 2/3
			// of one CPU however slow the host (1 MiB under -race, beside
			// other packages' tests) and never starve the small calls of
			// CPU, which is not what is tested.
			rest := time.Duration(0)
			for {
				select {
				case <-stop:
					return
				case <-time.After(rest):
				}
				d := time.Duration(1+rand.IntN(60)) * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), d)
				bigCalls.Add(1)
				st := time.Now()
				_, _ = tr.Call(ctx, srv.URL(), "big", big)
				cancel()
				rest = max(5*time.Millisecond, 2*time.Since(st))
			}
		}()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker || (bigCalls.Load() < minBig && time.Now().Before(until)); i++ {
				smallCalls.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				st := time.Now()
				resp, err := tr.Call(ctx, srv.URL(), "small", i)
				expired := errors.Is(ctx.Err(), context.DeadlineExceeded)
				cancel()
				latMu.Lock()
				lats = append(lats, time.Since(st))
				latMu.Unlock()
				var got int
				if err == nil {
					err = resp.UnmarshalResult(&got)
				}
				if err == nil && got != 2*i {
					err = assert.AnError
				}
				switch {
				case err == nil:
					succeeded.Add(1)
				case errors.Is(err, context.DeadlineExceeded) && expired:
					// Its own 3 s ran out: CPU starvation (under -race,
					// beside other packages' tests), not a broken link,
					// which fails with ErrConnection and friends.
					ownDeadline.Add(1)
				default:
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
			}
		}()
	}
	waitFor(t, runAsync(wg.Wait), 60*time.Second, "the small calls")
	close(stop)
	waitFor(t, runAsync(bigWG.Wait), 10*time.Second, "the big calls")
	slices.Sort(lats)
	t.Logf("lat p50 %v p90 %v p99 %v max %v", lats[len(lats)/2], lats[len(lats)*9/10], lats[len(lats)*99/100], lats[len(lats)-1])
	t.Logf("small: %d calls; big: %d calls, %d handled", smallCalls.Load(), bigCalls.Load(), bigHandled.Load())
	require.Zero(t, failed.Load(), "unrelated calls failed: %v", errs)
	assert.LessOrEqual(t, ownDeadline.Load(), smallCalls.Load()/100, "small calls that ran out of their own 3 s")
	// Every success was handled once; a call whose own deadline ran out
	// may or may not have reached its handler.
	assert.Equal(t, smallCalls.Load(), succeeded.Load()+ownDeadline.Load())
	assert.GreaterOrEqual(t, handled.Load(), succeeded.Load())
	assert.LessOrEqual(t, handled.Load(), smallCalls.Load())
}
