package acomm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// DefaultHTTPTimeout bounds a whole HTTP exchange made by Send and the
// tracker's response forwarding.
const DefaultHTTPTimeout = 30 * time.Second

// maxAckBody bounds how much of an HTTP acknowledgement is read.
const maxAckBody = 1 << 20

// httpClient is the client used for HTTP sends: every phase has a timeout,
// and a redirect is never followed (a 3xx is a failed send, not a second
// POST of the payload to wherever the peer points).
var httpClient = &http.Client{
	Timeout:       DefaultHTTPTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: DefaultHTTPTimeout,
		ExpectContinueTimeout: time.Second,
	},
}

// Send attempts send the payload to the specified URL. For a unix URL it
// writes one frame and waits for the receiver's acknowledgement frame; an
// acknowledgement that carries an error is returned as an error matching
// ErrRefused (and, through RemoteError, the receiver's sentinel). For an
// http(s) URL it POSTs the JSON; a non-2xx status matches ErrHTTPStatus.
func Send(addr *url.URL, payload interface{}) error {
	return sendHTTPOrUnix(addr, payload, &sendDefaults)
}

// sendDefaults are the settings of Send.
var sendDefaults = config{maxFrameSize: DefaultMaxFrameSize, ioTimeout: DefaultIOTimeout}

// sendHTTPOrUnix sends payload to addr with the given settings.
func sendHTTPOrUnix(addr *url.URL, payload any, cfg *config) error {
	if err := checkURL(addr); err != nil {
		return err
	}
	if addr.Scheme == "unix" {
		return sendUnix(unixPath(addr), payload, cfg.maxFrameSize, cfg.ioTimeout)
	}
	return sendHTTP(httpClient, addr, payload)
}

// sendUnix sends payload as a frame to the socket at path and reads the
// acknowledgement, over a pooled connection when one is idle.
func sendUnix(path string, payload any, maxFrame int, ioTimeout time.Duration) error {
	// The frame is made here, not deeper down: the encoder's calls then
	// fit in the starting stack of a fresh goroutine (services answer
	// from one each), which would otherwise be grown and copied.
	bp, frame, err := marshalFrame(payload, maxFrame)
	if err != nil {
		return fmt.Errorf("acomm: send frame: %w", err)
	}
	err = unixPool.send(path, frame, maxFrame, ioTimeout)
	releaseFrame(bp, frame)
	return err
}

// exchange writes frame (a whole frame, as marshalFrame makes it) on the
// connection and reads the acknowledgement, each bounded by ioTimeout;
// now is about the time. Failures that prove the peer did not read the
// frame also match errNotDelivered.
func (pc *poolConn) exchange(frame []byte, maxFrame int, ioTimeout time.Duration, now time.Time) error {
	// One deadline covers the write and the read. Setting it is not free,
	// so it is moved only when it has come 1/16 of ioTimeout closer: the
	// exchange then has between 15/16 of ioTimeout and ioTimeout.
	if pc.deadline.Sub(now) < ioTimeout-ioTimeout/16 {
		if err := pc.conn.SetDeadline(now.Add(ioTimeout)); err != nil {
			return exchangeError("set deadline", err)
		}
		pc.deadline = now.Add(ioTimeout)
	}
	pc.frame, pc.wrote, pc.written, pc.n, pc.werr, pc.rerr = frame, false, 0, 0, nil, nil
	defer func() { pc.frame = nil }()
	if pc.raw != nil && len(frame) <= 64<<10 {
		pc.rawExchange()
	}
	if pc.werr == nil && pc.written < len(frame) {
		// Not done the raw way (too large, or the socket was full):
		// write the rest the ordinary way.
		k, err := pc.conn.Write(frame[pc.written:])
		pc.written += k
		pc.werr = err
	}
	if err := pc.werr; err != nil {
		return exchangeError("send frame", err)
	}
	err := pc.rerr
	if err == nil {
		err = readAckRest(pc.conn, pc.ack[:], pc.n, maxFrame)
	}
	if err != nil {
		return exchangeError("read acknowledgement", err)
	}
	return nil
}

