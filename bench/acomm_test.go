package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/acommgo/acomm"
)

// acomm itself, in the echo table and beside the stream floor:
//
//   - acomm-call: Tracker.Call to an acomm.Server whose "echo" task returns
//     its args. A round trip is two frames (the request to the server, the
//     response to the tracker's socket), each acknowledged. One tracker,
//     shared by the 64 par64 goroutines.
//
// The seed API's cycle (TrackRequest, Send, the handler run by the
// tracker) is in seed_test.go, the MultiRequest fan-out in fanout_test.go.
//
// All send echoPayload as the request's args (raw JSON) and check that the
// response's result is the same bytes.
func init() {
	echoSystems = append(echoSystems,
		echoSystem{name: "acomm-call", setup: setupAcommCall},
	)
	streamSystems = append(streamSystems,
		streamSystem{name: "acomm-unix", run: benchStreamAcommUnix},
		streamSystem{name: "acomm-http-proxy", run: benchStreamAcommHTTPProxy},
	)
}

// newAcommTracker starts a tracker on a fresh socket, stopped at cleanup
// (which also drops the pooled connections to sockets about to go away).
func newAcommTracker(tb testing.TB, streamURL *url.URL) *acomm.Tracker {
	tb.Helper()
	tr, err := acomm.NewTracker(socketPath(tb), streamURL, time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		tr.Stop()
		acomm.CloseIdleConnections()
	})
	return tr
}

// checkResult checks that resp carries echoPayload as its result.
func checkResult(resp *acomm.Response) error {
	if resp.Error != nil {
		return resp.Error
	}
	if resp.Result == nil {
		return errors.New("no result")
	}
	return checkEcho(*resp.Result)
}

// newEchoServer starts an acomm.Server on a fresh socket whose "echo"
// task returns the request's args, answering to tr; it is stopped at
// cleanup, before tr (cleanups run last registered first).
func newEchoServer(tb testing.TB, tr *acomm.Tracker) *acomm.Server {
	tb.Helper()
	srv := acomm.NewServer(socketPath(tb), tr)
	srv.Handle("echo", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		return req.Args, nil, nil
	})
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	return srv
}

func setupAcommCall(tb testing.TB) echoClient {
	tr := newAcommTracker(tb, nil)
	dest := newEchoServer(tb, tr).URL()
	ctx := benchContext(tb)
	args := json.RawMessage(echoPayload)
	return echoClient{call: func() error {
		resp, err := tr.Call(ctx, dest, "echo", args)
		if err != nil {
			return err
		}
		return checkResult(resp)
	}}
}

// trackBatch is the number of requests BenchmarkTrack100k tracks at once.
const trackBatch = 100_000

// BenchmarkTrack100k: one op tracks 100,000 requests on a fresh tracker
// (ns/op is the time for all of them). MiB/100k is the live heap that
// tracking them added, measured after a GC, the requests themselves
// excluded (they exist before). Making the requests, and answering them
// and stopping the tracker afterwards, is not timed. Give it a small
// -benchtime count (./run uses TRACK_BENCHTIME).
func BenchmarkTrack100k(b *testing.B) {
	var heap float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tr := newBatchTracker(b)
		reqs := newBatch(b, tr, trackBatch)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for _, req := range reqs {
			if err := tr.TrackRequest(req, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		for _, req := range reqs {
			tr.HandleResponse(&acomm.Response{ID: req.ID})
		}
		tr.Stop()
		runtime.KeepAlive(reqs)
	}
	b.ReportMetric(heap/float64(b.N), "MiB/100k")
}

// newBatchTracker returns a started tracker on a fresh socket; the caller
// stops it.
func newBatchTracker(tb testing.TB) *acomm.Tracker {
	tb.Helper()
	tr, err := acomm.NewTracker(socketPath(tb), nil, time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		tb.Fatal(err)
	}
	return tr
}

// newBatch makes n requests with tr's socket as their hook.
func newBatch(tb testing.TB, tr *acomm.Tracker, n int) []*acomm.Request {
	tb.Helper()
	hook := tr.URL().String()
	reqs := make([]*acomm.Request, n)
	for i := range reqs {
		req, err := acomm.NewRequest("t", hook, nil, nil, nil)
		if err != nil {
			tb.Fatal(err)
		}
		reqs[i] = req
	}
	return reqs
}

// BenchmarkStop times Tracker.Stop:
//
//   - idle: a started tracker that never tracked anything.
//   - after-100k-answers: a tracker that tracked 100,000 requests, all of
//     them answered (with HandleResponse) before Stop.
//
// Each op builds its tracker untimed; give this benchmark a small
// -benchtime count (./run uses TRACK_BENCHTIME).
func BenchmarkStop(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tr := newBatchTracker(b)
			b.StartTimer()
			tr.Stop()
		}
	})
	b.Run("after-100k-answers", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tr := newBatchTracker(b)
			reqs := newBatch(b, tr, trackBatch)
			for _, req := range reqs {
				if err := tr.TrackRequest(req, 0); err != nil {
					b.Fatal(err)
				}
			}
			for _, req := range reqs {
				tr.HandleResponse(&acomm.Response{ID: req.ID})
			}
			b.StartTimer()
			tr.Stop()
		}
	})
}

