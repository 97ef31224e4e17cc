package main

import (
	"context"
	"encoding/json"
	"io"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// TestReadmeStartsFromAClone checks that the README's first lines are the
// commands that run the program and its tests from a clone, and that the
// test command is the one CI runs (issue 18, item 1).
func TestReadmeStartsFromAClone(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	require.NoError(t, err)
	head, _, _ := strings.Cut(string(readme), "\n## ")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(head)
	require.NotNil(t, block, "a shell block before the first section")
	const testCmd = "go test -race -count=1 ./..."
	assert.Contains(t, block[1], "go run ./cmd/acomm demo ")
	assert.Contains(t, block[1], testCmd)
	ci, err := os.ReadFile(filepath.Join(moduleRoot(t), ".ci", "run"))
	require.NoError(t, err)
	assert.Contains(t, string(ci), "\n"+testCmd+"\n", ".ci/run runs the README's test command")
}

// TestCommandsLog checks that --log-format and --log-level apply to call,
// ping, info and stream: an error is one JSON record, and debug shows the
// request id, the address dialed, the features negotiated and the timings
// (issue 18, item 4).
func TestCommandsLog(t *testing.T) {
	tr, srv := startServices(t)
	b := startBridge(t, srv)
	tokenFile := tokenFileFor(t, b)

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no answer", []string{"--log-format", "json", "call", filepath.Join(shortDir(t), "none.sock"), "t"}, exitNoAnswer, "none.sock"},
		{"usage", []string{"--log-format=json", "call"}, exitUsage, "arg(s)"},
		{"before the flags are parsed", []string{"--log-format", "json", "nope"}, exitUsage, `unknown command "nope"`},
	} {
		t.Run("an error is one JSON record: "+tt.name, func(t *testing.T) {
			r := runAcomm(t, tt.args...)
			assert.Equal(t, tt.code, r.code)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			require.Len(t, lines, 1, r.stderr)
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec), lines[0])
			assert.Equal(t, "error", rec["level"])
			assert.Equal(t, float64(tt.code), rec["exit"])
			assert.Contains(t, rec["msg"], tt.want)
			assert.NotContains(t, rec["msg"], "acomm: ")
		})
	}

	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(healthy.Close)
	stream, err := tr.NewStreamUnix("", io.NopCloser(strings.NewReader("stream body")))
	require.NoError(t, err)

	// Each run logs these records (by message) with these fields.
	step := map[string][]string{
		"sending request":      {"id", "task", "addr"},
		"request acknowledged": {"id", "addr", "features", "took"},
		"answer received":      {"id", "waited", "total"},
	}
	bridgeSteps := map[string][]string{"hook listening": {"listen", "hook"}}
	for k, v := range step {
		bridgeSteps[k] = v
	}
	tests := []struct {
		name  string
		args  []string
		steps map[string][]string
	}{
		{"call", []string{"call", srv.Addr(), "text.upper", `"x"`}, step},
		{"call through a bridge", []string{"call", "--token-file", tokenFile, b.base + "/requests", "text.upper", `"x"`}, bridgeSteps},
		{"ping", []string{"ping", srv.Addr()}, step},
		{"ping a bridge", []string{"ping", healthy.URL}, map[string][]string{"GET answered": {"addr", "status", "took"}}},
		{"info", []string{"info", srv.Addr()}, step},
		{"stream", []string{"stream", stream.String()}, map[string][]string{"reading stream": {"stream"}, "stream read": {"bytes", "took"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, append([]string{"--log-format", "json", "--log-level", "debug"}, tt.args...)...)
			require.Equal(t, exitOK, r.code, r.stderr)
			got := map[string]map[string]any{}
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				var rec map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &rec), "every line a JSON record: %s", line)
				got[rec["msg"].(string)] = rec
			}
			for msg, fields := range tt.steps {
				require.Contains(t, got, msg, r.stderr)
				for _, f := range fields {
					assert.NotEmpty(t, got[msg][f], "%s: %s", msg, f)
				}
			}
			if rec, ok := got["request acknowledged"]; ok {
				assert.Contains(t, rec["features"], "cancel")
			}
		})
	}
	t.Run("a stream's hint is a record too", func(t *testing.T) {
		r := runAcomm(t, "--log-format", "json", "call", srv.Addr(), "text.blob")
		require.Equal(t, exitOK, r.code, r.stderr)
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(r.stderr)), &rec), r.stderr)
		assert.Contains(t, rec["msg"], "carries a stream")
		assert.NotEmpty(t, rec["stream_url"])
		assert.Contains(t, rec["read_with"], binary+" stream ")
	})
	t.Run("-v is --verbose", func(t *testing.T) {
		r := runAcomm(t, "-v", "call", srv.Addr(), "text.upper", `"x"`)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Regexp(t, `level=debug msg="request acknowledged" addr="unix://\S+" features="\[.*cancel.*\]" id=\S+`, r.stderr)
	})
}

