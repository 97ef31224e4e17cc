package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acommgo/acomm"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// callFlags are the flags of acomm call.
type callFlags struct {
	timeout time.Duration
	output  string
	full    bool
	remote  remoteFlags
}

// maxArgsBytes bounds args read from stdin or a file: the largest frame.
const maxArgsBytes = acomm.DefaultMaxFrameSize

func newCallCmd() *cobra.Command {
	var f callFlags
	cmd := &cobra.Command{
		Use:   "call [flags] <address> <task> [args | - | @file]",
		Short: "Send a request to a service and print the result",
		Long: `Send a request to a service and wait for its answer.

The args are JSON: given on the command line, read from stdin with -, or
from a file with @file. The result is printed as JSON on stdout, indented
on a terminal and compact otherwise; --full prints the whole response (id,
result, stream_url, error). A task error goes to stderr with exit status 1.

When the response carries a stream, -o FILE saves it (FILE is checked
before the request is sent; a file is written only when the stream was
read to its end, an existing one keeps its permissions, and a symbolic
link's target is written; a device or named pipe is written in place as
the stream comes; - is stdout, and the result then goes to stderr).
Without -o, the stream's URL goes to stderr with the command that reads
it; a stream can be read once, and expires when nobody reads it.

The address is a unix socket (unix:///run/svc.sock, /run/svc.sock,
./svc.sock) or an acomm bridge (http://host:8080/requests). For a bridge,
the answer is received on a temporary HTTP endpoint (--hook-listen, by
default on 127.0.0.1) that the bridge must be able to reach and be allowed
to post to: a bridge refuses local addresses unless started with
--allow-hook (--allow-hook 127.0.0.1 for a bridge on this machine). The
bearer token in --token-file is sent to the bridge, and to nothing else.
Without an answer, the message says what reached the hook: nothing, or a
request on another path than the hook's (a wrong --hook-url).

Interrupted (Ctrl-C, SIGTERM) or past --timeout, the call tells the
service to cancel the request (through a bridge, with a cancel notice).`,
		Example: `  acomm call /run/disk.sock disk.usage '{"path":"/"}'
  echo '{"path":"/"}' | acomm call unix:///run/disk.sock disk.usage -
  acomm call --full /run/disk.sock disk.usage @args.json
  acomm call --token-file token http://bridge:8080/requests disk.usage '{"path":"/"}'
  acomm call http://127.0.0.1:8080/requests disk.usage '{"path":"/"}'   # a bridge on this machine, started with --allow-hook 127.0.0.1
  acomm call -o image.raw /run/img.sock image.export '{"id":7}'`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCall(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the answer, and for the stream's next bytes with -o")
	fl.StringVarP(&f.output, "output", "o", "", "save the response's stream to `FILE` (- for stdout)")
	fl.BoolVar(&f.full, "full", false, "print the whole response (id, result, stream_url, error), not only the result")
	addRemoteFlags(cmd, &f.remote)
	return cmd
}

// readArgs returns the JSON args given as arg: literal JSON, "-" for
// stdin, or "@file".
func readArgs(arg string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	switch {
	case arg == "-":
		var err error
		if b, err = io.ReadAll(io.LimitReader(stdin, maxArgsBytes+1)); err != nil {
			return nil, usageErr("read args from stdin: %w", err)
		}
	case strings.HasPrefix(arg, "@"):
		var err error
		if b, err = readFileMax(arg[1:], maxArgsBytes); err != nil {
			return nil, usageErr("read args: %w", err)
		}
	default:
		b = []byte(arg)
	}
	if len(b) > maxArgsBytes {
		return nil, usageErr("args are larger than %d bytes", maxArgsBytes)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, usageErr("args are not valid JSON: %s", abbreviate(b))
	}
	return json.RawMessage(b), nil
}

// readFileMax reads the file at path, up to max bytes and one more (so
// that the caller sees it is too large): a file such as /dev/zero never
// ends.
func readFileMax(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// abbreviate returns b, cut on a character boundary to a length that fits
// in a message, and made printable.
func abbreviate(b []byte) string {
	const max = 60
	if len(b) <= max {
		return printable(string(b))
	}
	n := max
	for n > max-utf8.UTFMax && !utf8.RuneStart(b[n]) {
		n--
	}
	return printable(string(b[:n])) + "…"
}

func runCall(cmd *cobra.Command, f callFlags, args []string) error {
	dest, err := parseAddress(args[0])
	if err != nil {
		return err
	}
	task := args[1]
	var payload any
	if len(args) == 3 {
		raw, err := readArgs(args[2], cmd.InOrStdin())
		if err != nil {
			return err
		}
		payload = raw
	}
	var out *outputFile
	if f.output != "" {
		// Checked before anything is sent: the task may be costly.
		if out, err = createOutput(cmd.Context(), f.output, f.timeout); err != nil {
			return err
		}
		defer out.abort()
	}
	c, err := newCaller(f.remote, f.timeout)
	if err != nil {
		return err
	}
	defer c.close()

	resp, callErr := c.call(cmd.Context(), dest, task, payload)
	if resp != nil && (callErr == nil || f.full) {
		w := cmd.OutOrStdout()
		if out != nil && out.f == os.Stdout {
			w = cmd.ErrOrStderr() // stdout carries the stream alone
		}
		if err := printResponse(w, resp, f.full); err != nil {
			return err
		}
	}
	if callErr != nil {
		return callErr
	}
	switch {
	case resp.StreamURL == nil && out != nil:
		return taskErr(fmt.Errorf("-o %s: task %s answered without a stream; nothing written", f.output, task))
	case resp.StreamURL == nil:
		return nil
	}
	token, err := c.streamToken(dest, resp.StreamURL)
	if err != nil {
		return err
	}
	if out == nil {
		printStreamHint(cmd.ErrOrStderr(), c.log, resp.StreamURL, token != "", f.remote.tokenFile)
		return nil
	}
	return out.save(cmd.Context(), c.log, cmd.ErrOrStderr(), resp.StreamURL, token, f.timeout)
}

// printResponse prints resp's result, or all of resp with full, as JSON:
// indented when w is a terminal, compact otherwise.
func printResponse(w io.Writer, resp *acomm.Response, full bool) error {
	raw := []byte("null")
	if full {
		b, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		raw = b
	} else if resp.Result != nil {
		raw = *resp.Result
	}
	var buf bytes.Buffer
	var err error
	if isTerminal(w) {
		err = json.Indent(&buf, raw, "", "  ")
	} else {
		err = json.Compact(&buf, raw)
	}
	if err != nil {
		buf.Reset()
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printStreamHint tells where the response's stream is and how to read
// it, with the command written the way this one was started (see
// invocation); with --log-format json, as a log record.
func printStreamHint(w io.Writer, log logrus.FieldLogger, u *url.URL, withToken bool, tokenFile string) {
	self, _ := invocation()
	read := self + " stream "
	if withToken && tokenFile != "" {
		read += "--token-file " + shellQuote(tokenFile) + " "
	}
	read += shellQuote(u.String()) + " > FILE"
	const carries = "the response carries a stream (readable once, until it expires)"
	if global.logFormat == "json" {
		log.WithFields(logrus.Fields{"stream_url": u.String(), "read_with": read}).Info(carries)
		return
	}
	fmt.Fprintf(w, "acomm: %s: %s\n", carries, u)
	fmt.Fprintf(w, "acomm: read it with: %s\n", read)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
