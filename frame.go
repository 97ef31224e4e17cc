package acomm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// Framing (README.md, "Wire format"): a 4-byte big-endian length, then that
// many bytes of JSON. Only readFrame and appendFrame read or write it.

const (
	// frameHeaderSize is the size of the length prefix.
	frameHeaderSize = 4
	// DefaultMaxFrameSize is the largest frame body accepted unless
	// configured otherwise with WithMaxFrameSize.
	DefaultMaxFrameSize = 64 << 20
	// DefaultIOTimeout bounds each frame read or write, and the wait for
	// each acknowledgement, unless configured otherwise with WithIOTimeout.
	DefaultIOTimeout = 30 * time.Second
	// frameChunk is how much of a frame body is allocated before it
	// arrives: a larger body grows with the bytes received.
	frameChunk = 64 << 10
)

// readFrame reads one frame's body from r: io.EOF if r ends before it,
// ErrTruncatedFrame inside it, a *FrameSizeError with the body unread if
// it is longer than max (<= 0: DefaultMaxFrameSize). A body that fits in
// buf's capacity is read into buf (the caller must be done with it before
// the next read); a larger one gets memory of its own. The header is read
// into buf too when it fits (r being an interface, a header of its own
// would be a heap allocation per frame).
func readFrame(r io.Reader, max int, buf []byte) ([]byte, error) {
	var hdr []byte
	if cap(buf) >= frameHeaderSize {
		hdr = buf[:frameHeaderSize]
	} else {
		hdr = make([]byte, frameHeaderSize)
	}
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, truncated(err, "in header")
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if uint64(n) > uint64(max) {
		return nil, &FrameSizeError{Size: uint64(n), Max: max}
	}
	var body []byte
	if buf != nil && uint64(n) <= uint64(cap(buf)) {
		body = buf[:n]
	} else {
		body = make([]byte, min(n, frameChunk))
	}
	_, err := io.ReadFull(r, body)
	if err == nil && n > uint32(len(body)) {
		b := bytes.NewBuffer(body)
		_, err = io.CopyN(b, r, int64(n)-int64(len(body)))
		body = b.Bytes()
	}
	if err != nil {
		return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
	}
	return body, nil
}

// maxReusedBody is the largest frame body buffer a connection keeps.
const maxReusedBody = 16 << 10

// reuseBody returns the buffer to read the next frame body into: buf, or
// body's memory when it is larger and not too large to keep.
func reuseBody(buf, body []byte) []byte {
	if cap(body) > cap(buf) && cap(body) <= maxReusedBody {
		return body[:0]
	}
	return buf
}

