package acomm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"github.com/sirupsen/logrus"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Features a receiver lists in the "features" field of its
// acknowledgements. A sender treats a peer whose acknowledgement lacks one
// as not having it; the original acomm lists none.
const (
	// featurePipeline: the receiver reads frame after frame on a
	// connection and acknowledges them in order, so a sender may keep the
	// connection and send frames without waiting for earlier acks.
	featurePipeline = "pipeline"
	// featureStringURLs: the receiver reads URLs in the string form.
	featureStringURLs = "string-urls"
)

// baseFeatures are the features of every receiver in this package.
var baseFeatures = []string{featurePipeline, featureStringURLs}

// frameHandler handles one received frame body. It returns the ID to put in
// the acknowledgement, the refusal reason (nil to accept), and a func to run
// after the acknowledgement is written (nil for none), which must not
// block: the connection's frames wait for it.
type frameHandler func(body []byte) (id string, refusal error, after func())

// connReadBufSize is the read buffer of a served connection.
const connReadBufSize = 4 << 10

// readerPool holds the read buffers of served connections.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, connReadBufSize) }}

// frameServer is the state of serveFrames on one connection.
type frameServer struct {
	conn     net.Conn
	cfg      *config
	log      logrus.FieldLogger
	br       *bufio.Reader
	features []string
	out      []byte   // acknowledgements not yet written
	afters   []func() // to run once they are
}

// serveFrames reads frame after frame from conn until the peer closes it,
// it idles past cfg.idleTimeout, or a frame cannot be read, allowing
// cfg.ioTimeout for a frame begun to arrive whole. It reads ahead: the
// frames that arrived together are handled in turn and their
// acknowledgements (Response frames whose error is "" or the refusal's
// reason, listing the receiver's features: baseFeatures and extra) written
// with one write, before their after funcs run. The body of a frame that
// is too large is refused unread and then skipped.
func serveFrames(conn net.Conn, cfg *config, log logrus.FieldLogger, handle frameHandler, refused *atomic.Uint64, extra ...string) {
	handle = countingHandler(handle, refused)
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	s := &frameServer{conn: conn, cfg: cfg, log: log, br: br, features: append(baseFeatures[:len(baseFeatures):len(baseFeatures)], extra...)}
	for {
		if br.Buffered() == 0 {
			if !s.flush() {
				return
			}
			if err := s.readDeadline(cfg.idleTimeout); err != nil {
				return
			}
			if _, err := br.Peek(1); err != nil {
				logReadEnd(log, err)
				return
			}
		}
		if n := br.Buffered(); n < frameHeaderSize || n-frameHeaderSize < int(binary.BigEndian.Uint32(peek(br, frameHeaderSize))) {
			// Not all here: the rest must come within the I/O timeout.
			if err := s.readDeadline(cfg.ioTimeout); err != nil {
				return
			}
		}
		body, err := readFrame(br, cfg.maxFrameSize)
		var fse *FrameSizeError
		switch {
		case errors.As(err, &fse):
			// Refuse it, then read past its body, so the sender gets
			// the reason (closing with its data unread would reset the
			// connection first) and the connection stays in step.
			log.WithError(err).Warn("refused oversized frame")
			refused.Add(1)
			s.ack("", err)
			if !s.flush() || s.readDeadline(cfg.ioTimeout) != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, br, int64(fse.Size)); err != nil {
				return
			}
			continue
		case err != nil:
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
		if len(s.out) >= connReadBufSize && !s.flush() {
			return
		}
	}
}

// peek returns the next n buffered bytes of br (n <= br.Buffered()).
func peek(br *bufio.Reader, n int) []byte {
	b, _ := br.Peek(n)
	return b
}

// readDeadline sets the connection's read deadline d from now.
func (s *frameServer) readDeadline(d time.Duration) error {
	return s.conn.SetReadDeadline(time.Now().Add(d))
}

// ack queues the acknowledgement of a frame.
func (s *frameServer) ack(id string, refusal error) {
	body, err := marshalResponse(&Response{ID: id, Error: refusal}, false, s.features...)
	if err != nil { // text that is not valid UTF-8 (a handler's bug)
		body, _ = marshalResponse(&Response{Error: err}, false, s.features...)
	}
	// Acks are small; the frame limit (which may be set very low) bounds
	// what we accept, not the reasons we give.
	s.out, _ = appendBody(s.out, body, DefaultMaxFrameSize)
}

// flush writes the queued acknowledgements within cfg.ioTimeout, then runs
// the after funcs of their frames (whose frames were accepted: they are
// handled even if the peer could not read the acknowledgement). It
// reports whether the connection may go on.
func (s *frameServer) flush() bool {
	ok := true
	if len(s.out) > 0 {
		err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.ioTimeout))
		if err == nil {
			_, err = s.conn.Write(s.out)
		}
		if err != nil {
			s.log.WithError(err).Debug("write acknowledgement failed")
			ok = false
		}
		s.out = s.out[:0]
	}
	for i, after := range s.afters {
		after()
		s.afters[i] = nil
	}
	s.afters = s.afters[:0]
	return ok
}

// logReadEnd logs why a connection's frames ended; nil for no reason
// worth saying.
func logReadEnd(log logrus.FieldLogger, err error) {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		// The peer is done, or we are stopping.
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.WithError(err).Debug("connection idle or stalled; closing")
	default:
		log.WithError(err).Debug("read frame failed; closing")
	}
}
