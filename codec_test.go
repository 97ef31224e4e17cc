package acomm_test

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A frame whose body is empty, blank or followed by more JSON is malformed
// (as it was before the decoder walked tokens), and no clean end (io.EOF).
func TestEmptyOrTrailingBodyIsMalformed(t *testing.T) {
	bodies := []string{"", " ", `{"id":"1","task":"t"} {}`}
	t.Run("UnmarshalConnData", func(t *testing.T) {
		for _, body := range bodies {
			server, client := net.Pipe()
			go func() {
				_, _ = client.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
			}()
			var req acomm.Request
			err := acomm.UnmarshalConnData(server, &req)
			_ = server.Close()
			_ = client.Close()
			assert.ErrorIs(t, err, acomm.ErrMalformedFrame, "%q", body)
			assert.NotErrorIs(t, err, io.EOF, "%q: a frame is no clean end", body)
			var resp acomm.Response
			err = resp.UnmarshalJSON([]byte(body))
			assert.ErrorIs(t, err, acomm.ErrMalformedFrame, "%q", body)
			assert.NotErrorIs(t, err, io.EOF, "%q", body)
		}
	})
	t.Run("Server refusal", func(t *testing.T) {
		srv := srvStart(t, nil)
		conn, err := net.Dial("unix", srv.Addr())
		require.NoError(t, err)
		defer conn.Close()
		for _, body := range bodies {
			_, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
			require.NoError(t, err)
			raw, err := readRawFrame(conn)
			require.NoError(t, err)
			var ack struct{ Error string }
			require.NoError(t, json.Unmarshal(raw, &ack))
			assert.ErrorIs(t, &acomm.RemoteError{Message: ack.Error}, acomm.ErrMalformedFrame, "%q refused with %q", body, ack.Error)
		}
	})
}

// Issue 17 item 2, one frame, one meaning: member names are matched as
// encoding/json (the original acomm's decoder, and most Go peers') matches
// them, regardless of case, and a name given twice in any mix of case is
// refused, so that two decoders that both accept a frame read the same.

func TestMemberNamesMatchRegardlessOfCase(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		tests := []struct {
			name, wire       string
			wantID, wantTask string
			wantHook         string // "" for none
			wantMeta         map[string]string
			wantDeadline     bool
		}{
			{
				name:   "the original's names in another case, the URL object's too",
				wire:   `{"ID":"a","Task":"t","ResponseHook":{"scheme":"unix","path":"/x.sock"}}`,
				wantID: "a", wantTask: "t", wantHook: "unix:///x.sock",
			},
			{
				name:   "the long s folds with s, the Kelvin sign with k",
				wire:   `{"id":"1","taſk":"t","responsehoo\u212a":{"Scheme":"unix","Path":"/x.sock"}}`,
				wantID: "1", wantTask: "t", wantHook: "unix:///x.sock",
			},
			{
				name:   "an escaped name",
				wire:   `{"\u0049\u0044":"1","task":"t"}`,
				wantID: "1", wantTask: "t",
			},
			{
				name:     "the dotted İ and dotless ı fold with no i",
				wire:     `{"İd":"1","ıd":"2","task":"t"}`,
				wantTask: "t",
			},
			{
				name:   "our own members too",
				wire:   `{"id":"1","task":"t","Timeout_MS":1500,"META":{"k":"v"}}`,
				wantID: "1", wantTask: "t", wantMeta: map[string]string{"k": "v"}, wantDeadline: true,
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var req acomm.Request
				require.NoError(t, json.Unmarshal([]byte(tc.wire), &req))
				assert.Equal(t, tc.wantID, req.ID)
				assert.Equal(t, tc.wantTask, req.Task)
				assert.Equal(t, tc.wantHook, urlText(req.ResponseHook))
				assert.Equal(t, tc.wantMeta, req.Meta)
				_, has := req.Deadline()
				assert.Equal(t, tc.wantDeadline, has)

				// What the original reads in it.
				var old oldRequest
				require.NoError(t, json.Unmarshal([]byte(tc.wire), &old))
				assert.Equal(t, old.ID, req.ID)
				assert.Equal(t, old.Task, req.Task)
				assert.Equal(t, urlText(old.ResponseHook), urlText(req.ResponseHook))
			})
		}
	})

	t.Run("responses", func(t *testing.T) {
		tests := []struct {
			name, wire string
			wantID     string
			wantResult string // "" for none
			wantStream string
			wantErr    string
		}{
			{name: "an answer for x4", wire: `{"Id":"x4","result":1}`, wantID: "x4", wantResult: "1"},
			{
				name:   "every member in another case",
				wire:   `{"ID":"1","Result":[1],"Stream_URL":"unix:///s.sock","ERROR":"boom"}`,
				wantID: "1", wantResult: "[1]", wantStream: "unix:///s.sock", wantErr: "boom",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var resp acomm.Response
				require.NoError(t, json.Unmarshal([]byte(tc.wire), &resp))
				assert.Equal(t, tc.wantID, resp.ID)
				result := ""
				if resp.Result != nil {
					result = string(*resp.Result)
				}
				assert.Equal(t, tc.wantResult, result)
				assert.Equal(t, tc.wantStream, urlText(resp.StreamURL))
				errText := ""
				if resp.Error != nil {
					errText = resp.Error.Error()
				}
				assert.Equal(t, tc.wantErr, errText)

				var old oldResponse
				require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(tc.wire, `"unix:///s.sock"`, "null")), &old))
				assert.Equal(t, old.ID, resp.ID)
				assert.Equal(t, old.Error, errText)
			})
		}
	})
}

