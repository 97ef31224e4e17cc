package main

import (
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
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVersionAndGlobalFlags(t *testing.T) {
	r := runAcomm(t, "--version")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Regexp(t, `^acomm \S+ \(go`, r.stdout)

	_, srv := startServices(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad log level", []string{"--log-level", "loud", "ping", srv.Addr()}, exitUsage, "--log-level"},
		{"bad log format", []string{"--log-format", "xml", "ping", srv.Addr()}, exitUsage, "--log-format"},
		{"log level not in the help", []string{"--log-level", "trace", "ping", srv.Addr()}, exitUsage, "want debug, info, warn or error"},
		{"log level warning", []string{"--log-level", "warning", "ping", srv.Addr()}, exitUsage, "want debug, info, warn or error"},
		{"log level warn", []string{"--log-level", "warn", "ping", srv.Addr()}, exitOK, "is alive"},
		{"version with an argument", []string{"version", "extra"}, exitUsage, "version takes no arguments"},
		{"debug json", []string{"--log-level", "debug", "--log-format", "json", "ping", srv.Addr()}, exitOK, "is alive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tt.want)
		})
	}
}

func TestAddresses(t *testing.T) {
	_, srv := startServices(t)
	dir, base := filepath.Split(srv.Addr())
	tests := []struct {
		name string
		addr string
		dir  string
		code int
		want string
	}{
		{"unix url", "unix://" + srv.Addr(), "", exitOK, `"HELLO"`},
		{"absolute path", srv.Addr(), "", exitOK, `"HELLO"`},
		{"relative path", "./" + base, dir, exitOK, `"HELLO"`},
		{"parent-relative path", "../" + filepath.Base(dir) + "/" + base, dir, exitOK, `"HELLO"`},
		{"unix url with a host", "unix:/" + srv.Addr(), "", exitUsage, "three slashes, as in unix:///"},
		{"unix url with localhost", "unix://localhost" + srv.Addr(), "", exitUsage, "as in unix://" + srv.Addr() + " "},
		{"opaque unix url", "unix:" + base, "", exitUsage, "absolute path"},
		{"bare name", base, "", exitUsage, "invalid address"},
		{"http without host", "http:///requests", "", exitUsage, "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcommWith(t, runOpts{dir: tt.dir}, "call", tt.addr, "text.upper", `"hello"`)
			require.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tt.want)
		})
	}
}

func TestCallArgs(t *testing.T) {
	_, srv := startServices(t)
	svc := srv.Addr()
	argsFile := filepath.Join(shortDir(t), "args.json")
	require.NoError(t, os.WriteFile(argsFile, []byte(" \"from a file\"\n"), 0o600))
	tests := []struct {
		name  string
		arg   string
		stdin string
		code  int
		want  string
	}{
		{"command line", `"x"`, "", exitOK, `"X"`},
		{"stdin", "-", "\"from stdin\"\n", exitOK, `"FROM STDIN"`},
		{"file", "@" + argsFile, "", exitOK, `"FROM A FILE"`},
		{"missing file", "@" + argsFile + ".none", "", exitUsage, "no such file"},
		{"bad stdin", "-", "{nope", exitUsage, "not valid JSON"},
		{"empty stdin", "-", "", exitUsage, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcommWith(t, runOpts{stdin: tt.stdin}, "call", svc, "text.upper", tt.arg)
			require.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tt.want)
		})
	}
}

