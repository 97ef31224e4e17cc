package acomm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenFrame is one entry of the table of exact encoded frames: a payload,
// and the bytes encodeFrame writes for it (4-byte big-endian length, then
// the JSON body).
type goldenFrame struct {
	name    string
	payload any
	wire    string
}

// longString is a JSON body longer than 255 bytes, so that more than one
// byte of the length prefix is in use (302 = 0x012e).
var longString = strings.Repeat("x", 300)

// goldenFrames pins the wire format. Changing any of these bytes breaks
// every deployed peer.
var goldenFrames = []goldenFrame{
	{name: "empty object", payload: map[string]any{}, wire: "\x00\x00\x00\x02{}"},
	{name: "null", payload: nil, wire: "\x00\x00\x00\x04null"},
	{name: "nil request", payload: (*Request)(nil), wire: "\x00\x00\x00\x04null"},
	{name: "nil response", payload: (*Response)(nil), wire: "\x00\x00\x00\x04null"},
	{name: "string over 255 bytes", payload: longString, wire: "\x00\x00\x01\x2e\"" + longString + "\""},
	{
		name: "request",
		payload: &Request{
			ID: "1", Task: "t",
			ResponseHook: &url.URL{Scheme: "unix", Path: "/run/x.sock"},
			Args:         rawJSON(`{"a":1}`),
		},
		wire: "\x00\x00\x00\x48" + `{"id":"1","task":"t","responsehook":"unix:///run/x.sock","args":{"a":1}}`,
	},
	{
		name:    "accepting ack",
		payload: &Response{ID: "1"},
		wire:    "\x00\x00\x00\x35" + `{"id":"1","result":null,"stream_url":null,"error":""}`,
	},
	{
		name:    "refusing ack",
		payload: &Response{Error: fmt.Errorf("%w: missing task", ErrInvalidRequest)},
		wire:    "\x00\x00\x00\x58" + `{"id":"","result":null,"stream_url":null,"error":"acomm: invalid request: missing task"}`,
	},
}

// golden returns the golden frame named name.
func golden(t testing.TB, name string) goldenFrame {
	t.Helper()
	for _, g := range goldenFrames {
		if g.name == name {
			return g
		}
	}
	t.Fatalf("no golden frame %q", name)
	return goldenFrame{}
}

// rawJSON returns s as a *json.RawMessage.
func rawJSON(s string) *json.RawMessage {
	r := json.RawMessage(s)
	return &r
}

// frameBytes returns a frame with header n and the given body (n need not
// match the body's length).
func frameBytes(n uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, n)
	return append(b, body...)
}

func TestEncodeFrameGolden(t *testing.T) {
	for _, tc := range goldenFrames {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, encodeFrame(&buf, tc.payload, 0))
			assert.Equal(t, []byte(tc.wire), buf.Bytes())

			// The body is what encoding/json makes of the payload.
			want, err := json.Marshal(tc.payload)
			require.NoError(t, err)
			assert.Equal(t, string(want), tc.wire[frameHeaderSize:])
		})
	}
}

func TestReadFrameGolden(t *testing.T) {
	for _, tc := range goldenFrames {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader(tc.wire)
			body, err := readFrame(r, 0, nil)
			require.NoError(t, err)
			assert.Equal(t, []byte(tc.wire[frameHeaderSize:]), body)
			_, err = readFrame(r, 0, nil)
			assert.Same(t, io.EOF, err, "a clean end after a frame is io.EOF itself")
		})
	}
}

func TestDecodeFrameGolden(t *testing.T) {
	t.Run("request", func(t *testing.T) {
		var req Request
		require.NoError(t, decodeFrame(strings.NewReader(golden(t, "request").wire), &req, 0))
		assert.Equal(t, "1", req.ID)
		assert.Equal(t, "t", req.Task)
		assert.Equal(t, "unix:///run/x.sock", req.ResponseHook.String())
		require.NotNil(t, req.Args)
		assert.JSONEq(t, `{"a":1}`, string(*req.Args))
		assert.False(t, req.LegacyURLs)
	})
	t.Run("refusing ack", func(t *testing.T) {
		var resp Response
		require.NoError(t, decodeFrame(strings.NewReader(golden(t, "refusing ack").wire), &resp, 0))
		assert.Equal(t, "", resp.ID)
		assert.ErrorIs(t, resp.Error, ErrInvalidRequest)
		assert.EqualError(t, resp.Error, "acomm: invalid request: missing task")
	})
}

