package acomm

import (
	"net/url"
	"time"
)

// Answer in the acknowledgement (README.md, "Wire format"): a Server lists
// featureAnswerInAck in its acknowledgements. To such a peer, Tracker.Call
// adds "answer_in_ack": true to its request, whose response hook is the
// tracker itself (as do the sends of requests of a MultiRequest, or
// tracked with TrackRequest, whose hook is the tracker's own socket). The Server starts the handler at once, and when it
// returns within answerBudget, the response goes in the request's
// acknowledgement, as its "answer" member, instead of to the hook: one
// frame and its acknowledgement fewer per call. The handler's goroutine
// writes it (and the acknowledgements behind it); the connection's reader
// reads on meanwhile. Otherwise the acknowledgement goes out plainly and
// the response to the hook, as for any request. Whoever of the handler
// and the budget's timer moves the job out of ackWaiting decides which:
// the response goes one way, exactly once.

// featureAnswerInAck is the feature of receivers that answer in the ack.
const featureAnswerInAck = "answer-in-ack"

// answerBudget is how long an acknowledgement (and those after it on its
// connection) waits for a handler's response to carry. A handler that
// returns at once may still wait behind many others for a CPU: under
// load (64 calls in flight on 2 CPUs), 100 µs let 27% of answers miss
// their acknowledgement and take the longer way; 1 ms, 0.5%.
const answerBudget = time.Millisecond

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
// answer in the acknowledgement, ack, which gets the response if the
// handler returns within answerBudget (the job is told if not: see
// ackBudget); otherwise nothing (also when req was answered without a
// handler), and the response goes to the hook. So does one whose
// acknowledgement could not be written (the tracker drops it if the
// acknowledgement reached it after all).
func (s *Server) answerInAck(req *Request, ack ackRef) ackBudget {
	j := s.start(req, &ack)
	if j == nil {
		ack.fill(nil, nil)
		return nil
	}
	return j
}

// budgetPassed reports whether the acknowledgement goes without the
// answer (the response to the hook): the handler has not answered in it.
func (j *job) budgetPassed() bool {
	return j.ackState.CompareAndSwap(ackWaiting, ackByHook)
}

// takeAck reports whether the handler's response goes in the
// acknowledgement: it may, and the handler is in time. fillAck puts it
// there.
func (j *job) takeAck() bool {
	return j.ack.s != nil && j.ackState.CompareAndSwap(ackWaiting, ackAnswered)
}

// fillAck puts resp in the acknowledgement (see takeAck).
func (j *job) fillAck(resp *Response) {
	j.resp = resp
	j.ack.fill(resp, j)
}

// written is told whether the acknowledgement carrying the job's response
// went out; if not, the response goes to the hook.
func (j *job) written(ok bool) {
	s := j.srv
	if ok {
		s.stats.answeredInAck.Add(1)
		return
	}
	s.bg.Add(1) // the connection's goroutine holds a count: never from zero
	go func() {
		defer s.bg.Done()
		s.respond(j.req, j.resp)
	}()
}

// takeAnswer hands a response found in the acknowledgement of the
// request id, sent by Call, to the tracked request, as if it had come to
// the tracker's socket. (Requests take it as answerTaker, one method value
// made at NewTracker, not a closure per request.)
func (t *Tracker) takeAnswer(id string, resp *Response) {
	if resp.ID != id || resp.validate() != nil {
		t.stats.droppedUnknown.Add(1)
		return
	}
	t.handleReceived(resp)
}

// takeAnswersInAck has req ask for its answer in the acknowledgement, to
// be taken by t, if its response hook is t's socket (Call's, and
// MultiRequest's and TrackRequest's requests that answer here); else it
// asks for none, whatever an earlier tracking (another tracker's) set.
// The taking is bound to that hook: a request given another since is
// answered there (see postUnix).
func (t *Tracker) takeAnswersInAck(req *Request) {
	req.onAnswer, req.answerHook = nil, nil
	if t.isOwnHook(req.ResponseHook) {
		req.onAnswer, req.answerHook = t.answerTaker, req.ResponseHook
	}
}

// isOwnHook reports whether u is the tracker's socket, so that a response
// sent to u may as well come in an acknowledgement.
func (t *Tracker) isOwnHook(u *url.URL) bool {
	return u != nil && u.Scheme == "unix" && u.Host == "" && u.Opaque == "" && u.RawQuery == "" && u.Path == t.socketPath
}