func TestCallOutput(t *testing.T) {
	_, srv := startServices(t)
	svc := srv.Addr()

	t.Run("compact when not a terminal", func(t *testing.T) {
		r := runAcommWith(t, runOpts{stdin: `{"a": [1, 2], "b": "c"}`}, "call", svc, "text.echo", "-")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, `{"a":[1,2],"b":"c"}`+"\n", r.stdout)
	})
	t.Run("indented on a terminal", func(t *testing.T) {
		scriptPath, err := exec.LookPath("script") // util-linux: runs a command on a pseudo-terminal
		if err != nil {
			t.Skip("no script(1) to give the command a terminal")
		}
		line := binary + ` call ` + svc + ` text.echo '{"a":[1,2]}'`
		out, err := exec.Command(scriptPath, "-qec", line, "/dev/null").CombinedOutput()
		require.NoError(t, err, "%s", out)
		got := strings.ReplaceAll(string(out), "\r\n", "\n")
		assert.Equal(t, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n", got)
	})
	t.Run("full response", func(t *testing.T) {
		r := runAcomm(t, "call", "--full", svc, "text.upper", `"a"`)
		require.Equal(t, exitOK, r.code, r.stderr)
		var full map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &full), r.stdout)
		assert.Equal(t, "A", full["result"])
		assert.Equal(t, "", full["error"])
		assert.Contains(t, full, "stream_url")
		assert.NotEmpty(t, full["id"])
	})
	t.Run("full response of a task error", func(t *testing.T) {
		r := runAcomm(t, "call", "--full", svc, "text.fail")
		require.Equal(t, exitTaskError, r.code, r.stderr)
		var full map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &full), r.stdout)
		assert.Equal(t, "disk on fire", full["error"])
	})
	t.Run("stream url and the command that reads it", func(t *testing.T) {
		r := runAcomm(t, "call", svc, "text.blob")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, "\"blob\"\n", r.stdout)
		m := regexp.MustCompile(`read it with: (` + regexp.QuoteMeta(binary) + ` stream (\S+)) > FILE`).FindStringSubmatch(r.stderr)
		require.NotNil(t, m, r.stderr)
		r = runAcomm(t, "stream", m[2])
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, "streamed content", r.stdout)
	})
	t.Run("-o checked before sending", func(t *testing.T) {
		before := srv.Stats().Received
		for _, out := range []string{filepath.Join(shortDir(t), "none", "x"), shortDir(t)} {
			r := runAcomm(t, "call", "-o", out, svc, "text.blob")
			assert.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, "-o "+out)
		}
		assert.Equal(t, before, srv.Stats().Received, "nothing was sent")
	})
}

func TestCallTimeoutNamesTaskAndLimit(t *testing.T) {
	_, srv := startServices(t)
	r := runAcomm(t, "call", "--timeout", "300ms", srv.Addr(), "text.slow")
	assert.Equal(t, exitNoAnswer, r.code)
	assert.Contains(t, r.stderr, "task text.slow: no answer within 300ms (--timeout)")
}

func TestMessagesHaveOnePrefix(t *testing.T) {
	_, srv := startServices(t)
	runs := [][]string{
		{"call", filepath.Join(shortDir(t), "none.sock"), "t"},
		{"call", srv.Addr(), "nope"},
		{"bridge", "--listen", "127.0.0.1:0", "--route", "a=http://x"},
		{"call", "--timeout", "-1s", srv.Addr(), "t"},
	}
	for _, args := range runs {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runAcomm(t, args...)
			assert.NotEqual(t, exitOK, r.code)
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				assert.Equal(t, 1, strings.Count(line, "acomm:"), line)
				assert.True(t, strings.HasPrefix(line, "acomm: "), line)
			}
		})
	}
}

func TestInfoCommand(t *testing.T) {
	_, srv := startServices(t)
	t.Run("table", func(t *testing.T) {
		r := runAcomm(t, "info", srv.Addr())
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, "acomm ")
		assert.Regexp(t, `text\.upper\s+upper-case a string\s+"hello"`, r.stdout)
		assert.Regexp(t, `text\.fail\s+-\s+-`, r.stdout)
		assert.Contains(t, r.stdout, "acomm.ping")
	})
	t.Run("json", func(t *testing.T) {
		r := runAcomm(t, "info", "--json", "unix://"+srv.Addr())
		require.Equal(t, exitOK, r.code, r.stderr)
		var info acomm.ServiceInfo
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
		assert.Equal(t, acomm.Version(), info.Version)
		assert.NotEmpty(t, info.Tasks)
	})
	t.Run("service without introspection", func(t *testing.T) {
		quiet := quietServer(t)
		r := runAcomm(t, "info", quiet.Addr())
		assert.Equal(t, exitTaskError, r.code, r.stderr)
		assert.Contains(t, r.stderr, "does not answer acomm.info")
	})
	t.Run("no service", func(t *testing.T) {
		r := runAcomm(t, "info", filepath.Join(shortDir(t), "none.sock"))
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
	})
}

