package acomm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Features a receiver lists in its acknowledgements ("features"); a peer
// whose acknowledgement lacks one has not got it (the original lists none).
const (
	featurePipeline   = "pipeline"    // reads frame after frame, acknowledges in order
	featureStringURLs = "string-urls" // reads URLs in the string form
)

// baseFeatures are the features of every receiver in this package.
var baseFeatures = []string{featurePipeline, featureStringURLs}

// frameHandler handles a frame body, which it must not keep (it is
// overwritten by the next frame's): the ID for the acknowledgement, the
// refusal reason (nil: accepted) and a func to run after the
// acknowledgement is written, which must not block. Or, in place of
// after, answer, called at once: it starts handling the frame and may
// return an answerAwait, called before the acknowledgement is written.
type frameHandler func(body []byte) (id string, refusal error, after func(), answer func() answerAwait)

// answerAwait returns the response to put in a frame's acknowledgement
// (see featureAnswerInAck), waiting for it until deadline at most; nil:
// none. written, when not nil, is then told whether the acknowledgement
// carrying it was written.
type answerAwait func(deadline time.Time) (answer *Response, written func(ok bool))

// readerPool holds the read buffers of served connections.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// frameServer is serveFrames's state on a connection.
type frameServer struct {
	conn     net.Conn
	cfg      *config
	log      logrus.FieldLogger
	features []string
	rdl, wdl time.Time // the deadlines set on conn
	out      []byte    // acknowledgements not yet written
	body     []byte    // holds a frame's body while it is handled
	afters   []func()
	pending  []pendingAck // acknowledgements after out, not yet encoded
	written  []func(ok bool)
}

// pendingAck is an acknowledgement that may carry an answer: it and those
// after it wait for the answer (a moment at most) when they are flushed.
type pendingAck struct {
	id      string
	refusal error
	await   answerAwait
}

// serveFrames reads frames from conn until the peer closes it, it idles
// past cfg.idleTimeout, or a frame cannot be read whole in cfg.ioTimeout.
// Frames that arrived together are handled in turn, and their
// acknowledgements, listing baseFeatures and extra, go out in one write
// before their after funcs run. An oversized frame is refused, skipped.
func serveFrames(conn net.Conn, cfg *config, log logrus.FieldLogger, handle frameHandler, refused *atomic.Uint64, extra ...string) {
	handle = countingHandler(handle, refused)
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	s := &frameServer{conn: conn, cfg: cfg, log: log, features: append(baseFeatures[:2:2], extra...),
		body: make([]byte, 0, 1<<10)}
	for {
		if br.Buffered() == 0 {
			if !s.flush() || s.readDeadline(cfg.idleTimeout) != nil {
				return
			}
			if _, err := br.Peek(1); err != nil {
				logReadEnd(log, err)
				return
			}
		}
		if hdr, _ := br.Peek(min(br.Buffered(), frameHeaderSize)); len(hdr) < frameHeaderSize ||
			br.Buffered()-frameHeaderSize < int(binary.BigEndian.Uint32(hdr)) {
			if s.readDeadline(cfg.ioTimeout) != nil { // for the rest of the frame
				return
			}
		}
		body, err := readFrame(br, cfg.maxFrameSize, s.body)
		s.body = reuseBody(s.body, body)
		var fse *FrameSizeError
		if errors.As(err, &fse) {
			// Refuse it, then read past its body, so that the sender
			// gets the reason (closing with its data unread would reset
			// the connection) and the connection stays in step.
			log.WithError(err).Warn("refused oversized frame")
			refused.Add(1)
			s.ack("", err)
			if !s.flush() || s.readDeadline(cfg.ioTimeout) != nil {
				return
			}
			if _, err = io.CopyN(io.Discard, br, int64(fse.Size)); err == nil {
				continue
			}
		}
		if err != nil {
			s.flush()
			logReadEnd(log, err)
			return
		}
		id, refusal, after, answer := handle(body)
		if refusal != nil {
			log.WithError(refusal).Debug("refused frame")
		}
		var await answerAwait
		if answer != nil {
			await = answer()
		}
		if await != nil || len(s.pending) > 0 {
			s.pending = append(s.pending, pendingAck{id: id, refusal: refusal, await: await})
		} else {
			s.ack(id, refusal)
		}
		if after != nil {
			s.afters = append(s.afters, after)
		}
		if (len(s.out) >= 4<<10 || len(s.pending) >= 64) && !s.flush() {
			return
		}
	}
}

