package acomm_test

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"testing"

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
