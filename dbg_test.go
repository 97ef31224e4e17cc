package acomm

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestDbgCall(t *testing.T) {
	dir, _ := os.MkdirTemp("", "d")
	defer os.RemoveAll(dir)
	tr, _ := NewTracker(dir+"/t.sock", nil, time.Minute)
	tr.Start()
	defer tr.Stop()
	s := NewServer(dir+"/s.sock", tr)
	s.Handle("echo", func(ctx context.Context, req *Request) (any, io.ReadCloser, error) { return req.Args, nil, nil })
	s.Start()
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := json.RawMessage(`{"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	tr.Call(ctx, s.URL(), "echo", args)
	const n = 5000
	for round := 0; round < 1; round++ {
		c0, w0 := cpuNow(), time.Now()
		for i := 0; i < n; i++ {
			if _, err := tr.Call(ctx, s.URL(), "echo", args); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("seq: wall %v/op cpu %v/op", time.Since(w0)/n, (cpuNow()-c0)/n)
	}
	for round := 0; round < 2 && os.Getenv("DBGPAR") != ""; round++ {
		c0, w0 := cpuNow(), time.Now()
		var wg sync.WaitGroup
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n/64; i++ {
					if _, err := tr.Call(ctx, s.URL(), "echo", args); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		t.Logf("par64: wall %v/op cpu %v/op", time.Since(w0)/n, (cpuNow()-c0)/n)
	}
}
