package acomm_test

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialAndRead dials the listener and reports the error of reading one byte
// (io.EOF when the listener closed the connection unread).
func dialAndRead(t *testing.T, ul *acomm.UnixListener) error {
	t.Helper()
	conn, err := net.Dial("unix", ul.Addr())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Read(make([]byte, 1))
	return err
}

func TestPeerCheck(t *testing.T) {
	me := uint32(os.Getuid())
	tests := []struct {
		name  string
		check acomm.PeerCheck
		admit bool
	}{
		{"same user", acomm.SameUser(), true},
		{"allowed uid", acomm.AllowUIDs(me), true},
		{"allowed gid", acomm.AllowGIDs(uint32(os.Getgid())), true},
		{"other uid", acomm.AllowUIDs(me + 4242), false},
		{"other gid", acomm.AllowGIDs(uint32(os.Getgid()) + 4242), false},
		{"any of", acomm.AnyOf(acomm.AllowUIDs(me+1), acomm.AllowUIDs(me)), true},
		{"custom refusal", func(acomm.PeerCred) error { return acomm.ErrPeerRefused }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen acomm.PeerCred
			check := func(c acomm.PeerCred) error { seen = c; return tt.check(c) }
			ul := newListener(t, 0, acomm.WithPeerCheck(check))
			got := make(chan net.Conn, 1)
			go func() { got <- ul.NextConn() }()
			if tt.admit {
				conn, err := net.Dial("unix", ul.Addr())
				require.NoError(t, err)
				defer conn.Close()
				c := waitFor(t, got, 5*time.Second, "admitted conn")
				require.NotNil(t, c)
				ul.DoneConn(c)
				assert.Equal(t, me, seen.UID)
				assert.EqualValues(t, os.Getpid(), seen.PID)
				assert.Zero(t, ul.Refused())
				return
			}
			assert.Error(t, dialAndRead(t, ul), "refused peer's connection is closed")
			assert.EqualValues(t, 1, ul.Refused())
			ul.Stop(0)
			assert.Nil(t, waitFor(t, got, 5*time.Second, "NextConn after Stop"), "refused conn never handed out")
		})
	}
	t.Run("nil check", func(t *testing.T) {
		ul := acomm.NewUnixListener(sockPath(t, "l.sock"), 0)
		assert.ErrorIs(t, ul.Configure(acomm.WithPeerCheck(nil)), acomm.ErrInvalidArgument)
	})
}

func TestPeerCheckOnTracker(t *testing.T) {
	tr := newTracker(t, nil, time.Second, acomm.WithPeerCheck(acomm.AllowUIDs(uint32(os.Getuid())+4242)))
	err := acomm.Send(tr.URL(), &acomm.Response{ID: "x"})
	require.Error(t, err, "a refused peer cannot deliver")
}

func TestMaxConns(t *testing.T) {
	ul := newListener(t, 0, acomm.WithMaxConns(1))
	got := make(chan net.Conn, 1)
	go func() { got <- ul.NextConn() }()
	first, err := net.Dial("unix", ul.Addr())
	require.NoError(t, err)
	defer first.Close()
	held := waitFor(t, got, 5*time.Second, "first conn")
	require.NotNil(t, held)

	assert.Error(t, dialAndRead(t, ul), "second conn above the bound is closed")
	assert.EqualValues(t, 1, ul.Refused())

	ul.DoneConn(held) // a slot frees up
	go func() { got <- ul.NextConn() }()
	third, err := net.Dial("unix", ul.Addr())
	require.NoError(t, err)
	defer third.Close()
	c := waitFor(t, got, 5*time.Second, "conn after a slot freed")
	require.NotNil(t, c)
	ul.DoneConn(c)

	t.Run("negative", func(t *testing.T) {
		ul := acomm.NewUnixListener(sockPath(t, "l.sock"), 0)
		assert.ErrorIs(t, ul.Configure(acomm.WithMaxConns(-1)), acomm.ErrInvalidArgument)
	})
}
