package acomm_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of issue 9's defects: every wait bounded, links to our receivers,
// one frame per connection and object-form URLs to everyone else.

// fakePeer is a unix listener whose connections are served by serve, each
// in a goroutine; it is closed, and its goroutines waited for, at cleanup.
type fakePeer struct {
	path  string
	conns chan net.Conn // the first 64 connections accepted
}

func newFakePeer(t *testing.T, serve func(conn net.Conn)) *fakePeer {
	t.Helper()
	return newFakePeerAt(t, sockPath(t, "p.sock"), serve)
}

// newFakePeerAt is newFakePeer listening at path.
func newFakePeerAt(t *testing.T, path string, serve func(conn net.Conn)) *fakePeer {
	t.Helper()
	p := &fakePeer{path: path, conns: make(chan net.Conn, 64)}
	l, err := net.Listen("unix", p.path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var open []net.Conn
		defer func() {
			for _, c := range open {
				_ = c.Close()
			}
		}()
		for {
			conn, err := l.Accept()
			if err != nil {
				<-done
				return
			}
			open = append(open, conn)
			select {
			case p.conns <- conn:
			default: // (recorded no further)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		acomm.CloseIdleConnections()
		close(done)
		_ = l.Close()
		wg.Wait()
	})
	return p
}

func (p *fakePeer) url() *url.URL { return unixURL(p.path) }

// readRawFrame reads one frame's body from conn.
func readRawFrame(conn net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(conn, body)
	return body, err
}

// writeAck acknowledges the frame body, listing features as our receivers
// do (none, as the original acomm does).
func writeAck(conn net.Conn, body []byte, features ...string) error {
	var req struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &req)
	ack, _ := json.Marshal(map[string]any{"id": req.ID, "result": nil, "stream_url": nil, "error": "", "features": features})
	_, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(ack))), ack...))
	return err
}

// pipelining lists the features of our receivers.
var pipelining = []string{"pipeline", "string-urls"}

// holdUntilClosed blocks until the peer closes conn, reading nothing.
func holdUntilClosed(conn net.Conn) {
	_, _ = conn.Read(make([]byte, 1))
}

// Defect 1: a peer that accepts and never acknowledges holds Call only as
// long as its context, whether the frame travels on a connection of its
// own or on a link the peer made by acknowledging earlier frames.
func TestCallSilentPeerReturnsOnTime(t *testing.T) {
	const wait = 500 * time.Millisecond
	peers := map[string]func(net.Conn){
		"accepts, never reads": holdUntilClosed,
		"link, then silent": func(conn net.Conn) {
			if body, err := readRawFrame(conn); err == nil && writeAck(conn, body, pipelining...) == nil {
				holdUntilClosed(conn) // reads nothing more, acknowledges nothing
			}
		},
	}
	// Args larger than a socket's buffer: the write itself blocks.
	large := json.RawMessage(`"` + strings.Repeat("x", 8<<20) + `"`)
	for name, serve := range peers {
		t.Run(name, func(t *testing.T) {
			tr := newTracker(t, nil, time.Minute)
			peer := newFakePeer(t, serve)
			if name == "link, then silent" {
				require.NoError(t, acomm.Send(peer.url(), sendTestRequest(t)))
			}
			for i, withDeadline := range []bool{true, false, true} {
				var args any
				if i == 2 {
					args = large
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				if !withDeadline {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(wait, cancel)
				}
				start := time.Now()
				_, err := tr.Call(ctx, peer.url(), "t", args)
				elapsed := time.Since(start)
				cancel()
				require.ErrorIs(t, err, ctx.Err(), "deadline %v", withDeadline)
				assert.GreaterOrEqual(t, elapsed, wait)
				assert.Less(t, elapsed, wait+2*time.Second, "bounded by ctx, not by the I/O timeout")
				assert.Zero(t, tr.NumRequests())
			}
		})
	}
}

// Defect 2: each exchange sets its own deadline; a link does not keep the
// deadline of its previous use, and a component's WithIOTimeout applies.
func TestLinkDeadlinePerExchange(t *testing.T) {
	first := make(chan struct{})
	peer := newFakePeer(t, func(conn net.Conn) {
		body, err := readRawFrame(conn)
		if err != nil || writeAck(conn, body, pipelining...) != nil {
			return
		}
		close(first)
		holdUntilClosed(conn) // the next frame is never acknowledged
	})
	slow := newTracker(t, nil, time.Minute, acomm.WithIOTimeout(30*time.Second))
	quick := newTracker(t, nil, time.Minute, acomm.WithIOTimeout(200*time.Millisecond))
	require.NoError(t, slow.Send(context.Background(), peer.url(), sendTestRequest(t)))
	waitFor(t, first, 5*time.Second, "the first frame")

	start := time.Now()
	err := quick.Send(context.Background(), peer.url(), sendTestRequest(t))
	require.ErrorIs(t, err, acomm.ErrConnection)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second, "the quick tracker's timeout, not the slow one's")
}

