package acomm_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sendReceiver is a unix receiver for Send tests, written with the seed
// API: it reads frames with UnmarshalConnData and answers each with
// handle, which reports whether to keep reading the connection.
type sendReceiver struct {
	ul  *acomm.UnixListener
	got chan *acomm.Request // every request read
	wg  sync.WaitGroup
}

// newSendReceiver starts a receiver, stopped at cleanup with every
// goroutine it started finished.
func newSendReceiver(t *testing.T, handle func(conn net.Conn, req *acomm.Request) bool) *sendReceiver {
	t.Helper()
	r := &sendReceiver{ul: newListener(t, 0), got: make(chan *acomm.Request, 64)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for conn := r.ul.NextConn(); conn != nil; conn = r.ul.NextConn() {
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer r.ul.DoneConn(conn)
				for {
					req := &acomm.Request{}
					if err := acomm.UnmarshalConnData(conn, req); err != nil {
						return
					}
					r.got <- req
					if !handle(conn, req) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		acomm.CloseIdleConnections()
		r.ul.Stop(0) // closes connections still open
		r.wg.Wait()
	})
	return r
}

// ackWith returns a handler that acknowledges every frame with resp(req)
// and keeps the connection.
func ackWith(resp func(req *acomm.Request) *acomm.Response) func(net.Conn, *acomm.Request) bool {
	return func(conn net.Conn, req *acomm.Request) bool {
		return acomm.SendConnData(conn, resp(req)) == nil
	}
}

// accept acknowledges a frame as accepted.
func accept(req *acomm.Request) *acomm.Response { return &acomm.Response{ID: req.ID} }

// sendTestRequest returns a valid request to send.
func sendTestRequest(t *testing.T) *acomm.Request {
	t.Helper()
	req, err := acomm.NewRequest("task", "unix:///run/reply.sock", map[string]int{"n": 1}, nil, nil)
	require.NoError(t, err)
	return req
}

func TestSendBadURL(t *testing.T) {
	tests := []struct {
		name string
		addr *url.URL
		want error
	}{
		{"nil", nil, acomm.ErrInvalidURL},
		{"ftp", &url.URL{Scheme: "ftp", Host: "h", Path: "/x"}, acomm.ErrUnsupportedScheme},
		{"no scheme", &url.URL{Path: "/run/x.sock"}, acomm.ErrUnsupportedScheme},
		{"unix without path", &url.URL{Scheme: "unix", Host: "h"}, acomm.ErrInvalidURL},
		{"http without host", &url.URL{Scheme: "http", Path: "/x"}, acomm.ErrInvalidURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, acomm.Send(tc.addr, &acomm.Response{ID: "1"}), tc.want)
		})
	}
}

func TestSendUnix(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		r := newSendReceiver(t, ackWith(accept))
		req := sendTestRequest(t)
		require.NoError(t, acomm.Send(r.ul.URL(), req))
		got := waitFor(t, r.got, 5*time.Second, "the request")
		assert.Equal(t, req.ID, got.ID)
		assert.Equal(t, req.Task, got.Task)
		assert.Equal(t, req.ResponseHook.String(), got.ResponseHook.String())
		assert.JSONEq(t, string(*req.Args), string(*got.Args))
	})

	t.Run("several sends", func(t *testing.T) {
		r := newSendReceiver(t, ackWith(accept))
		for i := 0; i < 5; i++ {
			req := sendTestRequest(t)
			require.NoError(t, acomm.Send(r.ul.URL(), req), "send %d", i)
			assert.Equal(t, req.ID, waitFor(t, r.got, 5*time.Second, "a request").ID)
		}
	})

	t.Run("refused", func(t *testing.T) {
		r := newSendReceiver(t, ackWith(func(req *acomm.Request) *acomm.Response {
			return &acomm.Response{ID: req.ID, Error: fmt.Errorf("%w: missing task", acomm.ErrInvalidRequest)}
		}))
		err := acomm.Send(r.ul.URL(), sendTestRequest(t))
		assert.ErrorIs(t, err, acomm.ErrRefused)
		assert.ErrorIs(t, err, acomm.ErrInvalidRequest)
		assert.NotErrorIs(t, err, acomm.ErrInvalidResponse)
		assert.ErrorContains(t, err, "acomm: invalid request: missing task")

		// The refusing receiver still takes the next frame.
		err = acomm.Send(r.ul.URL(), sendTestRequest(t))
		assert.ErrorIs(t, err, acomm.ErrRefused)
	})

	t.Run("receiver closes without an ack", func(t *testing.T) {
		r := newSendReceiver(t, func(net.Conn, *acomm.Request) bool { return false })
		err := acomm.Send(r.ul.URL(), sendTestRequest(t))
		require.Error(t, err)
		assert.NotErrorIs(t, err, acomm.ErrRefused)
		waitFor(t, r.got, 5*time.Second, "the request")
	})

	t.Run("garbage ack", func(t *testing.T) {
		r := newSendReceiver(t, func(conn net.Conn, _ *acomm.Request) bool {
			_, _ = conn.Write(append(binary.BigEndian.AppendUint32(nil, 4), "nope"...))
			return true
		})
		err := acomm.Send(r.ul.URL(), sendTestRequest(t))
		assert.ErrorIs(t, err, acomm.ErrMalformedFrame)
		assert.NotErrorIs(t, err, acomm.ErrRefused)
	})

	t.Run("receiver that hangs up after each frame, as the original did", func(t *testing.T) {
		r := newSendReceiver(t, func(conn net.Conn, req *acomm.Request) bool {
			_ = acomm.SendConnData(conn, accept(req))
			return false
		})
		for i := 0; i < 3; i++ {
			req := sendTestRequest(t)
			require.NoError(t, acomm.Send(r.ul.URL(), req), "send %d", i)
			assert.Equal(t, req.ID, waitFor(t, r.got, 5*time.Second, "a request").ID)
		}
		select {
		case extra := <-r.got:
			t.Fatalf("a frame was delivered twice: %s", extra.ID)
		default:
		}
	})

	t.Run("nobody listening", func(t *testing.T) {
		err := acomm.Send(&url.URL{Scheme: "unix", Path: sockPath(t, "none.sock")}, sendTestRequest(t))
		require.Error(t, err)
		assert.NotErrorIs(t, err, acomm.ErrRefused)
	})

	t.Run("unmarshalable payload", func(t *testing.T) {
		r := newSendReceiver(t, ackWith(accept))
		assert.ErrorIs(t, acomm.Send(r.ul.URL(), make(chan int)), acomm.ErrInvalidArgument)
	})
}

