package acomm_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPeerFeatures(t *testing.T) {
	srv := acomm.NewServer(sockPath(t, "s.sock"), nil)
	srv.Handle("echo", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) { return req.Args, nil, nil })
	require.NoError(t, srv.Start())
	t.Cleanup(srv.Stop)
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, `{"id":"x","result":null,"stream_url":null,"error":"","features":["cancel"]}`)
	}))
	t.Cleanup(bridge.Close)
	bridgeURL, err := url.Parse(bridge.URL + "/requests")
	require.NoError(t, err)
	tr := newTracker(t, nil, 5*time.Second)

	assert.Nil(t, acomm.PeerFeatures(nil))
	assert.Nil(t, acomm.PeerFeatures(srv.URL()), "nothing sent yet")
	assert.Nil(t, acomm.PeerFeatures(bridgeURL), "nothing sent yet")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Once Send returns, the acknowledgement was read: what it listed is
	// known (after a Call, it may not be yet: its answer can come first).
	req, err := acomm.NewRequest("echo", tr.URL().String(), "x", nil, nil)
	require.NoError(t, err)
	require.NoError(t, tr.TrackRequest(req, 5*time.Second))
	require.NoError(t, tr.Send(ctx, srv.URL(), req))
	got := acomm.PeerFeatures(srv.URL())
	require.Subset(t, got, []string{"pipeline", "string-urls", "cancel"})
	got[0] = "changed"
	assert.NotContains(t, acomm.PeerFeatures(srv.URL()), "changed", "a copy")

	require.NoError(t, tr.Send(ctx, bridgeURL, map[string]string{"id": "x"}))
	assert.Equal(t, []string{"cancel"}, acomm.PeerFeatures(bridgeURL))
}
