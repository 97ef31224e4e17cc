package acomm

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The URL object memo is invisible: the same text reads as the same URL,
// every time, from any goroutine, and a caller's changes to what it got
// never reach the next reader; the same URL writes as encoding/json
// writes it.
func TestURLObjectMemoIsInvisible(t *testing.T) {
	urls := memoURLs()
	fromGoroutines(func(g, i int) {
		want, err := url.Parse(urls[(g+i)%len(urls)])
		require.NoError(t, err)
		text, err := appendURL(nil, want, "", true)
		require.NoError(t, err)
		plain, err := json.Marshal(want)
		require.NoError(t, err)
		require.Equal(t, string(plain), string(text), "written as encoding/json writes it")

		got, legacy, err := readURL(text)
		require.NoError(t, err)
		require.True(t, legacy)
		require.Equal(t, want.String(), got.String())
		got.Path += "/changed" // the reader's own copy
		again, _, err := readURL(text)
		require.NoError(t, err)
		require.Equal(t, want.String(), again.String())
	})
}

// A URL object refused once is refused every time: only what read
// without error is remembered.
func TestURLObjectMemoKeepsRefusals(t *testing.T) {
	for i, text := range []string{
		`{"Scheme":"http","Opaque":"h/p"}`,                            // opaque http
		`{"Scheme":"unix","Path":"/run/x.sock","User":{}}`,            // lost user info
		`{"Scheme":"A000","Path":"/x"}`,                               // reads back as another
		`{"Scheme":"http","Host":"h","Opaque":"//127.0.0.1:1/admin"}`, // parts that disagree
		`{"Scheme":"unix","Path":"/run/x.sock","Path":"/run/y.sock"}`, // a name twice
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			good := []byte(`{"Scheme":"unix","Path":"/run/ok.sock"}`)
			for range 2 {
				_, _, err := readURL(good)
				require.NoError(t, err)
				_, _, err = readURL([]byte(text))
				assert.ErrorIs(t, err, ErrInvalidURL, text)
			}
		})
	}
}

// The hook memo is invisible too: the same hook text parses as the same
// URL every time, from any goroutine, a caller's changes to the URL it got
// never reach the next, and a hook refused once is refused every time.
func TestHookMemoIsInvisible(t *testing.T) {
	hooks := memoURLs()
	bad := []string{"", "ftp://h/x", "unix://", "http:opaque"}
	fromGoroutines(func(g, i int) {
		text := hooks[(g+i)%len(hooks)]
		got, err := parseHook(text)
		require.NoError(t, err)
		require.Equal(t, text, got.String())
		got.Path += "/changed" // the caller's own copy
		again, err := parseHook(text)
		require.NoError(t, err)
		require.Equal(t, text, again.String())
		_, err = parseHook(bad[(g+i)%len(bad)])
		require.ErrorIs(t, err, ErrInvalidRequest)
	})
}

// memoURLs are URLs for the memo tests: three kept, one too long to keep.
func memoURLs() []string {
	return []string{
		"unix:///run/a.sock", "unix:///run/b.sock", "http://127.0.0.1:8080/hook?x=1#f",
		"unix:///run/" + strings.Repeat("long/", maxURLObjectMemo/5) + "c.sock", // too long to keep
	}
}

// fromGoroutines calls f(g, i) 200 times (i) on each of 4 goroutines (g)
// at once, and returns when all have returned.
func fromGoroutines(f func(g, i int)) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				f(g, i)
			}
		}()
	}
	wg.Wait()
}
