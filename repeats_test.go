package acomm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Server's connection decodes each request as decodeRequest does,
// whatever the requests before it on the connection: a repeated hook or
// task, the same text escaped otherwise, another form of the same URL.
func TestRepeatsDecodeAsFresh(t *testing.T) {
	frames := []string{
		`{"id":"1","task":"echo","responsehook":"unix:///tmp/t.sock","args":1}`,
		`{"id":"2","task":"echo","responsehook":"unix:///tmp/t.sock","args":2}`,
		`{"id":"3","task":"ech\u006f","responsehook":"unix:\/\/\/tmp\/t.sock"}`,
		`{"id":"4","task":"echo","responsehook":{"scheme":"unix","path":"/tmp/t.sock"}}`,
		`{"id":"5","task":"echo","responsehook":{"scheme":"unix","path":"/tmp/t.sock"}}`,
		`{"id":"6","task":"other","responsehook":"unix:///tmp/u.sock"}`,
		`{"id":"7","task":"echo","responsehook":"unix:///tmp/t.sock"}`,
		`{"id":"8","task":null,"responsehook":null}`,
		`{"id":"9","task":7,"responsehook":"unix:///tmp/t.sock"}`,
		`{"id":"10","task":"echo","responsehook":"unix:///tmp/t.sock"}`,
	}
	rep := new(repeats)
	var hooks []*Request
	for _, f := range frames {
		var want, got Request
		wantErr := decodeRequest([]byte(f), &want)
		err := decodeRequestMem([]byte(f), &got, &got.argsMem, rep, &frameClock{})
		if wantErr != nil {
			require.Error(t, err, f)
			continue
		}
		require.NoError(t, err, f)
		assert.Equal(t, want.ID, got.ID, f)
		assert.Equal(t, want.Task, got.Task, f)
		assert.Equal(t, want.ResponseHook, got.ResponseHook, f)
		assert.Equal(t, want.LegacyURLs, got.LegacyURLs, f)
		assert.Equal(t, rawString(want.Args), rawString(got.Args), f)
		hooks = append(hooks, &got)
	}
	// Each request has a hook of its own: changing one changes no other.
	hooks[0].ResponseHook.Path = "/changed"
	assert.Equal(t, "/tmp/t.sock", hooks[1].ResponseHook.Path)
}
