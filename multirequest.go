package acomm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// MultiRequest provides a way to manage multiple parallel requests
//
// Requests added to a MultiRequest are tracked by its tracker; Responses
// collects their responses (or timeout errors) by name. Any number of
// requests may be added, from any number of goroutines.
type MultiRequest struct {
	tracker *Tracker
	timeout time.Duration

	mu        sync.Mutex           // protects the fields below
	cond      *sync.Cond           // signalled when pending reaches zero
	names     map[string]string    // request ID -> name, for requests not yet answered
	added     map[string]bool      // names added
	responses map[string]*Response // by name
	pending   int
	reqs      map[string]*Request // by name, while added; for SendAll
}

// NewMultiRequest creates and initializes a new MultiRequest. Its requests
// are tracked by tracker with the given timeout (the tracker's default
// when zero or less), which is also the deadline they carry (see
// Request.Deadline), counted from AddRequest.
func NewMultiRequest(tracker *Tracker, timeout time.Duration) *MultiRequest {
	m := &MultiRequest{
		tracker:   tracker,
		timeout:   timeout,
		names:     make(map[string]string),
		added:     make(map[string]bool),
		responses: make(map[string]*Response),
		reqs:      make(map[string]*Request),
	}
	m.cond = sync.NewCond(&m.mu)
	return m
}

// AddRequest adds a request to the MultiRequest. Sending the request is
// still the responsibility of the caller. The request's handlers are
// replaced by the MultiRequest's own. It fails with ErrDuplicateName for a
// name already added, and with the tracker's error when the request cannot
// be tracked.
func (m *MultiRequest) AddRequest(name string, req *Request) error {
	if req == nil {
		return fmt.Errorf("%w: nil request", ErrInvalidArgument)
	}
	if m.tracker == nil {
		return fmt.Errorf("%w: multirequest has no tracker", ErrInvalidArgument)
	}
	m.mu.Lock()
	if m.added[name] {
		m.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrDuplicateName, name)
	}
	if _, ok := m.names[req.ID]; ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrDuplicateID, req.ID)
	}
	m.added[name] = true
	m.names[req.ID] = name
	m.reqs[name] = req
	m.pending++
	m.mu.Unlock()

	if err := m.trackRequest(req); err != nil {
		m.mu.Lock()
		delete(m.added, name)
		delete(m.names, req.ID)
		delete(m.reqs, name)
		m.done()
		m.mu.Unlock()
		return err
	}
	return nil
}

// trackRequest tracks req, as TrackRequest does, with m.handle as both
// its handlers once it is tracked (a refusal leaves req as it was); m.handle
// never blocks, so the tracker may run it on the goroutine that reads the
// response.
func (m *MultiRequest) trackRequest(req *Request) error {
	if req.ID == "" {
		return fmt.Errorf("%w: missing id", ErrInvalidRequest)
	}
	return m.tracker.trackInline(req, m.timeout, nil, m.handle)
}

// handle records a response; it is both handlers of every added request.
func (m *MultiRequest) handle(req *Request, resp *Response) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.names[req.ID]
	if !ok {
		return
	}
	delete(m.names, req.ID)
	m.responses[name] = resp
	m.done()
}

// done counts one request as accounted for; m.mu must be held.
func (m *MultiRequest) done() {
	m.pending--
	if m.pending == 0 {
		m.cond.Broadcast()
	}
}

// RemoveRequest removes a request from the MultiRequest. Useful if the
// send fails. A request already answered keeps its response. A request
// that SendAll sent is cancelled at its service (see Tracker.Call), as is
// one that times out.
func (m *MultiRequest) RemoveRequest(req *Request) {
	if req == nil || !m.tracker.RemoveRequest(req) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.names[req.ID]
	if !ok {
		return
	}
	delete(m.names, req.ID)
	delete(m.added, name)
	delete(m.reqs, name)
	m.done()
}

// Responses returns responses for all of the requests, keyed on the
// request name (as opposed to request id). Blocks until all requests are
// accounted for: answered, timed out or removed. The map is a copy.
func (m *MultiRequest) Responses() map[string]*Response {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.pending > 0 {
		m.cond.Wait()
	}
	out := make(map[string]*Response, len(m.responses))
	for k, v := range m.responses {
		out[k] = v
	}
	return out
}

// SendAll sends requests added to the MultiRequest, several at a time:
// dests maps the name of each request to send to the URL to send it to
// (as Send does: a unix URL gets the request as a frame and waits for its
// acknowledgement, an http(s) URL gets it POSTed), with the tracker's
// settings (WithIOTimeout, WithMaxFrameSize, WithLegacyURLs). It returns when every
// send has finished, so it can be followed by Responses.
//
// Sending one after the other, each send waits for its acknowledgement
// before the next begins; SendAll overlaps them (on up to
// sendAllParallelism goroutines, the calling one included), so a fan-out
// to many services takes about as long as the slowest sends that share a
// CPU rather than the sum of all of them.
//
// A request whose send fails is removed, as RemoveRequest does, so
// Responses does not wait for it; its error, naming it, is part of the
// returned error (errors.Join of all of them; errors.Is sees each one's
// cause). A name that is not added (never, or removed since) is such an
// error too, matching ErrInvalidArgument, as is a nil URL. A request
// already answered is not sent again. Each request is sent once per call:
// calling SendAll twice with the same name sends it twice, as calling
// Send twice would.
func (m *MultiRequest) SendAll(dests map[string]*url.URL) error {
	if len(dests) == 0 {
		return nil
	}
	type send struct {
		name string
		req  *Request
		dest *url.URL
		err  error
	}
	sends := make([]send, 0, len(dests))
	var errs []error
	m.mu.Lock()
	for name, dest := range dests {
		req := m.reqs[name]
		switch {
		case req == nil:
			errs = append(errs, fmt.Errorf("%w: no request named %q", ErrInvalidArgument, name))
		case dest == nil:
			errs = append(errs, fmt.Errorf("%w: nil url for request %q", ErrInvalidArgument, name))
		default:
			if _, pending := m.names[req.ID]; pending {
				sends = append(sends, send{name: name, req: req, dest: dest})
			}
		}
	}
	m.mu.Unlock()

	// Workers take the next unsent request until none is left; the
	// calling goroutine is one of them.
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(sends) {
				return
			}
			s := &sends[i]
			if err := sendMsg(context.Background(), s.dest, s.req, &m.tracker.cfg); err != nil {
				m.RemoveRequest(s.req)
				s.err = fmt.Errorf("acomm: send %q: %w", s.name, err)
				continue
			}
			m.tracker.sentTo(s.req.ID, s.dest)
		}
	}
	var wg sync.WaitGroup
	for range min(len(sends), sendAllParallelism) - 1 {
		wg.Add(1)
		m.tracker.goRun(func() {
			defer wg.Done()
			work()
		})
	}
	work()
	wg.Wait()

	for i := range sends {
		if sends[i].err != nil {
			errs = append(errs, sends[i].err)
		}
	}
	return errors.Join(errs...)
}

// sendAllParallelism is how many sends SendAll has under way at once. A
// send mostly waits (for the receiver to read the frame and acknowledge
// it), and sends to services with a link share its connection, so this is
// well above the CPUs, but bounded so a fan-out to thousands does not
// start thousands of goroutines and connections.
const sendAllParallelism = 64
