package acomm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/sirupsen/logrus"
)

// frameHandler handles one received frame body. It returns the ID to put in
// the acknowledgement, the refusal reason (nil to accept), and a func to run
// after the acknowledgement is written (nil for none).
type frameHandler func(body []byte) (id string, refusal error, after func())

// serveFrames reads frame after frame from conn until the peer closes it,
// it idles past cfg.idleTimeout, or a frame cannot be read. Each frame is
// acknowledged with a Response frame whose error is "" when accepted or
// the reason it was refused. The body of a frame that is too large is
// refused unread and then skipped.
func serveFrames(conn net.Conn, cfg *config, log logrus.FieldLogger, handle frameHandler) {
	for {
		body, err := readFrameConn(conn, cfg)
		if err != nil {
			var fse *FrameSizeError
			switch {
			case errors.As(err, &fse):
				// Refuse it, then read past its body, so the
				// sender gets the reason (closing with its data
				// unread would reset the connection first) and
				// the connection stays in step for the next frame.
				log.WithError(err).Warn("refused oversized frame")
				if writeAck(conn, cfg, "", err) == nil && discard(conn, cfg, fse.Size) == nil {
					continue
				}
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
				// The peer is done, or we are stopping.
			case errors.Is(err, os.ErrDeadlineExceeded):
				log.WithError(err).Debug("connection idle or stalled; closing")
			default:
				log.WithError(err).Debug("read frame failed; closing")
			}
			return
		}
		id, refusal, after := handle(body)
		if refusal != nil {
			log.WithError(refusal).Debug("refused frame")
		}
		if err := writeAck(conn, cfg, id, refusal); err != nil {
			log.WithError(err).Debug("write acknowledgement failed")
			// The frame was accepted: it is handled even if the peer
			// could not read the acknowledgement.
			if after != nil {
				after()
			}
			return
		}
		if after != nil {
			after()
		}
	}
}

// discard reads and drops n bytes from conn within cfg.ioTimeout.
func discard(conn net.Conn, cfg *config, n uint64) error {
	if err := conn.SetReadDeadline(time.Now().Add(cfg.ioTimeout)); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, conn, int64(n))
	return err
}

// readFrameConn reads one frame from conn, allowing cfg.idleTimeout for it
// to begin and cfg.ioTimeout for the rest of it to arrive.
func readFrameConn(conn net.Conn, cfg *config) ([]byte, error) {
	if err := conn.SetReadDeadline(time.Now().Add(cfg.idleTimeout)); err != nil {
		return nil, err
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(conn, hdr[:1]); err != nil {
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(cfg.ioTimeout)); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(conn, hdr[1:]); err != nil {
		return nil, truncated(err, "in header")
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(cfg.maxFrameSize) {
		return nil, &FrameSizeError{Size: uint64(n), Max: cfg.maxFrameSize}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, truncated(err, fmt.Sprintf("want %d body bytes", n))
	}
	return body, nil
}

// truncated turns an EOF inside a frame into ErrTruncatedFrame.
func truncated(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s", ErrTruncatedFrame, where)
	}
	return err
}

// writeAck writes the acknowledgement of a frame.
func writeAck(conn net.Conn, cfg *config, id string, refusal error) error {
	if err := conn.SetWriteDeadline(time.Now().Add(cfg.ioTimeout)); err != nil {
		return err
	}
	// Acks are small; the frame limit (which may be set very low) bounds
	// what we accept, not the reasons we give.
	return encodeFrame(conn, &Response{ID: id, Error: refusal}, DefaultMaxFrameSize)
}
