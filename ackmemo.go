package acomm

import (
	"bytes"
	"sync/atomic"
)

// Acknowledgements are the most frequent frames, and a peer writes them
// all alike but for the id: ours are
// {"id":"<id>","result":null,"stream_url":null,"error":""} and the
// features of the receiver, an original peer's the same members in
// another order. So an acknowledgement decoded in full is remembered as
// its text around the id it gives (an ackShape), and one whose text is
// that, around the id of the frame it acknowledges, is taken for what the
// first meant, without decoding it: the same bytes but for the content of
// one string, in which neither holds a quote, a backslash or a control
// character, so the JSON is the same but for that string's value. Only an
// acknowledgement that refused nothing, carried no answer and gave the
// id once, and as the id wanted, makes a shape. A kept link remembers the
// last shape of its peer's; connections for one frame, the last shape of
// any of theirs, process-wide. Decoding took 5.5k of the 125k instructions
// of a cycle of BenchmarkEcho/acomm-seed-oneshot (callgrind), twice a
// cycle (the service's acknowledgement of the request, the tracker's of
// the response); BenchmarkAckShape: 367 ns to decode ours, 32 ns to match
// its shape.

// maxAckShape bounds the acknowledgements remembered.
const maxAckShape = 1 << 10

// ackShape is an acknowledgement decoded in full, as its text before and
// after the id it gave.
type ackShape struct {
	pre, post []byte
	listed    bool     // the features it lists are known (decoded, or none given)
	features  []string // those features; read only
}

// lastOnceAck is the shape of the last acknowledgement read on a
// connection for one frame.
var lastOnceAck atomic.Pointer[ackShape]

// newAckShape returns the shape of body, an acknowledgement of the frame
// id, which decodeAckOf read without error, saw as check says and found
// to list features (nil: none, or not decoded); nil if it cannot serve
// for others.
func newAckShape(body []byte, id string, check *ackIDCheck, features []string) *ackShape {
	if len(body) > maxAckShape || !plainID(id) || check.ids != 1 || check.answers != 0 ||
		check.idEnd == 0 || string(body[check.idAt:check.idEnd]) != id {
		return nil
	}
	return &ackShape{
		pre:      bytes.Clone(body[:check.idAt]),
		post:     bytes.Clone(body[check.idEnd:]),
		listed:   check.listed || check.featureLists == 0,
		features: features,
	}
}

// matches says if body is this shape around id.
func (s *ackShape) matches(body []byte, id string) bool {
	return s != nil && len(body) == len(s.pre)+len(id)+len(s.post) &&
		bytes.HasPrefix(body, s.pre) && bytes.HasSuffix(body, s.post) &&
		string(body[len(s.pre):len(s.pre)+len(id)]) == id && plainID(id)
}

// ackShape returns the shape of the last acknowledgement l read, or, on a
// connection for one frame (once), of any of theirs. Its caller reads l's
// acknowledgements.
func (l *link) ackShape(once bool) *ackShape {
	if once {
		return lastOnceAck.Load()
	}
	return l.ack
}

// keepAckShape remembers s, if not nil, as the shape of l's
// acknowledgements (once: of those of connections for one frame). Its
// caller reads l's acknowledgements.
func (l *link) keepAckShape(once bool, s *ackShape) {
	switch {
	case s == nil:
	case once:
		lastOnceAck.Store(s)
	default:
		l.ack = s
	}
}
