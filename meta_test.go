package acomm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metaServer returns a server whose "meta" task answers with the meta of
// its request.
func metaServer(t *testing.T, tr *acomm.Tracker) *acomm.Server {
	t.Helper()
	srv := srvStart(t, tr)
	srv.Handle("meta", func(_ context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
		return req.Meta, nil, nil
	})
	return srv
}

func TestMetaRoundTrip(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	srv := metaServer(t, tr)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	t.Run("Call, with ContextWithMeta merging", func(t *testing.T) {
		ctx := acomm.ContextWithMeta(context.Background(), map[string]string{"tenant": "a", "traceparent": "old"})
		ctx = acomm.ContextWithMeta(ctx, map[string]string{"traceparent": tp})
		resp, err := tr.Call(ctx, srv.URL(), "meta", nil)
		require.NoError(t, err)
		var got map[string]string
		require.NoError(t, resp.UnmarshalResult(&got))
		assert.Equal(t, map[string]string{"tenant": "a", "traceparent": tp}, got)
	})

	t.Run("Call without meta", func(t *testing.T) {
		resp, err := tr.Call(context.Background(), srv.URL(), "meta", nil)
		require.NoError(t, err)
		var got map[string]string
		require.NoError(t, resp.UnmarshalResult(&got))
		assert.Nil(t, got)
	})

	t.Run("seed API: NewRequest, TrackRequest, Send", func(t *testing.T) {
		got := make(chan result, 1)
		req := newRequest(t, tr, "meta", nil, got)
		req.Meta = map[string]string{"user": "ops", "x.y_z-1": "v w"}
		require.NoError(t, tr.TrackRequest(req, 5*time.Second))
		require.NoError(t, acomm.Send(srv.URL(), req))
		r := waitFor(t, got, 5*time.Second, "the answer")
		require.NoError(t, r.resp.Error)
		var m map[string]string
		require.NoError(t, r.resp.UnmarshalResult(&m))
		assert.Equal(t, req.Meta, m)
	})

	t.Run("ContextWithMeta copies its map", func(t *testing.T) {
		m := map[string]string{"k": "before"}
		ctx := acomm.ContextWithMeta(context.Background(), m)
		m["k"] = "after"
		resp, err := tr.Call(ctx, srv.URL(), "meta", nil)
		require.NoError(t, err)
		assert.JSONEq(t, `{"k":"before"}`, string(*resp.Result))
	})
}

