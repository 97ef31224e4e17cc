package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/internal/acommtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// binary is the acomm command built for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acbin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "acomm")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build acomm: %v\n%s", err, out)
		os.Exit(1)
	}
	code := 0
	func() {
		defer os.RemoveAll(dir)
		code = m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what a run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// runOpts are the conditions of a run of the binary besides its args.
type runOpts struct {
	stdin string
	env   []string // added to the test's environment
	dir   string   // working directory
}

// runAcomm runs the binary with args and returns its outputs and status.
func runAcomm(t *testing.T, args ...string) result {
	t.Helper()
	return runAcommWith(t, runOpts{}, args...)
}

// runAcommWith runs the binary with args under o.
func runAcommWith(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdin = strings.NewReader(o.stdin)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Dir = o.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// shortDir returns a short temp dir for sockets, removed at cleanup.
var shortDir = acommtest.ShortDir

// startServices starts a tracker and a Server with tasks upper, fail and
// blob (a streamed result), stopped at cleanup.
func startServices(t *testing.T) (*acomm.Tracker, *acomm.Server) {
	t.Helper()
	dir := shortDir(t)
	tr, err := acomm.NewTracker(filepath.Join(dir, "t.sock"), nil, 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, tr.Start())
	srv := acomm.NewServer(filepath.Join(dir, "s.sock"), tr)
	srv.Handle("text.upper", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		var s string
		if err := req.UnmarshalArgs(&s); err != nil {
			return nil, nil, err
		}
		return strings.ToUpper(s), nil, nil
	})
	srv.Handle("text.fail", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		return nil, nil, errors.New("disk on fire")
	})
	srv.Handle("text.echo", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		return req.Args, nil, nil
	})
	srv.Handle("text.blob", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		return "blob", io.NopCloser(strings.NewReader("streamed content")), nil
	})
	release := make(chan struct{})
	srv.Handle("text.slow", func(ctx context.Context, _ *acomm.Request) (any, io.ReadCloser, error) {
		select {
		case <-release:
			return "late", nil, nil
		case <-ctx.Done():
			// As a handler should: not a success past the caller's
			// deadline, which could beat the caller's own timer (as it
			// did once in CI, --timeout then exiting 0).
			return nil, nil, ctx.Err()
		}
	})
	require.NoError(t, srv.Describe("text.upper", "upper-case a string", "hello"))
	require.NoError(t, srv.Start())
	t.Cleanup(func() {
		close(release)
		srv.Stop()
		tr.Stop()
	})
	return tr, srv
}

func TestHelp(t *testing.T) {
	for _, sub := range []string{"", "call", "info", "ping", "stream", "demo", "bridge"} {
		t.Run("help "+sub, func(t *testing.T) {
			args := strings.Fields(sub + " --help")
			r := runAcomm(t, args...)
			assert.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "Usage:")
		})
	}
}

func TestCall(t *testing.T) {
	_, srv := startServices(t)
	svc := srv.URL().String()

	t.Run("success", func(t *testing.T) {
		r := runAcomm(t, "call", svc, "text.upper", `"hello"`)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "\"HELLO\"\n", r.stdout)
	})
	t.Run("task error", func(t *testing.T) {
		r := runAcomm(t, "call", svc, "text.fail")
		assert.Equal(t, exitTaskError, r.code)
		assert.Contains(t, r.stderr, "disk on fire")
		assert.Empty(t, r.stdout)
	})
	t.Run("unknown task", func(t *testing.T) {
		r := runAcomm(t, "call", svc, "nope")
		assert.Equal(t, exitTaskError, r.code)
		assert.Contains(t, r.stderr, `unknown task: "nope"`)
	})
	t.Run("invalid json args", func(t *testing.T) {
		r := runAcomm(t, "call", svc, "text.upper", `{not json`)
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "not valid JSON")
	})
	t.Run("invalid url", func(t *testing.T) {
		r := runAcomm(t, "call", "ftp://x/y", "t")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "invalid address")
	})
	t.Run("unreachable", func(t *testing.T) {
		r := runAcomm(t, "call", "unix://"+filepath.Join(shortDir(t), "none.sock"), "t")
		assert.Equal(t, exitNoAnswer, r.code)
		assert.Contains(t, r.stderr, "dial")
	})
	t.Run("missing args", func(t *testing.T) {
		r := runAcomm(t, "call", svc)
		assert.Equal(t, exitUsage, r.code)
	})
	t.Run("stream to file", func(t *testing.T) {
		out := filepath.Join(shortDir(t), "out.bin")
		r := runAcomm(t, "call", "-o", out, svc, "text.blob")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "\"blob\"\n", r.stdout)
		got, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.Equal(t, "streamed content", string(got))
	})
	t.Run("-o without a stream", func(t *testing.T) {
		dir := shortDir(t)
		r := runAcomm(t, "call", "-o", filepath.Join(dir, "x"), svc, "text.upper", `"a"`)
		assert.Equal(t, exitTaskError, r.code, "the task answered, but not what was asked")
		assert.Contains(t, r.stderr, "without a stream; nothing written")
		assert.Equal(t, "\"A\"\n", r.stdout)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, entries, "no file, no temporary file")
	})
}