// Defect 3: an original-style service reads one frame per connection and
// may hold it after acknowledging; the next send does not wait for it.
func TestSendToPeerThatHoldsItsConnection(t *testing.T) {
	got := make(chan string, 8)
	peer := newFakePeer(t, func(conn net.Conn) {
		req := &acomm.Request{}
		if acomm.UnmarshalConnData(conn, req) != nil || acomm.SendConnData(conn, &acomm.Response{ID: req.ID}) != nil {
			return
		}
		got <- req.ID
		holdUntilClosed(conn) // never reads this connection again
	})
	for i := 0; i < 3; i++ {
		req := sendTestRequest(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, acomm.SendContext(ctx, peer.url(), req), "send %d", i)
		cancel()
		assert.Equal(t, req.ID, waitFor(t, got, 5*time.Second, "the request"))
	}
	assert.Len(t, peer.conns, 3, "one connection per frame")
}

// Defect 4: a service that closes after one frame gets each frame on a
// connection of its own, at once: nothing is written into a connection it
// closed (which would be a wasted write, and a resend).
func TestSendToPeerThatClosesAfterOneFrame(t *testing.T) {
	frames := make(chan int, 8)
	peer := newFakePeer(t, func(conn net.Conn) {
		n := 0
		for {
			body, err := readRawFrame(conn)
			if err != nil {
				frames <- n
				return
			}
			n++
			_ = writeAck(conn, body) // no features: the original acomm
			_ = conn.Close()
		}
	})
	for i := 0; i < 3; i++ {
		require.NoError(t, acomm.Send(peer.url(), sendTestRequest(t)))
		assert.Equal(t, 1, waitFor(t, frames, 5*time.Second, "the connection's end"))
	}
	assert.Len(t, peer.conns, 3)
}

// Links pipeline: frames to a peer that listed "pipeline" go out on one
// connection without waiting for earlier acknowledgements.
func TestLinkPipelines(t *testing.T) {
	const n = 5
	peer := newFakePeer(t, func(conn net.Conn) {
		first, err := readRawFrame(conn)
		if err != nil || writeAck(conn, first, pipelining...) != nil {
			return
		}
		// Acknowledge nothing until n frames are in: senders that
		// waited for each acknowledgement would never get there.
		var bodies [][]byte
		for len(bodies) < n {
			body, err := readRawFrame(conn)
			if err != nil {
				return
			}
			bodies = append(bodies, body)
		}
		for _, b := range bodies {
			if writeAck(conn, b, pipelining...) != nil {
				return
			}
		}
		holdUntilClosed(conn)
	})
	require.NoError(t, acomm.Send(peer.url(), sendTestRequest(t)))
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- acomm.SendContext(ctx, peer.url(), sendTestRequest(t))
		}()
	}
	for i := 0; i < n; i++ {
		require.NoError(t, waitFor(t, errs, 15*time.Second, "a send"))
	}
	assert.Len(t, peer.conns, 1, "one connection for all")
}

