package bridge_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/acommgo/acomm"
	"github.com/acommgo/acomm/bridge"
)

// FuzzBridgeRequests feeds arbitrary bodies to the bridge's request
// endpoint. The route points at a socket nobody listens on, so a request
// that passes every check is refused with 502 and untracked: no traffic
// leaves the process. Every answer must be a known status with a JSON
// body, and nothing may stay tracked.
func FuzzBridgeRequests(f *testing.F) {
	dir := shortDir(f)
	tr, err := acomm.NewTracker(filepath.Join(dir, "t.sock"), nil, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tr.Stop)
	route, err := bridge.ParseRoute("disk.*=unix://" + filepath.Join(dir, "absent.sock"))
	if err != nil {
		f.Fatal(err)
	}
	br, err := bridge.New(tr, route)
	if err != nil {
		f.Fatal(err)
	}
	br.MaxBodyBytes = 1 << 16
	h := br.RequestsHandler()

	for _, seed := range []string{
		`{"id":"1","task":"disk.usage","responsehook":"http://127.0.0.1:9/hook","args":{"path":"/"}}`,
		`{"id":"1","task":"disk.usage","responsehook":{"Scheme":"http","Host":"127.0.0.1:9","Path":"/h"},"args":null}`,
		`{"id":"1","task":"other","responsehook":"http://127.0.0.1:9/hook"}`,
		`{"id":"1","task":"disk.usage","responsehook":"unix:///tmp/x.sock"}`,
		`{"id":"","task":"","responsehook":null}`,
		`{"id":`, `[]`, `null`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	allowed := map[int]bool{
		http.StatusBadRequest: true, http.StatusForbidden: true, http.StatusNotFound: true,
		http.StatusConflict: true, http.StatusRequestEntityTooLarge: true, http.StatusBadGateway: true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/requests", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("body is not JSON: %q", rec.Body.String())
		}
		if n := tr.NumRequests(); n != 0 {
			t.Fatalf("%d requests left tracked after %q", n, body)
		}
	})
}