func TestMemberGivenTwiceInAnyCaseIsRefused(t *testing.T) {
	tests := []struct {
		name, wire string
		kind       error // ErrInvalidRequest or ErrInvalidResponse
	}{
		{"id in two cases", `{"id":"a","ID":"b"}`, acomm.ErrInvalidRequest},
		{"result in two cases", `{"id":"x7","result":8,"RESULT":9}`, acomm.ErrInvalidResponse},
		{"error in two cases", `{"id":"x9","error":"","ERROR":"boom"}`, acomm.ErrInvalidResponse},
		{"task and the Kelvin sign", `{"id":"1","task":"a","tas\u212a":"b"}`, acomm.ErrInvalidRequest},
		{"an escaped name", `{"id":"1","\u0069D":"2"}`, acomm.ErrInvalidRequest},
		{"a member neither knows", `{"id":"1","x":1,"X":2}`, acomm.ErrInvalidResponse},
		{"a URL object's member", `{"id":"1","task":"t","responsehook":{"Scheme":"unix","Path":"/a.sock","PATH":"/b.sock"}}`, acomm.ErrInvalidRequest},
		{"the same name, as before", `{"id":"1","id":"2"}`, acomm.ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.kind == acomm.ErrInvalidRequest {
				err = json.Unmarshal([]byte(tc.wire), new(acomm.Request))
			} else {
				err = json.Unmarshal([]byte(tc.wire), new(acomm.Response))
			}
			assert.ErrorIs(t, err, acomm.ErrMalformedFrame)
			assert.ErrorIs(t, err, tc.kind)
		})
	}

	t.Run("refused in the acknowledgement", func(t *testing.T) {
		srv := srvStart(t, nil)
		conn, err := net.Dial("unix", srv.Addr())
		require.NoError(t, err)
		defer conn.Close()
		body := `{"id":"a","task":"t","responsehook":"unix:///x.sock","ID":"b"}`
		_, err = conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
		require.NoError(t, err)
		raw, err := readRawFrame(conn)
		require.NoError(t, err)
		var ack struct{ Error string }
		require.NoError(t, json.Unmarshal(raw, &ack))
		refusal := &acomm.RemoteError{Message: ack.Error}
		assert.ErrorIs(t, refusal, acomm.ErrMalformedFrame)
		assert.Contains(t, ack.Error, `"ID": member given twice (names match regardless of case)`)
	})
}

// An acknowledgement is read as encoding/json reads it: names in any case,
// and duplicates let through, the last standing (null leaves it as it was).
func TestAckNamesMatchRegardlessOfCase(t *testing.T) {
	tests := []struct {
		name, ack string
		wantErr   string // the refusal, "" for none
	}{
		{"error in upper case", `{"ERROR":"boom"}`, "boom"},
		{"the last error stands", `{"error":"","ERROR":"boom"}`, "boom"},
		{"the last error stands, empty", `{"error":"boom","Error":""}`, ""},
		{"null leaves the error", `{"error":"boom","Error":null}`, "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peer := newFakePeer(t, func(conn net.Conn) {
				if _, err := readRawFrame(conn); err == nil {
					_, _ = conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(tc.ack))), tc.ack...))
				}
			})
			err := acomm.Send(peer.url(), &acomm.Response{ID: "1"})
			var old oldResponse
			require.NoError(t, json.Unmarshal([]byte(tc.ack), &old))
			assert.Equal(t, tc.wantErr, old.Error, "what the original reads")
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, acomm.ErrRefused)
			var re *acomm.RemoteError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.wantErr, re.Message)
		})
	}
}

// An answer from a peer writing names in another case is delivered, not
// acknowledged and lost (issue 17's {"Id":"x4","result":1}).
func TestTrackerTakesAnswerInAnotherCase(t *testing.T) {
	tr := newTracker(t, nil, 5*time.Second)
	got := make(chan *acomm.Response, 1)
	req, err := acomm.NewRequest("t", tr.URL().String(), nil, func(_ *acomm.Request, resp *acomm.Response) { got <- resp }, nil)
	require.NoError(t, err)
	require.NoError(t, tr.TrackRequest(req, 5*time.Second))

	conn, err := net.Dial("unix", tr.Addr())
	require.NoError(t, err)
	defer conn.Close()
	body := `{"Id":"` + req.ID + `","Result":1,"Stream_URL":null,"Error":""}`
	_, err = conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
	require.NoError(t, err)
	raw, err := readRawFrame(conn)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"error":""`)

	resp := waitFor(t, got, 5*time.Second, "the answer")
	assert.Equal(t, req.ID, resp.ID)
	require.NotNil(t, resp.Result)
	assert.Equal(t, "1", string(*resp.Result))
}

// urlText returns u's text, "" for nil.
func urlText(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}
