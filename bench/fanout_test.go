package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/acommgo/acomm"
)

// fanoutServices is the width of BenchmarkMultiRequestFanout10.
const fanoutServices = 10

// BenchmarkMultiRequestFanout10 is one fan-out to 10 services through one
// tracker, as a user writes it: a fresh MultiRequest, a NewRequest and
// AddRequest per service, the sends, then Responses, which returns once
// all 10 answers have reached the tracker's socket; every result is
// checked. ns/op is the time of the whole fan-out, after a few warm-up
// fan-outs. The sub-benchmarks differ in the services and the sends:
//
//   - server-send-all: 10 acomm.Servers (newEchoServer), sent to with
//     MultiRequest.SendAll, which has several sends under way at once.
//   - oneshot-send-all: 10 original-style services (oneShotService: one
//     frame per connection), sent to with SendAll.
//   - oneshot-send-each: the same services, sent to with acomm.Send of
//     each request in turn, as with the seed API (each send waits for its
//     acknowledgement before the next begins).
//   - floor-dial-10: the floor of the one-shot fan-outs, without acomm:
//     ten floor-dial round trips run at once (a goroutine each), each
//     dialing one of 10 raw echo servers, writing echoPayload as a raw
//     frame, reading the echo and closing; ns/op is the time until all
//     ten are done.
//   - floor-kept-10: the floor of the fan-out to Servers, without acomm:
//     a fan-out to a Server is, per service, one acknowledged frame on a
//     kept connection (the request; a Server answers a request of a
//     MultiRequest whose hook is the tracker's own in its acknowledgement),
//     all services at once. Here ten goroutines (one per raw echo server,
//     each on a connection kept open) each do one floor-kept round trip;
//     ns/op is the time until all ten are done.
//   - floor-pipelined-10: floor-kept-10 shaped as a SendAll that writes
//     every frame before it waits for any acknowledgement: one goroutine
//     writes echoPayload as a raw frame on each of the ten kept
//     connections, then reads the ten echoes. The report takes the lower
//     of the two as the Server fan-out's floor.
//   - floor-dial-kept-10: the floor of the fan-outs to one-shot services,
//     without acomm: per service, a frame on a connection of its own (the
//     request, acknowledged on it), then one on a kept connection (its
//     response to the tracker's hook), all services at once. Here ten
//     goroutines each do a floor-dial round trip to one raw echo server,
//     then a floor-kept round trip on a connection kept open to another.
//
// ./run gives it its own -benchtime (FANOUT_BENCHTIME): an op is ten round
// trips or more.
func BenchmarkMultiRequestFanout10(b *testing.B) {
	for _, f := range fanouts {
		b.Run(f.name, func(b *testing.B) { benchFanout(b, f) })
	}
}

// fanoutKind is one sub-benchmark of BenchmarkMultiRequestFanout10.
type fanoutKind struct {
	name string
	// setup starts the services (stopped at cleanup) and returns one
	// checked fan-out to them.
	setup func(tb testing.TB) func() error
}

var fanouts = []fanoutKind{
	{"server-send-all", acommFanout(true, serverDest)},
	{"oneshot-send-all", acommFanout(true, oneShotDest)},
	{"oneshot-send-each", acommFanout(false, oneShotDest)},
	{"floor-dial-10", setupFloorDialFanout},
	{"floor-kept-10", setupFloorKeptFanout},
	{"floor-dial-kept-10", setupFloorDialKeptFanout},
	{"floor-pipelined-10", setupFloorPipelinedFanout},
}

// acommFanout is the setup of a MultiRequest fan-out: with SendAll if
// sendAll, else with acomm.Send of each request in turn, to services that
// newService starts.
func acommFanout(sendAll bool, newService func(tb testing.TB, tr *acomm.Tracker) *url.URL) func(tb testing.TB) func() error {
	return func(tb testing.TB) func() error { return newFanout(tb, sendAll, newService) }
}

func serverDest(tb testing.TB, tr *acomm.Tracker) *url.URL { return newEchoServer(tb, tr).URL() }

func oneShotDest(tb testing.TB, _ *acomm.Tracker) *url.URL { return newOneShotService(tb).URL() }

