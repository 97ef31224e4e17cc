package acomm

import (
	"sync"
	"time"
)

// streamRegistry is a tracker's announced streams: the socket paths that
// its ProxyStreamHandler (and the package's) may serve, each once, with
// when each announcement expires (the tracker's stream idle timeout after
// it was made). It is dropped when the tracker stops.
type streamRegistry struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// liveTrackers are the trackers with streams announced, which the
// package's ProxyStreamHandler asks in turn. Each tracker owns its
// announcements; this is only the index of who to ask.
var (
	liveMu       sync.Mutex
	liveTrackers = map[*Tracker]struct{}{}
)

// announce allows ProxyStreamHandler to serve the socket at path once.
func (t *Tracker) announce(path string) {
	now := time.Now()
	r := &t.announced
	r.mu.Lock()
	if r.m == nil {
		r.m = make(map[string]time.Time)
	}
	for p, exp := range r.m {
		if now.After(exp) {
			delete(r.m, p)
		}
	}
	r.m[path] = now.Add(t.cfg.streamIdleTimeout)
	r.mu.Unlock()
	liveMu.Lock()
	liveTrackers[t] = struct{}{}
	liveMu.Unlock()
}

// unannounce withdraws path.
func (t *Tracker) unannounce(path string) {
	r := &t.announced
	r.mu.Lock()
	delete(r.m, path)
	r.mu.Unlock()
}

// unannounceAll withdraws every stream t announced.
func unannounceAll(t *Tracker) {
	liveMu.Lock()
	delete(liveTrackers, t)
	liveMu.Unlock()
	r := &t.announced
	r.mu.Lock()
	r.m = nil
	r.mu.Unlock()
}

// findAnnounced reports whether t announced path, and the announcement
// has not expired. With claim, a path found is also withdrawn, so that it
// is served once.
func (t *Tracker) findAnnounced(path string, claim bool) bool {
	r := &t.announced
	r.mu.Lock()
	defer r.mu.Unlock()
	exp, ok := r.m[path]
	if !ok {
		return false
	}
	if claim {
		delete(r.m, path)
	}
	return time.Now().Before(exp)
}

// findAnyAnnounced looks path up among the trackers with announcements,
// and returns the one that announced it.
func findAnyAnnounced(path string, claim bool) (*Tracker, bool) {
	liveMu.Lock()
	ts := make([]*Tracker, 0, len(liveTrackers))
	for t := range liveTrackers {
		ts = append(ts, t)
	}
	liveMu.Unlock()
	for _, t := range ts {
		if t.findAnnounced(path, claim) {
			return t, true
		}
	}
	return nil, false
}
