package acomm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/pborman/uuid"
)

// ResponseHandler is a function to run when a request receives a response.
type ResponseHandler func(*Request, *Response)

// Request is a request data structure for asynchronous requests. The ID is
// used to identify the request throughout its life cycle. The ResponseHook is
// a URL where response data should be sent. SuccessHandler and ErrorHandler
// will be called appropriately to handle a response.
//
// On the wire a Request is the JSON object
// {"id": ..., "task": ..., "responsehook": "unix:///path", "args": ...},
// with "timeout_ms" (see Deadline) and "meta" when set. Its member names
// are read regardless of case, as encoding/json reads them, and a frame
// that gives one twice, in any mix of case, is malformed (README.md,
// "Wire format").
type Request struct {
	ID             string           `json:"id"`
	Task           string           `json:"task"`
	ResponseHook   *url.URL         `json:"responsehook"`
	Args           *json.RawMessage `json:"args"`
	SuccessHandler ResponseHandler  `json:"-"`
	ErrorHandler   ResponseHandler  `json:"-"`

	// LegacyURLs makes MarshalJSON write ResponseHook in the object form
	// of the original acomm, so that an unmodified original peer can read
	// the frame. UnmarshalJSON sets it when the decoded frame used that
	// form, and NewResponse copies it to the response, so replies to an
	// original peer are readable by it.
	LegacyURLs bool `json:"-"`

	// Meta is data about the request beside its args, such as trace
	// context or the caller's identity, as gRPC's metadata: see
	// ContextWithMeta, and MaxMetaEntries for its limits and the form
	// of its keys. Omitted from the wire when empty.
	Meta map[string]string `json:"meta,omitempty"`

	// via holds the settings of the Server that received the request,
	// which Respond uses; nil for Send's defaults.
	via *config

	deadline       time.Time // see Deadline
	callerDeadline bool      // deadline is a received frame's timeout_ms

	argsChecked checkedRaw      // Args as marshalRaw returned it: valid JSON
	argsMem     json.RawMessage // what Args points to, if made inside the package (see readRaw)
	hookText    string          // ResponseHook.String(), if known (see Tracker.call); "" if not
	callDone    chan struct{}   // closed by callHandler, Call's, once callResp is set
	callResp    *Response
	answerInAck bool                              // received: its sender takes the answer in the ack
	onAnswer    func(id string, answer *Response) // sent: takes an answer found in the ack, given the request's id (see answer.go)
	answerHook  *url.URL                          // the ResponseHook onAnswer answers for: another hook is answered there, not in the ack
}

// NewRequest creates a new Request instance with a fresh random ID. The
// response hook must be a unix, http or https URL; args are marshalled to
// JSON (nil args travel as null).
func NewRequest(task, responseHook string, args interface{}, sh ResponseHandler, eh ResponseHandler) (*Request, error) {
	hook, err := parseHook(responseHook)
	if err != nil {
		return nil, err
	}
	raw, err := marshalRaw(args)
	if err != nil {
		return nil, fmt.Errorf("%w: args: %w", ErrInvalidRequest, err)
	}
	req := &Request{
		ID:             newID(),
		Task:           task,
		ResponseHook:   hook,
		Args:           raw,
		SuccessHandler: sh,
		ErrorHandler:   eh,
		argsChecked:    checkedCopy(raw),
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return req, nil
}

// newID returns a random (version 4) UUID in its canonical string form.
// uuid.New would make the same in two allocations (its 16 bytes escape
// through an io.Reader); read from crypto/rand into an array, they are
// one: the string (BenchmarkNewID).
func newID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])  // (it never fails: it would crash the program)
	u[6] = u[6]&0x0f | 0x40 // version 4: random (RFC 9562, section 5.4)
	u[8] = u[8]&0x3f | 0x80 // the variant of RFC 9562
	return uuid.UUID(u[:]).String()
}

// parseHook parses and checks a response hook URL: a copy of the last
// one parsed, if s is its text (see lastHook).
func parseHook(s string) (*url.URL, error) {
	if m := lastHook.Load(); m != nil && m.text == s {
		u := m.u
		return &u, nil
	}
	if s == "" {
		return nil, fmt.Errorf("%w: missing response hook", ErrInvalidRequest)
	}
	u, err := url.Parse(s)
	if err == nil {
		err = opaqueHTTP(u)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: response hook: %w", ErrInvalidRequest, err)
	}
	if err := checkURL(u); err != nil {
		return nil, fmt.Errorf("%w: response hook: %w", ErrInvalidRequest, err)
	}
	if len(s) <= maxURLObjectMemo {
		lastHook.Store(&parsedHook{text: s, u: *u})
	}
	return u, nil
}

// A caller of NewRequest most often gives the same hook, its tracker's,
// request after request. The last hook parseHook parsed and found good
// is remembered process-wide, replacing the one before: a pure memo, the
// same URL for the same text. Parsing and checking the hook was 1.9k of
// the 134k instructions of a cycle of BenchmarkEcho/acomm-seed-oneshot
// (callgrind); a copy of the memo, 0.2k.
var lastHook atomic.Pointer[parsedHook]

// parsedHook is a response hook's text and the URL parsed from it.
type parsedHook struct {
	text string
	u    url.URL
}

// checkURL checks that u is a usable unix, http or https address.
func checkURL(u *url.URL) error {
	if u == nil {
		return fmt.Errorf("%w: missing url", ErrInvalidURL)
	}
	switch u.Scheme {
	case "unix":
		if unixPath(u) == "" {
			return fmt.Errorf("%w: %q has no socket path", ErrInvalidURL, u.String())
		}
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%w: %q has no host", ErrInvalidURL, u.String())
		}
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedScheme, u.Scheme)
	}
	return nil
}

