package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/acommgo/acomm"
)

// BenchmarkStage times the stages of a request one at a time, so that a
// regression in one shows there and not only in the end-to-end figures
// (acomm-call, the seed cycles). bench/ sees only acomm's exported API,
// so each stage is the nearest thing to it that the API offers; the root
// package's own micro-benchmarks (codec_bench_test.go and others) go
// further inside.
//
//   - encode: the two messages of a Call, its request (task "echo", a
//     response hook, echoPayload as args) and its response (echoPayload
//     as result), encoded by their MarshalJSON, the codec that frames
//     use. Called directly, not through json.Marshal, which would add
//     its own check and copy of the output that acomm's frames never pay.
//   - decode: the same two messages decoded by UnmarshalJSON into fresh
//     values, as a receiver decodes each frame.
//   - link-roundtrip: one acknowledged frame on a kept link: SendContext
//     of a small response (an id, no result) to a tracker's socket, which
//     acknowledges it and drops it (nothing is tracked under that id; the
//     drop is counted and logged at Debug level). It is the client's link
//     (encode, write, read and match the ack) and acomm's receiver (read,
//     decode, acknowledge), without any task or tracking.
//   - server-dispatch: SendContext of a request (made by NewRequest, no
//     args) to an acomm.Server whose task returns at once, until the
//     response reaches its hook. The op ends there, not at the request's
//     acknowledgement: a Server acknowledges a sent request before it
//     dispatches it, so timing to the ack would leave the dispatch out
//     (or let it spill into the next op). The hook is a bare receiver of
//     this file (stageHook) that decodes the response and acknowledges it
//     as acomm's receivers do, listing "pipeline" so the Server keeps its
//     link to it. So an op is two acknowledged frames, each as
//     link-roundtrip, plus what the Server does between them (decode,
//     validate, start the handler, build and encode the response):
//     server-dispatch − 2 × link-roundtrip is the dispatch.
//
// Each runs in one goroutine, one op at a time, after one untimed op.
func BenchmarkStage(b *testing.B) {
	for _, st := range stages {
		b.Run(st.name, func(b *testing.B) {
			b.ReportAllocs()
			op := st.setup(b)
			if err := op(); err != nil { // warm up: connect, fill pools
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := op(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}

// stage is one sub-benchmark of BenchmarkStage: setup starts what it needs
// (stopped at cleanup) and returns one op.
type stage struct {
	name  string
	setup func(tb testing.TB) func() error
}

var stages = []stage{
	{"encode", setupStageEncode},
	{"decode", setupStageDecode},
	{"link-roundtrip", setupStageLink},
	{"server-dispatch", setupStageDispatch},
}

// stageMessages returns a Call's request and response as the encode and
// decode stages use them.
func stageMessages(tb testing.TB) (*acomm.Request, *acomm.Response) {
	tb.Helper()
	args := json.RawMessage(echoPayload)
	req, err := acomm.NewRequest("echo", "unix:///tmp/acomm-bench/tracker.sock", args, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := acomm.NewResponse(req, args, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return req, resp
}

func setupStageEncode(tb testing.TB) func() error {
	req, resp := stageMessages(tb)
	return func() error {
		if _, err := req.MarshalJSON(); err != nil {
			return err
		}
		_, err := resp.MarshalJSON()
		return err
	}
}

func setupStageDecode(tb testing.TB) func() error {
	req, resp := stageMessages(tb)
	reqJSON, err := req.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	respJSON, err := resp.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	return func() error {
		var (
			gotReq  acomm.Request
			gotResp acomm.Response
		)
		if err := gotReq.UnmarshalJSON(reqJSON); err != nil {
			return err
		}
		if err := gotResp.UnmarshalJSON(respJSON); err != nil {
			return err
		}
		if gotReq.ID != req.ID || gotResp.ID != req.ID || gotResp.Result == nil {
			return fmt.Errorf("decoded request %q and response %q, want id %q with a result", gotReq.ID, gotResp.ID, req.ID)
		}
		return nil
	}
}

func setupStageLink(tb testing.TB) func() error {
	tr := newAcommTracker(tb, nil)
	dest := tr.URL()
	ctx := benchContext(tb)
	resp := &acomm.Response{ID: "stage-link-roundtrip"}
	return func() error { return acomm.SendContext(ctx, dest, resp) }
}

func setupStageDispatch(tb testing.TB) func() error {
	hook := newStageHook(tb)
	srv := acomm.NewServer(socketPath(tb), nil)
	srv.Handle("noop", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		return nil, nil, nil
	})
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		srv.Stop()
		acomm.CloseIdleConnections() // the links to the server and to the hook
	})
	dest, hookURL := srv.URL(), hook.url.String()
	ctx := benchContext(tb)
	return func() error {
		req, err := acomm.NewRequest("noop", hookURL, nil, nil, nil)
		if err != nil {
			return err
		}
		if err := acomm.SendContext(ctx, dest, req); err != nil {
			return err
		}
		got := <-hook.got
		if got.err != nil {
			return got.err
		}
		if got.id != req.ID {
			return fmt.Errorf("response for %q, want %q", got.id, req.ID)
		}
		return nil
	}
}

// stageHook is a bare response hook: it reads response frames, decodes
// each with Response.UnmarshalJSON, acknowledges it in the form of the
// README's wire format, listing the features "pipeline" and "string-urls"
// (so that senders keep one link to it and write URLs as strings), and
// reports its id, or the error it carried, on got.
type stageHook struct {
	url *url.URL
	got chan stageAnswer
}

type stageAnswer struct {
	id  string
	err error
}

// newStageHook starts a stageHook on a fresh socket, stopped at cleanup.
func newStageHook(tb testing.TB) *stageHook {
	tb.Helper()
	l, path := listenUnix(tb)
	h := &stageHook{url: &url.URL{Scheme: "unix", Path: path}, got: make(chan stageAnswer, 1)}
	serveConns(tb, l, h.serve)
	return h
}

func (h *stageHook) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 4096)
	var body, ack []byte
	for {
		var err error
		if body, err = readFrame(r, body); err != nil {
			return
		}
		var resp acomm.Response
		if err := resp.UnmarshalJSON(body); err != nil {
			h.got <- stageAnswer{err: fmt.Errorf("hook: %w", err)}
			return
		}
		ack = appendFrame(ack[:0], appendStageAck(nil, resp.ID))
		if _, err := c.Write(ack); err != nil {
			return
		}
		h.got <- stageAnswer{id: resp.ID, err: resp.Error}
	}
}

// appendStageAck appends the acknowledgement of the frame with id id, as
// acomm's receivers write it. id comes from NewRequest (hex and dashes),
// so Go's quoting is JSON's.
func appendStageAck(dst []byte, id string) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendQuote(dst, id)
	return append(dst, `,"result":null,"stream_url":null,"error":"","features":["pipeline","string-urls"]}`...)
}

// readFrame reads one raw frame from r into buf's memory and returns its
// body.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > maxFrame {
		return nil, errFrameTooBig
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// TestStages runs each stage of BenchmarkStage a few times.
func TestStages(t *testing.T) {
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			op := st.setup(t)
			for range 5 {
				if err := op(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
