package acomm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// hookCapParam is the query parameter of an http(s) response hook that
// carries the request's capability (see Tracker.BindHook).
const hookCapParam = "acomm-cap"

// redacted is u as logs and errors show it: Redacted (no password), and a
// capability in its query (see hookCapParam) hidden, since it answers the
// request it is bound to.
func redacted(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	if !strings.Contains(u.RawQuery, hookCapParam) {
		return u.Redacted()
	}
	c := *u
	q := c.Query()
	if q.Has(hookCapParam) {
		q.Set(hookCapParam, "xxxxx")
	}
	c.RawQuery = q.Encode()
	return c.Redacted()
}

// Capabilities: a capability is "<binding>.<mac>", the binding a number in
// hex and the mac an HMAC of the binding and the request's id under the
// tracker's secret. Each tracked request bound to a hook gets a binding of
// its own, drawn when it is tracked (or bound, if that comes later), so a
// capability answers that one request: never another id, nor a later
// request that reuses the id, nor the same request tracked again. Binding
// 0 is that of a hook bound before its request is tracked: tracking the
// request rebinds the hook (see Tracker.trackRequest), and binding 0
// answers no tracked request.

// hookKey is the tracker's secret for the capabilities of its requests,
// drawn once, on first use, and kept for the tracker's life, and the last
// binding drawn.
type hookKey struct {
	once     sync.Once
	key      [32]byte
	bindings atomic.Uint64
}

// next draws a binding for a tracked request.
func (k *hookKey) next() uint64 { return k.bindings.Add(1) }

// mac returns the HMAC of binding and id, 128 bits in hex.
func (k *hookKey) mac(binding uint64, id string) string {
	k.once.Do(func() { _, _ = rand.Read(k.key[:]) })
	m := hmac.New(sha256.New, k.key[:])
	_ = binary.Write(m, binary.BigEndian, binding) // fixed size: id follows unambiguously
	_, _ = m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// capability returns the capability of request id with binding. Nobody
// without the secret can derive it, so only a party that was given a
// hook bound to the request can answer it.
func (k *hookKey) capability(binding uint64, id string) string {
	return strconv.FormatUint(binding, 16) + "." + k.mac(binding, id)
}

// binding returns the binding of c, a capability for request id, and
// whether c is genuine: drawn by this tracker for id. The mac is compared
// in constant time.
func (k *hookKey) binding(c, id string) (uint64, bool) {
	b, mac, ok := strings.Cut(c, ".")
	if !ok {
		return 0, false
	}
	binding, err := strconv.ParseUint(b, 16, 64)
	if err != nil {
		return 0, false
	}
	want := k.mac(binding, id)
	return binding, len(mac) == len(want) && subtle.ConstantTimeCompare([]byte(mac), []byte(want)) == 1
}

// hookCapability returns the capability u carries, if any.
func hookCapability(u *url.URL) string {
	if u == nil || !strings.Contains(u.RawQuery, hookCapParam) {
		return ""
	}
	return u.Query().Get(hookCapParam)
}

// withCapability returns a copy of hook carrying capability c.
func withCapability(hook *url.URL, c string) *url.URL {
	u := *hook
	u.User = hook.User
	q := u.Query()
	q.Set(hookCapParam, c)
	u.RawQuery = q.Encode()
	return &u
}

// rebind returns the hook that req, about to be tracked, goes out with,
// and its binding: when req's response hook carries a genuine capability
// for req's id (one that BindHook returned), a copy bound afresh, so
// that whoever holds a hook bound to an earlier request with the id
// cannot answer this one; otherwise nil and 0.
func (k *hookKey) rebind(req *Request) (*url.URL, uint64) {
	h := req.ResponseHook
	if h == nil || h.Scheme == "unix" {
		return nil, 0
	}
	c := hookCapability(h)
	if c == "" {
		return nil, 0
	}
	if _, ok := k.binding(c, req.ID); !ok {
		return nil, 0
	}
	b := k.next()
	return withCapability(h, k.capability(b, req.ID)), b
}

// BindHook returns a copy of hook (an http(s) URL at which this tracker
// receives responses, such as a bridge's /responses) bound to the request
// with the given id: a capability is added to its query. A bridge's
// /responses accepts a response only at a URL bound to the response's
// request (see HandleBoundResponse), so the party that was sent the
// request, and nobody else, can answer it. Call binds the WithHTTPHook URL
// itself; bind the hooks of requests you track and send yourself.
//
// A capability answers one tracked request. Bind the hook either before
// tracking the request, as its ResponseHook (TrackRequest then binds it
// to that request, replacing ResponseHook with a copy whose capability is
// the request's own: send the request after tracking it), or after, when
// the request with id is tracked. Either way a hook bound to an earlier
// request with the same id, or to the same request tracked before, never
// answers it. A nil hook gives nil.
func (t *Tracker) BindHook(hook *url.URL, id string) *url.URL {
	if hook == nil {
		return nil
	}
	var binding uint64
	t.mu.Lock()
	if tr := t.requests[id]; tr != nil {
		if tr.binding == 0 {
			tr.binding = t.hookKey.next()
		}
		binding = tr.binding
	}
	t.mu.Unlock()
	return withCapability(hook, t.hookKey.capability(binding, id))
}

// HookBound reports whether a response for the request with the given id,
// arriving at u, would be taken (see HandleBoundResponse): u carries a
// capability that this tracker bound to id and, while a request with id
// is tracked, the capability of that request.
func (t *Tracker) HookBound(u *url.URL, id string) bool {
	_, ok := t.boundRequest(u, id, false)
	return ok
}

// HandleBoundResponse hands resp to its request, as HandleResponse does,
// if u, the URL at which it arrived, is bound to that request (see
// BindHook), and reports whether it was: when u carries no capability
// for resp's id, or the capability of another request with that id (an
// earlier one, or the same request tracked before), it does nothing and
// returns false. A response bound to a request no longer tracked
// (answered already, timed out or removed) is dropped, as HandleResponse
// drops it, and true returned. The check and the taking of the request
// are one step, so the answer cannot reach a request tracked in between.
func (t *Tracker) HandleBoundResponse(u *url.URL, resp *Response) bool {
	if resp == nil {
		return false
	}
	tr, ok := t.boundRequest(u, resp.ID, true)
	if !ok {
		return false
	}
	t.handleTaken(tr, resp)
	return true
}

// boundRequest checks that u is bound to the request with id (see
// HookBound); with take, it takes that request, as take does, when it is
// tracked (nil when it is not).
func (t *Tracker) boundRequest(u *url.URL, id string, take bool) (*trackedRequest, bool) {
	binding, ok := t.hookKey.binding(hookCapability(u), id)
	if !ok {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.requests[id]
	switch {
	case tr == nil:
		return nil, true
	case tr.binding == 0 || tr.binding != binding:
		return nil, false
	case take:
		t.untrackLocked(tr)
	}
	return tr, true
}