// TestReadFrameSplit reads frames delivered in pieces: however the peer
// split its writes, one frame decodes.
func TestReadFrameSplit(t *testing.T) {
	wire := []byte(golden(t, "request").wire)
	want := wire[frameHeaderSize:]

	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"one byte at a time", iotest.OneByteReader},
		{"half at a time", iotest.HalfReader},
		{"EOF with the last data", iotest.DataErrReader},
	}
	for _, rc := range readers {
		t.Run(rc.name, func(t *testing.T) {
			// Two frames back to back, then a clean end.
			two := append(append([]byte{}, wire...), wire...)
			r := rc.wrap(bytes.NewReader(two))
			for i := 0; i < 2; i++ {
				body, err := readFrame(r, 0, nil)
				require.NoError(t, err, "frame %d", i)
				assert.Equal(t, want, body, "frame %d", i)
			}
			_, err := readFrame(r, 0, nil)
			assert.ErrorIs(t, err, io.EOF)
			assert.NotErrorIs(t, err, ErrTruncatedFrame)
		})
	}

	t.Run("net.Pipe, one byte per write", func(t *testing.T) {
		client, server := pipe(t)
		writeSlowly(t, client, wire, false)
		body, err := readFrame(server, 0, nil)
		require.NoError(t, err)
		assert.Equal(t, want, body)
	})
}

// pipe returns both ends of a net.Pipe, closed at cleanup.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	client, server = net.Pipe()
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return client, server
}

// socketPair returns two connected unix stream sockets, closed at cleanup.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l, err := net.Listen("unix", dir+"/s")
	require.NoError(t, err)
	defer l.Close()
	client, err := net.Dial("unix", dir+"/s")
	require.NoError(t, err)
	server, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

// writeSlowly writes data to conn one byte per Write in a goroutine that is
// waited for at cleanup. With stall, it then blocks until the test ends
// instead of closing conn; otherwise it closes conn.
func writeSlowly(t *testing.T, conn net.Conn, data []byte, stall bool) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range data {
			if _, err := conn.Write(data[i : i+1]); err != nil {
				return
			}
		}
		if stall {
			<-done
		}
		_ = conn.Close()
	}()
	// Registered after pipe's cleanup, so it runs first: release the
	// writer, close the pipe under it, and wait for it.
	t.Cleanup(func() {
		close(done)
		_ = conn.Close()
		wg.Wait()
	})
}

func TestReadFrameEOF(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		truncated bool // else the error is io.EOF itself
	}{
		{name: "nothing", in: nil},
		{name: "one header byte", in: []byte{0}, truncated: true},
		{name: "three header bytes", in: []byte{0, 0, 0}, truncated: true},
		{name: "header only", in: frameBytes(5, nil), truncated: true},
		{name: "part of the body", in: frameBytes(5, []byte("abc")), truncated: true},
		{name: "all but the last body byte", in: frameBytes(1000, make([]byte, 999)), truncated: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{
				func(r io.Reader) io.Reader { return r },
				iotest.OneByteReader,
			} {
				_, err := readFrame(wrap(bytes.NewReader(tc.in)), 0, nil)
				if !tc.truncated {
					assert.Same(t, io.EOF, err)
					continue
				}
				assert.ErrorIs(t, err, ErrTruncatedFrame)
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
				assert.NotErrorIs(t, err, io.EOF, "a frame cut short is not a clean end")
			}
		})
	}

	t.Run("empty frame", func(t *testing.T) {
		body, err := readFrame(bytes.NewReader(frameBytes(0, nil)), 0, nil)
		require.NoError(t, err)
		assert.Empty(t, body)
	})
}