// httpReceived is what an HTTP test receiver saw.
type httpReceived struct {
	method, contentType string
	body                []byte
}

// newHTTPReceiver starts an httptest server answering every POST with
// status and body, closed at cleanup.
func newHTTPReceiver(t *testing.T, status int, body string) (*url.URL, <-chan httpReceived) {
	t.Helper()
	got := make(chan httpReceived, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- httpReceived{method: r.Method, contentType: r.Header.Get("Content-Type"), body: b}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + "/hook?x=1")
	require.NoError(t, err)
	return u, got
}

func TestSendHTTP(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		wants  []error // nil: success
	}{
		{name: "2xx with ack", status: http.StatusOK, body: `{"id":"1","result":null,"stream_url":null,"error":""}`},
		{name: "2xx empty body", status: http.StatusOK},
		{name: "204", status: http.StatusNoContent},
		{name: "2xx body that is not an ack", status: http.StatusAccepted, body: "ok\n"},
		{
			name: "2xx ack with error", status: http.StatusOK,
			body:  `{"id":"1","result":null,"stream_url":null,"error":"acomm: invalid request: missing task"}`,
			wants: []error{acomm.ErrRefused, acomm.ErrInvalidRequest},
		},
		{name: "500", status: http.StatusInternalServerError, body: "kaput", wants: []error{acomm.ErrHTTPStatus}},
		{name: "404", status: http.StatusNotFound, wants: []error{acomm.ErrHTTPStatus}},
		{
			name: "500 with an ack error body", status: http.StatusInternalServerError,
			body:  `{"id":"1","error":"acomm: server busy"}`,
			wants: []error{acomm.ErrHTTPStatus},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := newHTTPReceiver(t, tc.status, tc.body)
			req := sendTestRequest(t)
			err := acomm.Send(addr, req)

			rec := waitFor(t, got, 5*time.Second, "the POST")
			assert.Equal(t, http.MethodPost, rec.method)
			assert.Equal(t, "application/json", rec.contentType)
			var sent acomm.Request
			require.NoError(t, json.Unmarshal(rec.body, &sent))
			assert.Equal(t, req.ID, sent.ID)

			if tc.wants == nil {
				assert.NoError(t, err)
				return
			}
			for _, want := range tc.wants {
				assert.ErrorIs(t, err, want)
			}
			if tc.status >= 300 {
				assert.NotErrorIs(t, err, acomm.ErrRefused)
				assert.ErrorContains(t, err, fmt.Sprint(tc.status))
				assert.ErrorContains(t, err, tc.body)
			}
		})
	}

	t.Run("server gone", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		addr, err := url.Parse(srv.URL)
		require.NoError(t, err)
		srv.Close()
		err = acomm.Send(addr, sendTestRequest(t))
		require.Error(t, err)
		assert.NotErrorIs(t, err, acomm.ErrHTTPStatus)
	})

	t.Run("unmarshalable payload", func(t *testing.T) {
		assert.ErrorIs(t, acomm.Send(&url.URL{Scheme: "http", Host: "127.0.0.1:1"}, func() {}), acomm.ErrInvalidArgument)
	})
}

func TestSendUnreachableNamesPathOnce(t *testing.T) {
	path := filepath.Join(shortDir(t), "none.sock")
	err := acomm.Send(unixURL(path), &acomm.Response{ID: "x"})
	require.ErrorIs(t, err, acomm.ErrUnreachable)
	assert.Equal(t, 1, strings.Count(err.Error(), path), "%v", err)
}

// An http(s) hook may carry its request's capability in its query: the
// errors of a send to it do not show it.
func TestSendHTTPErrorsHideCapability(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(refusing.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, base := range []string{refusing.URL, closed.URL} {
		u, err := url.Parse(base + "/hook?acomm-cap=1.s3cretcap")
		require.NoError(t, err)
		err = acomm.Send(u, &acomm.Response{ID: "1"})
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "s3cretcap")
		assert.Contains(t, err.Error(), "/hook")
	}
}
