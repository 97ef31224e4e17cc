package acomm_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/acommgo/acomm"
)

// BenchmarkSeedCycle measures the seed-style round trip: TrackRequest, Send
// to a UnixListener service, the service's Respond, the handler.
func BenchmarkSeedCycle(b *testing.B) {
	tr := newTracker(b, nil, time.Minute)
	svc := newService(b, echo)
	done := make(chan struct{}, 1)
	h := func(*acomm.Request, *acomm.Response) { done <- struct{}{} }
	hook := tr.URL().String()
	payload := map[string]string{"msg": "a payload of about one hundred bytes, give or take, for the echo"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, err := acomm.NewRequest("echo", hook, payload, h, h)
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.TrackRequest(req, 0); err != nil {
			b.Fatal(err)
		}
		if err := acomm.Send(svc.ul.URL(), req); err != nil {
			b.Fatal(err)
		}
		<-done
	}
}

// BenchmarkTrackRequest measures tracking (and removing) a request.
func BenchmarkTrackRequest(b *testing.B) {
	tr := newTracker(b, nil, time.Minute)
	reqs := make([]*acomm.Request, b.N)
	for i := range reqs {
		reqs[i], _ = acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, req := range reqs {
		if err := tr.TrackRequest(req, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, req := range reqs {
		tr.RemoveRequest(req)
	}
}

// BenchmarkTrack100k measures the time and heap of tracking 100,000
// requests, and Stop once they are all answered.
func BenchmarkTrack100k(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tr, err := acomm.NewTracker(sockPath(b, "t.sock"), nil, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.Start(); err != nil {
			b.Fatal(err)
		}
		reqs := make([]*acomm.Request, n)
		for j := range reqs {
			reqs[j], _ = acomm.NewRequest("t", tr.URL().String(), nil, nil, nil)
		}
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
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-tracked")
		for _, req := range reqs {
			tr.HandleResponse(&acomm.Response{ID: req.ID})
		}
		start := time.Now()
		tr.Stop()
		b.ReportMetric(float64(time.Since(start).Microseconds()), "µs-stop-after-answers")
	}
}

// BenchmarkStopIdle measures Stop on an idle tracker.
func BenchmarkStopIdle(b *testing.B) {
	path := sockPath(b, "t.sock")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tr, _ := acomm.NewTracker(path, nil, 0)
		if err := tr.Start(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tr.Stop()
	}
}