// exchangeError wraps an error of exchange's stage; one that proves the
// peer did not read the frame also matches errNotDelivered. (Apart, to
// keep exchange's frame small.)
//
//go:noinline
func exchangeError(stage string, err error) error {
	if errors.Is(err, ErrRefused) {
		return err
	}
	if isWireError(err) {
		return fmt.Errorf("acomm: %s: %w", stage, err)
	}
	if notDelivered(err) {
		return fmt.Errorf("%w: %s: %w: %w", ErrConnection, stage, errNotDelivered, err)
	}
	if errors.Is(err, io.EOF) {
		// A peer that hangs up instead of acknowledging: not a clean
		// end, and the frame may or may not have been handled.
		return fmt.Errorf("%w: %s: peer closed without acknowledging: %w", ErrConnection, stage, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %s: %w", ErrConnection, stage, err)
}

// rawExchange writes pc.frame and reads what comes back into pc.ack,
// through the raw connection, so as to spare a read: a read right after
// the write would find nothing (the peer has not answered yet) and cost a
// system call for it. Instead, once the frame is written, it waits for the
// connection to become readable before the first read. That is safe only
// because the wait is armed before the write (RawConn.Read resets the
// connection's readiness before it first calls back), and the
// acknowledgement cannot arrive before the frame it acknowledges.
//
// It leaves in pc how much of the frame was written (all unless the
// socket was full, werr is set, or the write is left to the caller) and
// how many bytes of the acknowledgement are in pc.ack (it stops when it
// has the whole frame, or pc.ack is full).
func (pc *poolConn) rawExchange() {
	err := pc.raw.Read(pc.rawStepFn)
	if err != nil && pc.werr == nil && pc.rerr == nil {
		if !pc.wrote || pc.written < len(pc.frame) {
			pc.werr = err
		} else {
			pc.rerr = err
		}
	}
}

// rawStep is rawExchange's callback: the write first, then reads.
func (pc *poolConn) rawStep(fd uintptr) bool {
	if !pc.wrote {
		pc.wrote = true
		for {
			k, e := syscall.Write(int(fd), pc.frame)
			if e == syscall.EINTR {
				continue
			}
			if k > 0 {
				pc.written = k
			}
			switch {
			case e == syscall.EAGAIN:
				return true // the caller writes the rest
			case e != nil:
				pc.werr = os.NewSyscallError("write", e)
				return true
			}
			return pc.written < len(pc.frame) // else wait for the acknowledgement
		}
	}
	for {
		k, e := syscall.Read(int(fd), pc.ack[pc.n:])
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false
		case e != nil:
			pc.rerr = os.NewSyscallError("read", e)
			return true
		case k == 0:
			pc.rerr = io.EOF
			if pc.n > 0 {
				pc.rerr = truncated(io.EOF, "in acknowledgement")
			}
			return true
		}
		pc.n += k
		if pc.n == len(pc.ack) || pc.n >= frameHeaderSize && pc.n >= frameHeaderSize+int(binary.BigEndian.Uint32(pc.ack[:])) {
			return true
		}
	}
}

// readAckRest reads the rest of an acknowledgement frame of which buf[:n] has
// been read, and decodes it. The peer writes nothing but the
// acknowledgement until it gets our next frame, so a read ahead takes
// nothing that belongs to anyone else; if the peer did send more, the
// connection is out of step, and readAckRest fails with errAckOverrun.
func readAckRest(conn net.Conn, buf []byte, n int, maxFrame int) error {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	for n < frameHeaderSize {
		k, err := conn.Read(buf[n:])
		n += k
		if err != nil && n < frameHeaderSize {
			if n == 0 && errors.Is(err, io.EOF) {
				return io.EOF
			}
			return truncated(err, "in header")
		}
	}
	size := binary.BigEndian.Uint32(buf)
	if uint64(size) > uint64(maxFrame) {
		return &FrameSizeError{Size: uint64(size), Max: maxFrame}
	}
	end := frameHeaderSize + int(size)
	if end > len(buf) {
		body := make([]byte, size)
		k := copy(body, buf[frameHeaderSize:n])
		if _, err := io.ReadFull(conn, body[k:]); err != nil {
			return truncated(err, fmt.Sprintf("want %d body bytes", size))
		}
		return ackError(body)
	}
	for n < end {
		k, err := conn.Read(buf[n:end])
		n += k
		if err != nil && n < end {
			return truncated(err, fmt.Sprintf("want %d body bytes", size))
		}
	}
	if n > end {
		return errAckOverrun
	}
	return ackError(buf[frameHeaderSize:end])
}

// ackError decodes an acknowledgement's body: nil when it accepts the
// frame, an error matching ErrRefused when it refuses it, one matching
// ErrMalformedFrame when it is no response. The usual acceptance,
// {"id":"…","result":null,"stream_url":null,"error":""}, is recognised
// without decoding.
func ackError(body []byte) error {
	if plainAccept(body) {
		return nil
	}
	var ack Response
	if err := decodeResponse(bytes.Clone(body), &ack); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedFrame, err)
	}
	if ack.Error != nil {
		return fmt.Errorf("%w: %w", ErrRefused, ack.Error)
	}
	return nil
}

// plainAccept reports whether body is an acknowledgement in the form this
// package writes, accepting the frame.
func plainAccept(body []byte) bool {
	const (
		head = `{"id":"`
		tail = `","result":null,"stream_url":null,"error":""}`
	)
	if len(body) < len(head)+len(tail) || string(body[:len(head)]) != head || string(body[len(body)-len(tail):]) != tail {
		return false
	}
	for _, c := range body[len(head) : len(body)-len(tail)] {
		if c == '"' || c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}

// errAckOverrun reports bytes after an acknowledgement: the peer is not
// speaking the protocol, and the connection must not be reused.
var errAckOverrun = errors.New("acomm: data after acknowledgement")

// sendHTTP POSTs payload as JSON to addr and checks the acknowledgement.
func sendHTTP(client *http.Client, addr *url.URL, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("%w: marshal payload: %w", ErrInvalidArgument, err)
	}
	resp, err := client.Post(addr.String(), "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: post to %s: %w", ErrUnreachable, addr.Redacted(), err)
	}
	defer resp.Body.Close()
	ackBody, err := io.ReadAll(io.LimitReader(resp.Body, maxAckBody))
	if err != nil {
		return fmt.Errorf("%w: read acknowledgement from %s: %w", ErrConnection, addr.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s from %s: %s", ErrHTTPStatus, resp.Status, addr.Redacted(), bytes.TrimSpace(ackBody[:min(len(ackBody), 512)]))
	}
	var ack Response
	if json.Unmarshal(ackBody, &ack) == nil && ack.Error != nil {
		return fmt.Errorf("%w: %w", ErrRefused, ack.Error)
	}
	return nil
}
