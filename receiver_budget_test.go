package acomm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// fakeBudget is an ackBudget that, like job, decides once by CAS whether
// the answer goes in the acknowledgement.
type fakeBudget struct {
	ack   ackRef
	state atomic.Int32
	told  atomic.Bool
}

func (b *fakeBudget) budgetPassed() bool {
	b.told.Store(true)
	return b.state.CompareAndSwap(0, 2)
}

func (b *fakeBudget) answer(resp *Response) bool {
	if b.state.CompareAndSwap(0, 1) {
		b.ack.fill(resp, nil)
		return true
	}
	return false
}

func unixPair(t *testing.T) (server, client net.Conn) {
	dir, err := os.MkdirTemp("", "acomm-b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); ch <- c }()
	client, err = net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	return <-ch, client
}

// TestServeFramesAnswerBudgets drives serveFrames with answerFuncs that
// answer at once, later, or never (left to the budget): every
// acknowledgement must come, in order, within a bound, and serveFrames
// must return once the peer hangs up.
func TestServeFramesAnswerBudgets(t *testing.T) {
	for round := range 4 {
		server, client := unixPair(t)
		cfg := configFor(forServer)
		log := logrus.New()
		log.SetOutput(io.Discard)
		var wg sync.WaitGroup // answering goroutines
		handle := func(body []byte, _ *frameClock) (string, error, func(), answerFunc) {
			id := string(body)
			switch rand.IntN(4) {
			case 0:
				return id, nil, func() {}, nil
			case 1: // fills at once
				return id, nil, nil, func(ack ackRef) ackBudget {
					ack.fill(&Response{ID: id}, nil)
					return nil
				}
			}
			return id, nil, nil, func(ack ackRef) ackBudget {
				b := &fakeBudget{ack: ack}
				d := time.Duration(rand.IntN(2500)) * time.Microsecond
				if rand.IntN(3) == 0 {
					return b // never answers: the budget must fill
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(d)
					b.answer(&Response{ID: id})
				}()
				return b
			}
		}
		var refused atomic.Uint64
		served := make(chan struct{})
		go func() {
			defer close(served)
			serveFrames(server, &cfg, log, handle, &refused, nil, nil)
			_ = server.Close()
		}()
		const n = 1500
		go func() {
			var batch []byte
			for i := range n {
				body := fmt.Sprint(i)
				batch = binary.BigEndian.AppendUint32(batch, uint32(len(body)))
				batch = append(batch, body...)
				if rand.IntN(200) == 0 {
					_, _ = client.Write(batch)
					batch = batch[:0]
					time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
				}
			}
			_, _ = client.Write(batch)
		}()
		got := 0
		for got < n {
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			var hdr [4]byte
			if _, err := io.ReadFull(client, hdr[:]); err != nil {
				t.Fatalf("round %d: ack %d of %d: %v", round, got, n, err)
			}
			body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(client, body); err != nil {
				t.Fatal(err)
			}
			var a struct{ ID string }
			_ = json.Unmarshal(body, &a)
			if a.ID != fmt.Sprint(got) {
				t.Fatalf("round %d: ack %d has id %q", round, got, a.ID)
			}
			got++
		}
		_ = client.Close()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: serveFrames did not return", round)
		}
		wg.Wait()
	}
}

// After a run on the reader outlasted its budget, a connection hands jobs
// with frames behind to workers, and tries its reader again after
// retrySlow of them (one that always has frames behind is never lone).
func TestRunsBehindRetriesAfterSlow(t *testing.T) {
	s := &frameServer{}
	require.True(t, s.runsBehind())
	s.slow = true
	for i := 1; i < retrySlow; i++ {
		require.False(t, s.runsBehind(), "job %d after the slow run", i)
	}
	require.True(t, s.runsBehind(), "job %d after the slow run", retrySlow)
	require.True(t, s.runsBehind())
}