// quietServer starts a Server without introspection, as an original
// acomm service behaves: acomm.info and acomm.ping are unknown tasks.
func quietServer(t *testing.T) *acomm.Server {
	t.Helper()
	srv := acomm.NewServer(filepath.Join(shortDir(t), "q.sock"), nil)
	require.NoError(t, srv.Configure(acomm.WithoutIntrospection()))
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)
	return srv
}

func TestPingCommand(t *testing.T) {
	_, srv := startServices(t)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(healthy.Close)
	ill := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"draining"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(ill.Close)

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"alive", []string{srv.Addr()}, exitOK, "is alive: "},
		{"alive without introspection", []string{quietServer(t).Addr()}, exitOK, "unknown task"},
		{"no socket", []string{filepath.Join(shortDir(t), "none.sock")}, exitNoAnswer, "is not alive"},
		{"bridge healthz", []string{healthy.URL + "/requests"}, exitOK, "/healthz is alive"},
		{"bridge root", []string{healthy.URL}, exitOK, "/healthz is alive"},
		{"bridge unhealthy", []string{ill.URL + "/requests"}, exitNoAnswer, "503"},
		{"bad timeout", []string{"--timeout", "0s", srv.Addr()}, exitUsage, "--timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, append([]string{"ping"}, tt.args...)...)
			require.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tt.want)
		})
	}
	t.Run("a silent peer", func(t *testing.T) {
		// Accepts connections and never answers.
		path := filepath.Join(shortDir(t), "silent.sock")
		ln, err := net.Listen("unix", path)
		require.NoError(t, err)
		var conns sync.WaitGroup
		t.Cleanup(func() {
			_ = ln.Close()
			conns.Wait()
		})
		conns.Add(1)
		go func() {
			defer conns.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Add(1)
				go func() {
					defer conns.Done()
					_, _ = io.Copy(io.Discard, c)
					_ = c.Close()
				}()
			}
		}()
		r := runAcomm(t, "ping", "--timeout", "300ms", path)
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		assert.Contains(t, r.stderr, "is not alive")
	})
}

// stallingReader yields some bytes, then blocks until closed.
type stallingReader struct {
	first  []byte
	closed chan struct{}
	once   sync.Once
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if len(s.first) > 0 {
		n := copy(p, s.first)
		s.first = s.first[n:]
		return n, nil
	}
	<-s.closed
	return 0, io.ErrClosedPipe
}

func (s *stallingReader) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func TestStreamCommandFailures(t *testing.T) {
	tr, srv := startServices(t)

	t.Run("stall", func(t *testing.T) {
		src := &stallingReader{first: []byte("partial"), closed: make(chan struct{})}
		t.Cleanup(func() { _ = src.Close() })
		u, err := tr.NewStreamUnix("", src)
		require.NoError(t, err)
		out := filepath.Join(shortDir(t), "out")
		r := runAcomm(t, "stream", "--timeout", "300ms", "-o", out, u.String())
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		assert.Contains(t, r.stderr, "nothing received for 300ms (--timeout)")
		_, err = os.Stat(out)
		assert.ErrorIs(t, err, os.ErrNotExist, "no partial file")
	})
	t.Run("a service socket is not a stream", func(t *testing.T) {
		for _, timeout := range []string{"300ms", "1m"} { // found out before a long --timeout
			r := runAcomm(t, "stream", "--timeout", timeout, srv.Addr())
			assert.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, "is a service's socket, not a stream")
			assert.Empty(t, r.stdout)
		}
	})
	t.Run("a slow stream is still read", func(t *testing.T) {
		// Nothing for longer than the probe waits, then data: the probe
		// finds no socket to ask (a stream takes one connection).
		pr, pw := io.Pipe()
		u, err := tr.NewStreamUnix("", pr)
		require.NoError(t, err)
		late := time.AfterFunc(1500*time.Millisecond, func() {
			_, _ = pw.Write([]byte("late data"))
			_ = pw.Close()
		})
		t.Cleanup(func() { late.Stop(); _ = pw.Close() })
		r := runAcomm(t, "stream", "--timeout", "10s", u.String())
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, "late data", r.stdout)
	})
	t.Run("an empty stream is a success", func(t *testing.T) {
		u, err := tr.NewStreamUnix("", io.NopCloser(strings.NewReader("")))
		require.NoError(t, err)
		r := runAcomm(t, "stream", u.String())
		assert.Equal(t, exitOK, r.code, r.stderr)
		assert.Empty(t, r.stdout)
	})
	t.Run("a bridge's /requests is not a stream", func(t *testing.T) {
		// What a bridge answers a GET of /requests.
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}))
		t.Cleanup(hs.Close)
		r := runAcomm(t, "stream", hs.URL+"/requests")
		assert.Equal(t, exitUsage, r.code, r.stderr)
		assert.Contains(t, r.stderr, "not a stream")
	})
	t.Run("bad timeout", func(t *testing.T) {
		r := runAcomm(t, "stream", "--timeout", "0s", srv.Addr())
		assert.Equal(t, exitUsage, r.code, r.stderr)
	})
	t.Run("nobody serves it", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "dead.sock")
		ln, err := net.Listen("unix", path)
		require.NoError(t, err)
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		require.NoError(t, ln.Close())
		r := runAcomm(t, "stream", path)
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
		assert.Contains(t, r.stderr, "nobody serves it")
	})
}

