package acomm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLinkQueueMemoryDropsAckedFrames: once a link's queue has grown
// into new memory while it sat at the back of qmem, qmem keeps pointers to
// exchanges (and their frames) that were acknowledged long ago.
func TestLinkQueueMemoryDropsAckedFrames(t *testing.T) {
	dir, err := os.MkdirTemp("", "acomm-q")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "p.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan string, 16) // ids of frames read
	ack := make(chan int)        // how many to acknowledge
	peerDone := make(chan struct{})
	go func() {
		defer close(peerDone)
		conns := []net.Conn{}
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
			go func() {
				var ids []string
				reads := make(chan string)
				go func() {
					for {
						var hdr [4]byte
						if _, err := io.ReadFull(conn, hdr[:]); err != nil {
							close(reads)
							return
						}
						body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
						if _, err := io.ReadFull(conn, body); err != nil {
							close(reads)
							return
						}
						var r struct{ ID string }
						_ = json.Unmarshal(body, &r)
						reads <- r.ID
					}
				}()
				for {
					select {
					case id, ok := <-reads:
						if !ok {
							return
						}
						ids = append(ids, id)
						got <- id
					case n := <-ack:
						for ; n > 0; n-- {
							b, _ := json.Marshal(map[string]any{"id": ids[0], "error": "", "features": []string{"pipeline", "string-urls"}})
							ids = ids[1:]
							_, _ = conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
						}
					}
				}
			}()
		}
	}()
	cfg := configFor(forServer)
	url0 := url.URL{Scheme: "unix", Path: "/nonexistent/hook.sock"}
	// Make the link (the first frame goes on a connection of its own,
	// adopted as the link once acknowledged with "pipeline").
	first := make(chan error, 1)
	go func() {
		req := &Request{ID: "0", Task: "t", ResponseHook: &url0}
		_, err := postUnix(context.Background(), path, req, &cfg)
		first <- err
	}()
	require.Equal(t, "0", <-got)
	ack <- 1
	require.NoError(t, <-first)
	l := linkFor(path)
	require.NotNil(t, l)

	// Four in flight, then two acknowledged, then a fifth, then all.
	var leads []chan error
	for _, id := range []string{"1", "2", "3", "4"} {
		ch := make(chan error, 1)
		leads = append(leads, ch)
		go func() {
			req := &Request{ID: id, Task: "t", ResponseHook: &url0}
			c, err := postUnix(context.Background(), path, req, &cfg)
			if err == nil {
				<-c.done()
				err = c.err()
			}
			ch <- err
		}()
		require.Equal(t, id, <-got)
	}
	ack <- 2
	require.NoError(t, <-leads[0])
	require.NoError(t, <-leads[1])
	ch5 := make(chan error, 1)
	go func() {
		req := &Request{ID: "5", Task: "t", ResponseHook: &url0}
		c, err := postUnix(context.Background(), path, req, &cfg)
		if err == nil {
			<-c.done()
			err = c.err()
		}
		ch5 <- err
	}()
	require.Equal(t, "5", <-got)
	ack <- 3
	require.NoError(t, <-leads[2])
	require.NoError(t, <-leads[3])
	require.NoError(t, <-ch5)
	time.Sleep(10 * time.Millisecond) // the reader passes on, or stops

	l.mu.Lock()
	n := len(l.queue)
	var kept []string
	for _, ex := range l.qmem[:cap(l.qmem)] {
		if ex != nil {
			kept = append(kept, string(ex.frame[frameHeaderSize:]))
		}
	}
	l.mu.Unlock()
	require.Zero(t, n, "nothing awaits an acknowledgement")
	require.Empty(t, kept, "the link's queue memory still holds acknowledged frames")
	CloseIdleConnections()
	_ = ln.Close()
	<-peerDone
}