// appendFrame appends payload to b as one frame: a *Request or *Response
// in its wire form (see appendRequest, appendResponse), anything else as
// encoding/json marshals it.
func appendFrame(b []byte, payload any, legacy bool, max int, features ackFeatures) ([]byte, error) {
	start := len(b)
	b = append(slices.Grow(b, 256+rawSize(payload)), 0, 0, 0, 0) // spare the regrowth
	var err error
	switch p := payload.(type) {
	case *Request:
		if p != nil {
			b, err = appendRequest(b, p, legacy || p.LegacyURLs)
			break
		}
		b = append(b, "null"...)
	case answerInAck:
		b, err = appendRequest(b, p.Request, legacy || p.LegacyURLs)
		if err == nil {
			b = append(b[:len(b)-1], `,"answer_in_ack":true}`...)
		}
	case *ackWithAnswer:
		b, err = appendResponse(b, &Response{ID: p.id}, false, features)
		if err == nil {
			b, err = appendResponse(append(b[:len(b)-1], `,"answer":`...), p.answer, p.answer.LegacyURLs, nil)
			b = append(b, '}')
		}
	case *Response:
		if p != nil {
			b, err = appendResponse(b, p, legacy || p.LegacyURLs, features)
			break
		}
		b = append(b, "null"...)
	default:
		var body []byte
		body, err = json.Marshal(payload)
		b = append(b, body...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: marshal payload: %w", ErrInvalidArgument, err)
	}
	n := len(b) - start - frameHeaderSize
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if n > max {
		return nil, &FrameSizeError{Size: uint64(n), Max: max}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// rawSize is the size of the raw JSON that payload carries (args, result),
// beside which its other members take 256 bytes or so.
func rawSize(payload any) int {
	var raw *json.RawMessage
	switch p := payload.(type) {
	case *Request:
		if p != nil {
			raw = p.Args
		}
	case answerInAck:
		raw = p.Args
	case *ackWithAnswer:
		raw = p.answer.Result
	case *Response:
		if p != nil {
			raw = p.Result
		}
	}
	if raw == nil {
		return 0
	}
	return len(*raw)
}

// frameID returns the id of the request or response payload, "" for
// anything else.
func frameID(payload any) string {
	switch p := payload.(type) {
	case *Request:
		if p != nil {
			return p.ID
		}
	case *Response:
		if p != nil {
			return p.ID
		}
	}
	return ""
}

// decodeFrame reads one frame and unmarshals it into dest; a body that is
// not what dest needs matches ErrMalformedFrame. The body is read into a
// pooled frame buffer (see framePool), which goes back once a Request or
// Response is decoded: their decoders copy out what they keep.
// (readFrame's own header and body were 2 of the 54 allocations, 390 of
// the 5,224 bytes, of a cycle of BenchmarkEcho/acomm-seed-oneshot, in its
// service's UnmarshalConnData.)
func decodeFrame(r io.Reader, dest any, max int) error {
	buf := getFrameBuffer()
	body, err := readFrame(r, max, *buf)
	if err != nil {
		putFrameBuffer(buf, body)
		return err
	}
	switch d := dest.(type) {
	case *Request:
		err = decodeRequest(body, d)
		putFrameBuffer(buf, body)
	case *Response:
		err = decodeResponseChecked(body, d)
		putFrameBuffer(buf, body)
	default:
		// (Not back to the pool: a json.Unmarshaler in dest may keep
		// the bytes, as encoding/json's own decoding lets it.)
		err = json.Unmarshal(body, dest)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedFrame, err)
	}
	return nil
}

// SendConnData marshals and writes payload JSON data to the Conn with
// appropriate headers: a 4-byte big-endian length, then the JSON. The
// write is bounded by DefaultIOTimeout.
func SendConnData(conn net.Conn, payload interface{}) error {
	if conn == nil {
		return fmt.Errorf("%w: nil conn", ErrInvalidArgument)
	}
	if err := conn.SetWriteDeadline(time.Now().Add(DefaultIOTimeout)); err != nil {
		return fmt.Errorf("%w: set write deadline: %w", ErrConnection, err)
	}
	buf := getFrameBuffer() // (as decodeFrame's: the frame is 1 of 52 allocations a seed cycle)
	frame, err := appendFrame(*buf, payload, false, DefaultMaxFrameSize, nil)
	if err == nil {
		_, err = conn.Write(frame)
	}
	putFrameBuffer(buf, frame)
	return connError(err)
}

// UnmarshalConnData reads and unmarshals JSON data from the connection into
// the destination object. It reads exactly one frame, refuses one larger
// than DefaultMaxFrameSize unread, and gives up after DefaultIOTimeout.
func UnmarshalConnData(conn net.Conn, dest interface{}) error {
	if conn == nil {
		return fmt.Errorf("%w: nil conn", ErrInvalidArgument)
	}
	growStack() // (often called on a new goroutine: see there)
	if err := conn.SetReadDeadline(time.Now().Add(DefaultIOTimeout)); err != nil {
		return fmt.Errorf("%w: set read deadline: %w", ErrConnection, err)
	}
	return connError(decodeFrame(conn, dest, DefaultMaxFrameSize))
}

// isWireError reports whether err matches a sentinel of the wire format.
func isWireError(err error) bool {
	for _, s := range []error{ErrTruncatedFrame, ErrFrameTooLarge, ErrMalformedFrame,
		ErrInvalidArgument, ErrInvalidRequest, ErrInvalidResponse, ErrInvalidURL, ErrRefused} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// connError wraps a connection's I/O error (io.EOF too) in ErrConnection.
func connError(err error) error {
	if err == nil || isWireError(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrConnection, err)
}

// truncated turns an EOF inside a frame into ErrTruncatedFrame.
func truncated(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s", ErrTruncatedFrame, where)
	}
	return err
}
