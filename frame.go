package acomm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The wire framing: every message on a unix socket is a 4-byte big-endian
// length followed by that many bytes of JSON. See README.md, "Wire format".

const (
	// frameHeaderSize is the size of the length prefix.
	frameHeaderSize = 4
	// DefaultMaxFrameSize is the largest frame body accepted unless
	// configured otherwise with WithMaxFrameSize.
	DefaultMaxFrameSize = 64 << 20
	// DefaultIOTimeout bounds each frame read or write, so a peer that
	// stalls in the middle of a frame cannot pin a goroutine forever.
	DefaultIOTimeout = 30 * time.Second
)

// monoEpoch is the origin of monoNow.
var monoEpoch = time.Now()

// monoNow is time.Now read from the monotonic clock alone: half the cost,
// for the many deadlines and ages measured per frame. Its wall clock
// reading drifts with the system clock's adjustments, so it serves for
// deadlines and durations only (which use the monotonic reading).
func monoNow() time.Time { return monoEpoch.Add(time.Since(monoEpoch)) }

// framePool holds encode buffers for outgoing frames.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readFrame reads one frame from r and returns its body. It returns io.EOF
// when r ends cleanly before a frame starts, an error matching
// ErrTruncatedFrame when r ends inside a frame, and a *FrameSizeError when
// the declared length exceeds max (max <= 0 means DefaultMaxFrameSize).
// The length is checked before anything is allocated.
func readFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: in header", ErrTruncatedFrame)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, &FrameSizeError{Size: uint64(n), Max: max}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: want %d body bytes", ErrTruncatedFrame, n)
		}
		return nil, err
	}
	return body, nil
}

// writeFrame writes body as one frame: small frames with a single Write
// from a pooled buffer, large ones with a vectored write and no copy.
func writeFrame(w io.Writer, body []byte, max int) error {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if len(body) > max {
		return &FrameSizeError{Size: uint64(len(body)), Max: max}
	}
	if len(body) > 32<<10 {
		var hdr [frameHeaderSize]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
		bufs := net.Buffers{hdr[:], body}
		_, err := bufs.WriteTo(w)
		return err
	}
	bp := framePool.Get().(*[]byte)
	buf := append((*bp)[:0], 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	buf = append(buf, body...)
	_, err := w.Write(buf)
	*bp = buf[:0]
	framePool.Put(bp)
	return err
}

// encodeFrame marshals payload to JSON and writes it as one frame. Requests
// and responses are encoded straight into a pooled buffer after room for
// the header, and written with one Write.
func encodeFrame(w io.Writer, payload any, max int) error {
	bp, frame, err := marshalFrame(payload, max)
	if err != nil {
		return err
	}
	_, err = w.Write(frame)
	releaseFrame(bp, frame)
	return err
}

// encodeResponseFrame writes resp as one frame.
func encodeResponseFrame(w io.Writer, resp *Response, max int) error {
	bp, frame, err := marshalResponseFrame(resp, max)
	if err != nil {
		return err
	}
	_, err = w.Write(frame)
	releaseFrame(bp, frame)
	return err
}

// marshalFrame encodes payload as a whole frame, header included, into a
// pooled buffer. The caller hands the buffer back with releaseFrame.
func marshalFrame(payload any, max int) (*[]byte, []byte, error) {
	switch p := payload.(type) {
	case *Request:
		if p != nil {
			bp, buf := frameBuffer()
			buf, err := appendRequest(buf, p, p.LegacyURLs)
			return finishFrame(bp, buf, err, max)
		}
	case *Response:
		if p != nil {
			return marshalResponseFrame(p, max)
		}
	}
	bp, buf := frameBuffer()
	var err error
	if payload == nil || isNilMessage(payload) { // as json.Marshal does
		buf = append(buf, "null"...)
	} else {
		var data []byte
		if data, err = json.Marshal(payload); err == nil {
			buf = append(buf, data...)
		}
	}
	return finishFrame(bp, buf, err, max)
}

// marshalResponseFrame is marshalFrame for a response.
func marshalResponseFrame(resp *Response, max int) (*[]byte, []byte, error) {
	bp, buf := frameBuffer()
	buf, err := appendResponse(buf, resp, resp.LegacyURLs)
	return finishFrame(bp, buf, err, max)
}

// isNilMessage reports whether payload is a nil *Request or *Response.
func isNilMessage(payload any) bool {
	switch p := payload.(type) {
	case *Request:
		return p == nil
	case *Response:
		return p == nil
	}
	return false
}

// frameBuffer returns a pooled buffer holding room for a frame header.
func frameBuffer() (*[]byte, []byte) {
	bp := framePool.Get().(*[]byte)
	return bp, append((*bp)[:0], 0, 0, 0, 0)
}

// finishFrame fills in the header of the frame in buf; err is the
// encoder's. On failure the buffer is back in the pool.
func finishFrame(bp *[]byte, buf []byte, err error, max int) (*[]byte, []byte, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if err != nil {
		framePool.Put(bp)
		return nil, nil, fmt.Errorf("%w: marshal payload: %w", ErrInvalidArgument, err)
	}
	n := len(buf) - frameHeaderSize
	if n > max {
		framePool.Put(bp)
		return nil, nil, &FrameSizeError{Size: uint64(n), Max: max}
	}
	binary.BigEndian.PutUint32(buf, uint32(n))
	return bp, buf, nil
}

// releaseFrame hands back the buffer of a frame made by marshalFrame.
func releaseFrame(bp *[]byte, frame []byte) {
	if cap(frame) <= 1<<20 { // do not keep huge buffers alive
		*bp = frame[:0]
		framePool.Put(bp)
	}
}

// decodeFrame reads one frame and unmarshals it into dest. A body that is
// not valid JSON for dest yields an error matching ErrMalformedFrame (and
// the more specific ErrInvalidRequest or ErrInvalidResponse when dest's
// decoder reports one).
func decodeFrame(r io.Reader, dest any, max int) error {
	body, err := readFrame(r, max)
	if err != nil {
		return err
	}
	if err := unmarshalBody(body, dest); err != nil {
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
// before allocating them, and gives up after DefaultIOTimeout.
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
