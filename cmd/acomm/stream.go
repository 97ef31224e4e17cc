package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/acommgo/acomm"
	"github.com/schollz/progressbar/v3"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

func newStreamCmd() *cobra.Command {
	var (
		output, tokenFile string
		timeout           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stream [flags] <stream-url>",
		Short: "Copy a stream URL to stdout or a file",
		Long: `Copy a stream, as announced in a response's stream_url, to stdout or
to FILE. A stream can be read once, and expires when nobody reads it; a
bridge's /stream URLs need the bridge's token (--token-file).

A stream that sends nothing for --timeout ends in an error (exit 3), and
so does a stream cut off before its end; an address that is a service's
socket rather than a stream, or not a socket at all, is refused (exit 2).`,
		Example: `  acomm stream unix:///tmp/acomm-123/stream-9f2c.sock > result.bin
  acomm stream --token-file token -o result.bin 'http://bridge:8080/stream?addr=...'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := parseAddress(args[0])
			if err != nil {
				return err
			}
			if timeout <= 0 {
				return usageErr("--timeout must be positive")
			}
			if err := checkSocket(u); err != nil {
				return err
			}
			token, err := readToken(tokenFile)
			if err != nil {
				return err
			}
			log, err := newLogger()
			if err != nil {
				return err
			}
			if output == "" {
				return readStream(cmd.Context(), log, cmd.OutOrStdout(), u, token, timeout)
			}
			out, err := createOutput(cmd.Context(), output, timeout)
			if err != nil {
				return err
			}
			defer out.abort()
			return out.save(cmd.Context(), log, cmd.ErrOrStderr(), u, token, timeout)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", "", "write to `FILE` instead of stdout")
	fl.StringVar(&tokenFile, "token-file", "", "read the bridge's bearer token from `FILE`")
	fromEnv(fl, "token-file", "ACOMM_TOKEN_FILE")
	fl.DurationVar(&timeout, "timeout", 30*time.Second, "fail when the stream sends nothing for this long")
	return cmd
}

// outputFile is a file being written: a temporary file beside its path
// (a symbolic link's target), renamed into place once complete, so that a
// failed stream leaves no partial file; or, for stdout ("-"), a device or
// a named pipe, the file itself, written in place.
type outputFile struct {
	path   string      // as given, for messages
	target string      // where the temporary file is renamed to
	f      *os.File    // the temporary file, or the file itself when direct
	direct bool        // f is the output itself: nothing to rename or remove
	mode   os.FileMode // the permissions the file is put in place with
	done   bool
}

// createOutput prepares to write path, and fails (exit 2) when it cannot
// be written: it is a directory, a symbolic link that leads nowhere, or
// its directory is not writable. An existing regular file keeps its
// permissions; a new one gets 0666 less the umask. Standard output, named
// as such (/dev/stdout) or by the file it is, is written as with -. A
// device or named pipe is opened and written in place (a named pipe waits
// for its reader, within timeout, or for ctx's end).
func createOutput(ctx context.Context, path string, timeout time.Duration) (*outputFile, error) {
	if path == "-" {
		return &outputFile{path: path, f: os.Stdout, direct: true}, nil
	}
	o := &outputFile{path: path, target: path, mode: 0o666 &^ os.FileMode(umask())}
	fi, err := os.Stat(path) // follows symbolic links
	if lfi, lerr := os.Lstat(path); err != nil && lerr == nil && lfi.Mode()&os.ModeSymlink != 0 {
		// Renaming a file over it would replace the link, not write
		// where it leads.
		return nil, usageErr("-o %s: a symbolic link that leads nowhere: %w", path, unwrapPath(err))
	}
	if so, serr := os.Stdout.Stat(); err == nil && serr == nil && os.SameFile(fi, so) {
		// /dev/stdout, /proc/self/fd/1, or the file stdout appends to:
		// replacing that file would lose what it holds.
		return &outputFile{path: path, f: os.Stdout, direct: true}, nil
	}
	switch {
	case err == nil && fi.IsDir():
		return nil, usageErr("-o %s: is a directory", path)
	case err == nil && !fi.Mode().IsRegular():
		f, err := openInPlace(ctx, path, timeout)
		if err != nil {
			return nil, usageErr("-o %s: %w", path, unwrapPath(err))
		}
		o.f, o.direct = f, true
		return o, nil
	case err == nil:
		o.mode = fi.Mode().Perm()
		if resolved, err := filepath.EvalSymlinks(path); err == nil {
			o.target = resolved
		}
	}
	dir := filepath.Dir(o.target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(o.target)+".acomm-*")
	if err != nil {
		return nil, usageErr("-o %s: cannot write in %s: %w", path, dir, unwrapPath(err))
	}
	o.f = f
	return o, nil
}

// openInPlace opens the existing file at path for writing, without
// truncating it, within timeout and until ctx ends: opening a named pipe
// waits for a reader. One opened after the wait was given up is closed.
func openInPlace(ctx context.Context, path string, timeout time.Duration) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	giveUp := func() {
		go func() { // (the open returns when a reader comes, if ever)
			if o := <-ch; o.f != nil {
				_ = o.f.Close()
			}
		}()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case o := <-ch:
		return o.f, o.err
	case <-ctx.Done():
		giveUp()
		return nil, fmt.Errorf("interrupted while waiting for a reader: %w", ctx.Err())
	case <-t.C:
		giveUp()
		return nil, fmt.Errorf("no reader within %s (--timeout)", timeout)
	}
}

// unwrapPath returns the error a *os.PathError wraps, or err.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// abort removes the temporary file, unless the output was saved; an
// output written in place is only closed.
func (o *outputFile) abort() {
	if o.done {
		return
	}
	o.done = true
	if o.direct {
		o.closeDirect()
		return
	}
	_ = o.f.Close()
	_ = os.Remove(o.f.Name())
}

// closeDirect closes an output written in place, but not stdout.
func (o *outputFile) closeDirect() error {
	if o.f == os.Stdout {
		return nil
	}
	return o.f.Close()
}

// save copies the stream at u into the output, with a progress bar on
// stderr when stderr is a terminal, and puts it in place.
func (o *outputFile) save(ctx context.Context, log logrus.FieldLogger, stderr io.Writer, u *url.URL, token string, idle time.Duration) error {
	var dst io.Writer = o.f
	if isTerminal(stderr) && !(o.f == os.Stdout && isTerminal(o.f)) {
		bar := progressbar.DefaultBytes(-1, "receiving")
		defer bar.Finish()
		dst = io.MultiWriter(o.f, bar)
	}
	if err := readStream(ctx, log, dst, u, token, idle); err != nil {
		return err
	}
	if o.direct {
		o.done = true
		if err := o.closeDirect(); err != nil {
			return noAnswerErr(fmt.Errorf("-o %s: %w", o.path, err))
		}
		return nil
	}
	if err := o.f.Chmod(o.mode); err != nil {
		return noAnswerErr(fmt.Errorf("-o %s: %w", o.path, err))
	}
	if err := o.f.Close(); err != nil {
		return noAnswerErr(fmt.Errorf("-o %s: %w", o.path, err))
	}
	if err := os.Rename(o.f.Name(), o.target); err != nil {
		return noAnswerErr(fmt.Errorf("-o %s: %w", o.path, err))
	}
	o.done = true
	return nil
}

// readStream copies the stream at u to dst, and fails when it sends
// nothing for idle. Its errors carry the exit status: 2 for an address
// that is not a stream, 3 for a stream that could not be read to its end.
// It logs its start and end at debug level.
func readStream(ctx context.Context, log logrus.FieldLogger, dst io.Writer, u *url.URL, token string, idle time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &watchdog{w: dst, idle: idle}
	log = log.WithField("stream", u.Redacted())
	log.WithField("idle_timeout", idle.String()).Debug("reading stream")
	start := time.Now()
	defer func() { log.WithFields(logrus.Fields{"bytes": w.written(), "took": since(start)}).Debug("stream read") }()
	errStalled := fmt.Errorf("stream %s: nothing received for %s (--timeout)", u.Redacted(), idle)
	w.timer = time.AfterFunc(idle, func() { cancel(errStalled) })
	defer w.timer.Stop()

	var err error
	if u.Scheme == "unix" {
		// A stream's producer sends at once (or closes, when empty); a
		// service's socket waits for a frame and sends nothing. When
		// nothing came soon, look whether the socket answers a frame,
		// on a connection of its own: a stream socket takes one
		// connection only, so the probe cannot take a stream's data.
		probe := time.AfterFunc(min(notStreamProbeAfter, idle/2), func() {
			if w.written() == 0 && isServiceSocket(u) {
				cancel(errNotStream)
			}
		})
		defer probe.Stop()
		// The watchdog bounds stalls, exactly: no read timeout of the
		// library's on top.
		err = acomm.StreamContext(ctx, w, u, acomm.WithStreamReadTimeout(0))
		if err == nil && w.written() == 0 && isServiceSocket(u) {
			err = errNotStream // it hung up on the ready byte
		}
	} else {
		err = getStream(ctx, w, u, token)
	}
	if cause := context.Cause(ctx); err != nil && (errors.Is(cause, errStalled) || errors.Is(cause, errNotStream)) {
		err = cause
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotStream):
		return usageErr("%s is a service's socket, not a stream: a stream URL comes from a response's stream_url", u)
	case errors.Is(err, errStalled):
		return noAnswerErr(err)
	case errors.Is(err, syscall.EPROTOTYPE):
		return usageErr("%s is not a stream socket: a stream URL comes from a response's stream_url", u)
	case errors.Is(err, syscall.ENOENT):
		return noAnswerErr(fmt.Errorf("stream %s: no such socket: already read (a stream can be read once), expired, or never there", u))
	case errors.Is(err, syscall.ECONNREFUSED):
		return noAnswerErr(fmt.Errorf("stream %s: nobody serves it (its process has gone)", u))
	case errors.Is(err, errStreamGone):
		return noAnswerErr(fmt.Errorf("stream %s: %w", u.Redacted(), err))
	case ctx.Err() != nil:
		return noAnswerErr(fmt.Errorf("stream %s: interrupted", u.Redacted()))
	}
	return noAnswerErr(err)
}

// notStreamProbeAfter is how long a unix stream may send nothing before
// readStream looks whether its socket is a service's.
const notStreamProbeAfter = time.Second

// errNotStream is a socket that acknowledges frames: a service's or a
// tracker's, not a stream.
var errNotStream = errors.New("a service's socket, not a stream")

// watchdog is a writer that restarts a timer on every write.
type watchdog struct {
	w     io.Writer
	idle  time.Duration
	timer *time.Timer
	n     atomic.Int64
}

func (d *watchdog) Write(p []byte) (int, error) {
	d.timer.Reset(d.idle)
	n, err := d.w.Write(p)
	d.n.Add(int64(n))
	return n, err
}

// written returns how many bytes went through.
func (d *watchdog) written() int64 { return d.n.Load() }

// isServiceSocket reports whether the socket at u acknowledges a frame,
// as acomm services and trackers do and streams do not. The probe is
// refused as invalid by a receiver, so it runs nothing.
func isServiceSocket(u *url.URL) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := acomm.SendContext(ctx, u, struct {
		Probe string `json:"probe"`
	}{"is this a stream?"})
	return err == nil || errors.Is(err, acomm.ErrRefused)
}

// errStreamGone is a stream the bridge does not have (any more).
var errStreamGone = errors.New("not found: already read (a stream can be read once) or expired")

// getStream copies the body of a GET of the http(s) stream u to dst, with
// the bearer token when there is one.
func getStream(ctx context.Context, dst io.Writer, u *url.URL, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("get stream: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return errStreamGone
	case http.StatusMethodNotAllowed: // a bridge's /requests, /responses
		return usageErr("%s is not a stream (%s): a stream URL comes from a response's stream_url", u.Redacted(), resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode == http.StatusUnauthorized && token == "" {
			return fmt.Errorf("stream %s: %s: %s (no token sent: give --token-file; a token is sent only to the bridge it was given for)", u.Redacted(), resp.Status, errorBody(msg))
		}
		return fmt.Errorf("stream %s: %s: %s", u.Redacted(), resp.Status, errorBody(msg))
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		return fmt.Errorf("read stream %s: %w", u.Redacted(), err)
	}
	return nil
}
