package main

import (
	"context"
	"expvar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acommgo/acomm"
	"github.com/spf13/cobra"
)

func newDemoCmd() *cobra.Command {
	var (
		streamMiB int
		stats     bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a tracker and two services in this process and exercise them",
		Long: `Start a tracker and two small services in this process, call one, fan
out with MultiRequest, stream a large result, and print each step with its
timing. Everything lives in a temporary directory that is removed at exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if streamMiB < 0 {
				return usageErr("--stream-mib must not be negative")
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), streamMiB, stats)
		},
	}
	cmd.Flags().IntVar(&streamMiB, "stream-mib", 256, "size of the streamed result in MiB")
	cmd.Flags().BoolVar(&stats, "expvar", false, "publish the tracker's and services' stats with expvar and print them at the end")
	return cmd
}

// zeroReader yields n zero bytes without allocating them.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

func runDemo(ctx context.Context, out io.Writer, streamMiB int, stats bool) error {
	start := time.Now()
	step := func(name string, f func() (string, error)) error {
		t0 := time.Now()
		detail, err := f()
		if err != nil {
			fmt.Fprintf(out, "FAIL %-44s %v\n", name, err)
			return noAnswerErr(fmt.Errorf("%s: %w", name, err))
		}
		fmt.Fprintf(out, "ok   %-44s %-28s %10s\n", name, detail, time.Since(t0).Round(time.Microsecond))
		return nil
	}

	dir, err := os.MkdirTemp("", "acd")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var (
		tracker    *acomm.Tracker
		text, blob *acomm.Server
	)
	err = step("start a tracker and two services", func() (string, error) {
		var err error
		if tracker, err = acomm.NewTracker(filepath.Join(dir, "tracker.sock"), nil, 10*time.Second); err != nil {
			return "", err
		}
		if err := tracker.Start(); err != nil {
			return "", err
		}
		text = acomm.NewServer(filepath.Join(dir, "text.sock"), nil)
		text.Handle("upper", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			var s string
			if err := req.UnmarshalArgs(&s); err != nil {
				return nil, nil, err
			}
			return strings.ToUpper(s), nil, nil
		})
		text.Handle("sum", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			var xs []int
			if err := req.UnmarshalArgs(&xs); err != nil {
				return nil, nil, err
			}
			total := 0
			for _, x := range xs {
				total += x
			}
			return total, nil, nil
		})
		blob = acomm.NewServer(filepath.Join(dir, "blob.sock"), tracker)
		blob.Handle("blob", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			var mib int64
			if err := req.UnmarshalArgs(&mib); err != nil {
				return nil, nil, err
			}
			return map[string]int64{"bytes": mib << 20}, io.NopCloser(&zeroReader{n: mib << 20}), nil
		})
		if err := text.Start(); err != nil {
			return "", err
		}
		return "3 unix sockets", blob.Start()
	})
	defer func() {
		if blob != nil {
			blob.Stop()
		}
		if text != nil {
			text.Stop()
		}
		if tracker != nil {
			tracker.Stop()
		}
	}()
	if err != nil {
		return err
	}

	if stats {
		acomm.PublishExpvar("acomm", map[string]*acomm.Tracker{"demo": tracker},
			map[string]*acomm.Server{"text": text, "blob": blob})
		defer func() { fmt.Fprintf(out, "expvar acomm = %s\n", expvar.Get("acomm").String()) }()
	}

	if err := step(`call upper("hello, acomm")`, func() (string, error) {
		resp, err := tracker.Call(ctx, text.URL(), "upper", "hello, acomm")
		if err != nil {
			return "", err
		}
		var s string
		err = resp.UnmarshalResult(&s)
		return fmt.Sprintf("%q", s), err
	}); err != nil {
		return err
	}

	if err := step("fan out 10 sums with MultiRequest", func() (string, error) {
		multi := acomm.NewMultiRequest(tracker, 0)
		for i := 0; i < 10; i++ {
			req, err := acomm.NewRequest("sum", tracker.URL().String(), []int{i, i, i}, nil, nil)
			if err != nil {
				return "", err
			}
			if err := multi.AddRequest(fmt.Sprint(i), req); err != nil {
				return "", err
			}
			if err := acomm.Send(text.URL(), req); err != nil {
				multi.RemoveRequest(req)
				return "", err
			}
		}
		total := 0
		for name, resp := range multi.Responses() {
			var n int
			if err := resp.UnmarshalResult(&n); err != nil || resp.Error != nil {
				return "", fmt.Errorf("%s: %v %v", name, err, resp.Error)
			}
			total += n
		}
		return fmt.Sprintf("10 answers, total %d", total), nil
	}); err != nil {
		return err
	}

	if err := step(fmt.Sprintf("stream a %d MiB result", streamMiB), func() (string, error) {
		resp, err := tracker.Call(ctx, blob.URL(), "blob", streamMiB)
		if err != nil {
			return "", err
		}
		t0 := time.Now()
		cw := &countWriter{}
		if err := acomm.Stream(cw, resp.StreamURL); err != nil {
			return "", err
		}
		if cw.n != int64(streamMiB)<<20 {
			return "", fmt.Errorf("got %d bytes, want %d", cw.n, int64(streamMiB)<<20)
		}
		secs := time.Since(t0).Seconds()
		return fmt.Sprintf("%d bytes, %.0f MB/s", cw.n, float64(cw.n)/1e6/max(secs, 1e-9)), nil
	}); err != nil {
		return err
	}

	if err := step("stop services and tracker", func() (string, error) {
		blob.Stop()
		text.Stop()
		tracker.Stop()
		blob, text, tracker = nil, nil, nil
		return "sockets removed", nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo finished in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// countWriter counts and drops what is written.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