func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"before the header", iotest.ErrReader(boom)},
		{"inside the header", io.MultiReader(bytes.NewReader([]byte{0, 0}), iotest.ErrReader(boom))},
		{"inside the body", io.MultiReader(bytes.NewReader(frameBytes(4, []byte("ab"))), iotest.ErrReader(boom))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readFrame(tc.r, 0, nil)
			assert.ErrorIs(t, err, boom)
			assert.NotErrorIs(t, err, ErrTruncatedFrame, "only an early EOF is a truncation")
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadFrameTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		declare uint32
		max     int
		wantMax int
	}{
		{name: "all ones, small max", declare: 0xFFFFFFFF, max: 1024, wantMax: 1024},
		{name: "all ones, default max", declare: 0xFFFFFFFF, max: 0, wantMax: DefaultMaxFrameSize},
		{name: "one over the default", declare: DefaultMaxFrameSize + 1, max: -1, wantMax: DefaultMaxFrameSize},
		{name: "one over max", declare: 11, max: 10, wantMax: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing follows the header: reading on would report a
			// truncation, not the size.
			r := &countingReader{r: bytes.NewReader(frameBytes(tc.declare, nil))}
			_, err := readFrame(r, tc.max, nil)
			var fse *FrameSizeError
			require.ErrorAs(t, err, &fse)
			assert.Equal(t, uint64(tc.declare), fse.Size)
			assert.Equal(t, tc.wantMax, fse.Max)
			assert.ErrorIs(t, err, ErrFrameTooLarge)
			assert.Equal(t, frameHeaderSize, r.n, "only the header is read")
		})
	}

	t.Run("exactly max is accepted", func(t *testing.T) {
		body, err := readFrame(bytes.NewReader(frameBytes(10, []byte("0123456789"))), 10, nil)
		require.NoError(t, err)
		assert.Equal(t, []byte("0123456789"), body)
	})

	t.Run("nothing is allocated for the declared size", func(t *testing.T) {
		hdr := frameBytes(0xFFFFFFFF, nil)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < 10; i++ {
			_, err := readFrame(bytes.NewReader(hdr), 0, nil)
			require.ErrorIs(t, err, ErrFrameTooLarge)
		}
		runtime.ReadMemStats(&after)
		// Ten refusals: a buffer for any of them would be >= 64 MiB.
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
	})
}

func TestWriteFrameSizes(t *testing.T) {
	sizes := []int{0, 1, 255, 256, 1023, 1024, 32 << 10, 32<<10 + 1, 1 << 20}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			body := make([]byte, n)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			var buf bytes.Buffer
			require.NoError(t, writeFrame(&buf, body, 0))
			require.Equal(t, frameHeaderSize+n, buf.Len())
			assert.Equal(t, uint32(n), binary.BigEndian.Uint32(buf.Bytes()))
			assert.Equal(t, body, buf.Bytes()[frameHeaderSize:])

			got, err := readFrame(&buf, 0, nil)
			require.NoError(t, err)
			assert.Equal(t, body, got)
		})
	}

	t.Run("pooled buffers are not shared between frames", func(t *testing.T) {
		var a, b bytes.Buffer
		require.NoError(t, writeFrame(&a, []byte("first"), 0))
		require.NoError(t, writeFrame(&b, []byte("second!"), 0))
		assert.Equal(t, "\x00\x00\x00\x05first", a.String())
		assert.Equal(t, "\x00\x00\x00\x07second!", b.String())
	})

	t.Run("large frame over net.Pipe", func(t *testing.T) {
		client, server := pipe(t)
		body := bytes.Repeat([]byte("z"), 100<<10)
		errc := make(chan error, 1)
		go func() { errc <- writeFrame(client, body, 0) }()
		got, err := readFrame(server, 0, nil)
		require.NoError(t, err)
		assert.Equal(t, body, got)
		require.NoError(t, <-errc)
	})
}