// readDeadline sets the connection's read deadline about d from now.
func (s *frameServer) readDeadline(d time.Duration) error {
	return lazyDeadline(s.conn.SetReadDeadline, &s.rdl, time.Now().Add(d), d)
}

// lazyDeadline moves a deadline, last set to *at, to want unless it is no
// later and at most span/16 earlier (setting one costs, and each frame
// would set several): a wait then ends after 15/16 of span to all of it.
func lazyDeadline(set func(time.Time) error, at *time.Time, want time.Time, span time.Duration) error {
	if !at.After(want) && at.After(want.Add(-span/16)) {
		return nil
	}
	*at = want
	return set(want)
}

// ack queues the acknowledgement of a frame.
func (s *frameServer) ack(id string, refusal error) {
	if len(s.pending) > 0 {
		s.pending = append(s.pending, pendingAck{id: id, refusal: refusal})
		return
	}
	out, err := appendFrame(s.out, &Response{ID: id, Error: refusal}, false, 0, s.features...)
	if err != nil { // text that is not UTF-8: a handler's bug
		out, _ = appendFrame(s.out, &Response{Error: err}, false, 0, s.features...)
	}
	s.out = out
}

// ackAnswer queues the acknowledgement of an accepted frame, carrying its
// answer if there is one.
func (s *frameServer) ackAnswer(id string, answer *Response) {
	if answer == nil {
		s.ack(id, nil)
		return
	}
	out, err := appendFrame(s.out, &ackWithAnswer{id: id, answer: answer}, false, s.cfg.maxFrameSize, s.features...)
	if err != nil { // as Server.respond does
		s.log.WithError(err).WithField("id", id).Warn("response cannot be sent; sending an error instead")
		err = fmt.Errorf("%w: the response cannot be sent: %w", ErrInvalidResponse, err)
		if errors.Is(err, ErrFrameTooLarge) {
			err = fmt.Errorf("%w: the response is too large to send", ErrFrameTooLarge)
		}
		out, _ = appendFrame(s.out, &ackWithAnswer{id: id, answer: &Response{ID: answer.ID, Error: err}}, false, 0, s.features...)
	}
	s.out = out
}

// flush writes the queued acknowledgements within cfg.ioTimeout, then
// runs the after funcs: once a frame is handled, Stop may close the
// connection, and the sender must have its acknowledgement by then. It
// reports whether the connection may go on.
func (s *frameServer) flush() bool {
	if len(s.pending) > 0 {
		// The handlers started together: they share one short wait.
		deadline := time.Now().Add(answerBudget)
		pending := s.pending
		s.pending = nil
		for _, p := range pending {
			switch {
			case p.await != nil:
				answer, written := p.await(deadline)
				s.ackAnswer(p.id, answer)
				if written != nil {
					s.written = append(s.written, written)
				}
			default:
				s.ack(p.id, p.refusal)
			}
		}
		clear(pending)
		s.pending = pending[:0]
	}
	var err error
	if len(s.out) > 0 {
		if err = lazyDeadline(s.conn.SetWriteDeadline, &s.wdl, time.Now().Add(s.cfg.ioTimeout), s.cfg.ioTimeout); err == nil {
			_, err = s.conn.Write(s.out)
		}
		s.out = s.out[:0]
	}
	if err != nil {
		s.log.WithError(err).Debug("write acknowledgement failed")
	}
	for _, written := range s.written {
		written(err == nil)
	}
	clear(s.written)
	s.written = s.written[:0]
	for _, after := range s.afters { // accepted frames: handled even so
		after()
	}
	clear(s.afters)
	s.afters = s.afters[:0]
	return err == nil
}

// logReadEnd logs why a connection's frames ended, if worth saying.
func logReadEnd(log logrus.FieldLogger, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.WithError(err).Debug("connection idle or stalled; closing")
	default:
		log.WithError(err).Debug("read frame failed; closing")
	}
}
