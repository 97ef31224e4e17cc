package acomm_test

import (
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/require"
)

// A Server or Tracker over its connection bound acknowledges the frame of
// a connection above it with a refusal matching ErrTooManyConns, which
// the sender's Send returns, and counts it in its stats.
func TestMaxConnsRefusalSeenByPeer(t *testing.T) {
	cases := map[string]func(t *testing.T) (u *url.URL, payload any, refused func() uint64){
		"Server": func(t *testing.T) (*url.URL, any, func() uint64) {
			srv := srvStart(t, nil, acomm.WithMaxConns(1))
			req, err := acomm.NewRequest("echo", "unix:///nowhere.sock", nil, nil, nil)
			require.NoError(t, err)
			return srv.URL(), req, func() uint64 { return srv.Stats().RefusedConns }
		},
		"Tracker": func(t *testing.T) (*url.URL, any, func() uint64) {
			tr := newTracker(t, nil, time.Minute, acomm.WithMaxConns(1))
			return tr.URL(), &acomm.Response{ID: "unknown"}, func() uint64 { return tr.Stats().RefusedConns }
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			u, payload, refused := setup(t)
			// Take the only slot: a connection whose frame was
			// acknowledged has been admitted.
			held := dialUnix(t, u.Path)
			_, err := held.Write(frameOf(`{}`))
			require.NoError(t, err)
			require.NoError(t, held.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err = held.Read(make([]byte, 1))
			require.NoError(t, err, "first connection acknowledged")

			err = acomm.Send(u, payload)
			require.ErrorIs(t, err, acomm.ErrRefused)
			require.ErrorIs(t, err, acomm.ErrTooManyConns)
			require.EqualValues(t, 1, refused())

			require.NoError(t, held.Close()) // a slot frees up
			require.Eventually(t, func() bool { return acomm.Send(u, payload) == nil }, 5*time.Second, time.Millisecond)
		})
	}
}

// Listeners are bounded by default: the connection past DefaultMaxConns
// is refused.
func TestMaxConnsDefault(t *testing.T) {
	ul := newListener(t, 0)
	held := make([]net.Conn, 0, acomm.DefaultMaxConns)
	t.Cleanup(func() {
		for _, c := range held {
			ul.DoneConn(c)
		}
	})
	for range acomm.DefaultMaxConns {
		dialUnix(t, ul.Addr())
		c := ul.NextConn()
		require.NotNil(t, c)
		held = append(held, c)
	}
	over := dialUnix(t, ul.Addr())
	require.NoError(t, over.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := over.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "closed unread")
	require.EqualValues(t, 1, ul.Refused())
}
