//go:build unix

package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acommgo/acomm/internal/acommtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoServeCommandsRun checks that the commands demo --serve prints
// work, written the way it was started: by name on PATH, by path, and
// with go run from a clone (issue 18, item 1).
func TestDemoServeCommandsRun(t *testing.T) {
	pathEnv := "PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH")
	tests := []struct {
		name   string
		argv   []string // argv[0] as the shell would pass it
		dir    string
		prefix string // of every printed command
		goRun  bool
	}{
		{"by name on PATH", []string{"acomm"}, "", "acomm ", false},
		{"by path", []string{binary}, "", binary + " ", false},
		{"with go run from a clone", []string{"go", "run", "./cmd/acomm"}, moduleRoot(t), "go run ./cmd/acomm ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.argv[0], append(tt.argv[1:], "demo", "--serve")...)
			if !tt.goRun {
				cmd.Path, cmd.Args[0], cmd.Err = binary, tt.argv[0], nil
			}
			cmd.Env = append(os.Environ(), pathEnv)
			cmd.Dir = tt.dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // go run's child gets the group's signals
			lines, exited := startLines(t, cmd)
			t.Cleanup(func() {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			})
			var (
				tries []string
				where string
			)
			timeout := time.After(2 * time.Minute) // go run builds first
		read:
			for {
				select {
				case line, ok := <-lines:
					require.True(t, ok, "demo --serve ended early")
					if m := regexp.MustCompile(`^try, from another shell(?: in (.*))?:$`).FindStringSubmatch(line); m != nil {
						where = m[1]
					}
					if try, ok := strings.CutPrefix(line, "  "); ok {
						tries = append(tries, try)
					}
					if strings.HasPrefix(line, "press Ctrl-C") {
						break read
					}
				case <-timeout:
					t.Fatal("demo --serve printed no commands")
				}
			}
			require.Len(t, tries, 6)
			if tt.dir != "" {
				assert.Equal(t, tt.dir, where, "the directory to run them in")
			}
			out := filepath.Join(shortDir(t), "zeros.bin")
			for _, try := range tries {
				assert.Contains(t, try, tt.prefix)
				// Run as printed, in a shell; the output file goes to a
				// temporary directory, not into the clone.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				sh := exec.CommandContext(ctx, "/bin/sh", "-c", strings.Replace(try, "-o zeros.bin", "-o "+out, 1))
				sh.Dir = orElse(where, shortDir(t))
				sh.Env = append(os.Environ(), pathEnv)
				b, err := sh.CombinedOutput()
				require.NoError(t, err, "%s\n%s", try, b)
			}
			fi, err := os.Stat(out)
			require.NoError(t, err)
			assert.Equal(t, int64(16<<20), fi.Size())

			require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGINT))
			assert.Equal(t, "stopping", acommtest.WaitFor(t, lines, 10*time.Second, "demo --serve to stop on SIGINT"))
			err = acommtest.WaitFor(t, exited, 10*time.Second, "demo --serve to exit")
			exited <- err
			if !tt.goRun { // go run itself exits 1 when interrupted
				require.NoError(t, err, "demo --serve exits 0 on SIGINT")
			}
		})
	}
}

// orElse returns a unless it is empty, else b.
func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestDemoInterrupted checks that a signal stops the demo in its stream
// step promptly, with the signal's exit status.
func TestDemoInterrupted(t *testing.T) {
	tests := []struct {
		name string
		sig  syscall.Signal
		code int
	}{
		{"SIGINT", syscall.SIGINT, exitSignal + int(syscall.SIGINT)},
		{"SIGTERM", syscall.SIGTERM, exitSignal + int(syscall.SIGTERM)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, "demo", "--stream-mib", "1048576") // a TiB: never done in time
			lines, exited := startLines(t, cmd)
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				exited <- <-exited
			})
			for line := range lines {
				if strings.Contains(line, "fan out") {
					break
				}
			}
			time.Sleep(200 * time.Millisecond) // into the stream step
			require.NoError(t, cmd.Process.Signal(tt.sig))
			err := acommtest.WaitFor(t, exited, 10*time.Second, "demo to exit on "+tt.name)
			exited <- err
			assert.Equal(t, tt.code, cmd.ProcessState.ExitCode(), "%v", err)
		})
	}
}

// startLines starts cmd and returns its stdout's lines, closed at its end,
// and then its Wait's error.
func startLines(t *testing.T, cmd *exec.Cmd) (<-chan string, chan error) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 32)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	return lines, exited
}
