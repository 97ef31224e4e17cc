package bridge

import (
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/acommgo/acomm"
)

// Meta travels over HTTP as headers: the W3C trace context headers
// (traceparent, tracestate) under their own names, and every other key as
// Acomm-Meta-<key>. A request's headers are added to the meta of its body
// (a header wins over a body entry of the same key), and the request's
// meta comes back as headers on the POST of its answer to the hook. Meta
// keys are lowercase (see acomm.MaxMetaEntries), so the case that HTTP
// gives a header name does not matter.

// metaHeaderPrefix begins the name of a meta header.
const metaHeaderPrefix = "Acomm-Meta-"

// traceHeaders are the W3C trace context headers, carried as meta under
// their own names.
var traceHeaders = []string{"traceparent", "tracestate"}

// ackFeatures are the features a bridge lists in its acknowledgements: it
// understands the cancel notice (acomm.CancelTask).
const ackFeatures = `["cancel"]`

// metaFromHeader returns meta with the meta headers of h added; meta
// itself when h has none. Repeated headers are joined with ",", as HTTP
// allows.
func metaFromHeader(h http.Header, meta map[string]string) map[string]string {
	var out map[string]string
	set := func(k string, v []string) {
		if out == nil {
			out = make(map[string]string, len(meta)+2)
			maps.Copy(out, meta)
		}
		out[k] = strings.Join(v, ",")
	}
	for _, k := range traceHeaders {
		if v := h.Values(k); len(v) > 0 {
			set(k, v)
		}
	}
	for name, v := range h {
		if len(name) > len(metaHeaderPrefix) && strings.EqualFold(name[:len(metaHeaderPrefix)], metaHeaderPrefix) {
			set(strings.ToLower(name[len(metaHeaderPrefix):]), v)
		}
	}
	if out == nil {
		return meta
	}
	return out
}

// setMetaHeader sets the headers that carry meta on h.
func setMetaHeader(h http.Header, meta map[string]string) {
	for k, v := range meta {
		switch k {
		case "traceparent", "tracestate":
			h.Set(k, v)
		default:
			h.Set(metaHeaderPrefix+k, v)
		}
	}
}

// serveCancel handles a cancel notice: the request it names, if the
// bridge still waits for its answer and the notice carries the request's
// response hook, is removed from the tracker, which tells the service to
// cancel it, and its hook gets no answer.
func (b *Bridge) serveCancel(w http.ResponseWriter, r *http.Request, notice *acomm.Request) {
	var args struct {
		ID string `json:"id"`
	}
	if err := notice.UnmarshalArgs(&args); err != nil || args.ID == "" {
		b.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: %s: want args {\"id\": ...}", acomm.ErrInvalidRequest, acomm.CancelTask))
		return
	}
	// Only the request's caller may cancel it: the notice must come with
	// the request's own hook (which, for a hook of Call's, carries the
	// request's capability), not merely its id. A notice that matches
	// nothing is acknowledged all the same: it tells nobody which ids are
	// in flight.
	var fwd *acomm.Request
	var c caller
	if hook, err := normalizeHook(notice.ResponseHook); err == nil {
		c = caller{id: args.ID, hook: hook.String()}
		b.mu.Lock()
		fwd = b.pending[c]
		b.mu.Unlock()
	}
	if fwd != nil && b.Tracker.RemoveRequest(fwd) {
		b.end(c, fwd)
	}
	writeAck(w, notice.ID)
}
