package acomm

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Deadlines travel as the wire field "timeout_ms": the whole milliseconds
// the caller will still wait, counted when the frame is encoded. It is
// relative, as gRPC's grpc-timeout is, so that the clocks of the two ends
// (across a bridge, of two machines) need not agree: the receiver adds it
// to the time the frame arrived. An absent field means no deadline; zero
// or less means the caller has already given up. Original peers ignore
// the field.

// maxTimeoutMS bounds a decoded timeout_ms, so that adding it to the time
// of arrival cannot overflow (about 290 years).
const maxTimeoutMS = math.MaxInt64 / int64(time.Millisecond)

// Deadline returns the time by which the request's caller wants its
// response, and false when it set none.
//
// On a request received from a peer it is the time the request arrived
// plus the "timeout_ms" the caller sent; a Server's handler gets it as
// its context's deadline. On a request being sent it is set by
// TrackRequest (its timeout, or the tracker's default), by Call (its
// context's deadline, or the tracker's default) and by MultiRequest, and
// the time left until it is what the frame carries. A received request
// (or a copy of it) tracked to be passed on, as a bridge or ProxyUnix
// does, is tracked no longer than its caller's deadline.
func (req *Request) Deadline() (time.Time, bool) {
	if req == nil || req.deadline.IsZero() {
		return time.Time{}, false
	}
	return req.deadline, true
}

// expired reports whether the request's deadline has passed at now.
func (req *Request) expired(now time.Time) bool {
	return !req.deadline.IsZero() && !now.Before(req.deadline)
}

// timeoutMS returns the wire timeout for deadline d at now: the time left,
// rounded to the nearest millisecond, and 0 once d has passed.
func timeoutMS(d, now time.Time) int64 {
	left := d.Sub(now)
	if left <= 0 {
		return 0
	}
	return int64((left + time.Millisecond/2) / time.Millisecond)
}

// appendTimeout appends the wire value of timeout_ms for deadline d to b:
// the time left now.
func appendTimeout(b []byte, d time.Time) []byte {
	return strconv.AppendInt(b, timeoutMS(d, time.Now()), 10)
}

// readTimeoutMS reads the value of timeout_ms: an integer, or null (or
// nothing) for none. It refuses fractions and exponents, as a decoder
// into an int64 would, without the reflection.
func readTimeoutMS(v jsontext.Value) (ms int64, ok bool, err error) {
	if len(v) == 0 || v.Kind() == 'n' {
		return 0, false, nil
	}
	neg := len(v) > 0 && v[0] == '-'
	digits := v
	if neg {
		digits = v[1:]
	}
	if v.Kind() != '0' || len(digits) == 0 {
		return 0, false, fmt.Errorf("want an integer, got %s", v)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("want an integer, got %s", v)
		}
		if ms > (math.MaxInt64-int64(c-'0'))/10 {
			ms = math.MaxInt64 // far enough: clamped anyway
			continue
		}
		ms = ms*10 + int64(c-'0')
	}
	if neg {
		ms = -ms
	}
	return ms, true, nil
}

// deadlineFromMS returns the deadline that a wire timeout of ms gives a
// frame that arrived at now.
func deadlineFromMS(ms int64, now time.Time) time.Time {
	if ms <= 0 {
		return now
	}
	return now.Add(time.Duration(min(ms, maxTimeoutMS)) * time.Millisecond)
}