func benchFanout(b *testing.B, f fanoutKind) {
	b.ReportAllocs()
	fanout := f.setup(b)
	for range 3 { // warm up: connect, fill pools
		if err := fanout(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := fanout(); err != nil {
			b.Fatal(err)
		}
	}
}

// newFanout starts a tracker and fanoutServices services made by
// newService, and returns one checked fan-out to them: with SendAll if
// sendAll, else with acomm.Send of each request in turn.
func newFanout(tb testing.TB, sendAll bool, newService func(tb testing.TB, tr *acomm.Tracker) *url.URL) func() error {
	tr := newAcommTracker(tb, nil)
	dests := make([]*url.URL, fanoutServices)
	names := make([]string, fanoutServices)
	byName := make(map[string]*url.URL, fanoutServices)
	for i := range dests {
		dests[i] = newService(tb, tr)
		names[i] = fmt.Sprintf("s%d", i)
		byName[names[i]] = dests[i]
	}
	hook := tr.URL().String()
	args := json.RawMessage(echoPayload)
	return func() error {
		multi := acomm.NewMultiRequest(tr, 0)
		for i, dest := range dests {
			req, err := acomm.NewRequest("echo", hook, args, nil, nil)
			if err != nil {
				return err
			}
			if err := multi.AddRequest(names[i], req); err != nil {
				return err
			}
			if sendAll {
				continue
			}
			if err := acomm.Send(dest, req); err != nil {
				multi.RemoveRequest(req)
				return err
			}
		}
		if sendAll {
			if err := multi.SendAll(byName); err != nil {
				return err
			}
		}
		resps := multi.Responses()
		if len(resps) != fanoutServices {
			return fmt.Errorf("%d responses, want %d", len(resps), fanoutServices)
		}
		for _, resp := range resps {
			if err := checkResult(resp); err != nil {
				return err
			}
		}
		return nil
	}
}

// setupFloorDialFanout starts fanoutServices raw echo servers and returns
// one floor-dial-10 fan-out to them: a floor-dial round trip to each, all
// at once.
func setupFloorDialFanout(tb testing.TB) func() error {
	paths := make([]string, fanoutServices)
	for i := range paths {
		var l *net.UnixListener
		l, paths[i] = listenUnix(tb)
		serveConns(tb, l, serveFrameEcho)
	}
	var d net.Dialer
	return func() error {
		return allAtOnce(func(i int) error { return dialRoundTrip(&d, paths[i]) })
	}
}

// TestFanout checks each fan-out of the benchmark a few times.
func TestFanout(t *testing.T) {
	for _, f := range fanouts {
		t.Run(f.name, func(t *testing.T) {
			fanout := f.setup(t)
			for range 3 {
				if err := fanout(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// setupFloorKeptFanout starts fanoutServices raw echo servers, keeps a
// connection to each, and returns one floor-kept-10 fan-out to them: a
// floor-kept round trip on each connection, all at once.
func setupFloorKeptFanout(tb testing.TB) func() error {
	clients := keptEchoClients(tb)
	return func() error {
		return allAtOnce(func(i int) error { return clients[i].roundTrip() })
	}
}

// keptEchoClients starts fanoutServices raw echo servers (stopped at
// cleanup) and returns a client on a connection kept open to each.
func keptEchoClients(tb testing.TB) []*frameClient {
	clients := make([]*frameClient, fanoutServices)
	for i := range clients {
		l, path := listenUnix(tb)
		serveConns(tb, l, serveFrameEcho)
		clients[i] = newFrameClient(dialUnix(tb, path))
	}
	return clients
}

// setupFloorPipelinedFanout starts fanoutServices raw echo servers, keeps
// a connection to each, and returns one floor-pipelined-10 fan-out to
// them: every frame written, then every echo read, on one goroutine.
func setupFloorPipelinedFanout(tb testing.TB) func() error {
	clients := keptEchoClients(tb)
	return func() error {
		for _, c := range clients {
			if err := c.send(); err != nil {
				return err
			}
		}
		for _, c := range clients {
			if err := c.receive(); err != nil {
				return err
			}
		}
		return nil
	}
}

// setupFloorDialKeptFanout starts fanoutServices raw echo servers to dial
// and as many to keep a connection to, and returns one floor-dial-kept-10
// fan-out: a floor-dial round trip then a floor-kept one, for each of the
// ten at once.
func setupFloorDialKeptFanout(tb testing.TB) func() error {
	paths := make([]string, fanoutServices)
	kept := make([]*frameClient, fanoutServices)
	for i := range paths {
		var l *net.UnixListener
		l, paths[i] = listenUnix(tb)
		serveConns(tb, l, serveFrameEcho)
		l, path := listenUnix(tb)
		serveConns(tb, l, serveFrameEcho)
		kept[i] = newFrameClient(dialUnix(tb, path))
	}
	var d net.Dialer
	return func() error {
		return allAtOnce(func(i int) error {
			if err := dialRoundTrip(&d, paths[i]); err != nil {
				return err
			}
			return kept[i].roundTrip()
		})
	}
}

// allAtOnce runs f(0) to f(fanoutServices-1), each on a goroutine of its
// own, all at once, and returns once all are done, with their errors.
func allAtOnce(f func(i int) error) error {
	errs := make([]error, fanoutServices)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
