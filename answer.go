package acomm

import (
	"net/url"
	"sync"
	"time"
)

// Answer in the acknowledgement (README.md, "Wire format"): a Server lists
// featureAnswerInAck in its acknowledgements. To such a peer, Tracker.Call
// adds "answer_in_ack": true to its request, whose response hook is the
// tracker itself. The Server starts the handler at once, and when it
// returns within answerBudget (shared by the frames read together), the
// response goes in the request's acknowledgement, as its "answer" member,
// instead of to the hook: one frame and its acknowledgement fewer per call.
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
// answer in the acknowledgement, and returns the func that waits for its
// response until a deadline (nil when it was answered without a handler).
// Past the deadline, the response goes to the hook; so does one whose
// acknowledgement could not be written (the tracker drops it if the
// acknowledgement reached it after all).
func (s *Server) answerInAck(req *Request) answerAwait {
	j := s.start(req, true)
	if j == nil {
		return nil
	}
	return func(deadline time.Time) (*Response, func(bool)) {
		resp := j.awaitAnswer(deadline)
		if resp == nil {
			return nil, nil
		}
		return resp, func(ok bool) {
			if ok {
				s.stats.answeredInAck.Add(1)
				return
			}
			s.bg.Add(1) // the connection's goroutine holds a count: never from zero
			go func() {
				defer s.bg.Done()
				s.respond(req, resp)
			}()
		}
	}
}

// awaitAnswer returns the job's response if its handler returns by
// deadline; otherwise nil, and the response goes to the hook.
func (j *job) awaitAnswer(deadline time.Time) *Response {
	select {
	case resp := <-j.inAck:
		return resp
	default:
	}
	if d := time.Until(deadline); d > 0 {
		t := answerTimers.Get().(*time.Timer)
		t.Reset(d)
		defer func() { t.Stop(); answerTimers.Put(t) }() // (no stale tick after Stop: Go 1.23)
		select {
		case resp := <-j.inAck:
			return resp
		case <-t.C:
		}
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
