package acomm_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
)

// fanoutNames are the request names of BenchmarkMultiRequestFanout10.
var fanoutNames = [...]string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"}

// BenchmarkMultiRequestFanout10 measures one fan-out as a user writes it: a
// request to each of 10 services (UnixListener services answering with
// Respond) added to a fresh MultiRequest, the sends, then Responses, which
// returns once all 10 have answered. The sub-benchmarks differ only in the
// sends: send-each sends the requests one after the other with Send, as
// with the seed API; send-all sends them with SendAll, several at once.
func BenchmarkMultiRequestFanout10(b *testing.B) {
	b.Run("send-each", func(b *testing.B) { benchFanout10(b, false) })
	b.Run("send-all", func(b *testing.B) { benchFanout10(b, true) })
}

func benchFanout10(b *testing.B, sendAll bool) {
	tr := newTracker(b, nil, time.Minute)
	svcs := make([]*service, len(fanoutNames))
	dests := make(map[string]*url.URL, len(fanoutNames))
	for i := range svcs {
		svcs[i] = newService(b, echo)
		dests[fanoutNames[i]] = svcs[i].ul.URL()
	}
	hook := tr.URL().String()
	payload := map[string]string{"msg": "a payload of about one hundred bytes, give or take, for the echo"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		multi := acomm.NewMultiRequest(tr, 0)
		for j, svc := range svcs {
			req, err := acomm.NewRequest("echo", hook, payload, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := multi.AddRequest(fanoutNames[j], req); err != nil {
				b.Fatal(err)
			}
			if sendAll {
				continue
			}
			if err := acomm.Send(svc.ul.URL(), req); err != nil {
				multi.RemoveRequest(req)
				b.Fatal(err)
			}
		}
		if sendAll {
			if err := multi.SendAll(dests); err != nil {
				b.Fatal(err)
			}
		}
		resps := multi.Responses()
		if len(resps) != len(svcs) {
			b.Fatalf("%d responses, want %d", len(resps), len(svcs))
		}
		for name, resp := range resps {
			if resp.Error != nil {
				b.Fatalf("%s: %v", name, resp.Error)
			}
		}
	}
}
