package main

import (
	"context"
	"expvar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/acommgo/acomm"
	"github.com/spf13/cobra"
)

func newDemoCmd() *cobra.Command {
	var (
		streamMiB int
		stats     bool
		serve     bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a tracker and two services in this process and exercise them",
		Long: `Start a tracker and two small services in this process, call one, fan
out with MultiRequest, stream a large result, and print each step with its
timing. Everything lives in a temporary directory that is removed at exit.

With --serve, start the services and keep them running until interrupted
(Ctrl-C), printing the acomm commands to try against them.`,
		Example: `  acomm demo
  acomm demo --serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if streamMiB < 0 || streamMiB > maxStreamMiB {
				return usageErr("--stream-mib %d: want 0 to %d", streamMiB, maxStreamMiB)
			}
			if serve {
				return serveDemo(cmd.Context(), cmd.OutOrStdout())
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), streamMiB, stats)
		},
	}
	cmd.Flags().IntVar(&streamMiB, "stream-mib", 256, "size of the streamed result in MiB")
	cmd.Flags().BoolVar(&stats, "expvar", false, "publish the tracker's and services' stats with expvar and print them at the end")
	cmd.Flags().BoolVar(&serve, "serve", false, "keep the demo services running and print commands to try against them")
	cmd.MarkFlagsMutuallyExclusive("serve", "expvar")
	return cmd
}

// maxStreamMiB bounds --stream-mib: a TiB, which its size in bytes holds.
const maxStreamMiB = 1 << 20

// demoServices are the tracker and services of the demo.
type demoServices struct {
	tracker    *acomm.Tracker
	text, blob *acomm.Server
}

// startDemoServices starts, in dir, a tracker and two services: text
// (upper, sum) and blob (a streamed result).
func startDemoServices(dir string) (*demoServices, error) {
	d := &demoServices{}
	var err error
	if d.tracker, err = acomm.NewTracker(filepath.Join(dir, "tracker.sock"), nil, 10*time.Second); err != nil {
		return nil, err
	}
	if err := d.tracker.Start(); err != nil {
		return nil, err
	}
	d.text = acomm.NewServer(filepath.Join(dir, "text.sock"), nil)
	d.text.Handle("upper", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var s string
		if err := req.UnmarshalArgs(&s); err != nil {
			return nil, nil, err
		}
		return strings.ToUpper(s), nil, nil
	})
	d.text.Handle("sum", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
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
	d.blob = acomm.NewServer(filepath.Join(dir, "blob.sock"), d.tracker)
	d.blob.Handle("blob", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var mib int64
		if err := req.UnmarshalArgs(&mib); err != nil {
			return nil, nil, err
		}
		if mib < 0 {
			return nil, nil, fmt.Errorf("%w: negative size", acomm.ErrInvalidArgument)
		}
		return map[string]int64{"bytes": mib << 20}, io.NopCloser(&zeroReader{n: mib << 20}), nil
	})
	for _, doc := range []struct {
		srv        *acomm.Server
		task, desc string
		example    any
	}{
		{d.text, "upper", "upper-case a string", "hello, acomm"},
		{d.text, "sum", "add up a list of integers", []int{1, 2, 3}},
		{d.blob, "blob", "stream N MiB of zeros; the result says how many bytes", 1},
	} {
		if err := doc.srv.Describe(doc.task, doc.desc, doc.example); err != nil {
			return nil, err
		}
	}
	if err := d.text.Start(); err != nil {
		d.stop()
		return nil, err
	}
	if err := d.blob.Start(); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// stop stops what was started.
func (d *demoServices) stop() {
	if d.blob != nil {
		d.blob.Stop()
	}
	if d.text != nil {
		d.text.Stop()
	}
	if d.tracker != nil {
		d.tracker.Stop()
	}
	d.blob, d.text, d.tracker = nil, nil, nil
}

// serveDemo runs the demo services until ctx ends, after printing the
// commands to try against them.
func serveDemo(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "acd")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := startDemoServices(dir)
	if err != nil {
		return noAnswerErr(err)
	}
	defer d.stop()
	text, blob := d.text.Addr(), d.blob.Addr()
	self, where := invocation()
	if where != "" {
		where = " in " + shellQuote(where)
	}
	fmt.Fprintf(out, "demo services running: %s and %s\ntry, from another shell%s:\n", text, blob, where)
	for _, try := range []string{
		"ping " + text,
		"info " + text,
		"call " + text + ` upper '"hello"'`,
		"call -o zeros.bin " + blob + " blob 16",
		"call " + blob + " blob 1    # prints the stream's URL and the command that reads it",
	} {
		fmt.Fprintf(out, "  %s %s\n", self, try)
	}
	fmt.Fprintf(out, "  echo '[1,2,3]' | %s call %s sum -\npress Ctrl-C to stop\n", self, text)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return nil
}

// invocation returns the command that runs this program again from a
// shell, the way it was started, and the directory to run it in when it
// matters: its name when it was found on PATH (acomm), its absolute path
// when it was started by path, or go run with its package's directory
// when go run built it (in the directory it was run from, so that the
// package path reads as it was typed: go run ./cmd/acomm from a clone).
func invocation() (cmd, dir string) {
	exe, err := os.Executable()
	if err != nil {
		return "acomm", ""
	}
	if isGoRun(exe) {
		if pkg, wd, ok := goRunPackage(); ok {
			return "go run " + shellQuote(pkg), wd
		}
		return shellQuote(exe), "" // there until go run exits, with the demo
	}
	name := os.Args[0]
	if !strings.ContainsRune(name, filepath.Separator) {
		if found, err := exec.LookPath(name); err == nil && sameFile(found, exe) {
			return shellQuote(name), ""
		}
	}
	return shellQuote(exe), ""
}

// isGoRun reports whether exe is a binary that go run built: it lives in
// a go-build temporary directory (.../go-build123/b001/exe/acomm), or in
// the build cache, where go run keeps what it built
// (.../go-build/0d/<64 hex digits>-d/acomm).
func isGoRun(exe string) bool {
	dir := filepath.Base(filepath.Dir(exe))
	return dir == "exe" && strings.Contains(exe, string(filepath.Separator)+"go-build") || goRunCacheDir.MatchString(dir)
}

// goRunCacheDir matches the name of the build cache's directory of an
// executable that go run built.
var goRunCacheDir = regexp.MustCompile(`^[0-9a-f]{64}-d$`)

// goRunPackage returns this program's package directory as go run takes
// it from the working directory (./cmd/acomm, or . from inside it), and
// the working directory, when the module's source is found above it.
func goRunPackage() (pkg, wd string, ok bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok || !strings.HasPrefix(bi.Path, bi.Main.Path) {
		return "", "", false
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", "", false
	}
	for root := wd; ; root = filepath.Dir(root) {
		if modulePathOf(filepath.Join(root, "go.mod")) == bi.Main.Path {
			dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(bi.Path, bi.Main.Path)))
			rel, err := filepath.Rel(wd, dir)
			if err != nil {
				return "", "", false
			}
			// A relative package path must start with . or .., or go run
			// takes it for an import path.
			if rel = filepath.ToSlash(rel); rel != "." && !strings.HasPrefix(rel, "../") {
				rel = "./" + rel
			}
			return rel, wd, true
		}
		if filepath.Dir(root) == root {
			return "", "", false
		}
	}
}

// modulePathOf returns the module path that the go.mod file at path
// declares, or "".
func modulePathOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// sameFile reports whether the paths a and b name the same file.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
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
			fmt.Fprintf(out, "FAIL %-44s %s\n", name, printable(err.Error()))
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

	var d *demoServices
	err = step("start a tracker and two services", func() (string, error) {
		var err error
		d, err = startDemoServices(dir)
		return "3 unix sockets", err
	})
	if err != nil {
		return err
	}
	defer d.stop()
	tracker, text, blob := d.tracker, d.text, d.blob

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
		var reqs []*acomm.Request
		for i := 0; i < 10; i++ {
			req, err := acomm.NewRequest("sum", tracker.URL().String(), []int{i, i, i}, nil, nil)
			if err != nil {
				return "", err
			}
			if err := multi.AddRequest(fmt.Sprint(i), req); err != nil {
				return "", err
			}
			reqs = append(reqs, req)
			if err := acomm.SendContext(ctx, text.URL(), req); err != nil {
				multi.RemoveRequest(req)
				return "", err
			}
		}
		responses, err := demoResponses(ctx, multi, reqs)
		if err != nil {
			return "", err
		}
		total := 0
		for name, resp := range responses {
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
		if err := acomm.StreamContext(ctx, cw, resp.StreamURL); err != nil {
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
		d.stop()
		return "sockets removed", nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo finished in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoResponses waits for the responses to multi's requests reqs, or for
// ctx's end: then it removes the requests still pending, so that
// Responses returns.
func demoResponses(ctx context.Context, multi *acomm.MultiRequest, reqs []*acomm.Request) (map[string]*acomm.Response, error) {
	got := make(chan map[string]*acomm.Response, 1)
	go func() { got <- multi.Responses() }()
	select {
	case responses := <-got:
		return responses, nil
	case <-ctx.Done():
		for _, req := range reqs {
			multi.RemoveRequest(req)
		}
		<-got
		return nil, ctx.Err()
	}
}

// countWriter counts and drops what is written.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
