package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// activatedBridge runs acomm bridge with args the way systemd runs a
// socket-activated service: the listening socket as fd 3, LISTEN_FDS=1,
// and LISTEN_PID set to the bridge's own pid (a shell sets it and execs
// the bridge, keeping its pid).
func activatedBridge(t *testing.T, args ...string) (*exec.Cmd, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = f.Close()
		_ = ln.Close()
	})
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary, "bridge"}, args...)...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{f}
	return cmd, ln
}

func TestBridgeSocketActivated(t *testing.T) {
	_, srv := startServices(t)
	tokenFile := filepath.Join(shortDir(t), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret"), 0o600))
	cmd, ln := activatedBridge(t, "--route", "text.*="+srv.Addr(), "--allow-hook", "127.0.0.1")
	cmd.Env = append(cmd.Env, "ACOMM_TOKEN_FILE="+tokenFile)
	b := runBridgeCmd(t, cmd)
	assert.Equal(t, "http://"+ln.Addr().String(), b.base, "serves the socket it was passed")
	b.waitLine(t, "socket_activated=true")

	code, body := b.do(t, http.MethodGet, "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, code, body)
	r := runAcomm(t, "ping", b.base+"/requests")
	assert.Equal(t, exitOK, r.code, r.stderr)
	r = runAcommWith(t, runOpts{env: []string{"ACOMM_TOKEN_FILE=" + tokenFile}}, "call", b.base+"/requests", "text.upper", `"activated"`)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, "\"ACTIVATED\"\n", r.stdout)
}

func TestBridgeSocketActivatedWithListen(t *testing.T) {
	cmd, _ := activatedBridge(t, "--listen", "127.0.0.1:0", "--route", "a=unix:///x.sock")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Equal(t, exitUsage, ee.ExitCode())
	assert.Contains(t, string(out), "socket-activated")
}

func TestBridgeWarnings(t *testing.T) {
	missing := filepath.Join(shortDir(t), "missing.sock")
	notSocket := filepath.Join(shortDir(t), "file")
	require.NoError(t, os.WriteFile(notSocket, nil, 0o600))
	cmd := exec.Command(binary, "--log-format", "json", "bridge", "--listen", "127.0.0.1:0",
		"--route", "a.*=unix://"+missing, "--route", "b.*="+notSocket)
	b := runBridgeCmd(t, cmd)
	assert.Contains(t, b.waitLine(t, "no --token-file"), `"level":"warning"`)
	assert.Contains(t, b.waitLine(t, "not there (yet)"), missing)
	assert.Contains(t, b.waitLine(t, "not a socket"), notSocket)
}

func TestBridgeMetrics(t *testing.T) {
	_, srv := startServices(t)
	b := startBridge(t, srv, "--metrics", "127.0.0.1:0")
	m := b.metricsURL(t)

	hook, answers := hookServer(t)
	body := `{"id":"m1","task":"text.upper","responsehook":"` + hook + `","args":"x"}`
	code, msg := b.post(t, "/requests", b.token, []byte(body))
	require.Equal(t, http.StatusOK, code, msg)
	select {
	case <-answers:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer at the hook")
	}

	for name, want := range map[string]float64{
		"acomm_tracker_answered_total":                          1,
		"acomm_tracker_tracked_total":                           1,
		`acomm_bridge_hook_delivery_seconds_count{result="ok"}`: 1,
		"acomm_tracker_in_flight":                               0,
	} {
		assert.Equal(t, want, scrapeMetric(t, m, name, want), name)
	}
}

// metricsURL returns the URL at which the bridge, started with --metrics,
// serves its metrics.
func (b *bridgeProc) metricsURL(t *testing.T) string {
	t.Helper()
	line := b.waitLine(t, "serving metrics")
	m := regexp.MustCompile(`http://[0-9.:]+/metrics`).FindString(line)
	require.NotEmpty(t, m, line)
	return m
}

// scrapeMetric returns the value of the metric name at the metrics URL m,
// once it is want (counters are updated after the events they count are
// seen), or after 10 seconds.
func scrapeMetric(t *testing.T, m, name string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(m)
		require.NoError(t, err)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if f == want || time.Now().After(deadline) {
					return f
				}
			}
		}
		_ = resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no metric %s at %s", name, m)
		}
		time.Sleep(20 * time.Millisecond) // polling a scrape endpoint
	}
}

func TestBridgeMetricsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	r := runAcomm(t, "bridge", "--listen", "127.0.0.1:0", "--route", "a=unix:///x.sock", "--metrics", ln.Addr().String())
	assert.Equal(t, exitUsage, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--metrics")
}