// failWriter fails every write.
type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriteFrameErrors(t *testing.T) {
	t.Run("oversize body is refused unwritten", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			n    int
			max  int
		}{
			{"over a small max", 11, 10},
			{"over the default", DefaultMaxFrameSize + 1, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var buf bytes.Buffer
				err := writeFrame(&buf, make([]byte, tc.n), tc.max)
				var fse *FrameSizeError
				require.ErrorAs(t, err, &fse)
				assert.Equal(t, uint64(tc.n), fse.Size)
				assert.ErrorIs(t, err, ErrFrameTooLarge)
				assert.Zero(t, buf.Len(), "nothing written")
			})
		}
	})

	t.Run("exactly max is written", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, writeFrame(&buf, make([]byte, 10), 10))
		assert.Equal(t, 14, buf.Len())
	})

	t.Run("writer errors are returned", func(t *testing.T) {
		boom := errors.New("boom")
		for _, n := range []int{10, 64 << 10} {
			assert.ErrorIs(t, writeFrame(failWriter{boom}, make([]byte, n), 0), boom, "%d bytes", n)
		}
	})
}

func TestEncodeDecodeFrameErrors(t *testing.T) {
	t.Run("unmarshalable payload", func(t *testing.T) {
		var buf bytes.Buffer
		err := encodeFrame(&buf, make(chan int), 0)
		assert.ErrorIs(t, err, ErrInvalidArgument)
		assert.Zero(t, buf.Len())
	})
	t.Run("payload too large", func(t *testing.T) {
		var buf bytes.Buffer
		err := encodeFrame(&buf, longString, 100)
		assert.ErrorIs(t, err, ErrFrameTooLarge)
		assert.Zero(t, buf.Len())
	})

	tests := []struct {
		name  string
		body  string
		dest  func() any
		wants []error
	}{
		{"not JSON", "{", func() any { return new(map[string]any) }, []error{ErrMalformedFrame}},
		{"empty body", "", func() any { return new(map[string]any) }, []error{ErrMalformedFrame}},
		{"request of wrong type", `{"id":5}`, func() any { return new(Request) }, []error{ErrMalformedFrame, ErrInvalidRequest}},
		{"request with bad hook", `{"id":"1","responsehook":7}`, func() any { return new(Request) }, []error{ErrMalformedFrame, ErrInvalidRequest, ErrInvalidURL}},
		{"response of wrong type", `[]`, func() any { return new(Response) }, []error{ErrMalformedFrame, ErrInvalidResponse}},
		{"response with bad error", `{"id":"1","error":5}`, func() any { return new(Response) }, []error{ErrMalformedFrame, ErrInvalidResponse}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeFrame(bytes.NewReader(frameBytes(uint32(len(tc.body)), []byte(tc.body))), tc.dest(), 0)
			for _, want := range tc.wants {
				assert.ErrorIs(t, err, want)
			}
		})
	}

	t.Run("read errors pass through", func(t *testing.T) {
		var m map[string]any
		assert.Same(t, io.EOF, decodeFrame(bytes.NewReader(nil), &m, 0))
		assert.ErrorIs(t, decodeFrame(bytes.NewReader([]byte{0, 0}), &m, 0), ErrTruncatedFrame)
		assert.ErrorIs(t, decodeFrame(bytes.NewReader(frameBytes(100, nil)), &m, 10), ErrFrameTooLarge)
	})
}