// fakeBridge is a bridge that answers every request with a stream URL of
// another origin, as a hostile or confused bridge might.
func fakeBridge(t *testing.T, streamURL string) string {
	t.Helper()
	return requestServer(t, func(w http.ResponseWriter, _ *http.Request, req *acomm.Request) {
		_, _ = fmt.Fprintf(w, `{"id":%q,"error":""}`, req.ID)
		go func() {
			body := fmt.Sprintf(`{"id":%q,"result":"x","stream_url":%q,"error":""}`, req.ID, streamURL)
			resp, err := http.Post(req.ResponseHook.String(), "application/json", strings.NewReader(body))
			if err == nil {
				_ = resp.Body.Close()
			}
		}()
	})
}

func TestCallSendsTokenOnlyToItsOrigin(t *testing.T) {
	var (
		mu   sync.Mutex
		auth []string
	)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, "data from elsewhere")
	}))
	t.Cleanup(other.Close)
	tokenFile := filepath.Join(shortDir(t), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret"), 0o600))

	t.Run("another origin gets no token", func(t *testing.T) {
		bridge := fakeBridge(t, other.URL+"/stream?addr=x")
		out := filepath.Join(shortDir(t), "out")
		r := runAcomm(t, "call", "--token-file", tokenFile, "-o", out, bridge, "t")
		require.Equal(t, exitOK, r.code, r.stderr)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, auth, 1)
		assert.Empty(t, auth[0], "the token went to another origin")
	})
	t.Run("the hint names no token file for another origin", func(t *testing.T) {
		bridge := fakeBridge(t, other.URL+"/stream?addr=x")
		r := runAcomm(t, "call", "--token-file", tokenFile, bridge, "t")
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stderr, "read it with: "+binary+" stream '"+other.URL)
		assert.NotContains(t, r.stderr, "--token-file")
	})
	t.Run("a unix stream named by a bridge is not read", func(t *testing.T) {
		// The answer is refused at the hook; the call ends without one.
		bridge := fakeBridge(t, "unix:///etc/passwd.sock")
		r := runAcomm(t, "call", "--timeout", "1s", "--token-file", tokenFile, "-o", filepath.Join(shortDir(t), "out"), bridge, "t")
		assert.Equal(t, exitNoAnswer, r.code, r.stderr)
	})
}

func TestCallHookListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	r := runAcomm(t, "call", "--hook-listen", ln.Addr().String(), "http://127.0.0.1:1/requests", "t")
	assert.Equal(t, exitUsage, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--hook-listen")
}