// streamSource is the stream source of the acomm stream benchmarks: like
// the floor's repeatReader, it yields left bytes of a pre-filled buffer
// without generating anything. acomm copies a source with its own buffer,
// not the caller's, so the way to hand out a buffer untouched is WriteTo,
// which acomm uses when a source has it (Read, used otherwise, fills the
// buffer it is given).
type streamSource struct {
	buf  []byte
	left int64
}

func (s *streamSource) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.left))
	for i := 0; i < n; {
		i += copy(p[i:n], s.buf)
	}
	s.left -= int64(n)
	return n, nil
}

func (s *streamSource) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for s.left > 0 {
		n := int(min(int64(len(s.buf)), s.left))
		k, err := w.Write(s.buf[:n])
		total += int64(k)
		s.left -= int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *streamSource) Close() error { return nil }

// streamPattern is the content of streamSource's buffer.
var streamPattern = func() []byte {
	buf := make([]byte, streamBuf)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	return buf
}()

// benchAcommStream runs one stream of streamBytes per op: NewStreamUnix
// of a streamSource, read with acomm.Stream at the URL that read returns
// into a writer that counts and discards (with Write only, like the
// floor's sink).
func benchAcommStream(b *testing.B, tr *acomm.Tracker, read func(u *url.URL) *url.URL) {
	b.ReportAllocs()
	b.SetBytes(streamBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u, err := tr.NewStreamUnix("", &streamSource{buf: streamPattern, left: streamBytes})
		if err != nil {
			b.Fatal(err)
		}
		var got countingWriter
		if err := acomm.Stream(&got, read(u)); err != nil {
			b.Fatal(err)
		}
		if got.n != streamBytes {
			b.Fatalf("read %d bytes, want %d", got.n, streamBytes)
		}
	}
	b.StopTimer()
}

// benchStreamAcommUnix: NewStreamUnix, read over its unix socket.
func benchStreamAcommUnix(b *testing.B) {
	tr := newAcommTracker(b, nil)
	benchAcommStream(b, tr, func(u *url.URL) *url.URL { return u })
}

// benchStreamAcommHTTPProxy: NewStreamUnix, read through
// ProxyStreamHandler served by an httptest server on loopback TCP.
func benchStreamAcommHTTPProxy(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
	b.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL + "/stream")
	if err != nil {
		b.Fatal(err)
	}
	tr := newAcommTracker(b, base)
	benchAcommStream(b, tr, func(u *url.URL) *url.URL {
		pu, err := tr.ProxyStreamHTTPURL(u)
		if err != nil {
			b.Fatal(err)
		}
		return pu
	})
}

// TestAcommPlumbing checks the acomm stream benchmarks' pieces on little
// data: the source yields what it should, and a stream of each kind
// arrives whole.
func TestAcommPlumbing(t *testing.T) {
	t.Run("stream source", func(t *testing.T) {
		var a, c bytes.Buffer
		if _, err := io.Copy(&a, &streamSource{buf: []byte("abc"), left: 7}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyBuffer(onlyWriter{&c}, struct{ io.Reader }{&streamSource{buf: []byte("abc"), left: 7}}, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		if a.String() != "abcabca" || c.Len() != 7 {
			t.Fatalf("got %q and %q", a.String(), c.String())
		}
	})
	for _, proxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream proxy=%v", proxy), func(t *testing.T) {
			var base *url.URL
			if proxy {
				srv := httptest.NewServer(http.HandlerFunc(acomm.ProxyStreamHandler))
				t.Cleanup(srv.Close)
				base, _ = url.Parse(srv.URL + "/stream")
			}
			tr := newAcommTracker(t, base)
			const size = 3<<20 + 5
			u, err := tr.NewStreamUnix(filepath.Dir(tr.Addr()), &streamSource{buf: streamPattern, left: size})
			if err != nil {
				t.Fatal(err)
			}
			if proxy {
				if u, err = tr.ProxyStreamHTTPURL(u); err != nil {
					t.Fatal(err)
				}
			}
			var got countingWriter
			if err := acomm.Stream(&got, u); err != nil {
				t.Fatal(err)
			}
			if got.n != size {
				t.Fatalf("read %d bytes, want %d", got.n, size)
			}
		})
	}
}

// BenchmarkCallInFlight is acomm-call (Tracker.Call to an acomm.Server,
// one tracker, one link) with 2, 4, 8 and 16 calls in flight, between
// BenchmarkEcho's seq (1) and par64 (64): a link's senders that find two
// other frames in flight or more yield once before they write, so that the
// senders runnable then join their write (see link.post), and this shows
// what that costs or pays at low concurrency. ns/op is wall time per call.
func BenchmarkCallInFlight(b *testing.B) {
	sys := echoSystem{name: "acomm-call", setup: setupAcommCall}
	for _, n := range []int{2, 4, 8, 16} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchEchoPar(b, sys, n) })
	}
}