func TestConnData(t *testing.T) {
	t.Run("request round trip over net.Pipe", func(t *testing.T) {
		client, server := pipe(t)
		sent := &Request{
			ID: "id-1", Task: "task",
			ResponseHook: &url.URL{Scheme: "unix", Path: "/run/r.sock"},
			Args:         rawJSON(`{"n":[1,2,3]}`),
		}
		errc := make(chan error, 1)
		go func() { errc <- SendConnData(client, sent) }()
		var got Request
		require.NoError(t, UnmarshalConnData(server, &got))
		require.NoError(t, <-errc)
		assert.Equal(t, sent.ID, got.ID)
		assert.Equal(t, sent.Task, got.Task)
		assert.Equal(t, sent.ResponseHook.String(), got.ResponseHook.String())
		assert.Equal(t, string(*sent.Args), string(*got.Args))
	})

	t.Run("response split into one-byte writes", func(t *testing.T) {
		client, server := pipe(t)
		writeSlowly(t, client, []byte(golden(t, "refusing ack").wire), false)
		var got Response
		require.NoError(t, UnmarshalConnData(server, &got))
		assert.ErrorIs(t, got.Error, ErrInvalidRequest)
	})

	t.Run("peer closed", func(t *testing.T) {
		// A socket pair, not net.Pipe: a net.Pipe end refuses deadlines
		// once its peer is closed, a socket does not.
		client, server := socketPair(t)
		require.NoError(t, client.Close())
		var got Response
		assert.ErrorIs(t, UnmarshalConnData(server, &got), io.EOF)
	})

	t.Run("oversize header", func(t *testing.T) {
		client, server := pipe(t)
		writeSlowly(t, client, frameBytes(0xFFFFFFFF, nil), true)
		var got Response
		assert.ErrorIs(t, UnmarshalConnData(server, &got), ErrFrameTooLarge)
	})

	t.Run("nil payloads", func(t *testing.T) {
		for _, payload := range []any{nil, (*Request)(nil), (*Response)(nil)} {
			client, server := pipe(t)
			errc := make(chan error, 1)
			go func() { errc <- SendConnData(client, payload) }()
			var got *Response
			require.NoError(t, UnmarshalConnData(server, &got), "%T", payload)
			require.NoError(t, <-errc)
			assert.Nil(t, got)
		}
	})

	t.Run("nil conn", func(t *testing.T) {
		assert.ErrorIs(t, SendConnData(nil, &Response{}), ErrInvalidArgument)
		assert.ErrorIs(t, UnmarshalConnData(nil, &Response{}), ErrInvalidArgument)
	})

	t.Run("unmarshalable payload", func(t *testing.T) {
		client, _ := pipe(t)
		assert.ErrorIs(t, SendConnData(client, func() {}), ErrInvalidArgument)
	})

	t.Run("closed conn", func(t *testing.T) {
		client, _ := pipe(t)
		require.NoError(t, client.Close())
		assert.Error(t, SendConnData(client, &Response{}))
	})
}

// shortConfig returns the default config with the given timeouts.
func shortConfig(idle, ioTimeout time.Duration) *config {
	cfg := defaultConfig()
	cfg.idleTimeout = idle
	cfg.ioTimeout = ioTimeout
	return &cfg
}

