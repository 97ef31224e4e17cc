package acomm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acommgo/acomm"
)

// A service registers a handler per task; a caller's tracker calls it and
// waits for the answer.
func ExampleServer() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	// The service.
	srv := acomm.NewServer(filepath.Join(dir, "calc.sock"), nil)
	srv.Handle("add", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		var args struct{ A, B int }
		if err := req.UnmarshalArgs(&args); err != nil {
			return nil, nil, err
		}
		return args.A + args.B, nil, nil
	})
	if err := srv.Configure(acomm.WithMaxHandlers(64), acomm.WithGracePeriod(time.Second)); err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Stop()

	// The caller.
	tracker, _ := acomm.NewTracker(filepath.Join(dir, "caller.sock"), nil, 5*time.Second)
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	ctx := context.Background()
	resp, err := tracker.Call(ctx, srv.URL(), "add", map[string]int{"A": 2, "B": 3})
	if err != nil {
		panic(err)
	}
	var sum int
	_ = resp.UnmarshalResult(&sum)
	fmt.Println("2 + 3 =", sum)

	_, err = tracker.Call(ctx, srv.URL(), "multiply", nil)
	fmt.Println(errors.Is(err, acomm.ErrUnknownTask), err)
	// Output:
	// 2 + 3 = 5
	// true acomm: unknown task: "multiply"
}

// Call returns the result and, for a handler that returns a stream, the
// URL to read it from. A context deadline bounds the wait.
func ExampleTracker_Call() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	tracker, _ := acomm.NewTracker(filepath.Join(dir, "t.sock"), nil, 0)
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	// The tracker also serves the streams the handlers return.
	srv := acomm.NewServer(filepath.Join(dir, "s.sock"), tracker)
	srv.Handle("cat", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		var name string
		if err := req.UnmarshalArgs(&name); err != nil {
			return nil, nil, err
		}
		return name, io.NopCloser(strings.NewReader("contents of " + name)), nil
	})
	srv.Handle("sleep", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		<-ctx.Done() // until the server stops
		return nil, nil, ctx.Err()
	})
	_ = srv.Configure(acomm.WithGracePeriod(0))
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := tracker.Call(ctx, srv.URL(), "cat", "notes.txt")
	if err != nil {
		panic(err)
	}
	var name string
	_ = resp.UnmarshalResult(&name)
	var contents strings.Builder
	if err := acomm.Stream(&contents, resp.StreamURL); err != nil {
		panic(err)
	}
	fmt.Printf("%s: %s\n", name, contents.String())

	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	_, err = tracker.Call(short, srv.URL(), "sleep", nil)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// notes.txt: contents of notes.txt
	// true
}
