package acomm

import (
	"bytes"
	"encoding/json"
	"net/url"
	"sync/atomic"
)

// The original acomm takes and gives URLs only in the object form that
// encoding/json gives a url.URL. A tracker sends its one hook that way to
// every peer it does not know yet, and a service written for the original
// reads that same hook request after request, each on a connection of
// its own, with nothing kept from one to the next (a Server's connection
// has repeats). That form is the costly one: reflection to write it; to
// read it, a decoder of its own and the URL parsed and printed again (see
// readURL). So the last URL object written, and the last one read, are
// remembered process-wide, each replacing the one before: a pure memo,
// the same text for the same URL and the same URL for the same text. In a
// profile of BenchmarkEcho/acomm-seed-oneshot, writing the tracker's hook
// (json.Marshal) and reading it back (readURL) took about 3.5 us a cycle.

// urlObject is a URL and its object form.
type urlObject struct {
	u    url.URL
	text []byte
}

// maxURLObjectMemo bounds the text remembered: a peer's long URL is read
// as usual, never kept.
const maxURLObjectMemo = 1 << 10

var lastURLObjectOut, lastURLObjectIn atomic.Pointer[urlObject]

// appendURLObject appends u's object form to b.
func appendURLObject(b []byte, u *url.URL) ([]byte, error) {
	if m := lastURLObjectOut.Load(); m != nil && m.u == *u {
		return append(b, m.text...), nil
	}
	v, err := json.Marshal(u)
	if err != nil {
		return b, err
	}
	if len(v) <= maxURLObjectMemo {
		lastURLObjectOut.Store(&urlObject{u: *u, text: v})
	}
	return append(b, v...), nil
}

// readURLObjectMemo returns a copy of the URL that readURL last read from
// the object form text, if it is that one.
func readURLObjectMemo(text []byte) (*url.URL, bool) {
	if m := lastURLObjectIn.Load(); m != nil && bytes.Equal(text, m.text) {
		u := m.u
		return &u, true
	}
	return nil, false
}

// rememberURLObject remembers u as what readURL read from the object form
// text, with no error.
func rememberURLObject(text []byte, u *url.URL) {
	if len(text) <= maxURLObjectMemo {
		lastURLObjectIn.Store(&urlObject{u: *u, text: bytes.Clone(text)})
	}
}
