package acomm

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/sirupsen/logrus"
)

// Features a receiver lists in the "features" field of its
// acknowledgements; a sender treats a peer whose acknowledgement lacks one
// as not having it (the original acomm lists none).
const (
	// featurePipeline: the receiver reads frame after frame on a
	// connection and acknowledges them in order.
	featurePipeline = "pipeline"
	// featureStringURLs: the receiver reads URLs in the string form.
	featureStringURLs = "string-urls"
)

// baseFeatures are the features of every receiver in this package.
var baseFeatures = []string{featurePipeline, featureStringURLs}

// frameHandler handles one received frame body. It returns the ID to put in
// the acknowledgement, the refusal reason (nil to accept), and a func to run
// for an accepted frame (nil for none), which must not block.
type frameHandler func(body []byte) (id string, refusal error, after func())

// readerPool holds the read buffers of served connections.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// frameServer is the state of serveFrames on one connection.
type frameServer struct {
	conn     net.Conn
	cfg      *config
	log      logrus.FieldLogger
	features []string
	ackTail  []byte    // an acceptance after its id
	rdl, wdl time.Time // the deadlines set on conn
	out      []byte    // acknowledgements not yet written
	afters   []func()
}

// serveFrames reads frame after frame from conn until the peer closes it,
// it idles past cfg.idleTimeout, or a frame cannot be read, allowing
// cfg.ioTimeout for a frame begun to arrive whole. It reads ahead: frames
// that arrived together are handled in turn, their after funcs run (so
// that no answer waits for a write), then their acknowledgements, which
// list baseFeatures and extra, go out with one write. A frame that is too
// large is refused, then its body skipped.
func serveFrames(conn net.Conn, cfg *config, log logrus.FieldLogger, handle frameHandler, refused *atomic.Uint64, extra ...string) {
	handle = countingHandler(handle, refused)
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	s := &frameServer{conn: conn, cfg: cfg, log: log, features: append(baseFeatures[:2:2], extra...)}
	tmpl, _ := appendResponse(nil, &Response{}, false, s.features...)
	s.ackTail = tmpl[len(`{"id":""`):]
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
		body, err := readFrame(br, cfg.maxFrameSize)
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
		id, refusal, after := handle(body)
		if refusal != nil {
			log.WithError(refusal).Debug("refused frame")
		}
		s.ack(id, refusal)
		if after != nil {
			s.afters = append(s.afters, after)
		}
		if len(s.out) >= 4<<10 && !s.flush() {
			return
		}
	}
}

// readDeadline sets the connection's read deadline about d from now.
func (s *frameServer) readDeadline(d time.Duration) error {
	return lazyDeadline(s.conn.SetReadDeadline, &s.rdl, time.Now().Add(d), d)
}

// lazyDeadline moves a connection's deadline, last set to *at, to want,
// unless it is no later and at most 1/16 of span earlier: setting one is
// not free, and each frame would set several. A wait so bounded ends
// after between 15/16 of its span and all of it.
func lazyDeadline(set func(time.Time) error, at *time.Time, want time.Time, span time.Duration) error {
	if !at.After(want) && at.After(want.Add(-span/16)) {
		return nil
	}
	*at = want
	return set(want)
}

// ack queues the acknowledgement of a frame. An acceptance is the
// connection's template, made by the encoder, with the id quoted in.
func (s *frameServer) ack(id string, refusal error) {
	start := len(s.out)
	s.out = append(s.out, 0, 0, 0, 0)
	var err error
	if refusal == nil {
		s.out, err = jsontext.AppendQuote(append(s.out, `{"id":`...), id)
		s.out = append(s.out, s.ackTail...)
	}
	if refusal != nil || err != nil { // (err: an id that is not UTF-8, a handler's bug)
		s.out, err = appendResponse(s.out[:start+frameHeaderSize], &Response{ID: id, Error: cmp.Or(refusal, err)}, false, s.features...)
		if err != nil {
			s.out, _ = appendResponse(s.out[:start+frameHeaderSize], &Response{Error: err}, false, s.features...)
		}
	}
	binary.BigEndian.PutUint32(s.out[start:], uint32(len(s.out)-start-frameHeaderSize))
}

// flush runs the queued after funcs, then writes the queued
// acknowledgements within cfg.ioTimeout. It reports whether the
// connection may go on.
func (s *frameServer) flush() bool {
	for _, after := range s.afters {
		after()
	}
	clear(s.afters)
	s.afters = s.afters[:0]
	if len(s.out) == 0 {
		return true
	}
	err := lazyDeadline(s.conn.SetWriteDeadline, &s.wdl, time.Now().Add(s.cfg.ioTimeout), s.cfg.ioTimeout)
	if err == nil {
		_, err = s.conn.Write(s.out)
	}
	s.out = s.out[:0]
	if err != nil {
		s.log.WithError(err).Debug("write acknowledgement failed")
	}
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
