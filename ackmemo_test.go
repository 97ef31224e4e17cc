package acomm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ackShapeOf decodes body, an acknowledgement of the frame id, in full,
// as a link reads one, and returns its shape (nil: none).
func ackShapeOf(t testing.TB, body, id string, wantFeatures bool) *ackShape {
	var check ackIDCheck
	features, _, err := decodeAckOf([]byte(body), wantFeatures, true, &check)
	if err != nil || check.other != "" {
		return nil
	}
	return newAckShape([]byte(body), id, &check, features)
}

// agreesWithDecode fails t unless body, matched by shape around id, means
// what decoding it in full gives: no refusal, no answer, id as the id,
// and the shape's features.
func agreesWithDecode(t testing.TB, s *ackShape, body, id string, wantFeatures bool) {
	check := ackIDCheck{want: id}
	features, answer, err := decodeAckOf([]byte(body), wantFeatures, true, &check)
	require.NoError(t, err, "%s matched %q|%q", body, s.pre, s.post)
	require.Nil(t, answer, body)
	require.Empty(t, check.other, body)
	require.Equal(t, 1, check.ids, body)
	if wantFeatures {
		require.True(t, s.listed, body)
		require.Equal(t, features, s.features, body)
	}
}

// An acknowledgement decoded in full makes a shape only when it can serve
// for others, and a shape matches exactly the acknowledgements that mean
// what it meant, around another id.
func TestAckShape(t *testing.T) {
	const id, other = "7f9c2ba4-e88f-4d6b-9a1c-3e0b5d2f8a61", "0b6a1f2e-1c0d-4e7a-8f3b-2a9d5c6e7f80"
	ours := `{"id":"ID","result":null,"stream_url":null,"error":""}`
	tests := []struct {
		name  string
		first string // with ID for the id
		shape bool   // makes a shape
		// second acknowledgements, with ID for other: whether they match
		seconds map[string]bool
	}{
		{"ours", ours, true, map[string]bool{
			ours: true,
			`{"id":"ID","result":null,"stream_url":null,"error":"no"}`:     false,
			`{"id":"ID","result":null,"stream_url":null,"error":""} `:      false,
			`{"id":"ID","result":null,"stream_url":null,"error":""`:        false,
			`{"id":"ID","result":{},"stream_url":null,"error":""}`:         false,
			`{"id":"ID","result":null,"stream_url":null,"error":"","x":1}`: false,
		}},
		{"the original's order", `{"error":"","id":"ID","result":null,"stream_url":null}`, true, map[string]bool{
			`{"error":"","id":"ID","result":null,"stream_url":null}`: true,
			ours: false,
		}},
		{"features", `{"id":"ID","error":"","features":["pipeline","string-urls"]}`, true, map[string]bool{
			`{"id":"ID","error":"","features":["pipeline","string-urls"]}`: true,
			`{"id":"ID","error":"","features":["pipeline"]}`:               false,
		}},
		{"a refusal", `{"id":"ID","error":"no"}`, false, nil},
		{"an answer", `{"id":"ID","error":"","answer":null}`, false, nil},
		{"an answer, in capitals", `{"id":"ID","error":"","ANSWER":{"id":"ID"}}`, false, nil},
		{"the id twice", `{"id":"ID","Id":"ID"}`, false, nil},
		{"another id", strings.Replace(ours, "ID", "someone else", 1), false, nil},
		{"no id", `{"error":""}`, false, nil},
		{"an escaped id", strings.Replace(ours, "ID", `7f9c2ba4\u002de88f-4d6b-9a1c-3e0b5d2f8a61`, 1), false, nil},
		{"not JSON", `{"id":"ID",}`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ackShapeOf(t, strings.ReplaceAll(tt.first, "ID", id), id, true)
			require.Equal(t, tt.shape, s != nil)
			for second, want := range tt.seconds {
				body := strings.ReplaceAll(second, "ID", other)
				assert.Equal(t, want, s.matches([]byte(body), other), body)
				if want {
					agreesWithDecode(t, s, body, other, true)
				}
			}
		})
	}
}

// An id that JSON writes otherwise than as it is matches no shape: its
// text in the acknowledgement could not be compared byte for byte.
func TestAckShapeNeedsAPlainID(t *testing.T) {
	s := ackShapeOf(t, `{"id":"a","error":""}`, "a", true)
	require.NotNil(t, s)
	for _, id := range []string{`a"b`, `a\b`, "a\nb", "é"} {
		assert.False(t, s.matches([]byte(`{"id":"`+id+`","error":""}`), id), id)
	}
	assert.True(t, s.matches([]byte(`{"id":"b","error":""}`), "b"))
}

// FuzzAckShape: whatever the first acknowledgement, a second one that
// its shape matches means, decoded in full, what the shape says.
func FuzzAckShape(f *testing.F) {
	f.Add(`{"id":"a","result":null,"stream_url":null,"error":""}`, "a", `{"id":"b","result":null,"stream_url":null,"error":""}`, "b", true)
	f.Add(`{"error":"","id":"a","features":["x"]}`, "a", `{"error":"","id":"bb","features":["x"]}`, "bb", false)
	f.Add(`{"id":"a","error":"","answer":{}}`, "a", `{"id":"b","error":"","answer":{}}`, "b", true)
	f.Fuzz(func(t *testing.T, first, id, second, other string, wantFeatures bool) {
		s := ackShapeOf(t, first, id, wantFeatures)
		if s == nil || !s.matches([]byte(second), other) || (wantFeatures && !s.listed) {
			return
		}
		agreesWithDecode(t, s, second, other, wantFeatures)
	})
}

// BenchmarkAckShape compares reading an acknowledgement of ours by its
// shape with decoding it in full.
func BenchmarkAckShape(b *testing.B) {
	const id = "7f9c2ba4-e88f-4d6b-9a1c-3e0b5d2f8a61"
	body := []byte(`{"id":"` + id + `","result":null,"stream_url":null,"error":"","features":["pipeline","string-urls","cancel","answer-in-ack"]}`)
	s := ackShapeOf(b, string(body), id, false)
	if s == nil {
		b.Fatal("no shape")
	}
	b.Run("shape", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !s.matches(body, id) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			check := ackIDCheck{want: id}
			if _, _, err := decodeAckOf(body, false, false, &check); err != nil {
				b.Fatal(err)
			}
		}
	})
}
