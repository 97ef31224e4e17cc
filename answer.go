package acomm

import (
	"net/url"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Answer in the acknowledgement (README.md, "Wire format"): a Server lists
// featureAnswerInAck in its acknowledgements. To such a peer, Tracker.Call
// adds "answer_in_ack": true to its request, whose response hook is the
// tracker itself. When the Server has no other frame to read on the
// connection and the handler returns within answerBudget, the response
// goes in the request's acknowledgement, as its "answer" member, instead
// of to the hook: one frame and its acknowledgement fewer per call.
// Otherwise the acknowledgement goes out plainly and the response to the
// hook, as for any request. Whoever of the handler and the waiting
// connection moves the job out of ackWaiting decides which: the response
// goes one way, exactly once.

// featureAnswerInAck is the feature of receivers that answer in the ack.
const featureAnswerInAck = "answer-in-ack"

// answerBudget is how long a connection waits for a handler's response
// to put in the acknowledgement.
const answerBudget = 100 * time.Microsecond

// answerTimers holds stopped timers for answerInAck's waits.
var answerTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// Job states for an answer that may go in the acknowledgement.
const (
	ackWaiting  int32 = iota
	ackAnswered       // the handler handed its response to the ack
	ackByHook         // the ack went without: the response goes to the hook
)

// answerInAck is a request sent with "answer_in_ack": true.
type answerInAck struct{ *Request }

// ackWithAnswer is an acknowledgement carrying the response to its frame.
type ackWithAnswer struct {
	id     string
	answer *Response
}

// answerInAck starts the handler of req, a request whose sender takes the
// answer in the acknowledgement. With wait, it returns the response when
// the handler returns within answerBudget; otherwise (or without wait, once
// the acknowledgement is written) the response goes to the hook.
func (s *Server) answerInAck(req *Request, wait bool) *Response {
	if !wait {
		s.dispatch(req)
		return nil
	}
	j := s.start(req, true)
	if j == nil {
		return nil
	}
	t := answerTimers.Get().(*time.Timer)
	t.Reset(answerBudget)
	defer func() { t.Stop(); answerTimers.Put(t) }() // (no stale tick after Stop: Go 1.23)
	select {
	case resp := <-j.inAck:
		return resp
	case <-t.C:
	}
	if j.ackState.CompareAndSwap(ackWaiting, ackByHook) {
		return nil
	}
	return <-j.inAck // the handler won: it is handing its response over
}

// takeAnswer hands a response found in the acknowledgement of the
// request id, sent by Call, to the tracked request, as if it had come to
// the tracker's socket.
func (t *Tracker) takeAnswer(id string) func(*Response) {
	return func(resp *Response) {
		if resp.ID != id || resp.validate() != nil {
			t.stats.droppedUnknown.Add(1)
			return
		}
		t.handleReceived(resp)
	}
}

// isOwnHook reports whether u is the tracker's socket, so that a response
// sent to u may as well come in an acknowledgement.
func (t *Tracker) isOwnHook(u *url.URL) bool {
	return u != nil && u.Scheme == "unix" && u.Host == "" && u.Opaque == "" && u.RawQuery == "" && u.Path == t.socketPath
}

// decodeAnswer decodes the answer member of an acknowledgement.
func decodeAnswer(v jsontext.Value) (*Response, error) {
	resp := &Response{}
	if _, err := decodeResponse(v, resp); err != nil {
		return nil, err
	}
	return resp, nil
}