// TestAddressNotASocket checks that a file or a directory given as a unix
// address is named as such, exit status 2 (issue 18, item 5).
func TestAddressNotASocket(t *testing.T) {
	dir := shortDir(t)
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	for _, tt := range []struct {
		name, addr, kind string
	}{
		{"a regular file", file, "a regular file"},
		{"a directory", "unix://" + dir, "a directory"},
	} {
		for _, args := range [][]string{{"call", tt.addr, "t"}, {"ping", tt.addr}, {"info", tt.addr}, {"stream", tt.addr}} {
			t.Run(tt.name+" "+args[0], func(t *testing.T) {
				r := runAcomm(t, args...)
				assert.Equal(t, exitUsage, r.code, r.stderr)
				assert.Contains(t, r.stderr, "is not a unix socket: it is "+tt.kind)
			})
		}
	}
}

// TestInterruptedExitStatus checks the exit status of a call that a signal
// interrupts: 128 plus the signal's number, as shells report it (issue 18,
// item 7), and that the handler is cancelled.
func TestInterruptedExitStatus(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			_, srv := startServices(t)
			code, stderr := interruptWhenRunning(t, exec.Command(binary, "call", "--timeout", "1m", srv.Addr(), "text.slow"), srv, sig)
			assert.Equal(t, 128+int(sig), code, stderr)
			assert.Contains(t, stderr, "interrupted before an answer")
			assert.Eventually(t, func() bool { return srv.Stats().Cancelled == 1 }, 5*time.Second, 5*time.Millisecond)
		})
	}
}

// TestVersionCommand checks acomm version, that -v is not the version, and
// that a build from a git checkout names its commit (issue 18, item 8).
func TestVersionCommand(t *testing.T) {
	flagOut := runAcomm(t, "--version")
	require.Equal(t, exitOK, flagOut.code, flagOut.stderr)
	r := runAcomm(t, "version")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, flagOut.stdout, r.stdout)
	assert.Regexp(t, `^acomm \S+.* \(go1\.\d+`, r.stdout)

	r = runAcomm(t, "--help")
	assert.Contains(t, r.stdout, "-v, --verbose")
	assert.NotContains(t, r.stdout, "-v, --version")

	t.Run("a build from a checkout names its commit", func(t *testing.T) {
		// A copy of the module's files committed in a fresh repository,
		// built as the README says.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		root := moduleRoot(t)
		ls, err := exec.CommandContext(ctx, "git", "-C", root, "ls-files", "-z", "-co", "--exclude-standard").Output()
		require.NoError(t, err)
		repo := shortDir(t)
		for _, f := range strings.Split(strings.TrimRight(string(ls), "\x00"), "\x00") {
			b, err := os.ReadFile(filepath.Join(root, f))
			if os.IsNotExist(err) {
				continue // deleted in the working tree
			}
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(filepath.Join(repo, filepath.Dir(f)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(repo, f), b, 0o644))
		}
		git := func(args ...string) string {
			cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
			cmd.Dir = repo
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "git %v: %s", args, out)
			return strings.TrimSpace(string(out))
		}
		git("init", "-q")
		git("add", "-A")
		git("commit", "-q", "-m", "snapshot")
		rev := git("rev-parse", "HEAD")
		bin := filepath.Join(shortDir(t), "acomm")
		build := exec.CommandContext(ctx, "go", "build", "-buildvcs=true", "-o", bin, "./cmd/acomm")
		build.Dir = repo
		build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false") // as on machines that turn it off
		out, err := build.CombinedOutput()
		require.NoError(t, err, "%s", out)
		got, err := exec.CommandContext(ctx, bin, "version").Output()
		require.NoError(t, err)
		assert.Contains(t, string(got), rev[:12])
		assert.NotContains(t, string(got), "(devel)")
	})
}
