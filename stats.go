package acomm

import (
	"expvar"
	"sync/atomic"
)

// TrackerStats counts what a tracker has done since it was created.
type TrackerStats struct {
	InFlight       int    // requests tracked now
	Tracked        uint64 // requests accepted by TrackRequest and ProxyUnix
	Answered       uint64 // handled (or forwarded) on a response
	TimedOut       uint64 // handled with a timeout error
	Removed        uint64 // taken out by RemoveRequest before an answer
	Abandoned      uint64 // handled with ErrTrackerStopped by Shutdown
	Refused        uint64 // TrackRequest calls refused (not running, duplicate, limit)
	DroppedUnknown uint64 // responses for requests not tracked (late, unknown)
	RefusedFrames  uint64 // frames refused at the response socket
	RefusedConns   uint64 // connections refused (peer check, connection bound)
	Streams        uint64 // streams made by NewStreamUnix
	CancelNotices  uint64 // acomm.cancel notices sent to services
}

// ServerStats counts what a server has done since it was created.
type ServerStats struct {
	InFlight      int    // handlers running now
	Received      uint64 // requests accepted and acknowledged
	Handled       uint64 // handlers that returned (or were abandoned)
	Responded     uint64 // responses the requester acknowledged
	RespondFailed uint64 // responses that could not be delivered
	AnsweredInAck uint64 // responses written in their request's acknowledgement (see README); not acknowledged
	Busy          uint64 // requests answered with ErrBusy
	UnknownTask   uint64 // requests answered with ErrUnknownTask
	Panics        uint64 // handlers that panicked
	RefusedFrames uint64 // frames refused (undecodable, invalid, too large)
	RefusedConns  uint64 // connections refused (peer check, connection bound)
	Expired       uint64 // requests answered with ErrTimeout: past their deadline on arrival
	Cancelled     uint64 // handlers cancelled by their caller's cancel notice
}

// trackerCounters are a tracker's live counters.
type trackerCounters struct {
	tracked, answered, timedOut, removed, abandoned, refused atomic.Uint64
	droppedUnknown, refusedFrames, streams, cancelNotices    atomic.Uint64
}

// serverCounters are a server's live counters.
type serverCounters struct {
	received, handled, responded, respondFailed atomic.Uint64
	answeredInAck                               atomic.Uint64
	busy, unknownTask, panics, refusedFrames    atomic.Uint64
	expired, cancelled                          atomic.Uint64
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() TrackerStats {
	t.mu.Lock()
	inFlight, ul := len(t.requests), t.responseListener
	t.mu.Unlock()
	c := &t.stats
	return TrackerStats{
		InFlight: inFlight, Tracked: c.tracked.Load(), Answered: c.answered.Load(),
		TimedOut: c.timedOut.Load(), Removed: c.removed.Load(), Abandoned: c.abandoned.Load(),
		Refused: c.refused.Load(), DroppedUnknown: c.droppedUnknown.Load(),
		RefusedFrames: c.refusedFrames.Load(), RefusedConns: ul.totalRefused(), Streams: c.streams.Load(),
		CancelNotices: c.cancelNotices.Load(),
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	inFlight, ul := len(s.jobs), s.ul
	s.mu.Unlock()
	c := &s.stats
	return ServerStats{
		InFlight: inFlight, Received: c.received.Load(), Handled: c.handled.Load(),
		Responded: c.responded.Load(), RespondFailed: c.respondFailed.Load(), Busy: c.busy.Load(),
		UnknownTask: c.unknownTask.Load(), Panics: c.panics.Load(),
		RefusedFrames: c.refusedFrames.Load(), RefusedConns: ul.totalRefused(),
		Expired: c.expired.Load(), Cancelled: c.cancelled.Load(), AnsweredInAck: c.answeredInAck.Load(),
	}
}

// countingHandler wraps a frame handler to count refused frames in n.
func countingHandler(h frameHandler, n *atomic.Uint64) frameHandler {
	return func(body []byte, clock *frameClock) (string, error, func(), answerFunc) {
		id, refusal, after, answer := h(body, clock)
		if refusal != nil {
			n.Add(1)
		}
		return id, refusal, after, answer
	}
}

// PublishExpvar publishes the stats of trackers and servers under name in
// expvar (served at /debug/vars by expvar's handler), read afresh on each
// request. It panics, as expvar.Publish does, if name is already used.
func PublishExpvar(name string, trackers map[string]*Tracker, servers map[string]*Server) {
	expvar.Publish(name, expvar.Func(func() any {
		out := map[string]any{}
		for k, t := range trackers {
			out["tracker."+k] = t.Stats()
		}
		for k, s := range servers {
			out["server."+k] = s.Stats()
		}
		return out
	}))
}