// TestServeFramesTimeouts checks that a served connection is given up
// when its peer idles or stalls mid-frame, by the short timeout of the two.
func TestServeFramesTimeouts(t *testing.T) {
	const short = 50 * time.Millisecond
	wire := []byte(golden(t, "request").wire)

	tests := []struct {
		name      string
		send      []byte
		stall     bool          // keep the conn open after sending
		idle, ioT time.Duration // receiver timeouts
		maxFrame  int           // 0: default
		wantBody  []byte
		wantErrIs []error
	}{
		{
			name: "whole frame one byte at a time", send: wire,
			idle: time.Minute, ioT: time.Minute, wantBody: wire[frameHeaderSize:],
		},
		{
			name: "two header bytes then a stall", send: wire[:2], stall: true,
			idle: time.Minute, ioT: short, wantErrIs: []error{os.ErrDeadlineExceeded},
		},
		{
			name: "header and half a body then a stall", send: wire[:40], stall: true,
			idle: time.Minute, ioT: short, wantErrIs: []error{os.ErrDeadlineExceeded},
		},
		{
			name: "idle peer", stall: true,
			idle: short, ioT: time.Minute, wantErrIs: []error{os.ErrDeadlineExceeded},
		},
		{
			name: "two header bytes then close", send: wire[:2],
			idle: time.Minute, ioT: time.Minute, wantErrIs: []error{ErrTruncatedFrame, io.ErrUnexpectedEOF},
		},
		{
			name: "half a body then close", send: wire[:40],
			idle: time.Minute, ioT: time.Minute, wantErrIs: []error{ErrTruncatedFrame, io.ErrUnexpectedEOF},
		},
		{
			name: "close before a frame",
			idle: time.Minute, ioT: time.Minute, wantErrIs: []error{io.EOF},
		},
		{
			name: "oversize header", send: frameBytes(1<<20, nil), stall: true, maxFrame: 1 << 10,
			idle: time.Minute, ioT: time.Minute, wantErrIs: []error{ErrFrameTooLarge},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A socket pair: a net.Pipe end refuses SetReadDeadline once
			// its peer has closed, which a socket does not.
			client, server := socketPair(t)
			writeSlowly(t, client, tc.send, tc.stall)
			cfg := shortConfig(tc.idle, tc.ioT)
			if tc.maxFrame > 0 {
				cfg.maxFrameSize = tc.maxFrame
			}
			start := time.Now()
			served := make(chan struct{})
			var afterRuns sync.WaitGroup
			accepted := make(chan string, 1)
			handle := func(body []byte, _ *frameClock) (string, error, func(), answerFunc) {
				id, refusal, after, _ := serveFramesHandler(&afterRuns)(body, &frameClock{})
				if refusal == nil {
					accepted <- id
				}
				return id, refusal, after, nil
			}
			go func() {
				defer close(served)
				serveFrames(server, cfg, discardLogger(), handle, new(atomic.Uint64), nil, nil)
			}()
			if tc.maxFrame > 0 {
				assert.ErrorIs(t, readAck(t, client).Error, ErrFrameTooLarge)
				_ = client.Close()
			}
			frameTestWait(t, served)
			afterRuns.Wait()
			if tc.wantErrIs == nil {
				require.Len(t, accepted, 1)
				assert.Equal(t, "1", <-accepted)
			}
			assert.Empty(t, accepted)
			if tc.stall {
				// The short timeout, not the minute-long one, fired.
				assert.Less(t, time.Since(start), 10*time.Second)
			}
		})
	}
}

// serveFramesHandler accepts valid requests, refuses the rest, and counts
// the after funcs run.
func serveFramesHandler(afterRuns *sync.WaitGroup) frameHandler {
	return func(body []byte, _ *frameClock) (string, error, func(), answerFunc) {
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			return "", fmt.Errorf("%w: %w", ErrMalformedFrame, err), nil, nil
		}
		if err := req.Validate(); err != nil {
			return req.ID, err, nil, nil
		}
		afterRuns.Add(1)
		return req.ID, nil, afterRuns.Done, nil
	}
}

// startServeFrames runs serveFrames on one end of a socket pair and
// returns the other end and a channel closed when the loop returns. The
// loop's end of the pair is closed when the loop returns, as its owners
// do.
func startServeFrames(t *testing.T, cfg *config, handle frameHandler) (net.Conn, <-chan struct{}) {
	t.Helper()
	client, server := socketPair(t)
	served := make(chan struct{})
	go func() {
		defer close(served)
		defer server.Close()
		serveFrames(server, cfg, discardLogger(), handle, new(atomic.Uint64), nil, nil)
	}()
	t.Cleanup(func() {
		_ = client.Close()
		<-served
	})
	return client, served
}

// readAck reads one acknowledgement from conn.
func readAck(t *testing.T, conn net.Conn) *Response {
	t.Helper()
	var resp Response
	require.NoError(t, decodeFrame(conn, &resp, 0))
	return &resp
}