func TestMetaWire(t *testing.T) {
	hook := mustURL(t, "unix:///run/x.sock")

	t.Run("literal frame", func(t *testing.T) {
		req := &acomm.Request{ID: "1", Task: "t", ResponseHook: hook, Meta: map[string]string{"b": "2", "a": "1"}}
		b, err := json.Marshal(req)
		require.NoError(t, err)
		assert.Equal(t, `{"id":"1","task":"t","responsehook":"unix:///run/x.sock","args":null,"meta":{"a":"1","b":"2"}}`, string(b))
		var back acomm.Request
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, req.Meta, back.Meta)
	})

	t.Run("empty meta is omitted", func(t *testing.T) {
		b, err := json.Marshal(&acomm.Request{ID: "1", Task: "t", ResponseHook: hook, Meta: map[string]string{}})
		require.NoError(t, err)
		assert.NotContains(t, string(b), "meta")
	})

	t.Run("an original peer reads our frame, new fields ignored", func(t *testing.T) {
		var in acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"1","task":"t","responsehook":"unix:///run/x.sock","args":{"n":1},"timeout_ms":30000}`), &in))
		in.Meta = map[string]string{"tenant": "a"}
		in.LegacyURLs = true // as to any peer not known to read string URLs
		b, err := json.Marshal(&in)
		require.NoError(t, err)
		require.Contains(t, string(b), `"timeout_ms":`)
		require.Contains(t, string(b), `"meta":{"tenant":"a"}`)
		var old oldRequest
		require.NoError(t, json.Unmarshal(b, &old), "%s", b)
		assert.Equal(t, "1", old.ID)
		assert.Equal(t, "t", old.Task)
		assert.Equal(t, "unix:///run/x.sock", old.ResponseHook.String())
		assert.JSONEq(t, `{"n":1}`, string(*old.Args))
	})

	t.Run("we read an original peer's frame: no deadline, no meta", func(t *testing.T) {
		var in acomm.Request
		require.NoError(t, json.Unmarshal([]byte(`{"id":"1","task":"t","responsehook":{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"/run/x.sock","RawPath":"","RawQuery":"","Fragment":""},"args":null}`), &in))
		assert.Nil(t, in.Meta)
		_, ok := in.Deadline()
		assert.False(t, ok)
		require.NoError(t, in.Validate())
	})
}

func TestMetaLimits(t *testing.T) {
	many := map[string]string{}
	for i := range acomm.MaxMetaEntries + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	atLimit := map[string]string{}
	for i := range acomm.MaxMetaEntries {
		atLimit[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", acomm.MaxMetaSize/acomm.MaxMetaEntries-3)
	}
	tests := []struct {
		name string
		meta map[string]string
		ok   bool
	}{
		{name: "at the limits", meta: atLimit, ok: true},
		{name: "W3C trace context", meta: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "congo=t61rcWkgMzE"}, ok: true},
		{name: "tab and non-ASCII text in a value", meta: map[string]string{"k": "a\tb é"}, ok: true},
		{name: "too many entries", meta: many},
		{name: "too many bytes", meta: map[string]string{"k": strings.Repeat("v", acomm.MaxMetaSize)}},
		{name: "upper case key", meta: map[string]string{"Tenant": "a"}},
		{name: "empty key", meta: map[string]string{"": "a"}},
		{name: "key with a space", meta: map[string]string{"a b": "a"}},
		{name: "key too long", meta: map[string]string{strings.Repeat("k", acomm.MaxMetaKeyLen+1): "a"}},
		{name: "newline in a value", meta: map[string]string{"k": "a\r\nInjected: 1"}},
	}
	tr := newTracker(t, nil, 5*time.Second)
	srv := metaServer(t, tr)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &acomm.Request{ID: "1", Task: "meta", ResponseHook: tr.URL(), Meta: tc.meta}
			err := req.Validate()
			_, callErr := tr.Call(acomm.ContextWithMeta(context.Background(), tc.meta), srv.URL(), "meta", nil)
			if tc.ok {
				require.NoError(t, err)
				require.NoError(t, callErr)
				return
			}
			require.ErrorIs(t, err, acomm.ErrInvalidRequest)
			assert.Contains(t, err.Error(), "meta")
			require.ErrorIs(t, callErr, acomm.ErrInvalidRequest, "Call refuses it before sending")

			// A receiver refuses such a frame in its acknowledgement.
			wire, merr := json.Marshal(map[string]any{"id": "1", "task": "meta", "responsehook": tr.URL().String(), "meta": tc.meta})
			require.NoError(t, merr)
			ack := frameExchanger(t, srv.Addr())(t, string(wire))
			assert.ErrorIs(t, ack.Error, acomm.ErrInvalidRequest)
		})
	}
}

// Original peers and the new fields, end to end, with the original-peer
// emulation of link_test.go: an original service takes our requests, meta
// and timeout_ms included, and our Server takes an original caller's.
func TestNewFieldsWithOriginalPeers(t *testing.T) {
	t.Run("an original service reads our request", func(t *testing.T) {
		peer, got := originalPeer(t)
		tr := newTracker(t, nil, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx = acomm.ContextWithMeta(ctx, map[string]string{"tenant": "acme"})
		resp, err := tr.Call(ctx, peer.url(), "t", map[string]int{"n": 1})
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":1}`, string(*resp.Result))
		old := waitFor(t, got, 5*time.Second, "the request")
		assert.Equal(t, tr.URL().String(), old.ResponseHook.String())
	})

	t.Run("our Server reads an original caller's request", func(t *testing.T) {
		tr := newTracker(t, nil, 5*time.Second)
		srv := srvStart(t, tr)
		seen := make(chan bool, 1)
		srv.Handle("t", func(ctx context.Context, req *acomm.Request) (any, io.ReadCloser, error) {
			_, has := ctx.Deadline()
			seen <- has || req.Meta != nil
			return "ok", nil, nil
		})
		got := make(chan result, 1)
		req := newRequest(t, tr, "t", nil, got)
		require.NoError(t, tr.TrackRequest(req, 5*time.Second))
		// The frame as the original acomm wrote it: the object form, no
		// new fields.
		body := `{"id":"` + req.ID + `","task":"t","responsehook":{"Scheme":"unix","Opaque":"","User":null,"Host":"","Path":"` +
			tr.Addr() + `","RawPath":"","RawQuery":"","Fragment":""},"args":null}`
		require.NoError(t, frameExchanger(t, srv.Addr())(t, body).Error)
		assert.False(t, waitFor(t, seen, 5*time.Second, "the handler"), "no deadline, no meta")
		r := waitFor(t, got, 5*time.Second, "the answer")
		require.NoError(t, r.resp.Error)
	})
}
