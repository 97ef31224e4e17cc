package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoSystem is one row of BenchmarkEcho: a way to send echoPayload to a
// server on a unix socket and get it back.
//
// To add a system, append to echoSystems from an init function in its own
// file, e.g. in acomm_test.go:
//
//	func init() {
//		echoSystems = append(echoSystems, echoSystem{
//			name: "acomm-call",
//			setup: func(tb testing.TB) echoClient {
//				// start a server on socketPath(tb) / listenUnix(tb), register
//				// its shutdown with tb.Cleanup, connect a client (also closed
//				// in a tb.Cleanup) and return how to do one round trip.
//				return echoClient{call: func() error { ... }}
//			},
//		})
//	}
//
// Each system then runs as BenchmarkEcho/<name>/seq and
// BenchmarkEcho/<name>/par64, and TestEchoSystems checks that it echoes
// correctly and leaves no goroutine behind. Rows run in registration order,
// which is init order: the files' names in lexical order, then the order
// within each file. cmd/report orders the table by its own list, so that
// order does not matter for BENCHMARKS.md.
type echoSystem struct {
	name string
	// setup is called once per benchmark run (so once for seq and once
	// for par64, and again on each count and each b.N probe), before the
	// timer starts. It must register with tb.Cleanup everything it starts
	// (servers, listeners, connections, goroutines) and wait for it to
	// stop there.
	setup func(tb testing.TB) echoClient
}

// echoClient is what a system's setup hands back.
type echoClient struct {
	// call does one round trip of echoPayload and checks the reply. seq
	// calls it from one goroutine, b.N times in a row.
	call func() error
	// newWorker, if set, makes the client state for one of the par64
	// goroutines (for instance its own connection, for a protocol that
	// cannot multiplex) and returns that goroutine's call. It is called
	// parEchoInFlight times from the benchmark goroutine before the timer
	// starts; resources go in tb.Cleanup as for setup. If newWorker is
	// nil, all par64 goroutines share call, which must then be safe for
	// concurrent use (one multiplexed client, as an RPC library would
	// normally be used).
	newWorker func() func() error
}

// echoSystems is the BenchmarkEcho table; see echoSystem.
var echoSystems []echoSystem

// parEchoInFlight is the number of round trips in flight in the par64
// benchmarks: that many goroutines share b.N calls.
const parEchoInFlight = 64

// BenchmarkEcho runs every registered echoSystem sequentially (seq: one
// round trip at a time, ns/op is the latency) and with 64 round trips in
// flight (par64: 64 goroutines share b.N calls, ns/op is wall time per call
// and ops/s the throughput). B/op and allocs/op count client and server
// together, since both run in this process.
func BenchmarkEcho(b *testing.B) {
	for _, sys := range echoSystems {
		b.Run(sys.name, func(b *testing.B) {
			b.Run("seq", func(b *testing.B) { benchEchoSeq(b, sys) })
			b.Run("par64", func(b *testing.B) { benchEchoPar(b, sys, parEchoInFlight) })
		})
	}
}

func benchEchoSeq(b *testing.B, sys echoSystem) {
	b.ReportAllocs()
	c := sys.setup(b)
	if err := c.call(); err != nil { // warm up: connect, fill pools
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.call(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

func benchEchoPar(b *testing.B, sys echoSystem, inFlight int) {
	b.ReportAllocs()
	c := sys.setup(b)
	calls := make([]func() error, inFlight)
	for i := range calls {
		calls[i] = c.call
		if c.newWorker != nil {
			calls[i] = c.newWorker()
		}
		if err := calls[i](); err != nil { // warm up each worker
			b.Fatal(err)
		}
	}
	ops, errs := runShared(calls, b.N, b.ResetTimer)
	b.StopTimer()
	for _, err := range errs {
		b.Fatal(err)
	}
	if ops != b.N {
		b.Fatalf("did %d calls, want %d", ops, b.N)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}

// runShared starts one goroutine per call, then calls start and lets the
// goroutines share n calls between them. It returns once all have
// stopped, with the number of calls that succeeded and the errors; after
// the first error every goroutine stops.
func runShared(calls []func() error, n int, start func()) (int, []error) {
	var (
		next, done atomic.Int64
		failed     atomic.Bool
		mu         sync.Mutex
		errs       []error
		wg         sync.WaitGroup
		gate       = make(chan struct{})
	)
	for _, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			for next.Add(1) <= int64(n) && !failed.Load() {
				if err := call(); err != nil {
					failed.Store(true)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	start()
	close(gate)
	wg.Wait()
	return int(done.Load()), errs
}

// TestEchoPayload pins the payload size the report talks about.
func TestEchoPayload(t *testing.T) {
	if len(echoPayload) != 100 {
		t.Fatalf("echo payload is %d bytes, want 100", len(echoPayload))
	}
}

// TestEchoSystems checks every registered system: a few sequential and
// concurrent round trips succeed, and once the cleanups have run no
// goroutine is left behind.
func TestEchoSystems(t *testing.T) {
	for _, sys := range echoSystems {
		t.Run(sys.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			t.Run("run", func(t *testing.T) {
				c := sys.setup(t)
				for i := 0; i < 10; i++ {
					if err := c.call(); err != nil {
						t.Fatal(err)
					}
				}
				calls := make([]func() error, 8)
				for i := range calls {
					calls[i] = c.call
					if c.newWorker != nil {
						calls[i] = c.newWorker()
					}
				}
				if n, errs := runShared(calls, 200, func() {}); len(errs) > 0 || n != 200 {
					t.Fatalf("did %d of 200 concurrent calls, errors: %v", n, errs)
				}
			})
			// Servers may take a moment to notice closed connections.
			deadline := time.Now().Add(10 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before, %d after cleanup:\n%s", before, n, buf)
			}
		})
	}
}
