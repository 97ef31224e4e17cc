package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
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
