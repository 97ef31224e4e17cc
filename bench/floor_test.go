package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// The floor: raw frames (4-byte big-endian length, then the bytes) on a
// unix socket, echoed back unchanged by a server that does nothing else.
// No encoding, no request ids, no acknowledgement protocol: whatever acomm
// or an RPC library costs on top of this is its own overhead.
//
//   - floor-kept keeps its connection open. A raw frame connection
//     cannot multiplex (it has no request ids), so for par64 each of the
//     64 goroutines gets its own connection (and so its own server
//     goroutine): 64 connections, one round trip in flight on each, which
//     is the best any protocol can do with 64 in flight.
//   - floor-dial dials a new connection for every round trip (dial,
//     write the frame, read the echo, close), in seq and in each of the
//     64 par64 goroutines alike.
func init() {
	echoSystems = append(echoSystems,
		echoSystem{name: "floor-kept", setup: setupFloorKept},
		echoSystem{name: "floor-dial", setup: setupFloorDial},
	)
}

func setupFloorKept(tb testing.TB) echoClient {
	l, path := listenUnix(tb)
	serveConns(tb, l, serveFrameEcho)
	newConn := func() func() error {
		return newFrameClient(dialUnix(tb, path)).roundTrip
	}
	return echoClient{call: newConn(), newWorker: newConn}
}

func setupFloorDial(tb testing.TB) echoClient {
	l, path := listenUnix(tb)
	serveConns(tb, l, serveFrameEcho)
	var d net.Dialer
	// call keeps no state between round trips, so all goroutines share it.
	return echoClient{call: func() error { return dialRoundTrip(&d, path) }}
}

// dialRoundTrip is one floor-dial round trip: it dials path with d, does
// one raw-frame round trip and closes the connection.
func dialRoundTrip(d *net.Dialer, path string) error {
	c, err := d.Dial("unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioDeadline))
	return newFrameClient(c).roundTrip()
}

// serveFrameEcho reads frames from c and writes each one back, until c
// is closed or sends something that is not a frame.
func serveFrameEcho(c net.Conn) {
	r := bufio.NewReaderSize(c, 4096)
	buf := make([]byte, 4, 4+len(echoPayload))
	for {
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(buf[:4]))
		if n > maxFrame {
			return
		}
		if cap(buf) < 4+n {
			buf = append(buf[:4], make([]byte, n)...)
		}
		buf = buf[:4+n]
		if _, err := io.ReadFull(r, buf[4:]); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil { // header and body in one write
			return
		}
	}
}

// frameClient does raw-frame round trips on one connection, with no
// allocation per round trip.
type frameClient struct {
	c     net.Conn
	r     *bufio.Reader
	frame []byte // the request frame, written in one call
	reply []byte
}

func newFrameClient(c net.Conn) *frameClient {
	return &frameClient{
		c:     c,
		r:     bufio.NewReaderSize(c, 4096),
		frame: appendFrame(nil, echoPayload),
		reply: make([]byte, 4+len(echoPayload)),
	}
}

func (f *frameClient) roundTrip() error {
	if err := f.send(); err != nil {
		return err
	}
	return f.receive()
}

// send writes the request frame.
func (f *frameClient) send() error {
	_, err := f.c.Write(f.frame)
	return err
}

// receive reads the reply frame and checks it.
func (f *frameClient) receive() error {
	if _, err := io.ReadFull(f.r, f.reply[:4]); err != nil {
		return err
	}
	if n := binary.BigEndian.Uint32(f.reply[:4]); int(n) != len(echoPayload) {
		return fmt.Errorf("reply frame of %d bytes, want %d", n, len(echoPayload))
	}
	if _, err := io.ReadFull(f.r, f.reply[4:]); err != nil {
		return err
	}
	return checkEcho(f.reply[4:])
}
