package bridge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/acommgo/acomm"
	"github.com/sirupsen/logrus"
)

// authorize reports whether r carries token (always, when token is
// empty); otherwise it answers 401 with a Bearer challenge.
func (b *Bridge) authorize(w http.ResponseWriter, r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	got, present := credential(r)
	if present && tokensEqual(got, token) {
		return true
	}
	challenge, msg := `Bearer realm="acomm"`, "acomm: unauthorized: missing token"
	if present {
		challenge, msg = `Bearer realm="acomm", error="invalid_token"`, "acomm: unauthorized: invalid token"
	}
	b.log().WithFields(logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path}).Debug(msg)
	w.Header().Set("WWW-Authenticate", challenge)
	httpError(w, http.StatusUnauthorized, msg)
	return false
}

// credential returns the token r presents, as a bearer token or a basic
// authentication password, and whether it presents any credential.
func credential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	if scheme, rest, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(rest), true
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw, true
	}
	return "", true
}

// tokensEqual compares two tokens in constant time, lengths included.
func tokensEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// checkPost answers 405 unless r is a POST.
func checkPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

// httpError writes a JSON error body with status code.
func httpError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, code, body)
}

// writeJSON answers with status code and a JSON body.
func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// writeAck answers with the acknowledgement of id: the Response a unix
// socket would acknowledge a frame with.
func writeAck(w http.ResponseWriter, id string) {
	body, err := json.Marshal(&acomm.Response{ID: id})
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// The bridge's features, listed as a unix receiver lists its own.
	body = append(body[:len(body)-1], `,"features":`+ackFeatures+`}`...)
	writeJSON(w, http.StatusOK, body)
}