func TestTokenFileFromEnvironment(t *testing.T) {
	got := make(chan string, 2)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		_, _ = io.WriteString(w, "x")
	}))
	t.Cleanup(hs.Close)
	tokenFile := filepath.Join(shortDir(t), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("from-env\n"), 0o600))
	r := runAcommWith(t, runOpts{env: []string{"ACOMM_TOKEN_FILE=" + tokenFile}}, "stream", hs.URL+"/stream")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "Bearer from-env", <-got)

	r = runAcommWith(t, runOpts{env: []string{"ACOMM_TOKEN_FILE=" + tokenFile + ".none"}}, "stream", hs.URL+"/stream")
	assert.Equal(t, exitUsage, r.code, r.stderr)
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "disk on fire: é ✓", "disk on fire: é ✓"},
		{"tab kept", "a\tb", "a\tb"},
		{"newline", "one\ntwo\r\n", `one\ntwo\r\n`},
		{"escape sequence", "\x1b]0;owned\x07\x1b[2J", `\x1b]0;owned\x07\x1b[2J`},
		{"del", "a\x7fb", `a\x7fb`},
		{"c1 csi", "a\u009b2Jb", `a\u009b2Jb`},
		{"invalid utf-8", "a\xff\xc3b", `a\xff\xc3b`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`},
		{"line separator", "a\u2028b", `a\u2028b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, printable(tt.in))
			assert.Equal(t, tt.want, printable(tt.want), "printable twice")
		})
	}
}

func TestAbbreviateCutsOnRuneBoundary(t *testing.T) {
	long := strings.Repeat("x", 59) + "éééé"
	got := abbreviate([]byte(long))
	assert.True(t, utf8.ValidString(got), got)
	assert.Equal(t, strings.Repeat("x", 59)+"…", got)
	assert.Equal(t, `{\x1b[2J`, abbreviate([]byte("{\x1b[2J")))
}

// TestRemoteTextIsEscaped checks that what a service or a bridge says is
// printed with its control characters escaped: one error is one line, and
// moves no cursor.
func TestRemoteTextIsEscaped(t *testing.T) {
	const evil = "bad\x1b]0;owned\x07\nsecond line\u009b2J\x7f"
	const escaped = `bad\x1b]0;owned\x07\nsecond line\u009b2J\x7f`
	tr, _ := startServices(t)
	srv := acomm.NewServer(filepath.Join(shortDir(t), "e.sock"), tr)
	srv.Handle("evil", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		return nil, nil, errors.New(evil)
	})
	require.NoError(t, srv.Describe("evil", "says\x1b[31m red\u009b things", nil))
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)
	bridge := requestServer(t, func(w http.ResponseWriter, _ *http.Request, _ *acomm.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": evil})
	})
	tests := []struct {
		name  string
		args  []string
		code  int
		out   string
		want  string
		lines int
	}{
		{"task error", []string{"call", srv.Addr(), "evil"}, exitTaskError, "stderr", escaped, 1},
		{"bridge error body", []string{"call", bridge, "evil"}, exitUsage, "stderr", escaped, 1},
		{"info description", []string{"info", srv.Addr()}, exitOK, "stdout", `says\x1b[31m red\u009b things`, 0},
		{"echoed args", []string{"call", srv.Addr(), "evil", "{\x1b[2J\n\xff"}, exitUsage, "stderr", `{\x1b[2J\n\xff`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, tt.args...)
			require.Equal(t, tt.code, r.code, r.stderr)
			out := map[string]string{"stdout": r.stdout, "stderr": r.stderr}[tt.out]
			assert.Contains(t, out, tt.want)
			assert.NotContains(t, r.stdout+r.stderr, "\x1b")
			assert.NotContains(t, r.stdout+r.stderr, "\u009b")
			if tt.lines > 0 {
				assert.Equal(t, tt.lines, strings.Count(r.stderr, "\n"), r.stderr)
			}
		})
	}
}

