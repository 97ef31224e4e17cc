package acomm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/url"
	"sync"
)

// hookCapParam is the query parameter of an http(s) response hook that
// carries the request's capability (see Tracker.BindHook).
const hookCapParam = "acomm-cap"

// hookKey is the tracker's secret for the capabilities of its requests:
// drawn once, on first use, and kept for the tracker's life.
type hookKey struct {
	once sync.Once
	key  [32]byte
}

// capability returns the capability of request id: an HMAC of the id under
// the tracker's secret, 128 bits in hex. Nobody without the secret can
// derive it from the id, so only a party that was given a hook bound to
// the request can answer it.
func (k *hookKey) capability(id string) string {
	k.once.Do(func() { _, _ = rand.Read(k.key[:]) })
	m := hmac.New(sha256.New, k.key[:])
	_, _ = m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// BindHook returns a copy of hook (an http(s) URL at which this tracker
// receives responses, such as a bridge's /responses) bound to the request
// with the given id: a per-request capability is added to its query. A
// bridge's /responses accepts a response only at a URL bound to the
// response's request (see HookBound), so the party that was sent the
// request, and nobody else, can answer it. Call binds the WithHTTPHook URL
// itself; bind the hooks of requests you track and send yourself. A nil
// hook gives nil.
func (t *Tracker) BindHook(hook *url.URL, id string) *url.URL {
	if hook == nil {
		return nil
	}
	u := *hook
	u.User = hook.User
	q := u.Query()
	q.Set(hookCapParam, t.hookKey.capability(id))
	u.RawQuery = q.Encode()
	return &u
}

// HookBound reports whether u, the URL at which a response arrived,
// carries the capability of the request with the given id (see BindHook).
// The comparison takes constant time.
func (t *Tracker) HookBound(u *url.URL, id string) bool {
	if u == nil {
		return false
	}
	got := u.Query().Get(hookCapParam)
	want := t.hookKey.capability(id)
	return len(got) == len(want) && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
