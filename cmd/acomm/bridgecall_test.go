package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/internal/acommtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tokenFileFor writes the bridge's token to a file and returns its path.
func tokenFileFor(t *testing.T, b *bridgeProc) string {
	t.Helper()
	path := filepath.Join(shortDir(t), "token")
	require.NoError(t, os.WriteFile(path, []byte(b.token), 0o600))
	return path
}

// shellWords splits a command line as a POSIX shell does, for the README's
// commands: words separated by blanks, single quotes kept together.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var (
		words   []string
		word    strings.Builder
		inWord  bool
		inQuote bool
	)
	for _, r := range line {
		switch {
		case r == '\'':
			inQuote, inWord = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	require.False(t, inQuote, "unbalanced quote in %q", line)
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// readmeLine returns the README's line that starts with prefix.
func readmeLine(t *testing.T, prefix string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("no line starting with %q in README.md", prefix)
	return ""
}

// replaceAll replaces old with new in every word.
func replaceAll(words []string, old, new string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strings.ReplaceAll(w, old, new)
	}
	return out
}

// TestBridgeOnOneMachine checks that a call through a bridge on the same
// machine works as the README writes it, and that a bridge that refuses
// the call's hook says what to do, with exit status 2 (issue 18, item 2).
func TestBridgeOnOneMachine(t *testing.T) {
	srv := acomm.NewServer(acommtest.SockPath(t, "disk.sock"), nil)
	srv.Handle("disk.usage", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var args struct{ Path string }
		if err := req.UnmarshalArgs(&args); err != nil {
			return nil, nil, err
		}
		return map[string]any{"path": args.Path, "used": 123}, nil, nil
	})
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)

	t.Run("the README's example", func(t *testing.T) {
		bridgeLine := strings.TrimSuffix(readmeLine(t, "acomm bridge --listen 127.0.0.1:8080 "), " &")
		words := shellWords(t, bridgeLine)
		require.Contains(t, words, "--allow-hook")
		words = replaceAll(words, "127.0.0.1:8080", "127.0.0.1:0")
		words = replaceAll(words, "unix:///run/disk.sock", srv.URL().String())
		b := runBridgeCmd(t, exec.Command(binary, words[1:]...))

		words = shellWords(t, readmeLine(t, "acomm call http://127.0.0.1:8080/requests "))
		words = replaceAll(words, "http://127.0.0.1:8080", b.base)
		r := runAcomm(t, words[1:]...)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.JSONEq(t, `{"path":"/","used":123}`, r.stdout)
	})

	t.Run("a bridge that refuses the hook says what to do", func(t *testing.T) {
		cmd := exec.Command(binary, "bridge", "--listen", "127.0.0.1:0", "--route", "disk.*="+srv.URL().String())
		b := runBridgeCmd(t, cmd)
		assert.Contains(t, b.waitLine(t, "listening on loopback only"), "give --allow-hook 127.0.0.1")
		r := runAcomm(t, "call", b.base+"/requests", "disk.usage", `{"path":"/"}`)
		assert.Equal(t, exitUsage, r.code, r.stderr)
		for _, want := range []string{"403", "start the bridge with --allow-hook 127.0.0.1", "--hook-listen"} {
			assert.Contains(t, r.stderr, want)
		}
		assert.Empty(t, r.stdout)
	})
}

// TestCallThroughBridgeCancels checks that a call through a bridge that
// is interrupted, or times out, sends the bridge a cancel notice with the
// request's own hook, so that the service's handler is cancelled (issue
// 18, item 3).
func TestCallThroughBridgeCancels(t *testing.T) {
	t.Run("SIGINT cancels the handler", func(t *testing.T) {
		_, srv := startServices(t)
		b := startBridge(t, srv, "--metrics", "127.0.0.1:0")
		cmd := exec.Command(binary, "-v", "call", "--token-file", tokenFileFor(t, b), "--timeout", "1m", b.base+"/requests", "text.slow")
		code, stderr := interruptWhenRunning(t, cmd, srv, os.Interrupt)
		assert.Equal(t, exitSignal+int(syscall.SIGINT), code, stderr)
		assert.Contains(t, stderr, "interrupted before an answer")
		assert.Eventually(t, func() bool { return srv.Stats().Cancelled == 1 }, 5*time.Second, 5*time.Millisecond,
			"the handler cancelled through the bridge: %s", stderr)
		assert.Equal(t, 1.0, scrapeMetric(t, b.metricsURL(t), "acomm_tracker_cancel_notices_total", 1))
	})

	for _, tt := range []struct {
		name     string
		features string
		notice   bool
	}{
		{"a bridge that takes notices gets one on --timeout", `["cancel"]`, true},
		{"a bridge that does not list cancel gets none", `[]`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb := newNoticeBridge(t, tt.features)
			tokenFile := filepath.Join(shortDir(t), "token")
			require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret"), 0o600))
			r := runAcomm(t, "call", "--token-file", tokenFile, "--timeout", "300ms", fb.url, "text.slow")
			assert.Equal(t, exitNoAnswer, r.code, r.stderr)
			assert.Contains(t, r.stderr, "no answer within 300ms (--timeout)")

			req := acommtest.WaitFor(t, fb.got, 5*time.Second, "the request")
			require.Equal(t, "text.slow", req.Task)
			if !tt.notice {
				select {
				case n := <-fb.got:
					t.Fatalf("a notice to a bridge that does not take them: %+v", n)
				default: // the command has exited: it sent all it would
				}
				return
			}
			notice := acommtest.WaitFor(t, fb.got, 5*time.Second, "the cancel notice")
			assert.Equal(t, acomm.CancelTask, notice.Task)
			var args struct{ ID string }
			require.NoError(t, notice.UnmarshalArgs(&args))
			assert.Equal(t, req.ID, args.ID)
			assert.Equal(t, req.ResponseHook.String(), notice.ResponseHook.String(), "the request's own hook, with its capability")
			assert.Equal(t, "Bearer s3cret", notice.auth)
		})
	}
}