// TestInputFilesAreBounded checks that args and token files are read up to
// a limit, so that @/dev/zero fails (exit 2) rather than eat all memory.
func TestInputFilesAreBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, srv := startServices(t)
	bigToken := filepath.Join(shortDir(t), "token")
	require.NoError(t, os.WriteFile(bigToken, bytes.Repeat([]byte("x"), maxTokenBytes+1), 0o600))
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"args file", []string{"call", srv.Addr(), "text.upper", "@/dev/zero"}, nil, "args are larger than"},
		{"token file", []string{"call", "--token-file", "/dev/zero", "http://127.0.0.1:1/requests", "t"}, nil, "token file /dev/zero is larger than"},
		{"large token file", []string{"stream", "--token-file", bigToken, "http://127.0.0.1:1/stream"}, nil, "is larger than"},
		{"token file from env", []string{"stream", "http://127.0.0.1:1/stream"}, []string{"ACOMM_TOKEN_FILE=/dev/zero"}, "is larger than"},
		{"bridge token file", []string{"bridge", "--listen", "127.0.0.1:0", "--route", "a=" + srv.Addr(), "--token-file", "/dev/zero"}, nil, "is larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcommWith(t, runOpts{env: tt.env}, tt.args...)
			require.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

// TestCallUnsendableRequestIsBadInput checks that a request that cannot
// be sent as given is bad input (exit 2), not "no answer" (exit 3).
func TestCallUnsendableRequestIsBadInput(t *testing.T) {
	_, srv := startServices(t)
	tests := []struct {
		name  string
		task  string
		stdin string
		want  string
	}{
		{"args of the largest frame", "text.upper", `"` + strings.Repeat("x", maxArgsBytes-2) + `"`, "frame too large"},
		{"task name not UTF-8", "text.\xffupper", `"a"`, `text.\xffupper`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcommWith(t, runOpts{stdin: tt.stdin}, "call", srv.Addr(), tt.task, "-")
			require.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

// TestCallTaskTimeoutIsTaskError checks that a unix service's task that
// answers with a timeout error of its own exits 1, as any task error: only
// no answer at all is 3.
func TestCallTaskTimeoutIsTaskError(t *testing.T) {
	tr, slow := startServices(t)
	srv := acomm.NewServer(filepath.Join(shortDir(t), "to.sock"), tr)
	srv.Handle("upstream", func(context.Context, *acomm.Request) (any, io.ReadCloser, error) {
		return nil, nil, fmt.Errorf("%w: the upstream did not answer", acomm.ErrTimeout)
	})
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"task answered a timeout", []string{"call", srv.Addr(), "upstream"}, exitTaskError, "the upstream did not answer"},
		{"no answer in time", []string{"call", "--timeout", "300ms", slow.Addr(), "text.slow"}, exitNoAnswer, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, tt.args...)
			require.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

func TestDemoStreamMiBBounds(t *testing.T) {
	tests := []struct {
		name string
		mib  string
	}{
		{"negative", "-1"},
		{"overflowing the byte count", "17592186044416"}, // 2^44: << 20 is 0
		{"past the bound", fmt.Sprint(maxStreamMiB + 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, "demo", "--stream-mib", tt.mib)
			require.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, "--stream-mib")
		})
	}
}

// TestInfoRedactsCredentials checks that info prints a bridge's URL with
// its password redacted, as the other commands do.
func TestInfoRedactsCredentials(t *testing.T) {
	answer := func(result string) string {
		return requestServer(t, func(w http.ResponseWriter, _ *http.Request, req *acomm.Request) {
			_, _ = fmt.Fprintf(w, `{"id":%q,"error":""}`, req.ID)
			go func() {
				body := fmt.Sprintf(`{"id":%q,"result":%s,"error":""}`, req.ID, result)
				resp, err := http.Post(req.ResponseHook.String(), "application/json", strings.NewReader(body))
				if err == nil {
					_ = resp.Body.Close()
				}
			}()
		})
	}
	withUser := func(u string) string { return strings.Replace(u, "http://", "http://user:s3cret@", 1) }
	tests := []struct {
		name   string
		result string
		code   int
	}{
		{"table", `{"version":"1.2.3","tasks":[{"task":"a"}]}`, exitOK},
		{"not a description", `"nonsense"`, exitTaskError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, "info", withUser(answer(tt.result)))
			require.Equal(t, tt.code, r.code, r.stderr)
			assert.NotContains(t, r.stdout+r.stderr, "s3cret")
			assert.Contains(t, r.stdout+r.stderr, "user:xxxxx@")
		})
	}
}
