package acomm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The wire framing: every message on a unix socket is a 4-byte big-endian
// length followed by that many bytes of JSON. See README.md, "Wire format".
// readFrame and appendFrame are the only code that reads or writes it.

const (
	// frameHeaderSize is the size of the length prefix.
	frameHeaderSize = 4
	// DefaultMaxFrameSize is the largest frame body accepted unless
	// configured otherwise with WithMaxFrameSize.
	DefaultMaxFrameSize = 64 << 20
	// DefaultIOTimeout bounds each frame read or write, and the wait for
	// each acknowledgement, unless configured otherwise with WithIOTimeout.
	DefaultIOTimeout = 30 * time.Second
	// frameChunk is how much of a frame body is allocated before its bytes
	// arrive: a larger body grows with what is received.
	frameChunk = 64 << 10
)

// readFrame reads one frame from r and returns its body. It returns io.EOF
// when r ends cleanly before a frame starts, an error matching
// ErrTruncatedFrame when r ends inside a frame, and a *FrameSizeError when
// the declared length exceeds max (max <= 0 means DefaultMaxFrameSize),
// with nothing of the body read. Memory for the body grows with the bytes
// that arrive, so a declared length alone pins nothing.
func readFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, truncated(err, "in header")
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, &FrameSizeError{Size: uint64(n), Max: max}
	}
	if n <= frameChunk {
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
		}
		return body, nil
	}
	var buf bytes.Buffer
	buf.Grow(frameChunk)
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
	}
	return buf.Bytes(), nil
}

// appendFrame appends payload to b as one frame: *Request and *Response
// in their wire form, with URLs in the original's object form when legacy
// is set (or the message's LegacyURLs is), anything else as encoding/json
// marshals it.
func appendFrame(b []byte, payload any, legacy bool, max int) ([]byte, error) {
	var (
		body []byte
		err  error
	)
	switch p := payload.(type) {
	case *Request:
		if p != nil {
			body, err = marshalRequest(p, legacy || p.LegacyURLs)
			break
		}
		body = []byte("null")
	case *Response:
		if p != nil {
			body, err = marshalResponse(p, legacy || p.LegacyURLs)
			break
		}
		body = []byte("null")
	default:
		body, err = json.Marshal(payload)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: marshal payload: %w", ErrInvalidArgument, err)
	}
	return appendBody(b, body, max)
}

// appendBody appends body to b as one frame.
func appendBody(b, body []byte, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if len(body) > max {
		return nil, &FrameSizeError{Size: uint64(len(body)), Max: max}
	}
	return append(binary.BigEndian.AppendUint32(b, uint32(len(body))), body...), nil
}

// writeFrame writes body as one frame, with one Write.
func writeFrame(w io.Writer, body []byte, max int) error {
	frame, err := appendBody(make([]byte, 0, frameHeaderSize+len(body)), body, max)
	if err == nil {
		_, err = w.Write(frame)
	}
	return err
}

// encodeFrame marshals payload (see appendFrame) and writes it as one frame.
func encodeFrame(w io.Writer, payload any, max int) error {
	frame, err := appendFrame(nil, payload, false, max)
	if err == nil {
		_, err = w.Write(frame)
	}
	return err
}

// decodeFrame reads one frame and unmarshals it into dest. A body that is
// not valid JSON for dest yields an error matching ErrMalformedFrame (and
// the more specific ErrInvalidRequest or ErrInvalidResponse for those).
func decodeFrame(r io.Reader, dest any, max int) error {
	body, err := readFrame(r, max)
	if err != nil {
		return err
	}
	switch d := dest.(type) {
	case *Request:
		err = decodeRequest(body, d)
	case *Response:
		_, err = decodeResponse(body, d)
	default:
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
	return connError(encodeFrame(conn, payload, DefaultMaxFrameSize))
}

// UnmarshalConnData reads and unmarshals JSON data from the connection into
// the destination object. It reads exactly one frame, however the peer
// split it into writes, refuses frames larger than DefaultMaxFrameSize
// before reading them, and gives up after DefaultIOTimeout.
func UnmarshalConnData(conn net.Conn, dest interface{}) error {
	if conn == nil {
		return fmt.Errorf("%w: nil conn", ErrInvalidArgument)
	}
	if err := conn.SetReadDeadline(time.Now().Add(DefaultIOTimeout)); err != nil {
		return fmt.Errorf("%w: set read deadline: %w", ErrConnection, err)
	}
	return connError(decodeFrame(conn, dest, DefaultMaxFrameSize))
}

// isWireError reports whether err already matches one of the sentinels of
// the wire format (or of bad input).
func isWireError(err error) bool {
	for _, s := range []error{ErrTruncatedFrame, ErrFrameTooLarge, ErrMalformedFrame,
		ErrInvalidArgument, ErrInvalidRequest, ErrInvalidResponse, ErrInvalidURL, ErrRefused} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// connError wraps an I/O error of a connection in ErrConnection (keeping
// it, io.EOF included, in the chain); wire-format errors stay as they are.
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