func TestStreamCommand(t *testing.T) {
	tr, _ := startServices(t)
	u, err := tr.NewStreamUnix("", io.NopCloser(strings.NewReader("stream body")))
	require.NoError(t, err)
	r := runAcomm(t, "stream", u.String())
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "stream body", r.stdout)

	r = runAcomm(t, "stream", u.String()) // served once
	assert.Equal(t, exitNoAnswer, r.code)
	assert.Contains(t, r.stderr, "already read")
}

func TestDemo(t *testing.T) {
	r := runAcomm(t, "demo", "--stream-mib", "16")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"call upper", "MultiRequest", "stream a 16 MiB result", "demo finished"} {
		assert.Contains(t, r.stdout, want)
	}
	assert.NotContains(t, r.stdout, "FAIL")

	r = runAcomm(t, "demo", "--stream-mib", "1", "--expvar")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"tracker.demo":{"InFlight":0,"Tracked":12`)
}

// bridgeProc is a running acomm bridge.
type bridgeProc struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	token  string
	stderr *bytes.Buffer
	exited chan error
	lines  chan string // stderr, line by line (dropped when full)
}

var addrRE = regexp.MustCompile(`addr"?[=:]"?([0-9.]+:[0-9]+)`) // text or JSON logs

// startBridge runs acomm bridge in front of srv with a token and extra
// flags, stopped at cleanup.
func startBridge(t *testing.T, srv *acomm.Server, extra ...string) *bridgeProc {
	t.Helper()
	dir := shortDir(t)
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	cmd := exec.Command(binary, "bridge", "--listen", "127.0.0.1:0",
		"--route", "text.*="+srv.URL().String(), "--token-file", tokenFile, "--timeout", "5s", "--expvar",
		"--allow-hook", "127.0.0.1")
	cmd.Args = append(cmd.Args, extra...)
	b := runBridgeCmd(t, cmd)
	b.token = "s3cret"
	return b
}

// runBridgeCmd starts cmd, an acomm bridge, waits until it listens, and
// stops it at cleanup: SIGTERM, so that its own shutdown removes its
// tracker's socket directory, and a kill only if that takes too long.
func runBridgeCmd(t *testing.T, cmd *exec.Cmd) *bridgeProc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	b := &bridgeProc{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan error, 1), lines: make(chan string, 256)}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			b.stderr.WriteString(line + "\n")
			select {
			case b.lines <- line:
			default:
			}
			if m := addrRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "bridge listening") {
				found <- m[1]
			}
		}
		b.exited <- cmd.Wait()
	}()
	select {
	case addr := <-found:
		b.base = "http://" + addr
	case err := <-b.exited:
		b.exited <- err
		t.Fatalf("bridge exited: %v\n%s", err, b.stderr.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("bridge did not start")
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
			return
		case <-time.After(10 * time.Second):
		}
		_ = cmd.Process.Kill()
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
		}
	})
	return b
}

// waitLine waits for a line of the bridge's stderr that contains want.
func (b *bridgeProc) waitLine(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-b.lines:
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no line with %q on the bridge's stderr", want)
			return ""
		}
	}
}

// post sends body to the bridge's path with the given token.
func (b *bridgeProc) post(t *testing.T, path, token string, body []byte) (int, string) {
	t.Helper()
	return b.do(t, http.MethodPost, path, token, body)
}

// do sends a request to the bridge's path with the given token and
// returns the status and body.
func (b *bridgeProc) do(t *testing.T, method, path, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.base+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// hookServer is an external caller's HTTP endpoint for responses.
func hookServer(t *testing.T) (string, <-chan *acomm.Response) {
	t.Helper()
	got := make(chan *acomm.Response, 4)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := &acomm.Response{}
		if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- resp
		_, _ = fmt.Fprintf(w, `{"id":%q,"error":""}`, resp.ID)
	}))
	t.Cleanup(func() {
		hs.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return hs.URL + "/hook", got
}

func TestBridgeCommand(t *testing.T) {
	_, srv := startServices(t)
	b := startBridge(t, srv)
	hook, answers := hookServer(t)

	request := func(task, args string) []byte {
		return []byte(fmt.Sprintf(`{"id":"%s-%d","task":%q,"responsehook":%q,"args":%s}`, task, time.Now().UnixNano(), task, hook, args))
	}
	next := func(t *testing.T) *acomm.Response {
		t.Helper()
		select {
		case r := <-answers:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no answer on the hook")
			return nil
		}
	}

	t.Run("success", func(t *testing.T) {
		code, body := b.post(t, "/requests", b.token, request("text.upper", `"bridge"`))
		require.Equal(t, http.StatusOK, code, body)
		resp := next(t)
		require.NoError(t, resp.Error)
		var s string
		require.NoError(t, resp.UnmarshalResult(&s))
		assert.Equal(t, "BRIDGE", s)
	})
	t.Run("task error", func(t *testing.T) {
		code, body := b.post(t, "/requests", b.token, request("text.fail", "null"))
		require.Equal(t, http.StatusOK, code, body)
		resp := next(t)
		require.Error(t, resp.Error)
		assert.Contains(t, resp.Error.Error(), "disk on fire")
	})
	t.Run("streamed result", func(t *testing.T) {
		code, body := b.post(t, "/requests", b.token, request("text.blob", "null"))
		require.Equal(t, http.StatusOK, code, body)
		resp := next(t)
		require.NoError(t, resp.Error)
		require.NotNil(t, resp.StreamURL)
		assert.True(t, strings.HasPrefix(resp.StreamURL.String(), "http://"), resp.StreamURL.String())
		get := func(token string) (int, string) {
			return b.do(t, http.MethodGet, "/stream?"+resp.StreamURL.RawQuery, token, nil)
		}
		code, _ = get("")
		assert.Equal(t, http.StatusUnauthorized, code, "stream without token")
		code, data := get(b.token)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, "streamed content", data)
		code, _ = get(b.token)
		assert.Equal(t, http.StatusNotFound, code, "a stream is served once")
	})

	refusals := []struct {
		name   string
		method string
		path   string
		token  string
		body   []byte
		want   int
	}{
		{"missing token", http.MethodPost, "/requests", "", request("text.upper", `"x"`), http.StatusUnauthorized},
		{"wrong token", http.MethodPost, "/requests", "nope", request("text.upper", `"x"`), http.StatusUnauthorized},
		{"responses without capability", http.MethodPost, "/responses", "s3cret", []byte(`{"id":"x"}`), http.StatusForbidden},
		{"invalid json", http.MethodPost, "/requests", "s3cret", []byte(`{"id":`), http.StatusBadRequest},
		{"missing hook", http.MethodPost, "/requests", "s3cret", []byte(`{"id":"a","task":"text.upper","args":null}`), http.StatusBadRequest},
		{"unix hook", http.MethodPost, "/requests", "s3cret", []byte(`{"id":"a","task":"text.upper","responsehook":"unix:///tmp/x.sock","args":null}`), http.StatusBadRequest},
		{"no route", http.MethodPost, "/requests", "s3cret", request("disk.usage", "null"), http.StatusNotFound},
		{"too large", http.MethodPost, "/requests", "s3cret", append(append([]byte(`{"id":"a","args":"`), bytes.Repeat([]byte("a"), 5<<20)...), `"}`...), http.StatusRequestEntityTooLarge},
		{"wrong method", http.MethodGet, "/requests", "s3cret", nil, http.StatusMethodNotAllowed},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := b.do(t, tt.method, tt.path, tt.token, tt.body)
			assert.Equal(t, tt.want, code)
			var body map[string]any
			assert.NoError(t, json.Unmarshal([]byte(msg), &body), "error bodies are JSON")
			assert.Contains(t, body, "error")
		})
	}

	t.Run("expvar stats", func(t *testing.T) {
		code, _ := b.do(t, http.MethodGet, "/debug/vars", "", nil)
		assert.Equal(t, http.StatusUnauthorized, code)
		code, body := b.do(t, http.MethodGet, "/debug/vars", b.token, nil)
		require.Equal(t, http.StatusOK, code)
		var vars map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(body), &vars))
		var acommVars map[string]map[string]any
		require.NoError(t, json.Unmarshal(vars["acomm"], &acommVars), body)
		stats := acommVars["tracker.bridge"]
		require.NotNil(t, stats, body)
		assert.Positive(t, stats["Answered"])
	})

	t.Run("acomm call through the bridge", func(t *testing.T) {
		tokenFile := filepath.Join(shortDir(t), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte(b.token), 0o600))
		r := runAcomm(t, "call", "--token-file", tokenFile, b.base+"/requests", "text.upper", `"end to end"`)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "\"END TO END\"\n", r.stdout)

		out := filepath.Join(shortDir(t), "blob")
		r = runAcomm(t, "call", "--token-file", tokenFile, "-o", out, b.base+"/requests", "text.blob")
		require.Equal(t, 0, r.code, r.stderr)
		got, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.Equal(t, "streamed content", string(got))

		r = runAcomm(t, "call", b.base+"/requests", "text.upper", `"x"`) // no token
		assert.Equal(t, exitNoAnswer, r.code)
		assert.Contains(t, r.stderr, "401")

		// Exit statuses as over unix.
		env := runOpts{env: []string{"ACOMM_TOKEN_FILE=" + tokenFile}}
		for _, tt := range []struct {
			task string
			code int
			want string
		}{
			{"text.nope", exitTaskError, "unknown task"}, // the service does not know it
			{"disk.nope", exitTaskError, "unknown task"}, // the bridge has no route for it
			{"text.fail", exitTaskError, "disk on fire"},
			{"text.upper", exitOK, "\"A\""},
		} {
			r = runAcommWith(t, env, "call", b.base+"/requests", tt.task, `"a"`)
			assert.Equal(t, tt.code, r.code, "%s: %s", tt.task, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tt.want)
		}
		// --hook-url names the hook the bridge posts to, here the
		// address --hook-listen binds in another spelling.
		free, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := free.Addr().(*net.TCPAddr).Port
		require.NoError(t, free.Close())
		r = runAcommWith(t, env, "call", "--hook-listen", fmt.Sprintf("0.0.0.0:%d", port),
			"--hook-url", fmt.Sprintf("http://127.0.0.1:%d/responses", port), b.base+"/requests", "text.upper", `"hooked"`)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, "\"HOOKED\"\n", r.stdout)

		big := filepath.Join(shortDir(t), "big.json")
		require.NoError(t, os.WriteFile(big, []byte(`"`+strings.Repeat("a", 5<<20)+`"`), 0o600))
		r = runAcommWith(t, env, "call", b.base+"/requests", "text.upper", "@"+big)
		assert.Equal(t, exitUsage, r.code, "args over the bridge's limit: %s", r.stderr)
		assert.Contains(t, r.stderr, "413")

		r = runAcommWith(t, env, "call", "--timeout", "500ms", b.base+"/requests", "text.slow")
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		// The caller's deadline travels to the bridge, whose own wait
		// then ends with it: which of the two notices first is a race.
		assert.Regexp(t, `task text\.slow: (no answer within 500ms|.*got no response (within|by its caller's deadline)|.*arrived after its caller's deadline)`, r.stderr)

		r = runAcommWith(t, env, "call", b.base+"/requests", "text.blob")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stderr, "read it with: "+binary+" stream --token-file "+tokenFile+" '"+b.base+"/stream?")
		m := regexp.MustCompile(`read it with: \S+ stream --token-file \S+ '([^']+)'`).FindStringSubmatch(r.stderr)
		require.NotNil(t, m, r.stderr)
		r = runAcomm(t, "stream", "--token-file", tokenFile, m[1])
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, "streamed content", r.stdout)
		r = runAcomm(t, "stream", "--token-file", tokenFile, m[1])
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		assert.Contains(t, r.stderr, "already read")
	})

	t.Run("graceful stop on SIGTERM", func(t *testing.T) {
		require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-b.exited:
			assert.NoError(t, err, b.stderr.String())
		case <-time.After(10 * time.Second):
			t.Fatal("bridge did not exit after SIGTERM")
		}
		assert.Contains(t, b.stderr.String(), "bridge stopped")
		assert.Contains(t, b.stderr.String(), "method=POST")
		b.exited <- nil // for cleanup
	})
}

func TestBridgeCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no listen", []string{"bridge", "--route", "a=unix:///x.sock"}, "listen"},
		{"no route", []string{"bridge", "--listen", "127.0.0.1:0"}, "route"},
		{"bad route", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=http://x"}, "route"},
		{"route with a host part", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=unix://run/x.sock"}, "unix:///run/x.sock"},
		{"route to a bare name", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=x.sock"}, "route"},
		{"tls half", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=unix:///x.sock", "--tls-cert", "c"}, "tls"},
		{"bad advertise", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=unix:///x.sock", "--advertise", "ftp://x"}, "advertise"},
		{"bad allow-hook", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=unix:///x.sock", "--allow-hook", "not a host"}, "allow-hook"},
		{"route pattern with a space", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "disk usage=unix:///x.sock"}, "space or a control character"},
		{"route pattern with a control character", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "disk\x1b.*=unix:///x.sock"}, "space or a control character"},
		{"route socket path too long", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=unix:///" + strings.Repeat("x", 108) + ".sock"}, "longer than 107 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, tt.args...)
			assert.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

func TestHookURL(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		name, flag, listen, want string
		err                      bool
	}{
		{"loopback", "", "127.0.0.1:9000", "http://127.0.0.1:9000/responses", false},
		{"unspecified", "", "0.0.0.0:9000", "http://" + host + ":9000/responses", false},
		{"flag wins", "https://me.example/hook", "0.0.0.0:9000", "https://me.example/hook", false},
		{"bad flag", "ftp://x", "127.0.0.1:9000", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tt.listen)
			require.NoError(t, err)
			got, err := hookURL(tt.flag, addr)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