// unixPath returns the socket path of a unix URL ("unix:///run/x.sock" and
// "unix:/run/x.sock" give "/run/x.sock"; "unix:rel.sock" gives "rel.sock").
func unixPath(u *url.URL) string {
	if u.Path != "" {
		return u.Path
	}
	return u.Opaque
}

// marshalRaw marshals v into a RawMessage; nil stays nil.
func marshalRaw(v interface{}) (*json.RawMessage, error) {
	return marshalRawInto(v, nil)
}

// marshalRawInto is marshalRaw, keeping JSON made of v (not v's own
// *json.RawMessage) in *mem when mem is not nil: a field of the request
// or response that it is for, instead of a heap allocation of its own.
func marshalRawInto(v interface{}, mem *json.RawMessage) (*json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	// Raw JSON is checked as json.Marshal would, so that bad args or
	// results are refused here rather than when the frame is encoded.
	if r, ok := v.(*json.RawMessage); ok {
		if r == nil || len(*r) == 0 {
			return nil, nil
		}
		if !jsontext.Value(*r).IsValid() {
			return nil, errors.New("raw message is not valid JSON")
		}
		return r, nil
	}
	if mem == nil {
		mem = new(json.RawMessage)
	}
	if r, ok := v.(json.RawMessage); ok {
		*mem = r
		return marshalRawInto(mem, nil)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	// encoding/json lets invalid UTF-8 and lone surrogates through from a
	// Marshaler or a RawMessage field: refused here too, as the encoder
	// would refuse them, so that what this returns is valid JSON, which
	// the encoder then need not check again (see checkedRaw).
	if !jsontext.Value(b).IsValid(jsontext.AllowDuplicateNames(true)) {
		return nil, errors.New("marshalled JSON is not valid")
	}
	*mem = b
	return mem, nil
}

// MarshalJSON marshals a Request into its wire form, with the response
// hook as a string (or as the legacy object when LegacyURLs is set).
func (req *Request) MarshalJSON() ([]byte, error) {
	return appendRequest(nil, req, req.LegacyURLs)
}

// UnmarshalJSON unmarshals a Request from its wire form, matching member
// names regardless of case and refusing one given twice (ErrMalformedFrame).
// The response hook may be a string or the original acomm's object form.
// It does not validate; see Validate.
func (req *Request) UnmarshalJSON(data []byte) error {
	return decodeRequest(data, req)
}

// HandleResponse determines whether a response indicates success or error
// and runs the appropriate handler. If the appropriate handler is not
// defined, it is assumed no handling is necessary and silently finishes.
func (req *Request) HandleResponse(resp *Response) {
	if resp == nil {
		return
	}
	if resp.Error != nil {
		if req.ErrorHandler != nil {
			req.ErrorHandler(req, resp)
		}
		return
	}
	if req.SuccessHandler != nil {
		req.SuccessHandler(req, resp)
	}
}

// Respond sends a Response to a Request's ResponseHook, as Send does, with
// the settings (WithIOTimeout, WithMaxFrameSize) of the Server that
// received the request, if one did.
func (req *Request) Respond(resp *Response) error {
	if resp == nil {
		return fmt.Errorf("%w: nil response", ErrInvalidArgument)
	}
	cfg := &sendDefaults
	if req.via != nil {
		cfg = req.via
	}
	return sendMsg(context.Background(), req.ResponseHook, resp, cfg)
}

// UnmarshalArgs unmarshals the request args into the destination object.
// Absent args leave dest untouched.
func (req *Request) UnmarshalArgs(dest interface{}) error {
	return unmarshalRaw(req.Args, dest, ErrInvalidRequest)
}

// unmarshalRaw unmarshals src into dest, wrapping failures in kind.
func unmarshalRaw(src *json.RawMessage, dest interface{}, kind error) error {
	if src == nil {
		return nil
	}
	if err := json.Unmarshal(*src, dest); err != nil {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return nil
}

// Validate validates the request: it must have an ID, a task and a unix,
// http or https response hook, and its Meta must be within the limits
// (see MaxMetaEntries).
func (req *Request) Validate() error {
	switch {
	case req == nil:
		return fmt.Errorf("%w: nil request", ErrInvalidRequest)
	case req.ID == "":
		return fmt.Errorf("%w: missing id", ErrInvalidRequest)
	case !utf8.ValidString(req.ID):
		return fmt.Errorf("%w: %w: id is not valid UTF-8", ErrInvalidRequest, ErrInvalidArgument)
	case req.Task == "":
		return fmt.Errorf("%w: missing task", ErrInvalidRequest)
	case req.ResponseHook == nil:
		return fmt.Errorf("%w: missing response hook", ErrInvalidRequest)
	}
	if err := checkURL(req.ResponseHook); err != nil {
		return fmt.Errorf("%w: response hook: %w", ErrInvalidRequest, err)
	}
	if err := checkHookUser(req.ResponseHook); err != nil {
		return fmt.Errorf("%w: response hook: %w", ErrInvalidRequest, err)
	}
	return validateMeta(req.Meta)
}

// checkHookUser refuses a response hook with user info: a hook is where
// an answer is sent, chosen by whoever sent the request, and user info is
// the classic way to make a URL read as one host and dial another
// ("http://allowed.example@127.0.0.1/"); nor should hooks, which travel
// to other machines, carry credentials.
func checkHookUser(u *url.URL) error {
	if u != nil && u.User != nil {
		return fmt.Errorf("%w: user info in a response hook", ErrInvalidURL)
	}
	return nil
}
