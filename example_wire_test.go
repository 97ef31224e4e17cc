package acomm_test

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/acommgo/acomm"
)

// A caller's deadline and meta reach the handler; middleware sees every
// call on both sides; and a caller that gives up cancels the handler.
func ExampleContextWithMeta() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	srv := acomm.NewServer(filepath.Join(dir, "svc.sock"), nil)
	srv.Use(func(next acomm.TaskHandler) acomm.TaskHandler {
		return func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			fmt.Printf("server: %s for tenant %s\n", req.Task, req.Meta["tenant"])
			return next(ctx, req)
		}
	})
	srv.Handle("whoami", func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		dl, _ := ctx.Deadline()
		return fmt.Sprintf("%s, with about %s to answer", req.Meta["user"], time.Until(dl).Round(time.Second)), nil, nil
	})
	started, ended := make(chan struct{}), make(chan error, 1)
	srv.Handle("wait", func(ctx context.Context, _ *acomm.Request) (any, io.ReadCloser, error) {
		close(started)
		<-ctx.Done() // the caller's cancel, its deadline, or Stop
		ended <- ctx.Err()
		return nil, nil, ctx.Err()
	})
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Stop()

	tracker, _ := acomm.NewTracker(filepath.Join(dir, "caller.sock"), nil, time.Minute)
	_ = tracker.Configure(acomm.WithCallMiddleware(func(next acomm.CallFunc) acomm.CallFunc {
		return func(ctx context.Context, dest *url.URL, task string, args any) (*acomm.Response, error) {
			return next(acomm.ContextWithMeta(ctx, map[string]string{"tenant": "acme"}), dest, task, args)
		}
	}))
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tracker.Call(acomm.ContextWithMeta(ctx, map[string]string{"user": "ops"}), srv.URL(), "whoami", nil)
	if err != nil {
		panic(err)
	}
	var s string
	_ = resp.UnmarshalResult(&s)
	fmt.Println("caller:", s)

	wctx, wcancel := context.WithCancel(context.Background())
	go func() {
		<-started
		wcancel() // the caller gives up
	}()
	_, err = tracker.Call(wctx, srv.URL(), "wait", nil)
	fmt.Println("caller: wait:", err)
	fmt.Println("server: wait:", <-ended)
	// Output:
	// server: whoami for tenant acme
	// caller: ops, with about 10s to answer
	// server: wait for tenant acme
	// caller: wait: context canceled
	// server: wait: context canceled
}
