package acomm

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// The codec's share of a Call: the request a tracker sends to a Server
// (answer in the ack asked), and the acknowledgement carrying the answer.

func benchCallRequest(b *testing.B) *Request {
	hook, err := url.Parse("unix:///tmp/acomm-bench/tracker.sock")
	if err != nil {
		b.Fatal(err)
	}
	args := json.RawMessage(`{"id":"7f9c2ba4-e88f-4d6b-9a1c-3e0b5d2f8a61","task":"echo","args":{"msg":"hello, acomm bench!!!!!"}}`)
	return &Request{ID: newID(), Task: "echo", ResponseHook: hook, Args: &args, deadline: time.Now().Add(time.Minute)}
}

func benchAck(req *Request) *ackWithAnswer {
	return &ackWithAnswer{id: req.ID, answer: &Response{ID: req.ID, Result: req.Args}}
}

func BenchmarkEncodeRequest(b *testing.B) {
	req := benchCallRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appendFrame(nil, answerInAck{req}, false, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeRequestURLObject encodes the request a tracker sends to a
// peer it does not know yet: its hook in the original's URL object form.
func BenchmarkEncodeRequestURLObject(b *testing.B) {
	req := benchCallRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appendFrame(nil, req, true, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	frame, err := appendFrame(nil, answerInAck{benchCallRequest(b)}, false, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var req Request
		if err := decodeRequest(frame[frameHeaderSize:], &req); err != nil || !req.answerInAck {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequestFresh decodes, each on a goroutine of its own as
// a service written for the original acomm does (a goroutine per
// connection, then UnmarshalConnData), the request a tracker sends to a
// peer it does not know yet, whose hook is in the original's URL object
// form: the stack such a goroutine grows, by copying, is the decoding's
// depth (see textIn). string-hook is the same request with the string
// form. grown-first has growStack called first, as UnmarshalConnData and
// serveFrames do; as-it-comes leaves the stack to grow where the decoding
// overruns it.
func BenchmarkDecodeRequestFresh(b *testing.B) {
	for _, legacy := range []bool{true, false} {
		for _, grow := range []bool{true, false} {
			name := map[bool]string{true: "url-object", false: "string-hook"}[legacy] +
				map[bool]string{true: "/grown-first", false: "/as-it-comes"}[grow]
			b.Run(name, func(b *testing.B) {
				body, err := appendRequest(nil, benchCallRequest(b), legacy)
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan error)
				b.ReportAllocs()
				for b.Loop() {
					go func() {
						if grow {
							growStack()
						}
						var req Request
						done <- decodeRequest(body, &req)
					}()
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkEncodeAckWithAnswer(b *testing.B) {
	ack := benchAck(benchCallRequest(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := appendFrame(nil, ack, false, 0, serverAckFeatures); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAckWithAnswer(b *testing.B) {
	frame, err := appendFrame(nil, benchAck(benchCallRequest(b)), false, 0, serverAckFeatures)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, answer, err := decodeAck(frame[frameHeaderSize:], false, true); err != nil || answer == nil {
			b.Fatal(err)
		}
	}
}