// originalPeer is a service that decodes requests as the original acomm
// did (its *url.URL fields from the object form only), acknowledges each
// and answers it on its hook, one frame per connection.
func originalPeer(t *testing.T) (*fakePeer, <-chan oldRequest) {
	t.Helper()
	got := make(chan oldRequest, 16)
	peer := newFakePeer(t, func(conn net.Conn) {
		defer conn.Close()
		body, err := readRawFrame(conn)
		if err != nil {
			return
		}
		var req oldRequest
		if err := json.Unmarshal(body, &req); err != nil {
			ack, _ := json.Marshal(map[string]string{"id": "", "error": err.Error()})
			_, _ = conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(ack))), ack...))
			return
		}
		if writeAck(conn, body) != nil {
			return
		}
		got <- req
		if req.ResponseHook != nil && req.ResponseHook.Scheme == "unix" {
			_ = acomm.Send(req.ResponseHook, &acomm.Response{ID: req.ID, Result: req.Args})
		}
	})
	return peer, got
}

// Defect 5: by default, every sender writes URLs in the object form to a
// peer not known to read strings.
func TestOriginalPeerGetsObjectURLs(t *testing.T) {
	t.Run("Send", func(t *testing.T) {
		peer, got := originalPeer(t)
		req := sendTestRequest(t)
		require.NoError(t, acomm.Send(peer.url(), req))
		assert.Equal(t, req.ResponseHook.String(), waitFor(t, got, 5*time.Second, "the request").ResponseHook.String())
	})
	t.Run("Call", func(t *testing.T) {
		peer, got := originalPeer(t)
		tr := newTracker(t, nil, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := tr.Call(ctx, peer.url(), "t", map[string]int{"n": 1})
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":1}`, string(*resp.Result))
		assert.Equal(t, tr.URL().String(), waitFor(t, got, 5*time.Second, "the request").ResponseHook.String())
	})
	t.Run("MultiRequest.SendAll", func(t *testing.T) {
		peer, got := originalPeer(t)
		tr := newTracker(t, nil, 5*time.Second)
		m := acomm.NewMultiRequest(tr, 5*time.Second)
		dests := map[string]*url.URL{}
		for _, name := range []string{"a", "b", "c"} {
			req, err := acomm.NewRequest("t", tr.URL().String(), name, nil, nil)
			require.NoError(t, err)
			require.NoError(t, m.AddRequest(name, req))
			dests[name] = peer.url()
		}
		require.NoError(t, m.SendAll(dests))
		for name, resp := range m.Responses() {
			require.NoError(t, resp.Error, name)
			assert.JSONEq(t, `"`+name+`"`, string(*resp.Result))
		}
		assert.Len(t, got, 3)
	})
	t.Run("ProxyUnix keeps the incoming form", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		var in acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"p1","task":"t","responsehook":{"Scheme":"http","Host":"127.0.0.1:1","Path":"/hook"}}`), &in))
		proxied, err := tr.ProxyUnix(&in, time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { tr.RemoveRequest(&in) })
		assert.True(t, proxied.LegacyURLs)
		peer, got := originalPeer(t)
		require.NoError(t, acomm.Send(peer.url(), proxied))
		assert.Equal(t, tr.URL().String(), waitFor(t, got, 5*time.Second, "the request").ResponseHook.String())
	})
}

// Defect 7: the package builds for the other systems it supports.
func TestBuildsForOtherSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles")
	}
	goBin := runtime.GOROOT() + "/bin/go"
	if _, err := os.Stat(goBin); err != nil {
		t.Skip("no go command")
	}
	for _, goos := range []string{"windows", "darwin", "freebsd"} {
		cmd := exec.Command(goBin, "build", "-o", os.DevNull, ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "GOOS=%s: %s", goos, out)
	}
}

// A peer that answers its first frame with two acknowledgements (and
// then acknowledges nothing more, on any connection) never has a later
// frame taken as acknowledged: the second acknowledgement is nobody's,
// whether it arrived before the link was kept (it is not kept) or after
// (its id is not the next frame's: the link fails).
func TestStrayAckAcknowledgesNothing(t *testing.T) {
	for _, wait := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(wait.String(), func(t *testing.T) {
			var conns atomic.Int32
			peer := newFakePeer(t, func(conn net.Conn) {
				first, err := readRawFrame(conn)
				if err != nil || conns.Add(1) > 1 || writeAck(conn, first, pipelining...) != nil {
					holdUntilClosed(conn)
					return
				}
				time.Sleep(wait) // (0: both acknowledgements in one read, most likely)
				if writeAck(conn, first, pipelining...) != nil {
					return
				}
				holdUntilClosed(conn)
			})
			require.NoError(t, acomm.Send(peer.url(), sendTestRequest(t)))
			time.Sleep(2 * wait)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			require.Error(t, acomm.SendContext(ctx, peer.url(), sendTestRequest(t)), "the stray acknowledgement is nobody's")
		})
	}
}

// A peer may name any number of sockets (a request's response hook is the
// requester's choice); the connections kept for them are bounded (256),
// the least recently used idle one making room, and those past the bound
// work still.
func TestKeptLinksBounded(t *testing.T) {
	acomm.CloseIdleConnections()
	t.Cleanup(acomm.CloseIdleConnections)
	dir := t.TempDir()
	var open, most atomic.Int64
	peer := newFakePeer(t, func(conn net.Conn) {
		n := open.Add(1)
		defer open.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		for {
			body, err := readRawFrame(conn)
			if err != nil || writeAck(conn, body, pipelining...) != nil {
				_ = conn.Close()
				return
			}
		}
	})
	const paths = 300
	for i := range paths {
		p := filepath.Join(dir, strconv.Itoa(i))
		require.NoError(t, os.Symlink(peer.path, p))
		require.NoError(t, acomm.Send(unixURL(p), sendTestRequest(t)), "path %d", i)
	}
	// Every path works again, kept or not.
	for i := range paths {
		require.NoError(t, acomm.Send(unixURL(filepath.Join(dir, strconv.Itoa(i))), sendTestRequest(t)), "path %d again", i)
	}
	// An evicted link's connection is closed by us; the peer notices at
	// once, but counts it open until then: a little slack.
	assert.LessOrEqual(t, most.Load(), int64(256+8), "connections open at once")
}

// A socket served by our Server, then by an original service (a restart
// onto the older build): the first frame after the change, first written
// into the kept link to the Server (now dead), goes again on a connection
// of its own in the form for a peer not known yet (object URLs, no
// answer_in_ack), not in the form the old peer read.
func TestReplacedPeerGetsTheFormForAPeerNotKnown(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := srvStart(t, tr)
	srv.Handle("t", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		return req.Args, nil, nil
	})
	path := srv.Addr()
	call := func(arg string) (*acomm.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tr.Call(ctx, unixURL(path), "t", arg)
	}
	_, err := call("a")
	require.NoError(t, err)
	// (Call may return with the answer before its send has read the
	// acknowledgement that makes the link.)
	require.Eventually(t, func() bool { return slices.Contains(acomm.PeerFeatures(unixURL(path)), "pipeline") },
		5*time.Second, time.Millisecond, "a link is kept")
	srv.Stop()

	got := make(chan string, 4)
	newFakePeerAt(t, path, func(conn net.Conn) {
		defer conn.Close()
		body, err := readRawFrame(conn)
		var req oldRequest
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			ack, _ := json.Marshal(map[string]string{"id": "", "error": err.Error()})
			_, _ = conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(ack))), ack...))
			return
		}
		_ = writeAck(conn, body)
		_ = conn.Close()
		got <- string(body)
		_ = acomm.Send(req.ResponseHook, &acomm.Response{ID: req.ID, Result: req.Args})
	})
	for _, arg := range []string{"b", "c"} {
		resp, err := call(arg)
		require.NoError(t, err, "call %q", arg)
		assert.JSONEq(t, `"`+arg+`"`, string(*resp.Result))
		body := waitFor(t, got, 5*time.Second, "the frame")
		assert.NotContains(t, body, "answer_in_ack", "call %q", arg)
	}
}

// A frame whose sender gave up mid-write (SendContext returned ctx.Err(),
// and the caller owns its Request again), sent again when the link then
// fails, is what the sender left: the caller's later changes are neither
// read (a race) nor sent.
func TestResendSendsWhatItsSenderLeft(t *testing.T) {
	closeNow := make(chan struct{})
	resent := make(chan string, 4)
	var n atomic.Int32
	p := newFakePeer(t, func(conn net.Conn) {
		defer conn.Close()
		if n.Add(1) == 1 {
			body, err := readRawFrame(conn)
			if err != nil || writeAck(conn, body, pipelining...) != nil {
				return
			}
			<-closeNow // read nothing more: the big frame's write blocks
			return
		}
		body, err := readRawFrame(conn)
		if err != nil {
			return
		}
		_ = writeAck(conn, body)
		resent <- string(body)
	})
	var release sync.Once
	letGo := func() { release.Do(func() { close(closeNow) }) }
	t.Cleanup(letGo) // (before the peer's, which waits for its goroutines)
	require.NoError(t, acomm.Send(p.url(), sendTestRequest(t)))
	require.Contains(t, acomm.PeerFeatures(p.url()), "pipeline")

	// 2 MiB: more than the socket's buffers hold, so the write blocks; the
	// deadline leaves the encoding (slow under -race: with 8 MiB and
	// 300 ms it once ran out before the write began) time to finish.
	req := sendTestRequest(t)
	big := json.RawMessage(`"` + strings.Repeat("x", 2<<20) + `"`)
	req.Args = &big
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := acomm.SendContext(ctx, p.url(), req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, errors.Is(err, acomm.ErrNotDelivered), "its writing had begun")

	// The caller owns req again.
	req.Task = "changed-after-send-returned"
	letGo()
	body := waitFor(t, resent, 10*time.Second, "the resent frame")
	require.False(t, strings.Contains(body, "changed-after-send-returned"), "the resend carries what the caller set after Send returned")
}

// A sender's ctx cuts short its own blocked wait on the connection: its
// write of a frame the peer does not read, and its wait for an
// acknowledgement that never comes, on a kept link and on a connection
// for one frame alike, whether ctx has a deadline (which a read deadline
// can follow) or is cancelled. SendContext waits on the link itself (no
// cancel notice goroutine stands between them, as one may for Call), so
// only the link's watch on ctx can end it before the I/O timeout (30 s).
func TestSendContextCutsItsOwnWaits(t *testing.T) {
	const wait = 300 * time.Millisecond
	large, err := acomm.NewRequest("t", "unix:///run/reply.sock", json.RawMessage(`"`+strings.Repeat("x", 8<<20)+`"`), nil, nil)
	require.NoError(t, err)
	linkThen := func(then func(net.Conn)) func(net.Conn) {
		return func(conn net.Conn) {
			if body, err := readRawFrame(conn); err == nil && writeAck(conn, body, pipelining...) == nil {
				then(conn)
			}
		}
	}
	readsNeverAcks := func(conn net.Conn) {
		for {
			if _, err := readRawFrame(conn); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name  string
		serve func(net.Conn)
		link  bool // a first frame makes a kept link
		req   *acomm.Request
	}{
		{"kept link, write blocks", linkThen(holdUntilClosed), true, large},
		{"kept link, no acknowledgement", linkThen(readsNeverAcks), true, sendTestRequest(t)},
		{"one frame, write blocks", holdUntilClosed, false, large},
		{"one frame, no acknowledgement", readsNeverAcks, false, sendTestRequest(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, withDeadline := range []bool{true, false} {
				peer := newFakePeer(t, tt.serve)
				if tt.link {
					require.NoError(t, acomm.Send(peer.url(), sendTestRequest(t)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				if !withDeadline {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(wait, cancel)
				}
				start := time.Now()
				err := acomm.SendContext(ctx, peer.url(), tt.req)
				elapsed := time.Since(start)
				cancel()
				require.ErrorIs(t, err, ctx.Err(), "deadline %v", withDeadline)
				assert.GreaterOrEqual(t, elapsed, wait)
				assert.Less(t, elapsed, wait+5*time.Second, "deadline %v: bounded by ctx, not by the I/O timeout", withDeadline)
			}
		})
	}
}
