package acomm

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// Response is a response data structure for asynchronous requests. The ID
// should be the same as the Request it corresponds to. Result should be nil
// if Error is present and vice versa.
//
// On the wire a Response is the JSON object
// {"id": ..., "result": ..., "stream_url": "unix:///path" or null,
// "error": "" or a message}. Its member names are read regardless of case,
// as encoding/json reads them, and a frame that gives one twice, in any
// mix of case, is malformed (README.md, "Wire format").
type Response struct {
	ID        string           `json:"id"`
	Result    *json.RawMessage `json:"result"`
	StreamURL *url.URL         `json:"stream_url"`
	Error     error            `json:"error"`

	// LegacyURLs makes MarshalJSON write StreamURL in the object form of
	// the original acomm. NewResponse copies it from the request, and
	// UnmarshalJSON sets it when the decoded frame used that form.
	LegacyURLs bool `json:"-"`

	resultChecked checkedRaw      // Result as marshalRaw returned it: valid JSON
	resultMem     json.RawMessage // what Result points to, if made inside the package (see readRaw)
}

// NewResponse creates a new Response instance based on a Request. The
// result is marshalled to JSON; a result that cannot be, or a result given
// together with an error, is refused with ErrInvalidResponse.
func NewResponse(req *Request, result interface{}, streamURL *url.URL, err error) (*Response, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrInvalidArgument)
	}
	if err != nil && result != nil {
		return nil, fmt.Errorf("%w: both result and error set", ErrInvalidResponse)
	}
	raw, merr := marshalRaw(result)
	if merr != nil {
		return nil, fmt.Errorf("%w: result: %w", ErrInvalidResponse, merr)
	}
	return &Response{
		ID:            req.ID,
		Result:        raw,
		StreamURL:     streamURL,
		Error:         err,
		LegacyURLs:    req.LegacyURLs,
		resultChecked: checkedCopy(raw),
	}, nil
}

// MarshalJSON marshals a Response into JSON. The error travels as its
// message ("" for none) and the stream URL as a string, or as the legacy
// object when LegacyURLs is set.
func (r *Response) MarshalJSON() ([]byte, error) {
	return appendResponse(nil, r, r.LegacyURLs, nil)
}

// UnmarshalJSON unmarshals JSON data into a Response, matching member names
// regardless of case and refusing one given twice (ErrMalformedFrame). A
// non-empty error message becomes a *RemoteError; the stream URL may be a
// string or the original acomm's object form.
func (r *Response) UnmarshalJSON(data []byte) error {
	return decodeResponseChecked(data, r)
}

// UnmarshalResult unmarshals the response result into the destination
// object. An absent result leaves dest untouched.
func (r *Response) UnmarshalResult(dest interface{}) error {
	return unmarshalRaw(r.Result, dest, ErrInvalidResponse)
}

// validate checks what a receiver needs of a response.
func (r *Response) validate() error {
	if r.ID == "" {
		return fmt.Errorf("%w: missing id", ErrInvalidResponse)
	}
	return nil
}
