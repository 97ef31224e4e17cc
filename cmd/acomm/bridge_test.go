package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acommgo/acomm/bridge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBridgeCommandStalledHooks checks that acomm bridge exits within a
// few seconds of SIGINT although the hooks it owes answers to accept the
// POST and never reply.
func TestBridgeCommandStalledHooks(t *testing.T) {
	_, srv := startServices(t)
	b := startBridge(t, srv, "--drain", "1s")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		close(accepted)
		for c := range accepted {
			_ = c.Close()
		}
	})
	hook := "http://" + ln.Addr().String() + "/hook"
	for i := 0; i < 20; i++ {
		body := fmt.Sprintf(`{"id":"stall-%d","task":"text.upper","responsehook":%q,"args":"x"}`, i, hook)
		code, msg := b.post(t, "/requests", b.token, []byte(body))
		require.Equal(t, http.StatusOK, code, msg)
	}
	select {
	case c := <-accepted:
		accepted <- c
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery reached the stalled hook")
	}

	start := time.Now()
	require.NoError(t, b.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-b.exited:
		assert.NoError(t, err, b.stderr.String())
		b.exited <- nil // for cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("bridge still running 10s after SIGINT:\n%s", b.stderr.String())
	}
	assert.Less(t, time.Since(start), 4*time.Second, "exit time with --drain 1s")
	assert.Contains(t, b.stderr.String(), "bridge stopped")
}

// TestBridgeHookPolicyDefaults checks the daemon's hook policy: loopback,
// link-local and this machine's own addresses are refused unless
// --allow-hook opens them.
func TestBridgeHookPolicyDefaults(t *testing.T) {
	p, err := hookPolicy(nil)
	require.NoError(t, err)
	for _, a := range []string{"127.0.0.1", "::1", "169.254.169.254", "0.0.0.0", "224.0.0.1"} {
		assert.ErrorIs(t, p.CheckAddr(netip.MustParseAddr(a)), bridge.ErrHookForbidden, a)
	}
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(ipn.IP)
			assert.ErrorIs(t, p.CheckAddr(ip.Unmap()), bridge.ErrHookForbidden, "own address %s", ip)
		}
	}
	assert.NoError(t, p.CheckAddr(netip.MustParseAddr("192.0.2.1")))

	p, err = hookPolicy([]string{"127.0.0.0/8", "hooks.example"})
	require.NoError(t, err)
	assert.NoError(t, p.CheckAddr(netip.MustParseAddr("127.0.0.1")))
	_, err = hookPolicy([]string{"not a host"})
	assert.Error(t, err)
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key in
// dir, and returns their paths.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// TestBridgeTLSFiles checks that a missing or bad certificate or key is
// found before the bridge listens (exit 2), and that a good pair serves
// HTTPS.
func TestBridgeTLSFiles(t *testing.T) {
	_, srv := startServices(t)
	dir := shortDir(t)
	certFile, keyFile := writeCert(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600))
	tests := []struct {
		name      string
		cert, key string
		want      string
	}{
		{"missing cert", filepath.Join(dir, "none.pem"), keyFile, "no such file"},
		{"missing key", certFile, filepath.Join(dir, "none.pem"), "no such file"},
		{"bad cert", garbage, keyFile, "--tls-cert"},
		{"bad key", certFile, garbage, "key input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAcomm(t, "bridge", "--listen", "127.0.0.1:0", "--route", "text.*="+srv.Addr(),
				"--tls-cert", tt.cert, "--tls-key", tt.key)
			require.Equal(t, exitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
			assert.NotContains(t, r.stderr, "bridge listening")
		})
	}
	t.Run("good pair", func(t *testing.T) {
		b := startBridge(t, srv, "--tls-cert", certFile, "--tls-key", keyFile)
		pem, err := os.ReadFile(certFile)
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		t.Cleanup(client.CloseIdleConnections)
		resp, err := client.Get(strings.Replace(b.base, "http://", "https://", 1) + "/healthz")
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}
