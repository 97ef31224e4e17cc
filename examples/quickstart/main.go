// Command quickstart is the README's quick start: a service with one task,
// and a caller, in one process.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acommgo/acomm"
)

func main() {
	dir, err := os.MkdirTemp("", "quickstart")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A tracker receives the answers to the requests it sends, and serves
	// the streams that handlers return.
	tracker, err := acomm.NewTracker(filepath.Join(dir, "tracker.sock"), nil, 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if err := tracker.Start(); err != nil {
		log.Fatal(err)
	}
	defer tracker.Stop()

	// The service: a handler per task.
	srv := acomm.NewServer(filepath.Join(dir, "text.sock"), tracker)
	srv.Handle("upper", func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var s string
		if err := req.UnmarshalArgs(&s); err != nil {
			return nil, nil, err
		}
		return strings.ToUpper(s), nil, nil // or a stream as the second value
	})
	_ = srv.Describe("upper", "upper-case a string", "hello") // shown by `acomm info`
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop() // graceful: running handlers finish or are cancelled

	// The caller.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := tracker.Call(ctx, srv.URL(), "upper", "hello")
	if err != nil {
		log.Fatal(err) // errors.Is(err, acomm.ErrUnknownTask), context.DeadlineExceeded, …
	}
	var s string
	if err := resp.UnmarshalResult(&s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s) // HELLO
}
