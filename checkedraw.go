package acomm

import (
	"bytes"
	"encoding/json"
)

// A frame carries args and results as raw JSON, checked when the frame is
// encoded so that no frame holds what is not one JSON value: a value such
// as `1,"task":"other"` would add members to the frame, which an original
// peer, keeping the last of two names, would obey. NewRequest and
// NewResponse check the value already, to refuse it to their caller; the
// request or response they return is the caller's, who may change the
// bytes in place before it is sent, so the encoder cannot take that check
// on trust. checkedRaw remembers what was checked, so that the encoder
// checks again only what changed: comparing bytes costs a fraction of
// validating them (for the 100-byte args of BenchmarkEcho/
// acomm-seed-oneshot, 2.8k instructions a check, twice a cycle).

// maxCheckedCopy bounds the copy a checkedRaw keeps: larger values are
// checked again when encoded rather than held twice in memory.
const maxCheckedCopy = 64 << 10

// checkedRaw says that a raw value was found to be valid JSON.
type checkedRaw struct {
	raw  *json.RawMessage // the value checked; nil: none
	seen []byte           // a copy of what *raw held then; nil: *raw is not changed by anyone (Call's, a Server's)
}

// checkedOwn returns that raw, made and held inside the package, was
// checked.
func checkedOwn(raw *json.RawMessage) checkedRaw {
	return checkedRaw{raw: raw}
}

// checkedCopy returns that raw, which a caller may change in place, was
// checked as it is now; nothing for a value too large to copy.
func checkedCopy(raw *json.RawMessage) checkedRaw {
	if raw == nil || len(*raw) == 0 || len(*raw) > maxCheckedCopy {
		return checkedRaw{}
	}
	return checkedRaw{raw: raw, seen: bytes.Clone(*raw)}
}

// holds says if raw is the value checked and holds what it held then.
func (c checkedRaw) holds(raw *json.RawMessage) bool {
	return raw != nil && raw == c.raw && (c.seen == nil || bytes.Equal(*raw, c.seen))
}