// TestServeFrames checks the receiver loop: each frame is acknowledged, a
// refusal carries its reason, and an oversized frame is refused and its
// body skipped.
func TestServeFrames(t *testing.T) {
	t.Run("accepted and refused frames on one connection", func(t *testing.T) {
		var afterRuns sync.WaitGroup
		client, served := startServeFrames(t, shortConfig(time.Minute, 5*time.Second), serveFramesHandler(&afterRuns))

		require.NoError(t, encodeFrame(client, golden(t, "request").payload, 0))
		resp := readAck(t, client)
		assert.Equal(t, "1", resp.ID)
		assert.NoError(t, resp.Error)

		require.NoError(t, writeFrame(client, []byte(`{"id":"2","task":"","responsehook":"unix:///x"}`), 0))
		resp = readAck(t, client)
		assert.Equal(t, "2", resp.ID)
		assert.ErrorIs(t, resp.Error, ErrInvalidRequest)

		require.NoError(t, writeFrame(client, []byte(`nope`), 0))
		resp = readAck(t, client)
		assert.ErrorIs(t, resp.Error, ErrMalformedFrame)

		require.NoError(t, client.Close())
		frameTestWait(t, served)
		afterRuns.Wait()
	})

	t.Run("oversized frame is refused and skipped", func(t *testing.T) {
		cfg := shortConfig(time.Minute, 5*time.Second)
		cfg.maxFrameSize = 1 << 10
		var afterRuns sync.WaitGroup
		client, served := startServeFrames(t, cfg, serveFramesHandler(&afterRuns))

		_, err := client.Write(frameBytes(4<<10, bytes.Repeat([]byte("x"), 4<<10)))
		require.NoError(t, err)
		resp := readAck(t, client)
		var fse *FrameSizeError
		require.ErrorAs(t, resp.Error, new(*RemoteError))
		assert.ErrorIs(t, resp.Error, ErrFrameTooLarge)
		assert.False(t, errors.As(resp.Error, &fse), "a remote refusal is a RemoteError, not a FrameSizeError")

		// The connection is still in step.
		require.NoError(t, encodeFrame(client, golden(t, "request").payload, 0))
		resp = readAck(t, client)
		assert.Equal(t, "1", resp.ID)
		assert.NoError(t, resp.Error)

		require.NoError(t, client.Close())
		frameTestWait(t, served)
		afterRuns.Wait()
	})

	t.Run("oversized frame whose body never comes", func(t *testing.T) {
		cfg := shortConfig(time.Minute, 50*time.Millisecond)
		cfg.maxFrameSize = 1 << 10
		var afterRuns sync.WaitGroup
		client, served := startServeFrames(t, cfg, serveFramesHandler(&afterRuns))

		// A little of the body, then nothing: the refusal still
		// arrives, and the loop gives up after the io timeout.
		_, err := client.Write(frameBytes(0xFFFFFFFF, make([]byte, 2<<10)))
		require.NoError(t, err)
		frameTestWait(t, served)
		resp := readAck(t, client)
		assert.ErrorIs(t, resp.Error, ErrFrameTooLarge)
		afterRuns.Wait()
	})
}

// frameTestWait fails t if ch is not closed within a few seconds.
func frameTestWait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
	}
}

// TestReadFrameMemoryFollowsBytes checks that a peer declaring a large
// frame and sending little of it does not make readFrame allocate what it
// declared.
func TestReadFrameMemoryFollowsBytes(t *testing.T) {
	in := append(binary.BigEndian.AppendUint32(nil, 64<<20), "0123456789"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readFrame(bytes.NewReader(in), DefaultMaxFrameSize, nil)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTruncatedFrame)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "allocated for bytes never sent")
}

// writeFrame writes body, raw, as one frame with one Write; for tests that
// send what no encoder would.
func writeFrame(w io.Writer, body []byte, max int) error {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	if len(body) > max {
		return &FrameSizeError{Size: uint64(len(body)), Max: max}
	}
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
	return err
}

// encodeFrame writes payload (see appendFrame) as one frame.
func encodeFrame(w io.Writer, payload any, max int) error {
	frame, err := appendFrame(nil, payload, false, max, nil)
	if err == nil {
		_, err = w.Write(frame)
	}
	return err
}