// interruptWhenRunning starts cmd, a call of srv's text.slow, sends it sig
// once the handler runs, and returns its exit status and stderr.
func interruptWhenRunning(t *testing.T, cmd *exec.Cmd, srv *acomm.Server, sig os.Signal) (int, string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	require.Eventually(t, func() bool { return srv.Stats().InFlight == 1 }, 10*time.Second, 5*time.Millisecond, "the handler to start")
	require.NoError(t, cmd.Process.Signal(sig))
	err := acommtest.WaitFor(t, exited, 10*time.Second, "the command to exit on "+sig.String())
	exited <- err // for the cleanup
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, stderr.String())
	return ee.ExitCode(), stderr.String()
}

// noticeRequest is a request a noticeBridge received, with its
// Authorization header.
type noticeRequest struct {
	*acomm.Request
	auth string
}

// noticeBridge is a bridge that acknowledges every request, listing
// features, answers none, and hands over what it receives.
type noticeBridge struct {
	url string
	got chan noticeRequest
}

func newNoticeBridge(t *testing.T, features string) *noticeBridge {
	t.Helper()
	fb := &noticeBridge{got: make(chan noticeRequest, 8)}
	fb.url = requestServer(t, func(w http.ResponseWriter, r *http.Request, req *acomm.Request) {
		fb.got <- noticeRequest{req, r.Header.Get("Authorization")}
		_, _ = fmt.Fprintf(w, `{"id":%q,"result":null,"stream_url":null,"error":"","features":%s}`, req.ID, features)
	})
	return fb
}

// requestServer is a fake bridge: an HTTP server that decodes each
// request body as an acomm Request and hands it to f, closed at cleanup.
// It returns its /requests URL.
func requestServer(t *testing.T, f func(w http.ResponseWriter, r *http.Request, req *acomm.Request)) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &acomm.Request{}
		if err := json.NewDecoder(r.Body).Decode(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f(w, r, req)
	}))
	t.Cleanup(func() {
		hs.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return hs.URL + "/requests"
}

// TestCallHookDiagnostics checks that a call through a bridge whose answer
// does not reach its hook says why (issue 18, item 6).
func TestCallHookDiagnostics(t *testing.T) {
	_, srv := startServices(t)
	b := startBridge(t, srv)
	tokenFile := tokenFileFor(t, b)
	freePort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
		return port
	}

	t.Run("a --hook-url with a wrong path fails at once", func(t *testing.T) {
		port := freePort()
		start := time.Now()
		r := runAcomm(t, "call", "--token-file", tokenFile, "--timeout", "30s",
			"--hook-listen", fmt.Sprintf("127.0.0.1:%d", port), "--hook-url", fmt.Sprintf("http://127.0.0.1:%d/wrong", port),
			b.base+"/requests", "text.upper", `"x"`)
		assert.Equal(t, exitUsage, r.code, r.stderr)
		assert.Less(t, time.Since(start), 15*time.Second, "not after the --timeout")
		assert.Contains(t, r.stderr, "hook received a request on a path it does not serve") // the log line
		assert.Contains(t, r.stderr, "the bridge posted the answer as POST /wrong, but this command's hook takes answers at POST /responses")
	})
	t.Run("nothing reached the hook", func(t *testing.T) {
		r := runAcomm(t, "call", "--token-file", tokenFile, "--timeout", "1s",
			"--hook-url", fmt.Sprintf("http://127.0.0.1:%d/responses", freePort()), b.base+"/requests", "text.upper", `"x"`)
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		assert.Contains(t, r.stderr, "no answer within 1s (--timeout); nothing reached the hook http://127.0.0.1:")
	})
	t.Run("something else reached the hook", func(t *testing.T) {
		// A bridge that posts somebody else's answer elsewhere on the hook.
		fake := requestServer(t, func(w http.ResponseWriter, _ *http.Request, req *acomm.Request) {
			_, _ = fmt.Fprintf(w, `{"id":%q,"error":""}`, req.ID)
			other := *req.ResponseHook
			other.Path, other.RawQuery = "/other", ""
			resp, err := http.Post(other.String(), "application/json", strings.NewReader(`{"id":"x"}`))
			if err == nil {
				_ = resp.Body.Close()
			}
		})
		r := runAcomm(t, "call", "--timeout", "1s", fake, "t")
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		assert.Contains(t, r.stderr, "no answer within 1s (--timeout); the hook received POST /other, but takes answers at POST /responses")
	})
}
