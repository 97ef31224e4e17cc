package acomm_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acommgo/acomm"
)

// A service describes its tasks; any caller can ask for them with the
// reserved task acomm.info (as `acomm info` does), or check that it is
// alive with acomm.ping.
func ExampleServer_Describe() {
	dir, _ := os.MkdirTemp("", "ex")
	defer os.RemoveAll(dir)

	srv := acomm.NewServer(filepath.Join(dir, "text.sock"), nil)
	srv.Handle("upper", func(ctx context.Context, req *acomm.Request) (interface{}, io.ReadCloser, error) {
		var s string
		err := req.UnmarshalArgs(&s)
		return strings.ToUpper(s), nil, err
	})
	if err := srv.Describe("upper", "upper-case a string", "hello"); err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Stop()

	tracker, _ := acomm.NewTracker(filepath.Join(dir, "caller.sock"), nil, 5*time.Second)
	if err := tracker.Start(); err != nil {
		panic(err)
	}
	defer tracker.Stop()

	resp, err := tracker.Call(context.Background(), srv.URL(), acomm.InfoTask, nil)
	if err != nil {
		panic(err)
	}
	var info acomm.ServiceInfo
	_ = resp.UnmarshalResult(&info)
	for _, task := range info.Tasks {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%-10s %-35s %s", task.Task, task.Description, task.Example)))
	}
	// Output:
	// acomm.info what this service offers: its tasks and library version
	// acomm.ping whether this service is alive: answers "pong"
	// upper      upper-case a string                 "hello"
}
