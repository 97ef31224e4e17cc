package acomm

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"
)

// Hand-written encoders for the two wire messages. They write each field
// once, with no reflection and no re-scan of the output; args and results
// (already JSON) are checked once with json.Valid and copied as they are.

// appendRequest appends the wire JSON of req to b.
func appendRequest(b []byte, req *Request, legacy bool) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, req.ID)
	b = append(b, `,"task":`...)
	b = appendString(b, req.Task)
	b = append(b, `,"responsehook":`...)
	b, err := appendURL(b, req.ResponseHook, legacy)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"args":`...)
	if b, err = appendRaw(b, req.Args); err != nil {
		return nil, fmt.Errorf("%w: args: %w", ErrInvalidRequest, err)
	}
	if !req.deadline.IsZero() {
		b = append(b, `,"timeout_ms":`...)
		b = strconv.AppendInt(b, timeoutMS(req.deadline, time.Now()), 10)
	}
	if len(req.Meta) > 0 {
		m, err := json.Marshal(req.Meta)
		if err != nil {
			return nil, fmt.Errorf("%w: meta: %w", ErrInvalidRequest, err)
		}
		b = append(append(b, `,"meta":`...), m...)
	}
	return append(b, '}'), nil
}

// appendResponse appends the wire JSON of resp to b.
func appendResponse(b []byte, resp *Response, legacy bool) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, resp.ID)
	b = append(b, `,"result":`...)
	b, err := appendRaw(b, resp.Result)
	if err != nil {
		return nil, fmt.Errorf("%w: result: %w", ErrInvalidResponse, err)
	}
	b = append(b, `,"stream_url":`...)
	if b, err = appendURL(b, resp.StreamURL, legacy); err != nil {
		return nil, err
	}
	b = append(b, `,"error":`...)
	if resp.Error != nil {
		b = appendString(b, resp.Error.Error())
	} else {
		b = append(b, `""`...)
	}
	return append(b, '}'), nil
}

// appendRaw appends raw JSON, or null for none, refusing invalid JSON.
func appendRaw(b []byte, raw *json.RawMessage) ([]byte, error) {
	if raw == nil || len(*raw) == 0 {
		return append(b, "null"...), nil
	}
	if !validJSON(*raw) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrInvalidArgument)
	}
	return append(b, *raw...), nil
}

// appendURL appends u as a JSON string, or as the original acomm's object
// form when legacy is set; null for nil.
func appendURL(b []byte, u *url.URL, legacy bool) ([]byte, error) {
	if u == nil {
		return append(b, "null"...), nil
	}
	if legacy {
		j, err := json.Marshal(u)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
		}
		return append(b, j...), nil
	}
	return appendURLString(b, u), nil
}

// appendString appends s as a JSON string. Plain ASCII is copied directly;
// anything else goes through encoding/json for exact escaping.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(s)
			return append(b, j...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
