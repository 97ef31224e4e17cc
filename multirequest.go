package acomm

import (
	"fmt"
	"sync"
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
}

// NewMultiRequest creates and initializes a new MultiRequest. Its requests
// are tracked by tracker with the given timeout (the tracker's default
// when zero or less).
func NewMultiRequest(tracker *Tracker, timeout time.Duration) *MultiRequest {
	m := &MultiRequest{
		tracker:   tracker,
		timeout:   timeout,
		names:     make(map[string]string),
		added:     make(map[string]bool),
		responses: make(map[string]*Response),
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
	m.pending++
	m.mu.Unlock()

	req.SuccessHandler = m.handle
	req.ErrorHandler = m.handle
	if err := m.trackRequest(req); err != nil {
		m.mu.Lock()
		delete(m.added, name)
		delete(m.names, req.ID)
		m.done()
		m.mu.Unlock()
		return err
	}
	return nil
}

// trackRequest tracks req, as TrackRequest does; m.handle never blocks, so
// the tracker may run it on the goroutine that reads the response.
func (m *MultiRequest) trackRequest(req *Request) error {
	if req.ID == "" {
		return fmt.Errorf("%w: missing id", ErrInvalidRequest)
	}
	return m.tracker.trackInline(req, m.timeout)
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
// send fails. A request already answered keeps its response.
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
