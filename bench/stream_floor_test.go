package bench

import (
	"io"
	"net"
	"testing"
	"time"
)

// The stream floor: how fast bytes move through a unix socket on this
// machine. Each op copies streamBytes (1 GiB) from the client to the server
// with io.CopyBuffer and 256 KiB buffers on both sides, then waits for a
// one-byte acknowledgement that the server has read all of it. MB/s comes
// from b.SetBytes.
//
// The data is generated, not read from disk: the client's source is a
// reader that hands out the same pre-filled 256 KiB buffer again and again
// without touching it, so that the figure is the socket's, not a
// generator's. The server discards what it reads.
//
// One op is 1 GiB, so give this benchmark a small -benchtime count
// (./run uses 3x; 1x for a smoke test) rather than the echo benchmarks'
// count.
//
// Other files add rows to it through streamSystems.
func BenchmarkStream(b *testing.B) {
	b.Run("raw-unix", benchStreamRawUnix)
	b.Run("raw-tcp", benchStreamRawTCP)
	for _, s := range streamSystems {
		b.Run(s.name, s.run)
	}
}

// streamSystem is a further row of BenchmarkStream, appended to
// streamSystems from an init function (see acomm_test.go). run must move
// streamBytes per op and call b.SetBytes(streamBytes).
type streamSystem struct {
	name string
	run  func(b *testing.B)
}

// streamSystems are the rows of BenchmarkStream after raw-unix.
var streamSystems []streamSystem

const (
	streamBytes = 1 << 30
	streamBuf   = 256 << 10
)

func benchStreamRawUnix(b *testing.B) {
	l, path := listenUnix(b)
	serveConns(b, l, serveStreamSink)
	benchStreamRaw(b, dialUnix(b, path))
}

// benchStreamRawTCP is raw-unix over loopback TCP (127.0.0.1), with the
// kernel's default socket buffers (autotuned): the floor of anything that
// streams over HTTP on this machine, such as acomm-http-proxy.
func benchStreamRawTCP(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serveConns(b, l, serveStreamSink)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(ioDeadline))
	b.Cleanup(func() { c.Close() })
	benchStreamRaw(b, c)
}

// benchStreamRaw copies streamBytes per op into c, which a serveStreamSink
// reads, and waits for its acknowledgement.
func benchStreamRaw(b *testing.B, c net.Conn) {
	b.ReportAllocs()
	b.SetBytes(streamBytes)
	buf := make([]byte, streamBuf)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	ack := make([]byte, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src := &repeatReader{buf: buf, left: streamBytes}
		n, err := io.CopyBuffer(onlyWriter{c}, src, buf)
		if err != nil {
			b.Fatal(err)
		}
		if n != streamBytes {
			b.Fatalf("copied %d bytes, want %d", n, streamBytes)
		}
		if _, err := io.ReadFull(c, ack); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// serveStreamSink reads streamBytes at a time from c into a 256 KiB
// buffer, throws them away, and acknowledges each 1 GiB with one byte.
func serveStreamSink(c net.Conn) {
	buf := make([]byte, streamBuf)
	for {
		n, err := io.CopyBuffer(onlyWriter{io.Discard}, io.LimitReader(c, streamBytes), buf)
		if err != nil || n != streamBytes {
			return
		}
		if _, err := c.Write([]byte{1}); err != nil {
			return
		}
	}
}

// repeatReader yields left bytes of generated data. io.CopyBuffer passes
// its own buffer to Read, and that buffer is buf, already filled with the
// pattern, so Read only has to say how much of it to send.
type repeatReader struct {
	buf  []byte
	left int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > r.left {
		n = int(r.left)
	}
	if &p[0] != &r.buf[0] { // called with some other buffer: fill it
		for i := 0; i < n; {
			i += copy(p[i:n], r.buf)
		}
	}
	r.left -= int64(n)
	return n, nil
}

// onlyWriter hides any ReadFrom method of the writer it wraps, so that
// io.CopyBuffer really copies through the buffer it is given.
type onlyWriter struct{ io.Writer }

// TestStreamPlumbing checks the stream benchmark's pieces on a small
// amount of data.
func TestStreamPlumbing(t *testing.T) {
	buf := make([]byte, 1000)
	for i := range buf {
		buf[i] = byte(i)
	}
	var got countingWriter
	n, err := io.CopyBuffer(onlyWriter{&got}, &repeatReader{buf: buf, left: 2500}, buf)
	if err != nil || n != 2500 || got.n != 2500 {
		t.Fatalf("copied %d (%d seen), err %v; want 2500", n, got.n, err)
	}
	// A foreign buffer gets filled with the pattern.
	p := make([]byte, 1500)
	r := &repeatReader{buf: buf, left: 1200}
	if k, _ := r.Read(p); k != 1200 || p[1001] != 1 || p[999] != buf[999] {
		t.Fatalf("Read = %d, p[999]=%d p[1001]=%d", k, p[999], p[1001])
	}
	if k, err := r.Read(p); k != 0 || err != io.EOF {
		t.Fatalf("Read at end = %d, %v", k, err)
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
